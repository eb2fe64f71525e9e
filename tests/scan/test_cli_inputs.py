"""Bad input to ``tppscan scan`` and ``tppscan calibrate`` refused before any work, naming what is wrong."""

from __future__ import annotations

import pytest

from appliance.cli import main
from appliance.results.store import ResultStore
from appliance.scan.calibration import Calibration, CalibrationError
from appliance.scan.plan import ScanPlan

PLAN = "name: tiny\ngrid: {top: 0, left: 0, bottom: 100, right: 100, overlap: 10}\n"
CAL = {"matrix": [[0.56, 0.0], [0.0, 0.56]], "size_px": [640, 480], "backlash_um": [4.0, 4.0]}


@pytest.mark.parametrize("key, value, words", [
    ("size_px", [640.5, 480], ["size_px", "whole pixels", "640.5"]),
    ("size_px", [100000, 100000], ["size_px", "[16, 20000]"]),
    ("size_px", [True, 480], ["size_px"]),
    ("backlash_um", [1e308, 1.0], ["backlash_um", "[0, 50]"]),
    ("backlash_um", [float("nan"), 1.0], ["backlash_um"]),
])
def test_a_calibration_with_an_impossible_size_or_backlash_is_refused_when_read(key, value, words):
    with pytest.raises(ValueError) as e:
        Calibration.from_mapping({**CAL, key: value})
    assert all(w in str(e.value) for w in words)


def test_a_calibration_made_at_another_frame_size_is_refused_naming_both(tmp_path, capsys):
    cal = tmp_path / "cal.yaml"
    Calibration.from_mapping({**CAL, "size_px": [1280, 960]}).save(cal)
    with pytest.raises(CalibrationError, match="1280 x 960 px but the camera gives 640 x 480"):
        Calibration.load(cal).check_frame_size((640, 480))
    (tmp_path / "p.yaml").write_text(PLAN)
    rc = main(["scan", "--plan", str(tmp_path / "p.yaml"), "--calibration", str(cal), "--out", str(tmp_path / "s"),
               "--vision", "sim-truth", "--focus", "sim-truth", "--progress", "none"])
    assert rc == 1
    assert "1280 x 960 px but the camera gives 640 x 480" in capsys.readouterr().err
    assert not (tmp_path / "s" / "scan.json").exists()


@pytest.mark.parametrize("argv, words", [
    (["scan", "--port", "/dev/ttyNOPE"], ["--port /dev/ttyNOPE", "--stage grbl"]),
    (["calibrate", "--port", "/dev/ttyNOPE"], ["--port /dev/ttyNOPE", "--stage grbl"]),
    (["calibrate", "--out", "cal.png"], ["--out", ".yaml", "cal.png"]),
    (["calibrate", "--out", "."], ["--out . is a folder"]),
])
def test_options_that_cannot_be_used_are_refused(argv, words, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words) and "Traceback" not in err
    assert not (tmp_path / "cal.png").exists()


def test_calibrate_out_the_file_system_refuses_is_one_line_before_the_stage_moves(tmp_path, capsys, monkeypatch):
    """Exit 1 naming the file before the calibration, where the save used to fail after the stage had moved."""
    import appliance.scan.calibration as calibration

    monkeypatch.setattr(calibration, "calibrate", lambda *a, **k: pytest.fail("calibrated before checking --out"))
    (tmp_path / "file.txt").write_text("x")
    out = tmp_path / "file.txt" / "cal.yaml"
    assert main(["calibrate", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"tppscan calibrate: error: cannot write --out {out}: " in err and len(err.strip().splitlines()) == 1


def _scan_record(tmp_path, plan_text: str, finished: bool):
    """A scan folder and its database row, as a scan of ``plan_text`` leaves them (interrupted or finished)."""
    out, db = tmp_path / "s", tmp_path / "tppscan.db"
    out.mkdir()
    with ResultStore(db) as store:
        sid = store.create_scan("small", out, {"plan": ScanPlan.from_yaml(plan_text).to_mapping()}, 15)
        if finished:
            store.finish_scan(sid, "finished", "completed", {"status": "finished"})
    (out / "scan.json").write_text(f'{{"scan_id": {sid}, "db": "{db}"}}')
    return out, db


def test_a_finished_scan_folder_is_not_scanned_over(tmp_path, capsys):
    out, db = _scan_record(tmp_path, PLAN, finished=True)
    (tmp_path / "p.yaml").write_text(PLAN)
    for extra in ([], ["--no-resume"]):
        assert main(["scan", "--plan", str(tmp_path / "p.yaml"), "--out", str(out), "--db", str(db), *extra]) == 2
        err = capsys.readouterr().err
        assert f"--out {out} holds finished scan 1" in err and "overwrite" in err


def test_resuming_with_another_plan_is_refused_naming_both(tmp_path, capsys):
    out, db = _scan_record(tmp_path, PLAN.replace("bottom: 100", "bottom: 1000"), finished=False)
    (tmp_path / "p.yaml").write_text(PLAN)
    assert main(["scan", "--plan", str(tmp_path / "p.yaml"), "--out", str(out), "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert "holds scan 1, unfinished" in err and "--plan" in err and "--no-resume" in err


def test_a_scan_folder_of_another_database_is_not_scanned_over(tmp_path, capsys):
    out, _ = _scan_record(tmp_path, PLAN, finished=True)
    (tmp_path / "p.yaml").write_text(PLAN)
    assert main(["scan", "--plan", str(tmp_path / "p.yaml"), "--out", str(out), "--db", str(tmp_path / "o.db")]) == 2
    assert "holds another scan" in capsys.readouterr().err


def test_resuming_with_the_same_plan_or_into_a_new_folder_is_allowed(tmp_path):
    from appliance.scan.cli import _out_problem

    out, db = _scan_record(tmp_path, PLAN, finished=False)
    plan = ScanPlan.from_yaml(PLAN)
    with ResultStore(db) as store:
        assert _out_problem(out, store, plan, tmp_path / "p.yaml", resume=True) is None
        assert _out_problem(tmp_path / "new", store, plan, None, resume=True) is None


def test_check_validates_the_inputs_without_opening_anything(tmp_path, capsys):
    """``scan --check``: every plan error at once (exit 2), or 'inputs ok' (exit 0); no database, folder or device."""
    bad, good = tmp_path / "bad.yaml", tmp_path / "good.yaml"
    bad.write_text("grid: {overlap: 80}\nfocus: {stratgy: map}\n")
    good.write_text(PLAN)
    out = tmp_path / "s"
    assert main(["scan", "--check", "--plan", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "2 errors" in err and "grid.overlap[x]" in err and "focus.stratgy" in err, err
    assert main(["scan", "--check", "--plan", str(good), "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith("inputs ok: plan 'tiny'")
    assert main(["scan", "--check", "--sim-set", "slide.colour=red", "--out", str(out)]) == 2
    assert "slide.colour" in capsys.readouterr().err
    assert main(["scan", "--check", "--calibration", str(tmp_path / "none.yaml"), "--out", str(out)]) == 1
    assert not out.exists() and not (tmp_path / "tppscan.db").exists()
