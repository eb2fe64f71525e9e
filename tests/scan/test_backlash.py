"""The stage's backlash: read by the calibration, and taken up by every scan move however the plan set the approach."""

import json
import re

import pytest

from appliance.cli import main
from appliance.scan.backlash import (
    MIN_BACKLASH_UM,
    PROBE_UM,
    approach_um,
    backlash_warnings,
    measure_backlash,
    needed_approach_um,
)
from appliance.scan.calibration import Calibration, calibrate
from appliance.sim.overrides import parse_sim_sets, sim_microscope


@pytest.mark.parametrize("slack", [(0.0, 0.0), (12.0, 7.0), (30.0, 30.0)])
def test_the_calibration_reads_the_stages_backlash(slack):
    scope = sim_microscope(5, parse_sim_sets([f"stage.backlash_um=[{slack[0]},{slack[1]},2]"]))
    with scope.stage, scope.camera:
        scope.stage.move_to_um(x=3000, y=3000)
        cal = calibrate(scope.stage, scope.camera)
    assert cal.backlash_um == pytest.approx(slack, abs=0.5)
    s = scope.camera.um_per_px
    assert cal.um_per_px == pytest.approx(s, rel=0.01)  # 30 um of slack, and the 50 um approach still fits
    assert (needed_approach_um(cal.backlash_um) == 0.0) == (max(slack) < MIN_BACKLASH_UM)


def test_the_approach_covers_the_slack_with_room_to_spare():
    assert needed_approach_um(None) == 0.0
    assert needed_approach_um((0.4, 0.2)) == 0.0  # the stage's repeatability, not backlash
    assert needed_approach_um((4.0, 4.1)) == 9.0  # 1.5 x 4.1 + 2, rounded up
    cal = {"backlash_um": [4.0, 4.1]}
    assert approach_um(20.0, cal) == 20.0 and backlash_warnings(20.0, cal) == []
    assert approach_um(0.0, cal) == 9.0 and approach_um(0.0, None) == 0.0 and approach_um(5.0, {}) == 5.0
    (w,) = backlash_warnings(0.0, cal)
    assert "4.0 um in x and 4.1 um in y" in w and "imaging.approach_um 0 um" in w and "by 9 um instead" in w


def test_a_calibration_keeps_its_backlash_and_refuses_a_bad_one(tmp_path):
    cal = Calibration(((0.5, 0.0), (0.0, 0.5)), (640, 480), 0.1, (0.0, 0.0), (4.0, 3.5))
    cal.save(tmp_path / "c.yaml")
    assert Calibration.load(tmp_path / "c.yaml") == cal
    old = {"matrix": [[0.5, 0], [0, 0.5]], "size_px": [640, 480]}  # written before backlash was read
    assert Calibration.from_mapping(old).backlash_um is None
    for bad in ([1.0], [-1.0, 2.0], "4", [float("nan"), 1.0]):
        with pytest.raises(ValueError, match="calibration.backlash_um"):
            Calibration.from_mapping({**old, "backlash_um": bad})


def test_a_probe_beyond_the_travel_or_a_false_reading_reads_nothing():
    scope = sim_microscope(5, parse_sim_sets([]))
    with scope.stage, scope.camera:
        hi = scope.stage.params.travel_x_um[1]
        assert measure_backlash(scope.stage, scope.camera, hi - 10, 3000, 20.0, 50.0, lambda a, b: (20.0, 20.0)) is None
        # a displacement well short of the offset is a false correlation peak, not a negative slack
        assert measure_backlash(scope.stage, scope.camera, 3000, 3000, 20.0, 50.0, lambda a, b: (10.0, 20.0)) is None
        assert measure_backlash(scope.stage, scope.camera, 3000, 3000, 20.0, 50.0, lambda a, b: None) is None
        far = 20.0 + PROBE_UM + 10.0  # more slack than the probe can read
        assert measure_backlash(scope.stage, scope.camera, 3000, 3000, 20.0, 50.0, lambda a, b: (far, 20.0)) is None
        assert measure_backlash(scope.stage, scope.camera, 3000, 3000, 20.0, 50.0,
                                lambda a, b: (19.5, 24.0)) == (0.0, 4.0)


def test_a_stage_with_more_slack_than_the_approach_is_scanned_and_said_so(tmp_path, capsys):
    # Before: the calibration's 20 um approach left every move up to 10 um short, no place of 121 agreed with one
    # map, and the scan stopped before its first field (exit 1, CalibrationError; held-out seed 3920).
    out = tmp_path / "scan"
    sets = ["--sim-set", "slide.width_um=1000", "--sim-set", "slide.height_um=1000", "--sim-set",
            "slide.n_structures=3", "--sim-set", "stage.backlash_um=[30,30,2]"]
    code = main(["scan", "--sim", "--seed", "3920", *sets, "--out", str(out), "--vision", "sim-truth", "--focus",
                 "sim-truth", "--progress", "none"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["recall"] == 1.0 and summary["position_error_um_median"] < 2.0
    (w,) = summary["warnings"]
    assert "backlash measured" in w and "imaging.approach_um 20 um" in w
    assert 46 <= int(re.search(r"approaches by (\d+) um instead", w).group(1)) <= 50  # 1.5 x 30 + 2, rounded up
