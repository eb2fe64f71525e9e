import pytest

from appliance.scan.plan import FocusPlan, GridPlan, ScanPlan
from appliance.scan.testing import SMALL_SLIDE, scan_small_slide

SMALL = SMALL_SLIDE
QUICK_FOCUS = FocusPlan(stack_range_um=3.0, stack_step_um=1.0)


def small_plan(**grid):
    return ScanPlan(name="small", grid=GridPlan(**grid), focus=QUICK_FOCUS)


scan_small = scan_small_slide


@pytest.fixture(scope="module")
def small_scan(tmp_path_factory):
    return scan_small_slide(tmp_path_factory.mktemp("small"))
