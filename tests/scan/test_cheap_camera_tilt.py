"""The cheap colour camera on a tilted slide: the scan keeps its fields near their glass (docs/autofocus.md,
"The cheap colour camera on a tilted slide").

The real autofocus and focus map with the ground-truth vision double, so what is measured is the field focus.
Before: the camera's noisy field readings were taken as the glass (and one wide search's noise peak as the
slide), and the fields of seed 412 (4 x 4 mm) were imaged 7-93 µm above their glass, median +55 µm.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from appliance.focus.reference import reference_heights
from appliance.results.store import ResultStore
from appliance.scan.adapters import AutofocusFocuser, FocusMapAdapter
from appliance.scan.plan import FocusPlan, ScanPlan
from appliance.scan.runner import FIELD_VIEW_ABOVE_GLASS_UM, FinishReason
from appliance.scan.session import run_scan, scan_area, sim_microscope
from appliance.scan.testing import SimTruthVision

PLAN = ScanPlan(name="cheap-tilt", focus=FocusPlan(stack_range_um=2.0, stack_step_um=2.0))


def test_the_cheap_colour_camera_on_a_tilted_slide_keeps_its_fields_near_the_glass(tmp_path: Path) -> None:
    scope = sim_microscope(31, {"slide": {"width_um": 1800.0, "height_um": 1400.0, "n_structures": 3,
                                          "tilt_x_um_per_mm": 6.0, "tilt_y_um_per_mm": -4.0},
                                "camera": {"preset": "cheap_colour"}})
    p = scope.slide.params
    with scope.stage, scope.camera:
        fmap = FocusMapAdapter()
        focuser = AutofocusFocuser("classical", scope.stage.params.travel_z_um, fmap, now_s=scope.clock.now_s,
                                   reference_heights=reference_heights({}, virtual=True), reading_bias=True,
                                   depth_of_field_um=scope.camera.optics.depth_of_field_um(scope.camera.um_per_px))
        out = run_scan(scope.stage, scope.camera, SimTruthVision(scope), focuser, fmap, PLAN, tmp_path / "scan",
                       tmp_path / "t.db", scan_area(PLAN, (p.width_um, p.height_um)), device_clock=scope.clock.now_s,
                       truth=scope.slide.truth(), z_start_um=scope.stage.position_um().z_um)
    assert out.status.reason is FinishReason.COMPLETED, out.status.error
    with ResultStore(out.db_path) as st:
        fields = st.fields(out.scan_id)
    off = np.array([f.z_um - (FIELD_VIEW_ABOVE_GLASS_UM if f.focus_source == "map" else 0.0)
                    - float(scope.slide.surface_z_um(f.x_um, f.y_um)) for f in fields])
    assert np.all(np.abs(off) <= 12.0), np.round(off, 1)
    assert out.summary["recall"] == 1.0, out.summary


def test_the_runners_map_places_no_field_until_its_points_can_be_checked() -> None:
    # Seed 441, cheap colour camera: three glass readings 1-9 µm below the glass, and a plane fitted exactly
    # through them claimed 1 µm (its prior) while tilted 15 µm/mm the wrong way; the row's fields went 55 µm off.
    fmap = FocusMapAdapter()
    for x, y, dz in ((1039.0, 2480.0, 1.1), (1680.0, 2480.0, -8.3), (399.0, 3441.0, -9.1)):
        fmap.add(x, y, 90.0 + dz)
    assert fmap.predict(3600.0, 3441.0) is None  # nothing checks three points
    fmap.add(3000.0, 600.0, 90.0 + 0.5)
    fmap.add(2200.0, 1500.0, 90.0 - 1.0)
    z, sigma = fmap.predict(3600.0, 3441.0)  # type: ignore[misc]
    assert sigma > 7.5  # five points: the residuals show the readings' scatter, and the runner will not use it
