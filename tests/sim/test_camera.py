"""The simulated camera: determinism, consistency between positions, tilt, clock, boxes, errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from appliance.hardware.camera.base import CameraError
from appliance.sim.capture import PRESETS
from appliance.sim.microscope import VirtualMicroscope
from appliance.sim.sensor import SensorParams
from appliance.sim.slide import SlideParams


def _frames(seed: int, positions) -> list[np.ndarray]:
    scope = VirtualMicroscope(seed=seed)
    out = []
    with scope.stage, scope.camera:
        for x, y, z in positions:
            scope.stage.move_to_um(x=x, y=y)
            scope.stage.focus_to_um(z)
            out.append(scope.camera.capture().image)
    return out


def _near_structure(seed: int) -> tuple[float, float, float]:
    scope = VirtualMicroscope(seed=seed)
    o = next(o for o in scope.slide.objects if o.kind == "structure")
    return (round(o.center_um[0]) + 20, round(o.center_um[1]) - 10, round(o.focus_z_um))


def test_same_seed_byte_identical_frames():
    x, y, z = _near_structure(5)
    pos = [(x, y, z), (x + 40, y, z + 3), (x, y, z)]
    a = _frames(5, pos)
    b = _frames(5, pos)
    for fa, fb in zip(a, b, strict=True):
        assert fa.tobytes() == fb.tobytes()
    # the noise differs between captures at one place, the scene does not
    assert a[0].tobytes() != a[2].tobytes()
    assert abs(float(a[0].mean()) - float(a[2].mean())) < 0.5


def test_different_seeds_different_slides_and_frames():
    x, y, z = _near_structure(5)
    a = _frames(5, [(x, y, z)])[0]
    b = _frames(6, [(x, y, z)])[0]
    assert a.tobytes() != b.tobytes()
    ta, tb = VirtualMicroscope(seed=5).truth(), VirtualMicroscope(seed=6).truth()
    assert ta["objects"] != tb["objects"]


def test_overlapping_positions_show_the_same_slide(scope):
    o = next(o for o in scope.slide.objects if o.cls == "pentagon")
    r, s = scope.camera.renderer, scope.camera.um_per_px
    z = o.focus_z_um + 2.0
    a = r.transmission(o.center_um[0], o.center_um[1], z, (640, 480))
    shift_px = 60
    b = r.transmission(o.center_um[0] + shift_px * s, o.center_um[1] - 2 * shift_px * s, z, (640, 480))
    # pixel (u, v) in a is pixel (u - 60, v + 120) in b: x right, y down
    np.testing.assert_allclose(a[:480 - 120, 60:], b[120:, :640 - 60], atol=2e-3)
    assert a.min() < 0.8  # the structure is really there


def test_tilted_slide_focus_follows_the_tilt():
    tilt_x, tilt_y = 5.0, -3.0
    params = SlideParams(n_structures=8, type_mix=(0, 0, 0, 1, 0), tilt_x_um_per_mm=tilt_x,
                         tilt_y_um_per_mm=tilt_y, bow_um=0.0, debris_per_mm2=0.0)
    scope = VirtualMicroscope(seed=11, slide=params)
    rows = []
    with scope.stage, scope.camera:
        for o in scope.slide.objects[:6]:
            scope.stage.move_to_um(x=round(o.center_um[0]), y=round(o.center_um[1]))
            nominal = params.surface_z0_um + o.max_height_um / 2
            zs = np.arange(round(nominal) - 40, round(nominal) + 41, 2)
            vals = []
            for z in zs:
                scope.stage.focus_to_um(float(z))
                img = scope.camera.capture().image[140:340, 220:420].astype(np.float32)
                vals.append(cv2.Laplacian(cv2.GaussianBlur(img, (0, 0), 1.0), cv2.CV_32F).var())
            best = float(zs[int(np.argmax(vals))])
            rows.append((o.center_um[0], o.center_um[1], best - o.max_height_um / 2))
    d = np.asarray(rows)
    design = np.column_stack([d[:, 0] / 1000.0, d[:, 1] / 1000.0, np.ones(len(d))])
    (sx, sy, _), *_ = np.linalg.lstsq(design, d[:, 2], rcond=None)
    assert abs(sx - tilt_x) < 1.0 and abs(sy - tilt_y) < 1.0, (sx, sy, rows)


def test_capture_advances_the_clock_by_the_exposure(scope):
    with scope.stage, scope.camera:
        scope.camera.exposure_ms = 25.0
        t0 = scope.clock.now_s()
        f = scope.camera.capture()
        assert f.time_s == t0
        assert scope.clock.now_s() - t0 == pytest.approx(0.025)
        assert f.exposure_ms == 25.0 and f.shape == (480, 640)


@pytest.mark.parametrize(("preset", "gamma"), [("mono_raw", 1.0), ("default", 2.2)])
def test_exposure_scales_the_background(preset, gamma):
    # twice the light gives twice the signal on a linear camera, 2^(1/gamma) after the chain's gamma
    scope = VirtualMicroscope(seed=1, chain=PRESETS[preset], slide=SlideParams(n_structures=0))
    means = []
    with scope.stage, scope.camera:
        scope.stage.move_to_um(x=50, y=50)  # slide corner, clear of structures
        for ms in (5.0, 10.0):
            scope.camera.exposure_ms = ms
            means.append(float(np.median(scope.camera.capture().image)))
    assert means[1] / means[0] == pytest.approx(2.0 ** (1.0 / gamma), rel=0.05)


def test_capture_on_closed_camera_fails(scope):
    with pytest.raises(CameraError, match="not open"):
        scope.camera.capture()


def test_boxes_in_view_match_the_dark_pixels(scope):
    o = next(o for o in scope.slide.objects if o.cls == "pentagon")
    with scope.stage, scope.camera:
        scope.stage.move_to_um(x=round(o.center_um[0]) - 100, y=round(o.center_um[1]) + 50)
        scope.stage.focus_to_um(round(o.focus_z_um))
        f = scope.camera.capture()
    in_view = scope.boxes_in_view(f)
    boxes = [b for b in in_view if b.id == o.id]
    assert len(boxes) == 1 and boxes[0].cls == "pentagon" and boxes[0].complete
    x0, y0, x1, y1 = boxes[0].box_px
    dark = f.image < np.median(f.image) * 0.6
    for other in in_view:  # dark pixels of other objects (dust) are theirs, not the pentagon's
        if other.id != o.id:
            ox0, oy0, ox1, oy1 = other.box_px
            dark[max(oy0 - 3, 0):oy1 + 3, max(ox0 - 3, 0):ox1 + 3] = False
    ys, xs = np.nonzero(dark)
    inside = (xs >= x0 - 3) & (xs < x1 + 3) & (ys >= y0 - 3) & (ys < y1 + 3)
    assert inside.mean() > 0.9
    assert xs[inside].min() <= x0 + 6 and xs[inside].max() >= x1 - 7


def test_exposure_setter_rejects_bad_values(scope):
    for bad in (0.0, -1.0, float("inf"), 1e6):
        with pytest.raises(ValueError, match="exposure_ms"):
            scope.camera.exposure_ms = bad


@pytest.mark.parametrize(("name", "value"), [("width_px", 2600), ("height_px", 2000), ("width_px", 8),
                                             ("pixel_um", 0.0), ("exposure_ms", -5.0), ("read_noise_e", -1.0),
                                             ("vignetting", 1.5), ("width_px", 640.0)])
def test_bad_sensor_parameter_named(name, value):
    with pytest.raises(ValueError, match=name):
        SensorParams(**{name: value})


def test_largest_frame_renders():
    scope = VirtualMicroscope(seed=3, sensor=SensorParams(width_px=2592, height_px=1944))
    with scope.stage, scope.camera:
        scope.stage.move_to_um(x=5000, y=5000)
        f = scope.camera.capture()
    assert f.shape == (1944, 2592)


def test_frame_does_not_depend_on_the_cache(scope):
    o = next(o for o in scope.slide.objects if o.cls == "microlens")
    r = scope.camera.renderer
    r.clear_cache()
    cold = r.transmission(o.center_um[0], o.center_um[1], o.focus_z_um + 1.23, (320, 240))
    r.transmission(o.center_um[0], o.center_um[1], o.focus_z_um + 1.21, (320, 240))  # same 0.1 um bin, cached
    warm = r.transmission(o.center_um[0], o.center_um[1], o.focus_z_um + 1.23, (320, 240))
    assert cold.tobytes() == warm.tobytes()
    assert r._patches.hits >= 2


def test_a_flickering_lamp_changes_each_frames_light_and_a_steady_one_keeps_every_frame():
    from appliance.sim.overrides import parse_sim_sets, sim_microscope

    def levels(sets: list[str]) -> tuple[list[float], np.ndarray]:
        scope = sim_microscope(3, parse_sim_sets(sets))
        with scope.stage, scope.camera:
            ims = [scope.camera.capture().image for _ in range(12)]
        return [float(np.percentile(im, 90)) for im in ims], ims[0]

    steady, first = levels([])
    zero, first_zero = levels(["sensor.lamp_flicker=0"])
    assert np.array_equal(first, first_zero) and max(steady) - min(steady) < 1.0
    flicker, _ = levels(["sensor.lamp_flicker=0.1"])
    spread = np.std(np.array(flicker) / np.mean(flicker))
    assert 0.04 < spread < 0.2  # about 10 % (gamma-encoded grey: a little less)
    with pytest.raises(ValueError, match="lamp_flicker"):
        SensorParams(lamp_flicker=0.5)


def test_a_warming_lamp_moves_the_light_along_its_time_constant():
    from appliance.sim.overrides import parse_sim_sets, sim_microscope

    def glass_after(minutes: float, sets: list[str]) -> float:
        scope = sim_microscope(3, parse_sim_sets(["camera.preset=mono_raw", *sets]))
        with scope.stage, scope.camera:
            scope.clock.advance(60.0 * minutes)
            return float(np.median(scope.camera.capture().image))

    cold, warm = glass_after(0.0, ["sensor.lamp_drift=-0.2"]), glass_after(30.0, ["sensor.lamp_drift=-0.2"])
    assert warm / cold == pytest.approx(0.8, abs=0.02)  # six time constants: all of the drift (linear camera)
    assert glass_after(5.0, ["sensor.lamp_drift=-0.2"]) / cold == pytest.approx(1 - 0.2 * (1 - np.exp(-1)), abs=0.02)
    assert glass_after(30.0, []) == pytest.approx(cold, abs=1.0)
    for bad in ("sensor.lamp_drift=0.8", "sensor.lamp_drift_min=0"):
        with pytest.raises(ValueError, match=bad.split("=")[0].split(".")[1]):
            sim_microscope(3, parse_sim_sets([bad]))
