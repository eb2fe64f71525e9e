"""``tppscan sim slide|field|stack`` write their outputs and reject bad values by name."""

from __future__ import annotations

import json

import cv2
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


def test_sim_slide_writes_overview_with_markers_and_truth(tmp_path):
    out = tmp_path / "s.png"
    assert main(["sim", "slide", "--seed", "4", "--out", str(out), "--um-per-px", "40"]) == 0
    rgb = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert rgb.shape == (250, 250, 3) and rgb.min() < 150 and np.median(rgb[..., 1]) == 200
    truth = json.loads(out.with_suffix(".json").read_text())
    assert truth["seed"] == 4 and len(truth["objects"]) > 20
    assert {o["kind"] for o in truth["objects"]} == {"structure", "debris"}
    red = (rgb[..., 0] > 200) & (rgb[..., 1] < 80) & (rgb[..., 2] < 80)
    structures = [o for o in truth["objects"] if o["kind"] == "structure"]
    assert len(structures) == 20
    for o in structures:  # a red marker within a few map pixels of each structure's box
        x0, y0, x1, y1 = (v / 40 for v in o["bbox_um"])
        assert red[max(0, int(y0) - 8):int(y1) + 9, max(0, int(x0) - 8):int(x1) + 9].any(), o["id"]
    for o in structures:  # ... and nowhere else (its id is written to the right of the box)
        x0, y0, x1, y1 = (v / 40 for v in o["bbox_um"])
        red[max(0, int(y0) - 20):int(y1) + 21, max(0, int(x0) - 8):int(x1) + 40] = False
    assert not red.any()


def test_sim_slide_no_markers_keeps_the_grey_map(tmp_path, monkeypatch):
    from appliance.sim.microscope import VirtualMicroscope

    grey = np.full((30, 40), 200, np.uint8)
    monkeypatch.setattr(VirtualMicroscope, "overview", lambda self, um_per_px: grey)
    out = tmp_path / "s.png"
    assert main(["sim", "slide", "--out", str(out), "--no-markers"]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(out)), grey)


def test_sim_field_focuses_on_what_is_in_view(tmp_path):
    """The docs' example: at --x/--y the focus is that of the structure in view, not of the slide's first."""
    from appliance.sim.microscope import VirtualMicroscope

    out = tmp_path / "f.png"
    assert main(["sim", "field", "--seed", "1", "--x", "5016", "--y", "7161", "--out", str(out)]) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    structures = [b for b in meta["boxes"] if b["kind"] == "structure"]
    assert structures
    centre = min(structures, key=lambda b: abs((b["box_px"][0] + b["box_px"][2]) / 2 - 320)
                 + abs((b["box_px"][1] + b["box_px"][3]) / 2 - 240))
    assert meta["position_um"][2] == pytest.approx(centre["focus_z_um"], abs=0.05)
    first = next(o for o in VirtualMicroscope(seed=1).slide.objects if o.kind == "structure")
    assert first.id != centre["id"] and abs(first.focus_z_um - centre["focus_z_um"]) > 1.0


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


def test_sim_strip_writes_a_through_focus_strip(tmp_path, capsys):
    out = tmp_path / "p.png"
    assert main(["sim", "strip", "--seed", "4", "--cls", "pentagon", "--crop", "64", "--dz", "-4", "0", "4",
                 "--out", str(out)]) == 0
    img = np.asarray(Image.open(out))
    assert img.shape == (64, 3 * 66)
    assert main(["sim", "strip", "--cls", "hexagon", "--out", str(out)]) == 2
    assert "--cls must be one of" in capsys.readouterr().err


def test_sim_slice_option(tmp_path, capsys):
    out = tmp_path / "f.png"
    assert main(["sim", "field", "--seed", "4", "--slice-um", "5", "--width", "128", "--height", "96",
                 "--out", str(out)]) == 0
    assert out.exists()
    with pytest.raises(SystemExit) as e:
        main(["sim", "field", "--slice-um", "0.1", "--out", str(out)])
    assert e.value.code == 2 and "--slice-um" in capsys.readouterr().err  # tests/sim/test_cli_values.py: all values


def test_camera_presets_named_by_the_cli_are_the_simulators() -> None:
    from appliance.sim.capture import PRESETS
    from appliance.sim.cli import CAMERA_PRESETS

    assert CAMERA_PRESETS == tuple(sorted(PRESETS))


def test_sim_field_camera_preset_changes_the_capture_chain(tmp_path):
    frames = {}
    for name in ("default", "mono_raw"):
        out = tmp_path / f"{name}.png"
        assert main(["sim", "field", "--seed", "4", "--width", "160", "--height", "120", "--camera", name,
                     "--out", str(out)]) == 0
        frames[name] = np.asarray(Image.open(out).convert("L")).astype(int)
        assert json.loads(out.with_suffix(".json").read_text())["camera"] == name
    assert np.abs(frames["default"] - frames["mono_raw"]).mean() > 1.0


def test_sim_set_previews_the_slide_a_scan_would_see(tmp_path):
    # `tppscan scan --sim --sim-set ...` could not be previewed: sim had no --sim-set.
    from appliance.sim.overrides import parse_sim_sets, sim_microscope

    sets = ["slide.debris_per_mm2=0", "slide.width_um=3000", "slide.height_um=3000"]
    out = tmp_path / "slide.png"
    assert main(["sim", "slide", "--seed", "5", "--out", str(out), *[a for s in sets for a in ("--sim-set", s)]]) == 0
    truth = json.loads(out.with_suffix(".json").read_text())
    scan_slide = sim_microscope(5, parse_sim_sets(sets)).slide
    assert [(o["id"], o["cls"], o["center_um"]) for o in truth["objects"]] == \
        [(o.id, o.cls, list(o.center_um)) for o in scan_slide.objects]
    assert truth["params"]["width_um"] == 3000 and truth["params"]["debris_per_mm2"] == 0


def test_sim_set_sets_the_frame_and_the_camera(tmp_path):
    out = tmp_path / "f.png"
    assert main(["sim", "field", "--sim-set", "sensor.width_px=800", "--sim-set", "camera.preset=mono_raw",
                 "--out", str(out)]) == 0
    assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).shape[:2] == (480, 800)
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["camera"] == "mono_raw" and meta["sim_set"] == ["sensor.width_px=800", "camera.preset=mono_raw"]


def test_an_unknown_option_names_the_subcommand(capsys):
    # argparse left it to the top-level parser: 'tppscan: error: unrecognized arguments' under tppscan's usage.
    with pytest.raises(SystemExit) as e:
        main(["sim", "field", "--bogus"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == "tppscan sim field: error: unrecognized arguments: --bogus (see tppscan sim field --help)"
