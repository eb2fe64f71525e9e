import json

import pytest

from appliance.cli import main

TINY = ["--sim-set", "slide.width_um=1000", "--sim-set", "slide.height_um=1000", "--sim-set", "slide.n_structures=1",
        "--sim-set", "slide.debris_per_mm2=3"]


@pytest.mark.parametrize("argv, code, words", [
    (["scan", "--seed", "-1"], 2, ["--seed", "-1"]),
    (["scan", "--seed", "x"], 2, ["--seed", "'x'"]),
    (["scan", "--sim-set", "debris=4"], 2, ["SECTION.KEY=VALUE", "debris=4"]),
    (["scan", "--sim-set", "lamp.power=4"], 2, ["section must be one of", "lamp"]),
    (["scan", "--sim-set", "slide.colour=red"], 2, ["slide.colour", "unknown parameter"]),
    (["scan", "--sim-set", "slide.debris_per_mm2=999"], 2, ["debris_per_mm2", "999"]),
    (["scan", "--sim-set", "stage.z_mode=hydraulic"], 2, ["z_mode", "hydraulic"]),
    (["scan", "--plan", "/nonexistent/plan.yaml"], 1, ["--plan", "/nonexistent/plan.yaml"]),
    (["scan", "--stage", "warp"], 2, ["--stage", "warp"]),
    (["scan", "--progress", "loud"], 2, ["--progress", "loud"]),
    (["calibrate", "--step-um", "0"], 2, ["--step-um", "0"]),
    (["calibrate", "--z", "nan"], 2, ["--z", "nan"]),
    (["calibrate", "--x", "99999"], 1, ["x target 99999", "soft limits"]),
    (["results", "list", "--db", "/nonexistent/t.db"], 1, ["/nonexistent/t.db"]),
])
def test_bad_values_exit_with_one_line(argv, code, words, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) if code == 2 and argv[1] in ("--seed", "--stage", "--progress") else _nothing():
        got = main(argv)
        assert got == code
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    for w in words:
        assert w in err


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def test_bad_plan_file_names_the_key(tmp_path, capsys):
    plan = tmp_path / "p.yaml"
    plan.write_text("grid: {overlap: 70}\n")
    assert main(["scan", "--plan", str(plan), "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "grid.overlap[x]" in err and "70" in err and len(err.strip().splitlines()) == 1


def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    f = tmp_path / "f"
    f.write_text("x")
    assert main(["scan", "--out", str(f)]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_product_path_without_models_is_a_clear_error_not_a_fallback(tmp_path, capsys, monkeypatch):
    import sys

    import appliance.scan.session  # noqa: F401 - the runner's own use of appliance.vision (decision) loaded
    from appliance.cli import build_parser

    build_parser()  # and the commands' modules (detect's): run alone or first, the test failed importing those
    for mod in ("appliance.vision", "appliance.vision.pipeline", "appliance.vision.detector",
                "appliance.vision.classifier"):
        monkeypatch.setitem(sys.modules, mod, None)  # as in a build without appliance/vision
    assert main(["scan", *TINY, "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "sim-truth" in err and "not installed" in err
    assert not (tmp_path / "s" / "summary.json").exists()


def test_scan_then_results_commands(tmp_path, capsys):
    out = tmp_path / "out" / "scan"
    code = main(["scan", "--sim", "--seed", "5", *TINY, "--out", str(out), "--vision", "sim-truth",
                 "--focus", "sim-truth", "--progress", "log"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "NOTE vision: sim-truth TEST DOUBLE" in captured.err
    assert "fields" in captured.err and "%" in captured.err  # log lines, not a bar, off a terminal
    assert "report:" in captured.out
    first = next(ln for ln in captured.err.splitlines() if ln.startswith("fields "))
    assert "ETA" not in first, first  # one field timed is no rate: it said ETA 795 s for a 70 s scan
    summary = json.loads((out / "summary.json").read_text())
    # three wall times that disagreed, now one figure each, labelled: the command's, the fields' share of it
    assert f"s ({summary['wall_time_s_total']:.0f} s of it in the fields)" in captured.out
    assert "computer time in the fields" in (out / "report.html").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished"
    assert summary["warnings"] == [] and "warning:" not in captured.err
    assert summary["structures_focus_ok"] == summary["structures_recorded"]
    # every field counted once by where its z came from
    assert sum(summary["fields_by_focus"].values()) == summary["fields_done"]
    assert set(summary["fields_by_focus"]) <= {"map", "autofocus", "autofocus-unsure", "guess"}
    labels = {"map": "from the focus map", "autofocus": "from their own search", "guess": "at a guess",
              "autofocus-unsure": "at a guess after a search that found no focus"}
    report = (out / "report.html").read_text()
    assert all(f"{n} {labels[src]}" in report for src, n in summary["fields_by_focus"].items())
    assert (out / "report.html").is_file() and (tmp_path / "out" / "tppscan.db").is_file()

    assert main(["results", "list", "--db", str(tmp_path / "out" / "tppscan.db")]) == 0
    assert "finished" in capsys.readouterr().out
    assert main(["results", "show", str(out)]) == 0
    assert "recall" in capsys.readouterr().out
    assert main(["results", "export", str(out), "--format", "csv", "--out", str(tmp_path / "exp")]) == 0
    assert (tmp_path / "exp" / "export.csv").read_text().startswith("filename,width,height,class,")
    assert main(["results", "show", str(tmp_path)]) == 1
    assert "not a scan folder" in capsys.readouterr().err


def test_calibrate_writes_a_calibration(tmp_path, capsys):
    out = tmp_path / "cal.yaml"
    assert main(["calibrate", "--seed", "2", "--out", str(out)]) == 0
    from appliance.scan.calibration import Calibration

    cal = Calibration.load(out)
    assert abs(cal.um_per_px - 0.56) < 0.01
    assert "um/px" in capsys.readouterr().out


def test_a_high_na_objective_calibrates_where_it_is_put_in_focus(tmp_path):
    # 60x / NA 0.85 (depth of field about 1 um, a 60 x 45 um field): the glass at the slide's middle shows
    # nothing, and 25 places around it found no texture (34 s); on a micro-lens at its focus the moves fit
    from appliance.scan.calibration import Calibration
    from appliance.sim.overrides import parse_sim_sets, sim_microscope

    sets = ["slide.width_um=2000", "slide.height_um=2000", "slide.n_structures=8", "optics.magnification=60",
            "optics.na=0.85", "stage.z_mode=stepper"]
    lens = next(o for o in sim_microscope(1417, parse_sim_sets(sets)).slide.objects if o.kind == "structure")
    out = tmp_path / "cal.yaml"
    argv = ["calibrate", "--seed", "1417", *(a for kv in sets for a in ("--sim-set", kv)), "--step-um", "10",
            "--x", str(lens.center_um[0]), "--y", str(lens.center_um[1]), "--out", str(out)]
    assert main([*argv, "--z", str(lens.focus_z_um)]) == 0
    assert Calibration.load(out).um_per_px == pytest.approx(5.6 / 60, rel=0.01)


def test_help_on_every_command(capsys):
    for argv in (["scan", "--help"], ["calibrate", "--help"], ["results", "--help"], ["results", "export", "--help"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 0


def test_progress_bar_shows_fields_structures_and_eta(tmp_path, capsys):
    assert main(["scan", "--seed", "5", *TINY, "--out", str(tmp_path / "s"), "--vision", "sim-truth",
                 "--focus", "sim-truth", "--progress", "bar"]) == 0
    err = capsys.readouterr().err
    assert "\r[" in err and " fields, " in err and "structures" in err and "ETA" in err


def test_a_scan_whose_structures_focus_could_not_be_trusted_says_so(tmp_path, capsys, monkeypatch):
    # a focuser whose structure searches all fail (a camera whose frames barely change with focus): the scan
    # still records its prints, and says on its last lines, in summary.json and in the report that their foci
    # are estimates
    from dataclasses import replace

    from appliance.scan.testing import SimTruthFocuser

    truth_focus = SimTruthFocuser.focus

    def unsure(self, stage, camera, z_guess_um, range_um, roi_px=None, cls=None):  # type: ignore[no-untyped-def]
        out = truth_focus(self, stage, camera, z_guess_um, range_um, roi_px, cls)
        return out if roi_px is None else replace(out, ok=False)

    monkeypatch.setattr(SimTruthFocuser, "focus", unsure)
    out = tmp_path / "scan"
    sets = ["--sim-set", "slide.width_um=1200", "--sim-set", "slide.height_um=1200", "--sim-set",
            "slide.n_structures=3", "--sim-set", "slide.debris_per_mm2=3"]
    code = main(["scan", "--sim", "--seed", "5", *sets, "--out", str(out), "--vision", "sim-truth",
                 "--focus", "sim-truth", "--progress", "log"])
    err = capsys.readouterr().err
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["structures_recorded"] >= 3 and summary["structures_focus_ok"] == 0
    lines = [ln for ln in err.splitlines() if ln.startswith("structure ")]  # the live lines say so too
    assert len(lines) == summary["structures_recorded"] and all(ln.endswith("(focus unsure)") for ln in lines)
    assert len(summary["warnings"]) == 1 and "could not be trusted" in summary["warnings"][0]
    assert "warning: the focus of" in err
    report = (out / "report.html").read_text()
    assert "could not be trusted" in report and report.count("(unsure)</span>") == summary["structures_recorded"]
    assert main(["results", "show", str(out)]) == 0
    assert capsys.readouterr().out.count("(focus unsure)") == summary["structures_recorded"]


def test_focus_warnings_need_a_few_structures_and_fewer_than_half_of_them_focused() -> None:
    from appliance.scan.session import focus_warnings

    assert focus_warnings(0, 0) == [] and focus_warnings(2, 0) == []  # too few to say
    assert focus_warnings(8, 4) == [] and focus_warnings(8, 8) == []
    (w,) = focus_warnings(8, 3)
    assert w.startswith("the focus of 5 of 8 structures could not be trusted") and "camera that blurs" in w


def test_foci_left_at_an_end_of_the_focus_travel_are_blamed_on_the_travel() -> None:
    from appliance.scan.session import at_travel_end, focus_warnings

    assert at_travel_end([90.0, 89.2, 88.0, 0.5, 45.0], (0.0, 90.0)) == 3 and at_travel_end([90.0], None) == 0
    (w,) = focus_warnings(20, 0, 20, (0.0, 90.0))
    assert w.startswith("the focus of 20 of 20 structures could not be trusted: 20 of them were searched up to an "
                        "end of the focus travel (0 to 90 um)") and "camera" not in w
    (w,) = focus_warnings(8, 3, 1, (0.0, 90.0))   # one of five at an end: the camera's, as before
    assert "camera that blurs" in w and "travel" not in w


def test_a_focus_step_coarse_against_the_depth_of_field_is_warned_of() -> None:
    from appliance.hardware.stage.base import Stage
    from appliance.scan.session import focus_drive, focus_step_warnings
    from appliance.sim.clock import VirtualClock
    from appliance.sim.stage import SimStage, SimStageParams

    assert focus_step_warnings(None) == [] and focus_step_warnings({"step_um": None, "depth_of_field_um": 11.0}) == []
    assert focus_step_warnings({"step_um": 1.0, "depth_of_field_um": 11.04}) == []   # the servo's degree at 10x
    assert focus_step_warnings({"step_um": 1.0, "depth_of_field_um": 4.1}) == []     # ... and at 20x / NA 0.4
    (w,) = focus_step_warnings({"step_um": 1.0, "depth_of_field_um": 1.5})         # ... not at 40x / NA 0.65
    assert "1 um steps" in w and "1.5 um depth of field" in w and "up to 0.5 um" in w
    (w,) = focus_step_warnings({"step_um": 4.0, "depth_of_field_um": 11.04})       # stock GRBL's Z at 10x
    assert w.startswith("the focus drive moves in 4 um steps") and "$102" in w
    stepper = SimStage(VirtualClock(), SimStageParams(z_mode="stepper", z_steps_per_um=0.25))
    assert stepper.focus_step_um == pytest.approx(4.0)
    assert SimStage(VirtualClock()).focus_step_um == pytest.approx(1.0)  # the servo, 1 um per degree

    class Bare:
        depth_of_field_um = 11.0

    assert focus_drive(stepper, Bare()) == {"step_um": 4.0, "depth_of_field_um": 11.0, "travel_z_um": None}
    assert Stage.focus_step_um.fget is not None and focus_drive(object(), object()) == {   # type: ignore[arg-type]
        "step_um": None, "depth_of_field_um": None, "travel_z_um": None}
    Bare.z_travel_um = (0.0, 90.0)  # type: ignore[attr-defined]
    assert focus_drive(stepper, Bare())["travel_z_um"] == [0.0, 90.0]


def test_fields_viewed_at_an_end_of_the_focus_travel_are_warned_of() -> None:
    # held-out seed 3742: the glass at 90 um under a servo reaching 0-90 um at 40x; every field viewed at 90 um,
    # one print of five recorded, and no warning
    from appliance.scan.session import field_travel_warnings

    assert field_travel_warnings([], (0.0, 90.0)) == [] and field_travel_warnings([90.0] * 4, None) == []
    assert field_travel_warnings([90.0, 95.0, 93.0, 89.6], (0.0, 120.0)) == []  # a slide well inside the travel
    (w,) = field_travel_warnings([90.0] * 1199 + [60.0], (0.0, 90.0))
    assert w.startswith("1199 of 1200 fields were viewed at the top of the focus travel (90 um; the travel is 0 to 90 "
                        "um)") and "beyond what the focus drive reaches" in w
    (w,) = field_travel_warnings([0.0, 0.4, 30.0], (0.0, 90.0))
    assert "2 of 3 fields were viewed at the bottom" in w
    assert field_travel_warnings([90.0, 50.0, 51.0], (0.0, 90.0)) == []  # one field of three at the end: the slide's


def test_a_scan_whose_fields_almost_never_found_focus_is_warned_of() -> None:
    # held-out seed 7617 (16x, the cheap colour camera): 1 of 140 fields focused, the other 139 viewed at a guess
    # 4-7 um below the glass, a 32 um split ring never seen, and no warning
    from appliance.scan.session import field_focus_counts, field_focus_warnings

    sources = ["autofocus"] + ["guess"] * 123 + ["autofocus-unsure"] * 16
    (w,) = field_focus_warnings(sources, [86.125] * 140)
    assert w.startswith("only 1 of 140 fields were viewed at a focus found (their own search or the focus map): the "
                        "other 139 were viewed at a guess (86.1 um:") and "may have been missed" in w
    (w,) = field_focus_warnings(["guess"] * 30, [90.0 + i / 10 for i in range(30)])
    assert "only 0 of 30 fields" in w and "(90.0 to 92.9 um:" in w
    # a field in ten placed by a focus found, a map carrying the scan, or too few fields to say: nothing
    assert field_focus_warnings(["map"] * 2 + ["guess"] * 18, [90.0] * 20) == []
    assert field_focus_warnings(["map"] * 130 + ["guess"] * 10, [90.0] * 140) == []
    assert field_focus_warnings(["guess"] * 19, [90.0] * 19) == []
    assert field_focus_counts(sources) == {"guess": 123, "autofocus-unsure": 16, "autofocus": 1}


def test_a_field_of_view_too_narrow_for_the_prints_is_warned_of() -> None:
    # held-out seed 3766: 60x on a 320 x 240 sensor (30 x 22 um) found none of three prints and said nothing
    from appliance.scan.session import field_size_warnings

    def cal(um_per_px, size):
        return {"matrix": [[um_per_px, 0.0], [0.0, um_per_px]], "offset_um": [0.0, 0.0], "size_px": list(size)}

    assert field_size_warnings(None) == [] and field_size_warnings({"matrix": "no"}) == []
    assert field_size_warnings(cal(0.56, (640, 480))) == []  # 10x: 358 x 269 um
    assert field_size_warnings(cal(0.0934, (640, 480))) == []  # 60x on 640 x 480: 60 x 45 um
    (w,) = field_size_warnings(cal(0.0934, (320, 240)))
    assert w.startswith("the field of view is 30 x 22 um, under 40 um across") and "larger sensor" in w


def test_a_virtual_camera_over_a_real_stage_says_so_and_records_it(tmp_path, capsys, monkeypatch):
    """``--stage grbl`` / ``simavr`` scanned with the virtual camera and never said so: its report read like a
    real slide's, scored 'against the slide's truth'. The stage here is the virtual one standing in for simavr's."""
    import contextlib

    import appliance.scan.cli as scan_cli
    from appliance.sim.overrides import parse_sim_sets, sim_microscope

    @contextlib.contextmanager
    def stand_in(args, cfg=None):  # noqa: ANN001, ANN202
        scope = sim_microscope(args.seed, parse_sim_sets(args.sim_set))
        with scope.stage, scope.camera:
            yield scope, scope.stage, scope.camera

    monkeypatch.setattr(scan_cli, "_devices", stand_in)
    out = tmp_path / "s"
    assert main(["scan", "--stage", "simavr", "--seed", "5", *TINY, "--out", str(out), "--vision", "sim-truth",
                 "--focus", "sim-truth", "--progress", "none"]) == 0
    err = capsys.readouterr().err
    notes = [ln for ln in err.splitlines() if ln.startswith("NOTE camera:")]
    assert notes == ["NOTE camera: virtual (sim) over the simavr stage: the images come from the virtual slide at "
                     "the position the simavr stage reports (a stage-in-the-loop test; scores are against the "
                     "virtual slide)"], err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["camera"] == "virtual (sim) over the simavr stage"
    assert "<th>camera</th><td>virtual (sim) over the simavr stage</td>" in (out / "report.html").read_text()


def test_config_gives_the_scan_the_services_devices_calibration_and_plan(tmp_path, capsys):
    """``--config FILE``: the camera, stage, virtual slide, calibration.file and scan.plan of the service's YAML,
    opened by the service's own builder; device options beside it are refused, as is a test double on a real camera
    and a whole-slide plan for one."""
    import yaml

    from appliance.scan.calibration import Calibration

    slide = {"slide.width_um": 1000, "slide.height_um": 1000, "slide.n_structures": 1, "slide.debris_per_mm2": 3}
    Calibration.nominal(0.5, (640, 480)).save(tmp_path / "cal.yaml")
    (tmp_path / "plan.yaml").write_text("name: from-config\n")
    conf = tmp_path / "config.yaml"
    conf.write_text(yaml.safe_dump({"sim": {"seed": 5, "set": slide}, "scan": {"plan": str(tmp_path / "plan.yaml")},
                                    "calibration": {"file": str(tmp_path / "cal.yaml")}}))
    assert main(["scan", "--config", str(conf), "--check", "--out", str(tmp_path / "s")]) == 0
    said = capsys.readouterr().out
    assert f"plan 'from-config' ({tmp_path / 'plan.yaml'}), calibration {tmp_path / 'cal.yaml'}" in said, said
    assert "camera virtual (sim): the virtual microscope" in said
    for extra, words in ((["--seed", "3"], "--seed with --config"), (["--stage", "simavr"], "--stage with --config"),
                         (["--sim-set", "slide.n_structures=2"], "--sim-set with --config")):
        assert main(["scan", "--config", str(conf), *extra, "--out", str(tmp_path / "s")]) == 2
        assert words in capsys.readouterr().err
    real = tmp_path / "real.yaml"
    real.write_text(yaml.safe_dump({"camera": {"kind": "files", "folder": str(tmp_path)}, "stage": {"kind": "grbl"}}))
    assert main(["scan", "--config", str(real), "--vision", "sim-truth", "--out", str(tmp_path / "r")]) == 2
    assert "--vision sim-truth: a test double reads the virtual slide's truth" in capsys.readouterr().err
    assert main(["scan", "--config", str(real), "--out", str(tmp_path / "r")]) == 2
    assert "a real camera (camera.kind files) needs a plan with grid top, left" in capsys.readouterr().err
    conf.write_text("camera: {width: 7}\n")
    assert main(["scan", "--config", str(conf), "--out", str(tmp_path / "s")]) == 2
    assert f"--config {conf}: camera.width" in capsys.readouterr().err
    conf.write_text(yaml.safe_dump({"sim": {"seed": 5, "set": slide}, "scan": {"plan": str(tmp_path / "plan.yaml")}}))
    out = tmp_path / "s"
    assert main(["scan", "--config", str(conf), "--out", str(out), "--vision", "sim-truth", "--focus", "sim-truth",
                 "--progress", "none"]) == 0, capsys.readouterr().err
    assert "NOTE camera" not in capsys.readouterr().err  # the virtual camera on the virtual stage: nothing to say
    summary = json.loads((out / "summary.json").read_text())
    assert summary["name"] == "from-config" and summary["camera"] == "virtual (sim): the virtual microscope"
    assert summary["recall"] == 1.0  # the config's slide (seed 5, 1 x 1 mm, one print), scored against its truth


def test_config_models_are_the_ones_the_scan_runs_and_a_missing_one_is_refused(tmp_path, capsys, monkeypatch):
    """``scan --config`` ran the shipped models whatever the config's ``models`` said: a lab's own detector was
    ignored without a word. It loads them as the service does (``configured_models``), and a missing file is refused
    before anything opens."""
    import yaml

    import appliance.scan.adapters as adapters

    slide = {"slide.width_um": 1000, "slide.height_um": 1000, "slide.n_structures": 1, "slide.debris_per_mm2": 2}
    conf = tmp_path / "config.yaml"
    conf.write_text(yaml.safe_dump({"sim": {"seed": 5, "set": slide}, "models": {"detector": "/no/such/det.onnx"}}))
    assert main(["scan", "--config", str(conf), "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "models.detector" in err and "/no/such/det.onnx" in err and len(err.strip().splitlines()) == 1, err
    seen = []
    real = adapters.configured_models

    def spy(models):  # noqa: ANN001, ANN202
        seen.append((models.detector_threshold, models.threads))
        return real(models)

    monkeypatch.setattr(adapters, "configured_models", spy)
    conf.write_text(yaml.safe_dump({"sim": {"seed": 5, "set": slide},
                                    "models": {"detector_threshold": 0.3, "threads": 1}}))
    assert main(["scan", "--config", str(conf), "--out", str(tmp_path / "b"), "--focus", "sim-truth",
                 "--progress", "none"]) == 0, capsys.readouterr().err
    assert seen == [(0.3, 1)]
