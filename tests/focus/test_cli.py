"""``tppscan focus bench | stack``: output, JSON keys, bad values (exit 2), --help."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.focus.stack import read_plane_z_um

KEYS = {"frames_median", "frames_p95", "abs_dz_median_um", "abs_dz_p95_um", "success_rate", "time_s_median",
        "fields"}


def test_bench_json_has_the_issue_keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["focus", "bench", "--seed", "5", "--fields", "3", "--strategy", "classical",
                 "--focus", "stepper", "--json", "--per-field"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert KEYS <= set(out)
    assert out["fields"] == 3 and len(out["per_field"]) == 3
    assert 0.0 <= out["success_rate"] <= 1.0 and out["frames_median"] >= 3


def test_a_map_that_may_never_stand_alone_searches_every_structure(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["focus", "bench", "--seed", "5", "--fields", "6", "--strategy", "map", "--focus", "stepper",
                 "--no-net", "--map-trust", "1", "--json", "--per-field"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["map_trust"] == 1.0 and all(f["frames"] > 1 for f in out["per_field"])


def test_bench_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["focus", "bench", "--seed", "5", "--fields", "2", "--strategy", "sweep", "--range-um", "6",
                 "--offset-um", "2"]) == 0
    out = capsys.readouterr().out
    assert "frames med/p95" in out and "all fields" in out


def test_neural_runs_the_shipped_net_or_says_it_is_missing(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        import appliance.vision.focusnet  # noqa: F401
    except ImportError:
        assert main(["focus", "bench", "--fields", "1", "--strategy", "neural"]) == 1
        assert "focus net" in capsys.readouterr().err
        return
    # the net is in this build: the neural bench loads it through the adapter and runs
    assert main(["focus", "bench", "--seed", "5", "--fields", "1", "--strategy", "neural", "--json",
                 "--per-field"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["estimator"] == "FocusNetEstimator" and out["fields"] == 1
    assert out["per_field"][0]["strategy"] in ("neural", "neural>classical")


def test_a_focus_net_file_is_benched_and_one_that_cannot_be_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a net `tppscan train focus` wrote is benched as the shipped one is (it used to be the shipped one only)
    pytest.importorskip("appliance.vision.focusnet")
    other = Path(__file__).resolve().parents[2] / "models" / "focusnet" / "focusnet_int8.tflite"
    assert main(["focus", "bench", "--seed", "5", "--fields", "1", "--strategy", "neural", "--model", str(other),
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == str(other) and out["estimator"] == "FocusNetEstimator"
    assert main(["focus", "bench", "--seed", "5", "--fields", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] is None  # classical: no net
    bad = tmp_path / "focusnet.tflite"
    bad.write_bytes(b"not a model")
    for argv in (["focus", "bench", "--fields", "1", "--strategy", "map", "--model", str(bad)],
                 ["focus", "blank", "--fields", "1", "--model", str(bad)]):
        assert main(argv) == 2  # never a map run without the net it was asked to bench
        err = capsys.readouterr().err
        assert str(bad) in err and err.count("\n") == 1, err
    assert main(["focus", "bench", "--fields", "1", "--model", str(other)]) == 2  # classical uses no net
    assert "--model is the focus net" in capsys.readouterr().err


def test_the_type_bias_can_be_left_out(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["focus", "bench", "--seed", "5", "--fields", "1", "--json"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["type_bias"] is True
    assert main([*argv, "--no-type-bias"]) == 0
    assert json.loads(capsys.readouterr().out)["type_bias"] is False


def test_the_bench_runs_other_optics_and_crops_the_net_at_their_scale(
        capsys: pytest.CaptureFixture[str]) -> None:
    # a 20x objective (the focus net's class): the camera's scale halves, and the bench reports it
    assert main(["focus", "bench", "--seed", "5", "--fields", "1", "--json", "--sim-set", "optics.magnification=20",
                 "--sim-set", "optics.na=0.4"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["um_per_px"] == pytest.approx(0.28) and out["sim_set"] == ["optics.magnification=20", "optics.na=0.4"]
    assert out["fields"] == 1


def test_stack_writes_ome_tiff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s.ome.tif"
    assert main(["focus", "stack", "--seed", "3", "--range-um", "4", "--servo-sweep", "--out", str(out)]) == 0
    zs = read_plane_z_um(out)
    assert len(zs) == 5 and all(z == round(z) for z in zs)
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("argv, needle", [
    (["focus", "bench", "--fields", "0"], "--fields must be an integer in [1, 100000], got '0'"),
    (["focus", "bench", "--seed", "-1"], "--seed must be an integer"),
    (["focus", "bench", "--strategy", "fast"], "invalid choice"),
    (["focus", "bench", "--focus", "piezo"], "invalid choice"),
    (["focus", "bench", "--offset-um", "nan"], "--offset-um must be a number"),
    (["focus", "bench", "--map-trust", "0.3"], "--map-trust must be a number in [0.5, 1]"),
    (["focus", "bench", "--offset-um", "20", "--range-um", "10"], "--offset-um must be below --range-um"),
    (["focus", "stack", "--out", "x.tif", "--step-um", "0"], "--step-um must be a number"),
    (["focus", "blank", "--fields", "0"], "--fields must be an integer in [1, 1000]"),
    (["focus", "stack", "--out", "x.tif", "--structure", "999"], "--structure must be in"),
    (["focus", "bench", "--sim-set", "optics.na=7"], "na must be a number in [0.01, 0.95]"),
    (["focus", "bench", "--sim-set", "optics.zoom=2"], "optics.zoom: unknown parameter"),
    (["focus", "bench", "--sim-set", "stage.z_mode=servo"], "set the focus drive with --focus"),
    # slides without a structure used to be tried one after another forever
    (["focus", "bench", "--sim-set", "slide.n_structures=0", "--fields", "1"], "hold no structure to focus on"),
    # checked before the autofocus: OME-TIFF under a .png name, or a folder that fails only after the work
    (["focus", "stack", "--out", "x.png"], "--out must be a file name ending in .ome.tif"),
    (["focus", "stack", "--out", "."], "--out . is a folder"),
])
def test_bad_values_exit_2_with_one_line(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        code = main(argv)
        raise SystemExit(code)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert needle in err


@pytest.mark.parametrize("argv", [["focus", "--help"], ["focus", "bench", "--help"], ["focus", "stack", "--help"],
                                  ["focus", "blank", "--help"]])
def test_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0
    assert "usage" in capsys.readouterr().out


def test_options_that_cannot_apply_are_refused_or_noted(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["focus", "bench", "--fields", "1", "--strategy", "neural", "--no-net"]) == 2
    assert "--no-net with --strategy neural" in capsys.readouterr().err
    assert main(["focus", "stack", "--servo-sweep", "--step-um", "0.5", "--out", str(tmp_path / "s.ome.tif")]) == 2
    assert "--step-um with --servo-sweep" in capsys.readouterr().err and not (tmp_path / "s.ome.tif").exists()
    assert main(["focus", "bench", "--seed", "5", "--fields", "1", "--strategy", "sweep", "--per-field"]) == 0
    assert "NOTE --per-field" in capsys.readouterr().err


def test_stack_out_the_file_system_refuses_is_one_line_before_the_autofocus(tmp_path, capsys, monkeypatch) -> None:
    """Exit 1 naming the file before any frame, where the write used to fail after the autofocus and stack."""
    import importlib

    af = importlib.import_module("appliance.focus.autofocus")  # the package exports a function of that name
    monkeypatch.setattr(af, "autofocus", lambda *a, **k: pytest.fail("focused before checking --out"))
    (tmp_path / "file.txt").write_text("x")
    out = tmp_path / "file.txt" / "s.ome.tif"
    assert main(["focus", "stack", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"tppscan focus stack: error: cannot write --out {out}: " in err and len(err.strip().splitlines()) == 1
