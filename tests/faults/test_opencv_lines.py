"""The journal holds the project's own log lines: no ``[ WARN:...]`` lines of OpenCV's on stderr.

A scan's position check (at its end, on a resume, every ``faults.realign_every_fields``) reads the first print's
saved frame with OpenCV; a frame missing or torn (a power cut, a folder copied in part) made OpenCV print
``[ WARN:0@...] global loadsave.cpp ... can't open/read file`` and ``[ERROR:...]`` lines, unformatted, beside the
project's own warning for the same file.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from appliance.results.store import ObjectRecord
from appliance.scan.position_check import _first_print


def _print(n: int, frame: str) -> ObjectRecord:
    return ObjectRecord(n, "structure", "pentagon", 0.9, 1.0, 2.0, 3.0, 30.0, 30.0, frame_path=frame,
                        box=(10, 10, 40, 40), extra={"stage_xy_um": [1.0, 2.0]})


def test_an_unreadable_saved_frame_is_said_once_in_the_projects_words(tmp_path: Path, capfd: pytest.CaptureFixture[str],
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "torn.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"x" * 20)  # a PNG cut off after its signature
    with caplog.at_level(logging.WARNING):
        assert _first_print([_print(1, "missing.png"), _print(2, "torn.png")], tmp_path) is None
    err = capfd.readouterr().err
    assert "[ WARN" not in err and "[ERROR" not in err, err
    said = [r.getMessage() for r in caplog.records]
    assert said == ["position check: missing.png could not be read", "position check: torn.png could not be read"]
