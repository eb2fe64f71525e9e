"""A camera turned or mirrored on its port: calibrated, its boxes placed, its fields laid without gaps, and said so."""

import re

import numpy as np
import pytest

from appliance.hardware.camera.base import Frame
from appliance.hardware.stage.base import Position
from appliance.scan.boxes import on_slide_box_um
from appliance.scan.calibration import Calibration, calibrate
from appliance.scan.plan import ScanPlan
from appliance.scan.protocols import Detection
from appliance.scan.session import field_grid, turned_camera_warnings
from appliance.sim.camera import pixel_axes
from appliance.sim.overrides import parse_sim_sets, sim_microscope
from tests.scan.conftest import sim_scan_cli


def _turned(deg: float, mirror: bool = False, s: float = 0.56) -> Calibration:
    axes = pixel_axes(deg, mirror)
    m = s * (np.eye(2) if axes is None else axes)
    return Calibration(((m[0, 0], m[0, 1]), (m[1, 0], m[1, 1])), (640, 480))


@pytest.mark.parametrize(("deg", "mirror"), [(30.0, False), (7.0, True), (180.0, False)])
def test_the_calibration_measures_a_turned_or_mirrored_camera(deg, mirror):
    scope = sim_microscope(5, parse_sim_sets([f"sensor.rotation_deg={deg}", f"sensor.mirror={str(mirror).lower()}"]))
    with scope.stage, scope.camera:
        scope.stage.move_to_um(x=3000, y=3000)
        cal = calibrate(scope.stage, scope.camera)
    np.testing.assert_allclose(cal.m, scope.camera.um_per_px * pixel_axes(deg, mirror), atol=0.01 * cal.um_per_px)


@pytest.mark.parametrize(("deg", "print_um"), [(0.0, (30.0, 10.0)), (30.0, (30.0, 10.0)), (-12.0, (8.0, 40.0)),
                                               (45.0, (20.0, 20.0)), (90.0, (30.0, 10.0))])
def test_a_box_seen_by_a_turned_camera_is_the_print_square_to_the_stage_that_fills_it(deg, print_um):
    cal = _turned(deg)
    # the pixel box a print square to the stage fills under this camera, centred in the frame
    w, h = np.abs(np.linalg.inv(cal.m)) @ np.array(print_um)
    box = (round(320 - w / 2), round(240 - h / 2), round(320 + w / 2), round(240 + h / 2))
    frame = Frame(image=np.zeros((480, 640), np.uint8), position=Position(1000.0, 1000.0, 90.0), time_s=0.0,
                  exposure_ms=10.0)
    x0, y0, x1, y1 = on_slide_box_um(cal, Detection(box, "structure", "pentagon", 0.9), frame)
    assert (x1 - x0, y1 - y0) == pytest.approx(print_um, abs=1.5 * 0.56)  # the box's whole pixels
    assert ((x0 + x1) / 2, (y0 + y1) / 2) == pytest.approx((1000.0, 1000.0), abs=0.6)


@pytest.mark.parametrize("deg", [0.0, 3.0, 10.0, 45.0, 90.0])
def test_the_fields_of_a_turned_camera_leave_no_gap(deg):
    cal, area = _turned(deg), (0.0, 0.0, 2000.0, 1500.0)
    grid = field_grid(ScanPlan(), area, cal)
    centres = [grid.cell(c) for c in range(grid.n_fields)]
    points = np.random.default_rng(0).uniform((area[0], area[1]), (area[2], area[3]), (2000, 2))

    def seen(x: float, y: float) -> bool:
        for f in centres:
            u, v = cal.stage_to_pixel(x, y, (f.x_um, f.y_um))
            if -0.5 <= u <= 639.5 and -0.5 <= v <= 479.5:
                return True
        return False

    assert all(seen(x, y) for x, y in points)


def test_a_camera_turned_from_square_is_worth_a_warning():
    assert turned_camera_warnings(_turned(0.0).to_mapping()) == []
    assert turned_camera_warnings(_turned(90.0).to_mapping()) == []  # turned by a right angle: square again
    assert turned_camera_warnings(_turned(0.0, mirror=True).to_mapping()) == []
    assert turned_camera_warnings(None) == [] and turned_camera_warnings({"matrix": "bad"}) == []
    (w,) = turned_camera_warnings(_turned(-10.0).to_mapping())
    assert "turned -10.0 degrees from square" in w and "1.4 times the fields" in w


def test_a_slide_under_a_camera_turned_45_degrees_is_scanned_whole(tmp_path, capsys):
    # Before: fields laid over the turned frame's extent left gaps, and 4 of 8 prints were never seen (seed 3932);
    # a pentagon's box read 0.3 um wide and it was recorded as dirt.
    out = tmp_path / "scan"
    sets = ["slide.width_um=1200", "slide.height_um=1200", "slide.n_structures=6", "sensor.rotation_deg=45"]
    code, summary = sim_scan_cli(out, 3932, sets, "--vision", "sim-truth", "--focus", "sim-truth")
    assert code == 0, capsys.readouterr().err
    assert summary["recall"] == 1.0 and summary["position_error_um_median"] < 2.0
    assert any("turned 45.0 degrees" in w or "turned -45.0 degrees" in w or "turned 44." in w
               for w in summary["warnings"])
    turn = re.search(r"camera turned (-?\d+\.\d)° from the stage", (out / "report.html").read_text())
    assert turn and abs(float(turn.group(1)) - 45.0) < 1.0  # the report's calibration line
    report = (out / "report.html").read_text()
    assert "from the stage&#x27;s axes" in report and "&amp;" not in report  # escaped once, not twice


def test_the_reports_calibration_line_names_the_turn_the_mirror_and_the_backlash():
    from appliance.results.report import _calibration_line

    line = _calibration_line({**_turned(30.0, mirror=True).to_mapping(), "backlash_um": [4.04, 12.0]})
    assert line == ("0.5600 µm per pixel, moves fitted to 0.00 µm; camera turned 30.0° from the stage's axes, "
                    "mirrored; stage backlash 4.0 µm in x, 12.0 µm in y")
    assert "turned -10.0°" in _calibration_line(_turned(-10.0).to_mapping())
    assert "backlash not read" in _calibration_line(_turned(0.0).to_mapping())
    assert _calibration_line(None).startswith("unknown") and "damaged" in _calibration_line({"matrix": [1, 2]})


@pytest.mark.parametrize(("deg", "share"), [(0.0, 1.0), (3.0, 0.901), (10.0, 0.729), (45.0, 0.375), (90.0, 1.0)])
def test_a_turned_frame_tiles_with_the_largest_upright_box_it_shows_whole(deg, share):
    from appliance.scan.mosaic import covered_fov_um

    cal = _turned(deg)
    cw, ch = covered_fov_um(cal)
    assert cw * ch / (0.56 ** 2 * 640 * 480) == pytest.approx(share, abs=0.002)
    for sx in (-1, 1):  # every corner of the box lies in the frame
        for sy in (-1, 1):
            u, v = cal.stage_to_pixel(sx * cw / 2, sy * ch / 2, (0.0, 0.0))
            assert -0.5 - 1e-6 <= u <= 639.5 + 1e-6 and -0.5 - 1e-6 <= v <= 479.5 + 1e-6
    # a box a hair wider or taller does not fit: it is the largest of its shape
    wider = [cal.stage_to_pixel(sx * cw * 0.51, sy * ch * 0.51, (0.0, 0.0)) for sx in (-1, 1) for sy in (-1, 1)]
    assert any(not (-0.5 <= u <= 639.5 and -0.5 <= v <= 479.5) for u, v in wider)


def test_a_plans_field_of_view_wider_than_a_frame_is_refused():
    """A plan's fov_width of 100 mm laid one field over a 3 mm area and left 99 % of it unseen, with exit 0."""
    cal = Calibration.nominal(0.5, (640, 480))  # each frame shows 320 x 240 um
    area = (0.0, 0.0, 3000.0, 3000.0)
    wide = ScanPlan.from_mapping({"grid": {"fov_width": 100000}})
    with pytest.raises(ValueError, match=r"grid.fov_width: 100000 um is more than the 320 um each frame shows"):
        field_grid(wide, area, cal)
    tall = ScanPlan.from_mapping({"grid": {"fov_height": 300}})
    with pytest.raises(ValueError, match="grid.fov_height"):
        field_grid(tall, area, cal)
    narrower = field_grid(ScanPlan.from_mapping({"grid": {"fov_width": 200, "fov_height": 240}}), area, cal)
    assert narrower.columns > field_grid(ScanPlan(), area, cal).columns  # more overlap is the user's to choose
