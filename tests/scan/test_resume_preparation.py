"""A scan's row is written before its preparation: one cut off there is found again, and no id names two scans.

Before session 49 the row was written after the exposure, flat field, calibration and the slide's search: a scan
killed in them left a folder and log lines of ``scan=1`` and no row, so the next start gave id 1 again, to a new
folder, and ``results list`` knew nothing of the first.
"""

from __future__ import annotations

import json

import pytest

import appliance.scan.session as session
from appliance.results.store import ResultStore
from appliance.scan.calibration import CalibrationError
from appliance.scan.testing import scan_small_slide


class _Killed(BaseException):
    """The process killed (SIGKILL, a power cut): nothing of the scan's own code runs after it."""


def _cut_in_the_calibration(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    real = session._calibrated

    def once(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        monkeypatch.setattr(session, "_calibrated", real)
        raise exc
    monkeypatch.setattr(session, "_calibrated", once)


def test_a_scan_killed_in_its_preparation_has_its_row_and_is_prepared_again_in_it(tmp_path, monkeypatch) -> None:
    _cut_in_the_calibration(monkeypatch, _Killed())
    with pytest.raises(_Killed):
        scan_small_slide(tmp_path)
    with ResultStore(tmp_path / "tppscan.db") as st:
        (rec,) = st.scans()  # before: no row at all
        assert (rec.id, rec.status, rec.fields_planned) == (1, "preparing", 0)
        assert st.unfinished_scan(tmp_path / "scan") is not None
    assert json.loads((tmp_path / "scan" / "scan.json").read_text())["scan_id"] == 1  # the folder names it
    out, _ = scan_small_slide(tmp_path)  # the same command: the same scan, prepared again, to its end
    assert out.scan_id == 1 and out.summary["status"] == "finished" and out.summary["recall"] == 1.0
    with ResultStore(tmp_path / "tppscan.db") as st:
        (rec,) = st.scans()
        assert rec.status == "finished" and rec.fields_planned == out.summary["fields_planned"] > 0
        assert "calibration" in rec.config and "grid" in rec.config
    other, _ = scan_small_slide(tmp_path / "b")  # another folder, another database: its own ids
    assert other.scan_id == 1


def test_a_preparation_that_fails_says_so_in_its_row_and_the_next_run_prepares_it_again(tmp_path,
                                                                                      monkeypatch) -> None:
    _cut_in_the_calibration(monkeypatch, CalibrationError("no place sharp enough to correlate"))
    with pytest.raises(CalibrationError):
        scan_small_slide(tmp_path)
    with ResultStore(tmp_path / "tppscan.db") as st:
        rec = st.scan(1)
        assert rec.status == "failed" and rec.finish_reason == ("failed in its preparation: no place sharp enough "
                                                                "to correlate")
    out, _ = scan_small_slide(tmp_path)
    assert out.scan_id == 1 and out.summary["status"] == "finished"


def test_a_stop_in_the_preparation_is_heard_between_its_moves_and_leaves_the_scan_resumable(tmp_path) -> None:
    """``stop``, SIGTERM and ``pause`` waited for the preparation's end (the slide's search went on 50 s after the
    service said it was shutting down): the preparation asked the scan's control nothing."""
    from appliance.scan.session import PreparationStopped

    asked: list[str | None] = []

    def checkpoint(step: str | None) -> bool:  # the service's ScanControl: stop once the calibration has moved
        asked.append(step)
        return "calibration" in asked and asked[asked.index("calibration"):].count(None) >= 3

    with pytest.raises(PreparationStopped, match="stays resumable"):
        scan_small_slide(tmp_path, checkpoint=checkpoint)
    assert asked[:2] == ["exposure", "flat field"] and None in asked[2:asked.index("calibration")]
    assert asked[-1] is None  # stopped between two of the calibration's moves, not at its end
    with ResultStore(tmp_path / "tppscan.db") as st:
        (rec,) = st.scans()
        assert rec.status == "preparing" and not st.fields(rec.id)  # not failed: the next run prepares it again
    out, _ = scan_small_slide(tmp_path, checkpoint=lambda step: False)
    assert out.scan_id == rec.id and out.summary["status"] == "finished"
