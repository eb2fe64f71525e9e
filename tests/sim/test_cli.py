"""``tppscan sim slide|field|stack`` write their outputs and reject bad values by name."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from PIL import Image

from appliance.cli import main


def test_sim_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["sim", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("slide", "field", "stack"):
        assert cmd in out


def test_sim_slide_writes_overview_and_truth(tmp_path):
    out = tmp_path / "s.png"
    assert main(["sim", "slide", "--seed", "4", "--out", str(out), "--um-per-px", "40"]) == 0
    img = np.asarray(Image.open(out))
    assert img.shape == (250, 250) and img.min() < 150 and np.median(img) == 200
    truth = json.loads(out.with_suffix(".json").read_text())
    assert truth["seed"] == 4 and len(truth["objects"]) > 20
    assert {o["kind"] for o in truth["objects"]} == {"structure", "debris"}


def test_sim_field_writes_frame_and_boxes(tmp_path):
    out = tmp_path / "f.png"
    assert main(["sim", "field", "--seed", "4", "--out", str(out), "--width", "320", "--height", "240"]) == 0
    img = np.asarray(Image.open(out))
    assert img.shape == (240, 320) and img.dtype == np.uint8
    boxes = json.loads(out.with_suffix(".json").read_text())["boxes"]
    assert any(b["kind"] == "structure" for b in boxes)


def test_sim_stack_writes_ome_tiff(tmp_path):
    out = tmp_path / "k.ome.tif"
    assert main(["sim", "stack", "--seed", "4", "--out", str(out), "--width", "128", "--height", "96",
                 "--z-step", "5"]) == 0
    with tifffile.TiffFile(out) as t:
        assert t.is_ome and t.series[0].axes == "ZYX" and t.series[0].shape == (5, 96, 128)
        stack = t.asarray()
    assert not np.array_equal(stack[0], stack[2])  # focus changes the image
    meta = json.loads((tmp_path / "k.ome.tif.json").read_text())
    assert len(meta["z_um"]) == 5 and meta["z_um"][1] - meta["z_um"][0] == pytest.approx(5.0)


@pytest.mark.parametrize(("argv", "name"), [(["field", "--width", "4000"], "width_px"),
                                            (["field", "--exposure-ms", "-1"], "exposure_ms"),
                                            (["stack", "--z-step", "0"], "z-step"),
                                            (["slide", "--um-per-px", "0.1"], "um_per_px")])
def test_sim_bad_values_named(tmp_path, capsys, argv, name):
    assert main(["sim", *argv, "--out", str(tmp_path / "x.png")]) == 2
    assert name in capsys.readouterr().err


def test_sim_strip_writes_a_through_focus_strip(tmp_path, capsys):
    out = tmp_path / "p.png"
    assert main(["sim", "strip", "--seed", "4", "--cls", "pentagon", "--crop", "64", "--dz", "-4", "0", "4",
                 "--out", str(out)]) == 0
    img = np.asarray(Image.open(out))
    assert img.shape == (64, 3 * 66)
    assert main(["sim", "strip", "--cls", "hexagon", "--out", str(out)]) == 2
    assert "cls must be one of" in capsys.readouterr().err


def test_sim_slice_option(tmp_path, capsys):
    out = tmp_path / "f.png"
    assert main(["sim", "field", "--seed", "4", "--slice-um", "5", "--width", "128", "--height", "96",
                 "--out", str(out)]) == 0
    assert out.exists()
    assert main(["sim", "field", "--slice-um", "0.1", "--out", str(out)]) == 2
    assert "slice_um" in capsys.readouterr().err
