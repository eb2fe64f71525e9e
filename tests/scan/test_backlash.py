"""The stage's backlash: read by the calibration, and taken up by every scan move however the plan set the approach."""

import re

import pytest

from appliance.scan.backlash import (
    MIN_BACKLASH_UM,
    PROBE_UM,
    approach_um,
    backlash_warnings,
    measure_backlash,
    needed_approach_um,
)
from appliance.scan.calibration import Calibration, calibrate
from appliance.scan.session import calibration_step_um
from appliance.sim.overrides import parse_sim_sets, sim_microscope
from tests.scan.conftest import sim_scan_cli


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
    assert approach_um(20.0, cal["backlash_um"]) == 20.0 and backlash_warnings(20.0, cal) == []
    assert approach_um(0.0, cal["backlash_um"]) == 9.0 and approach_um(0.0, None) == 0.0
    assert approach_um(5.0, None) == 5.0 and backlash_warnings(5.0, {}) == []
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


class _Readings:
    """``moved_um`` for the probe: one scripted displacement per probe point, counting the calls."""

    def __init__(self, *moved):
        self.moved, self.calls = list(moved), 0

    def __call__(self, below, above, lo, hi):
        self.calls += 1
        return self.moved.pop(0)


def test_the_probe_reads_from_the_first_point_that_shows_the_slack():
    scope = sim_microscope(5, parse_sim_sets([]))
    with scope.stage, scope.camera:
        hi = scope.stage.params.travel_x_um[1]
        assert measure_backlash(scope.stage, scope.camera, hi - 10, 3000, 20.0, 50.0, _Readings((24.0, 24.0))) is None
        first = _Readings((24.0, 23.5), None, None)
        assert measure_backlash(scope.stage, scope.camera, 3000, 3000, 20.0, 50.0, first) == (4.0, 3.5)
        assert first.calls == 1  # no more frames than the first point where it reads
        # the first point lost in a small field (None), the second a false peak well short of its offset, the third
        # shows 30 um of slack; each point is PROBE_UM / 4 nearer than the last
        far = _Readings(None, (-20.0, 7.5), (25.0, 26.0))
        assert measure_backlash(scope.stage, scope.camera, 3000, 3000, 20.0, 50.0, far) == pytest.approx((30.0, 31.0))
        assert far.calls == 3
        assert measure_backlash(scope.stage, scope.camera, 3000, 3000, 20.0, 50.0, _Readings(None, None, None)) is None
        beyond = 20.0 + PROBE_UM + 10.0  # more slack than the probe can read, from every point
        assert measure_backlash(scope.stage, scope.camera, 3000, 3000, 20.0, 50.0,
                                _Readings((beyond, 20.0), (beyond, 20.0), (beyond, 20.0))) is None
        assert measure_backlash(scope.stage, scope.camera, 3000, 3000, 20.0, 50.0,
                                _Readings((19.5, 24.0))) == (0.0, 4.0)  # a hair under zero is none


@pytest.mark.parametrize(("optics", "slack"), [(["optics.magnification=20", "optics.na=0.4"], (15.0, 45.0)),
                                              (["optics.magnification=16", "optics.na=0.4", "sensor.width_px=320",
                                                "sensor.height_px=240"], (10.6, 31.7))])
def test_a_small_field_reads_a_large_slack_from_a_nearer_point(optics, slack):
    # 45 um past the first point is a third of a 20x field: phase correlation cannot tell it from its wrap-around
    scope = sim_microscope(5, parse_sim_sets([*optics, f"stage.backlash_um=[{slack[0]},{slack[1]},2]"]))
    with scope.stage, scope.camera:
        scope.stage.move_to_um(x=3000, y=3000)
        cal = calibrate(scope.stage, scope.camera, step_um=calibration_step_um(scope.camera.um_per_px, (640, 480)))
    assert cal.backlash_um == pytest.approx(slack, abs=1.0)


def test_a_stage_with_more_slack_than_the_approach_is_scanned_and_said_so(tmp_path, capsys):
    # Before: the calibration's 20 um approach left every move up to 10 um short, no place of 121 agreed with one
    # map, and the scan stopped before its first field (exit 1, CalibrationError; held-out seed 3920).
    out = tmp_path / "scan"
    sets = ["slide.width_um=1000", "slide.height_um=1000", "slide.n_structures=3", "stage.backlash_um=[30,30,2]"]
    code, summary = sim_scan_cli(out, 3920, sets, "--vision", "sim-truth", "--focus", "sim-truth")
    assert code == 0, capsys.readouterr().err
    assert summary["recall"] == 1.0 and summary["position_error_um_median"] < 2.0
    (w,) = summary["warnings"]
    assert "backlash measured" in w and "imaging.approach_um 20 um" in w
    assert 46 <= int(re.search(r"approaches by (\d+) um instead", w).group(1)) <= 50  # 1.5 x 30 + 2, rounded up
    line = re.search(r"stage backlash (\d+\.\d) µm in x, (\d+\.\d) µm in y", (out / "report.html").read_text())
    assert line and abs(float(line.group(1)) - 30) < 1 and abs(float(line.group(2)) - 30) < 1  # the report says it
