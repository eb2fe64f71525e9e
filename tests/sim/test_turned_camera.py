"""A camera turned or mirrored on its port: the frames show the slide turned, and the truth's boxes follow."""

import numpy as np
import pytest

from appliance.sim.camera import pixel_axes, pixel_to_slide_um, slide_to_pixel
from appliance.sim.overrides import parse_sim_sets, sim_microscope
from appliance.sim.sensor import SensorParams


def _scope(*sets: str):
    return sim_microscope(3, parse_sim_sets(list(sets)))


def _a_structure(scope) -> dict:
    return next(o for o in scope.slide.truth()["objects"] if o["kind"] == "structure")


def _transmission(scope, xyz, size=(96, 96)) -> np.ndarray:
    return scope.camera.renderer.transmission(*xyz, size)


def test_a_square_camera_keeps_the_axis_aligned_path():
    assert pixel_axes(0.0, False) is None
    np.testing.assert_allclose(pixel_axes(90.0), [[0, -1], [1, 0]], atol=1e-12)
    np.testing.assert_allclose(pixel_axes(0.0, True), [[-1, 0], [0, 1]], atol=1e-12)


def test_pixel_and_slide_coordinates_invert_each_other_at_any_turn():
    axes = pixel_axes(33.0, True)
    x, y = pixel_to_slide_um(12.0, 250.0, (1000.0, 2000.0), (640, 480), 0.56, axes)
    assert slide_to_pixel(x, y, (1000.0, 2000.0), (640, 480), 0.56, axes) == pytest.approx((12.0, 250.0))


@pytest.mark.parametrize(("sets", "expected"), [(("sensor.rotation_deg=90",), np.rot90),
                                                (("sensor.mirror=true",), np.fliplr),
                                                (("sensor.rotation_deg=180",), lambda t: np.rot90(t, 2))])
def test_a_turned_frame_is_the_square_frame_turned(sets, expected):
    o = _a_structure(_scope())
    xyz = (o["center_um"][0] + 7.0, o["center_um"][1] - 4.0, o["focus_z_um"] + 2.0)
    square, turned = _transmission(_scope(), xyz), _transmission(_scope(*sets), xyz)
    assert square.min() < 0.5  # the print is in view
    np.testing.assert_allclose(turned, expected(square), atol=2e-3)


def test_the_truths_boxes_follow_a_turned_camera():
    scope = _scope("sensor.rotation_deg=30", "sensor.width_px=320", "sensor.height_px=240")
    o = _a_structure(scope)
    x, y = o["center_um"][0] + 20.0, o["center_um"][1] + 10.0
    with scope.stage, scope.camera:
        scope.stage.move_to_um(x=x, y=y)
        scope.stage.focus_to_um(o["focus_z_um"])
        frame = scope.camera.capture()
    (box,) = [b for b in scope.boxes_in_view(frame) if b.id == o["id"]]
    s, axes = scope.camera.um_per_px, pixel_axes(30.0)
    true = frame.meta["true_position_um"][:2]  # the stage's whole steps, not the target
    u, v = slide_to_pixel(o["center_um"][0], o["center_um"][1], true, (320, 240), s, axes)
    x0, y0, x1, y1 = box.box_px  # pixel edges: a pixel's centre is half a pixel in
    assert ((x0 + x1) / 2 - 0.5, (y0 + y1) / 2 - 0.5) == pytest.approx((u, v), abs=1.0)
    image = frame.image.astype(float)
    inside = image[y0:y1, x0:x1]
    assert inside.min() < np.percentile(image, 50) - 40  # the print is dark where its box says
    # the turned footprint's box is wider than the footprint: at 30 degrees by cos 30 + sin 30 of a square
    assert (x1 - x0) * s == pytest.approx(o["footprint_um"][0] * 1.366, rel=0.1)


@pytest.mark.parametrize(("key", "value"), [("rotation_deg", 181.0), ("rotation_deg", float("nan")),
                                            ("mirror", "yes"), ("mirror", 1)])
def test_a_turn_or_mirror_out_of_range_names_itself(key, value):
    with pytest.raises(ValueError, match=key):
        SensorParams(**{key: value})
