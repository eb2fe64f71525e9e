from pathlib import Path

import pytest

from appliance.scan.plan import FocusPlan, GridPlan, ScanPlan
from appliance.scan.session import run_scan, scan_area, sim_height_truth, sim_microscope
from appliance.scan.testing import PlaneFocusMap, SimTruthFocuser, SimTruthVision

SMALL = {"slide": {"width_um": 1400.0, "height_um": 1400.0, "n_structures": 4}}
QUICK_FOCUS = FocusPlan(stack_range_um=3.0, stack_step_um=1.0)


def small_plan(**grid):
    return ScanPlan(name="small", grid=GridPlan(**grid), focus=QUICK_FOCUS)


def scan_small(tmp: Path, seed: int = 21, plan: ScanPlan | None = None, vision_factory=None, **kw):
    """Scan a small virtual slide with the ground-truth doubles; returns (outcome, scope)."""
    scope = sim_microscope(seed, SMALL)
    plan = plan or small_plan()
    p = scope.slide.params
    with scope.stage, scope.camera:
        vision = (vision_factory or SimTruthVision)(scope)
        out = run_scan(scope.stage, scope.camera, vision, SimTruthFocuser(scope), PlaneFocusMap(), plan,
                       tmp / "scan", tmp / "tppscan.db", scan_area(plan, (p.width_um, p.height_um)),
                       device_clock=scope.clock.now_s, truth=scope.slide.truth(),
                       height_truth=sim_height_truth(scope), **kw)
    return out, scope


@pytest.fixture(scope="module")
def small_scan(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("small")
    return scan_small(tmp)
