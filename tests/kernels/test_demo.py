"""``tppscan demo``: runs on a generated frame, writes its outputs, and rejects bad arguments."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.cli import main
from appliance.commands.demo import analyse
from kernels.testing import blob_frame


def test_demo_writes_png_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--seed", "4", "--size", "320x240", "--source", "synthetic"]) == 0
    text = capsys.readouterr().out
    doc = json.loads((out / "blobs.json").read_text())
    assert doc["width"] == 320 and doc["height"] == 240 and doc["seed"] == 4
    assert f"{len(doc['blobs'])} blobs kept" in text
    assert len(doc["blobs"]) > 5
    img = cv2.imread(str(out / "annotated.png"))
    assert img.shape == (240, 320, 3)
    frame = cv2.imread(str(out / "frame.png"), cv2.IMREAD_GRAYSCALE)
    # The JSON is the analysis of the frame written beside it.
    res = analyse(np.ascontiguousarray(frame))
    assert [b["area_px"] for b in doc["blobs"]] == res.stats[:, 4].tolist()
    assert [b["focus"] for b in doc["blobs"]] == res.focus.tolist()


def test_demo_is_seeded() -> None:
    a = analyse(blob_frame(240, 320, seed=9))
    b = analyse(blob_frame(240, 320, seed=9))
    c = analyse(blob_frame(240, 320, seed=10))
    np.testing.assert_array_equal(a.stats, b.stats)
    assert a.stats.shape != c.stats.shape or not np.array_equal(a.stats, c.stats)


@pytest.mark.parametrize(("args", "words"), [
    (["--size", "640"], "WIDTHxHEIGHT"),
    (["--size", "8x8"], "[16, 8192]"),
    (["--size", "640x99999"], "[16, 8192]"),
    (["--seed", "-3"], "integer >= 0"),
    (["--seed", "abc"], "integer >= 0"),
    (["--blobs", "x"], "integer >= 0"),
])
def test_demo_rejects_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                    words: str) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--out", str(tmp_path), *args])
    assert exc.value.code == 2
    assert words in capsys.readouterr().err


def test_demo_out_must_be_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["demo", "--out", str(f)]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_demo_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for opt in ("--out", "--seed", "--size"):
        assert opt in out


def test_demo_on_the_virtual_microscope_finds_the_structure(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sim"
    assert main(["demo", "--out", str(out), "--seed", "1"]) == 0
    doc = json.loads((out / "blobs.json").read_text())
    assert doc["source"] == "sim"
    structures = [t for t in doc["truth"] if t["kind"] == "structure"]
    assert structures, "the demo field must show the structure it drove to"
    for t in structures:  # every structure in view is covered by a kept blob
        x0, y0, x1, y1 = t["box_px"]
        assert any(b["x"] < x1 and b["x"] + b["width"] > x0 and b["y"] < y1 and b["y"] + b["height"] > y0
                   for b in doc["blobs"])
    assert "ground truth:" in capsys.readouterr().out
