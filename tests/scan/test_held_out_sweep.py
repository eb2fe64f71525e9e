"""``scripts/held_out_sweep.py``: the random held-out settings docs/held-out.md's sweeps were drawn from."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

from appliance.sim.overrides import parse_sim_sets, sim_microscope

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "held_out_sweep.py"
SWEEP = runpy.run_path(str(SCRIPT))


def test_a_seed_draws_the_same_knobs_every_time_and_seeds_differ():
    assert SWEEP["knobs"](6000) == SWEEP["knobs"](6000)
    assert SWEEP["knobs"](6000) != SWEEP["knobs"](6001)
    # the sweep of docs/held-out.md's session 44 began with this line (a 10x slide under the cheap colour camera)
    first = SWEEP["knobs"](6000)
    assert first[:2] == ["optics.magnification=10", "optics.na=0.25"] and "camera.preset=cheap_colour" in first


def test_every_drawn_line_is_a_valid_virtual_microscope():
    """Each knob is one ``tppscan scan --sim-set`` checks: a bad draw would stop a sweep at its first line."""
    objectives = set()
    for seed in range(7100, 7130):
        sets = SWEEP["knobs"](seed)
        scope = sim_microscope(seed, parse_sim_sets(sets))
        objectives.add(scope.camera.optics.magnification)
    assert len(objectives) >= 4  # the draws span the objectives, not one setting


def test_the_table_totals_the_scans_and_names_the_missing(tmp_path, capsys):
    knobs = tmp_path / "knobs.txt"
    knobs.write_text("# two slides\n11 optics.magnification=10 camera.preset=mono_raw\n\n12 optics.magnification=40\n")
    (tmp_path / "out" / "11").mkdir(parents=True)
    (tmp_path / "out" / "11" / "summary.json").write_text(json.dumps({
        "structures_matched": 7, "structures_truth": 8, "type_accuracy": 6 / 7, "debris_as_structure": 1 / 200,
        "debris_truth": 200, "false_structures": 2, "duplicates": 0, "position_error_um_median": 0.6}))
    assert SWEEP["main"](["table", str(knobs), "--out", str(tmp_path / "out")]) == 1  # 12 has no summary
    out = capsys.readouterr().out
    assert "11 10x mono_raw: found 7 of 8 (0.875), typed right 6, dirt as a print 1" in out
    assert "12: no summary.json" in out
    assert "10x mono_raw (1 scans): found 7 of 8 (0.875)" in out
    assert ("total: found 7 of 8 (0.875), typed right 6, dirt as a print 1, structures where no object lies 2, "
            "duplicates 0, scans without a summary 1") in out


def test_a_line_without_its_seed_is_refused_with_its_place(tmp_path, capsys):
    bad = tmp_path / "knobs.txt"
    bad.write_text("optics.magnification=10\n")
    with pytest.raises(SystemExit) as e:
        SWEEP["main"](["table", str(bad), "--out", str(tmp_path)])
    assert e.value.code == 2
    assert f"{bad}:1: a line starts with the slide's seed" in capsys.readouterr().err


def test_each_line_runs_as_the_scan_command_line(tmp_path):
    cmd = SWEEP["scan_command"](5, ["slide.bow_um=1.5", "stage.backlash_um=[1,2,0.5]"], tmp_path)
    assert cmd[:7] == [sys.executable, "-m", "appliance.cli", "scan", "--sim", "--seed", "5"]
    assert cmd[7:] == ["--sim-set", "slide.bow_um=1.5", "--sim-set", "stage.backlash_um=[1,2,0.5]",
                       "--out", str(tmp_path / "5"), "--db", str(tmp_path / "5.db"), "--progress", "none"]


def test_a_line_is_scanned_and_tabled(tmp_path, capsys):
    knobs = tmp_path / "knobs.txt"
    knobs.write_text("99 slide.width_um=1000 slide.height_um=1000 slide.n_structures=2\n"
                     "98 slide.width_um=800\n")  # refused by the scan's own check: exit 2, its reason in the log
    assert SWEEP["main"](["run", str(knobs), "--out", str(tmp_path / "out"), "--jobs", "1"]) == 1
    assert "slide.width_um must be a number in [1000.0, 100000.0], got 800" in (tmp_path / "out" / "98.log").read_text()
    assert SWEEP["main"](["table", str(knobs), "--out", str(tmp_path / "out")]) == 1
    out = capsys.readouterr().out
    assert "98: exit 2" in out and "99: exit 0" in out
    assert "99 default objective default: found 2 of 2 (1.000), typed right 2" in out and "98: no summary.json" in out


def test_glass_compares_each_structures_glass_with_the_true_surface(tmp_path, capsys):
    from appliance.results.store import FieldRecord, ObjectRecord, ResultStore

    knobs = tmp_path / "knobs.txt"
    knobs.write_text("21 optics.magnification=10\n22 optics.magnification=20\n")
    slide = sim_microscope(21, parse_sim_sets(["optics.magnification=10"])).slide
    true = slide.surface_z_um(500.0, 600.0)
    with ResultStore(tmp_path / "out" / "21.db") as st:
        sid = st.create_scan("s", tmp_path / "out" / "21", {}, 1)
        fld = FieldRecord(0, 0, 500.0, 600.0, 100.0, "map", 0, 3, 0, 0.5, 0.1, {})
        objs = [ObjectRecord(0, "structure", "pentagon", 0.9, 500.0, 600.0, 100.0, 30.0, 30.0,
                             extra={"glass_z_um": true + d, "glass_source": "specks"}) for d in (0.5, 1.5)]
        objs.append(ObjectRecord(0, "debris", "debris", 0.9, 500.0, 600.0, 100.0, 5.0, 5.0,
                                 extra={"glass_z_um": true + 9.0, "glass_source": "specks"}))  # not a structure
        st.commit_field(sid, fld, objs, [])
    assert SWEEP["main"](["glass", str(knobs), "--out", str(tmp_path / "out")]) == 1  # 22 has no database
    out = capsys.readouterr().out
    assert "specks 10x: 2 records, median +1.00 um, IQR +0.75 .. +1.25 um, within 1 um 50%" in out
    assert "22: no database" in out


def test_light_prints_each_slides_light_spread_and_whether_a_scan_divides_it(capsys):
    lines = [(7, ["optics.magnification=4", "optics.na=0.13", "slide.width_um=3000", "slide.height_um=3000",
                  "camera.preset=mono_raw", "sensor.vignetting=0.3"]),
             (8, ["slide.width_um=2000", "slide.height_um=2000", "sensor.vignetting=0",
                  "sensor.illumination_variation=0"])]
    assert SWEEP["light"](lines) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("7 4x mono_raw: light ") and out[0].endswith("(divided out)"), out
    assert out[1].startswith("8 default objective default: light ") and "divided" not in out[1], out
