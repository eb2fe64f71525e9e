"""Must-show: a small scan with the REAL stage firmware in simavr as the stage.

The virtual camera renders the slide where the firmware reports the carriage (``ReportedPositionStage``);
GrblStage drives the firmware over its pty exactly as it would a board. Vision and focus are the
ground-truth doubles (the gate is the real classical one): this test is about the stage in the loop.
"""

import pytest

from appliance.scan.coupled import ReportedPositionStage, simavr_stage
from appliance.scan.plan import FocusPlan, GridPlan, ScanPlan
from appliance.scan.runner import FinishReason
from appliance.scan.session import run_scan, scan_area, sim_microscope
from appliance.scan.testing import PlaneFocusMap, SimTruthFocuser, SimTruthVision
from appliance.sim.camera import SimCamera

pytestmark = [pytest.mark.simavr, pytest.mark.slow]


def test_scan_with_the_firmware_in_simavr_as_the_stage(tmp_path):
    scope = sim_microscope(6, {"slide": {"width_um": 1600.0, "height_um": 1600.0, "n_structures": 5,
                                         "debris_per_mm2": 5.0}})
    plan = ScanPlan(name="simavr", grid=GridPlan(top=300, left=300, bottom=1300, right=1300),
                    focus=FocusPlan(stack_range_um=2.0, stack_step_um=1.0))
    with simavr_stage() as stage:
        cam = SimCamera(ReportedPositionStage(stage), scope.slide, scope.camera.optics, scope.camera.sensor, seed=6)
        with cam:
            out = run_scan(stage, cam, SimTruthVision(scope), SimTruthFocuser(scope), PlaneFocusMap(), plan,
                           tmp_path / "scan", tmp_path / "t.db", scan_area(plan, None), truth=scope.slide.truth())
        final = stage.position_um()
    s = out.summary
    assert out.status.reason is FinishReason.COMPLETED, out.status.error
    assert s["fields_done"] == s["fields_planned"] >= 12  # a 1 x 1 mm area in 360 x 270 um fields
    assert s["structures_truth"] >= 1 and s["recall"] == 1.0 and s["type_accuracy"] == 1.0
    assert s["duplicates"] == 0 and s["false_structures"] == 0
    assert s["position_error_um_median"] <= 5.0
    # the firmware really moved: the carriage ended inside the scanned area, far from where homing left it
    assert 150 <= final.x_um <= 1450 and 150 <= final.y_um <= 1450
