"""What a scan does before its first field (appliance/scan/session.py): the flat field, the slide's focus and the
calibration meet stage faults as a field does (the plan's ``faults`` section) and start again from their start."""

from __future__ import annotations

import pytest

from appliance.hardware.stage.base import StageTimeout
from appliance.scan.flatfield import measure_flat_field
from appliance.scan.plan import FaultsPlan, FocusPlan, ImagingPlan, ScanPlan
from appliance.scan.runner import FinishReason
from appliance.scan.session import run_scan, scan_area, sim_microscope
from appliance.scan.stage_recovery import retry_after_stage_faults
from appliance.scan.testing import PlaneFocusMap, SimTruthFocuser, SimTruthVision

SLIDE = {"slide": {"width_um": 1000.0, "height_um": 1000.0, "n_structures": 2}}


class _StageFailingAt:
    """The virtual stage, whose ``move_to_um`` calls number ``fail_at`` raise a timeout (a reply lost on the
    cable) before moving; the rest of the stage is the virtual one."""

    def __init__(self, inner, fail_at: set[int]) -> None:
        self.inner, self.fail_at, self.moves = inner, fail_at, 0

    def move_to_um(self, x=None, y=None, z=None):  # the Stage interface's signature: wrappers pass it positionally
        self.moves += 1
        if self.moves in self.fail_at:
            raise StageTimeout("no status report (<...>) within 1 s of '?'")
        return self.inner.move_to_um(x, y, z)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _scan(tmp_path, fail_at: set[int], on_error: str = "recover"):
    scope = sim_microscope(7, SLIDE)
    plan = ScanPlan(name="before", focus=FocusPlan(stack_range_um=2.0, stack_step_um=1.0),
                    imaging=ImagingPlan(flat_field=False),
                    faults=FaultsPlan(on_stage_error=on_error, stage_retry_wait_s=0.0))
    stage = _StageFailingAt(scope.stage, fail_at)
    p = scope.slide.params
    with scope.stage, scope.camera:
        return run_scan(stage, scope.camera, SimTruthVision(scope), SimTruthFocuser(scope), PlaneFocusMap(), plan,
                        tmp_path / "scan", tmp_path / "t.db", scan_area(plan, (p.width_um, p.height_um)),
                        device_clock=scope.clock.now_s, truth=scope.slide.truth(),
                        nominal_um_per_px=scope.camera.um_per_px)


def test_a_stage_fault_in_the_calibration_is_recovered_and_the_calibration_starts_again(tmp_path):
    clean = _scan(tmp_path / "clean", set())
    # move 1 goes to the area's middle, moves 2-3 are the calibration's first approach and place
    out = _scan(tmp_path / "faulty", {3})
    assert out.status.reason is FinishReason.COMPLETED, out.status.error
    assert out.summary["recall"] == clean.summary["recall"] == 1.0
    assert out.summary["fields_done"] == clean.summary["fields_done"]


def test_with_on_stage_error_stop_the_fault_ends_the_scan_before_its_first_field(tmp_path):
    with pytest.raises(StageTimeout):
        _scan(tmp_path, {3}, on_error="stop")


@pytest.mark.parametrize("fail_at,on_error,measured", [({3}, "recover", True), ({3, 6}, "recover", True),
                                                        ({3}, "stop", False), ({3, 6, 9, 12}, "recover", False)])
def test_a_stage_fault_while_the_light_is_measured_is_recovered_as_in_a_field(fail_at, on_error, measured) -> None:
    scope = sim_microscope(5, {"sensor": {"illumination_variation": 0.3}})
    plan = ScanPlan(faults=FaultsPlan(on_stage_error=on_error, stage_recoveries=3, stage_retry_wait_s=0.0))
    stage = _StageFailingAt(scope.stage, fail_at)

    def measure():
        return measure_flat_field(stage, scope.camera, (0, 0, 3000, 3000))

    with scope.stage, scope.camera:
        if not measured:  # "stop", or a fourth fault past stage_recoveries 3: the scan ends before its first field
            with pytest.raises(StageTimeout):
                retry_after_stage_faults(stage, plan.faults, "the flat field", measure)
            return
        field = retry_after_stage_faults(stage, plan.faults, "the flat field", measure)
    assert field.frames == 16 and not field.even
    assert stage.moves == 16 + max(fail_at)  # measured again from its first place after each fault
