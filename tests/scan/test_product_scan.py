"""Must-show 1 on the product path: the shipped detector and classifier (appliance/vision) and the autofocus
and focus map (appliance/focus) scan a small held-out virtual slide and meet the bars. No ground truth is
used during the scan; it is read only afterwards, for the scores."""

import pytest

from appliance.scan.adapters import AutofocusFocuser, FocusMapAdapter, PipelineVision
from appliance.scan.plan import FocusPlan, ScanPlan
from appliance.scan.runner import FinishReason
from appliance.scan.session import run_scan, scan_area, sim_height_truth, sim_microscope

pytestmark = pytest.mark.slow

HELD_OUT_SEED = 9101  # training, validation and test slides have seeds >= 10**12 (models/data/cli.py)


@pytest.mark.xfail(strict=True, reason="issue 10 open: with the classifier retrained on debris as a scan meets it, "
                   "none of this slide's 78 debris pieces is recorded as a structure (was 1) and type accuracy, "
                   "position and duplicates meet the bars, but recall is 7 of 8: a 40 um split ring, 17 um tall, is "
                   "seen in one field only, 11.8 um below its focus, where the detector draws no box and the "
                   "classifier gives the gate's candidate the structure types 0.80 (< 0.9, so it is dropped). The "
                   "new training data images debris up to 20 um from focus but prints only to 10 um; drawing prints "
                   "as far out is the next step (models/classifier/MODEL_CARD.md, 'Known limits')")
def test_small_held_out_slide_meets_the_bars_on_the_product_path(tmp_path):
    scope = sim_microscope(HELD_OUT_SEED, {"slide": {"width_um": 2000.0, "height_um": 2000.0, "n_structures": 8}})
    plan = ScanPlan(name="product", focus=FocusPlan(stack_range_um=4.0, stack_step_um=2.0))
    p = scope.slide.params
    with scope.stage, scope.camera:
        fmap = FocusMapAdapter()
        out = run_scan(scope.stage, scope.camera, PipelineVision(scope.camera.um_per_px),
                       AutofocusFocuser("classical", scope.stage.params.travel_z_um, fmap, now_s=scope.clock.now_s),
                       fmap, plan, tmp_path / "scan", tmp_path / "t.db", scan_area(plan, (p.width_um, p.height_um)),
                       device_clock=scope.clock.now_s, truth=scope.slide.truth(),
                       height_truth=sim_height_truth(scope))
    s = out.summary
    assert out.status.reason is FinishReason.COMPLETED, out.status.error
    assert s["structures_truth"] == 8
    assert s["recall"] >= 0.99, s["missed"]
    assert s["type_accuracy"] >= 0.98, s["per_type"]
    assert s["debris_as_structure"] <= 0.01
    assert s["position_error_um_median"] <= 5.0
    assert s["duplicates"] == 0
