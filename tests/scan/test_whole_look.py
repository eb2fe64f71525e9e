"""A print larger than the field whose every piece the models call dust, found by looking at it whole.

At 40x (a 90 x 67 µm field) a 114 µm split ring showed each view an arc that the detector and the classifier
both called debris, centred or not, so the scan recorded four pieces of dust where the ring was; a 103 µm
micro-lens was three whole 49 x 24 µm boxes of dust along its rim, nothing boxing the rest (seed 1601,
docs/held-out.md "Prints larger than the field", step 5). Runs the product's models, as only they make that mistake.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.focus.reference import reference_heights
from appliance.results.store import ResultStore
from appliance.scan.adapters import AutofocusFocuser, FocusMapAdapter, PipelineVision
from appliance.scan.calibration import Calibration
from appliance.scan.plan import FocusPlan, ScanPlan
from appliance.scan.session import run_scan, sim_microscope

FORTY_X = {"slide": {"width_um": 2000, "height_um": 2000, "n_structures": 8, "debris_per_mm2": 5},
           "optics": {"magnification": 40, "na": 0.65}, "stage": {"z_mode": "stepper"}}


def _scan_around(tmp_path: Path, seed: int, sets: dict, cls: str) -> tuple[list, dict, tuple[float, float], float]:
    """Scan a square around the largest ``cls`` print of the slide; its records near it, the summary, its centre."""
    scope = sim_microscope(seed, sets)
    ring = max((o for o in scope.slide.objects if o.cls == cls), key=lambda o: o.footprint_um[0])
    (cx, cy), (fw, _) = ring.center_um, ring.footprint_um
    cal = Calibration.nominal(scope.camera.um_per_px, scope.camera.size_px)
    assert fw > min(cal.fov_um)  # larger than the field: no view holds it whole
    half = fw / 2 + 20.0
    area = (cx - half, cy - half, cx + half, cy + half)
    plan = ScanPlan(name="whole-look", focus=FocusPlan(stack_range_um=2.0, stack_step_um=2.0))
    with scope.stage, scope.camera:
        fmap = FocusMapAdapter()
        um_px = scope.camera.um_per_px
        focuser = AutofocusFocuser("classical", scope.stage.params.travel_z_um, fmap, now_s=scope.clock.now_s,
                                   reference_heights=reference_heights({}, virtual=True), reading_bias=True,
                                   depth_of_field_um=scope.camera.optics.depth_of_field_um(um_px))
        out = run_scan(scope.stage, scope.camera, PipelineVision(um_px), focuser, fmap, plan, tmp_path / "scan",
                       tmp_path / "t.db", area, calibration=cal, device_clock=scope.clock.now_s,
                       truth=scope.slide.truth(), z_start_um=scope.stage.position_um().z_um)
    with ResultStore(out.db_path) as st:
        found = [o for o in st.objects(out.scan_id) if o.kind == "structure"]
    near = [o for o in found if abs(o.x_um - cx) < fw / 2 and abs(o.y_um - cy) < fw / 2]
    summary = json.loads((tmp_path / "scan" / "summary.json").read_text())
    return near, summary, (cx, cy), fw


@pytest.mark.parametrize("cls", ["split_ring", "microlens"])
def test_a_print_larger_than_the_field_that_each_view_calls_dust_is_recorded_once_as_itself(
        tmp_path: Path, cls: str) -> None:
    near, summary, (cx, cy), _ = _scan_around(tmp_path, 1601, FORTY_X, cls)
    assert len(near) == 1, [(o.cls, o.x_um, o.y_um) for o in near]
    rec = near[0]
    assert rec.cls == cls
    assert "whole_look_type" in (rec.extra or {})
    assert abs(rec.x_um - cx) < 15.0 and abs(rec.y_um - cy) < 15.0
    assert summary["duplicates"] == 0


def test_a_print_cut_in_its_centred_view_is_recorded_where_a_look_at_it_whole_puts_it(tmp_path: Path) -> None:
    """Seed 1643's 87 µm woodpile at 40x: stitched view by view its footprint stopped 61 x 59 µm wide, its
    record 20.6 µm off the print's centre; looked at whole it is within a few µm (docs/held-out.md, "Prints larger
    than the field", step 5)."""
    sets = {"slide": {"width_um": 2000, "height_um": 2000, "n_structures": 8},
            "optics": {"magnification": 40, "na": 0.65}}
    near, summary, (cx, cy), fw = _scan_around(tmp_path, 1643, sets, "woodpile")
    assert len(near) == 1, [(o.cls, o.x_um, o.y_um) for o in near]
    rec = near[0]
    assert rec.cls == "woodpile" and "whole_look_type" in (rec.extra or {})
    assert abs(rec.x_um - cx) < 5.0 and abs(rec.y_um - cy) < 5.0
    assert rec.width_um > 0.9 * fw and rec.height_um > 0.9 * fw
    assert summary["duplicates"] == 0
