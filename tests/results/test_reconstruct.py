"""Height maps: the TIE phase of a rendered lens, the measured model per type, masks and the height score."""

import math

import cv2
import numpy as np
import pytest

from appliance.results.phase import lens_cap, linear_intensity, tie_phase
from appliance.results.reconstruct import (
    ReconstructSettings,
    glass_plane,
    mask_threshold,
    reconstruct,
    structure_mask,
)
from appliance.results.score import height_errors
from appliance.sim.optics import OpticsParams, image_intensity, object_spectrum

UM_PX = 0.56


def _lens(diameter: float, sag: float, pitch: float = 0.25) -> np.ndarray:
    radius = (diameter**2 / 4 + sag**2) / (2 * sag)
    n = int(diameter / pitch) + 1
    y, x = (np.mgrid[:n, :n] - (n - 1) / 2) * pitch
    r2 = x * x + y * y
    return np.where(r2 <= diameter**2 / 4, np.sqrt(np.maximum(radius**2 - r2, 0)) - (radius - sag), 0).astype(
        np.float32)


def _render_stack(h: np.ndarray, dzs: list[float], absorption: float = 0.0) -> np.ndarray:
    """Intensities of a thin polymer element (index step 0.5) through the simulator's optics, on 0.56 µm pixels."""
    optics = OpticsParams()
    spec = object_spectrum(h, np.where(h > 0, absorption, 0).astype(np.float32), 0.5, 0.25, (0.0, 0.0), optics,
                           pad_um=20.0)
    scale = spec.pitch_um[0] / UM_PX
    return np.stack([cv2.resize(image_intensity(spec, dz, optics), None, fx=scale, fy=scale,
                                interpolation=cv2.INTER_AREA) for dz in dzs]).astype(np.float64)


def _disc(shape: tuple[int, int], radius_um: float) -> np.ndarray:
    v, u = np.mgrid[:shape[0], :shape[1]]
    c0, c1 = (shape[0] - 1) / 2, (shape[1] - 1) / 2
    return ((v - c0) ** 2 + (u - c1) ** 2) * UM_PX**2 <= radius_um**2


@pytest.mark.parametrize("diameter, sag", [(60.0, 8.0), (40.0, 10.0)])
def test_tie_recovers_a_rendered_lens_curvature(diameter, sag):
    stack = _render_stack(_lens(diameter, sag), [-2.0, 0.0, 2.0], absorption=0.03)
    phi = tie_phase(stack[0], stack[1], stack[2], 2.0, 0.55, UM_PX)
    fit = lens_cap(phi, _disc(stack[0].shape, diameter / 2), UM_PX, 0.55, 0.5)
    assert fit is not None
    true_r = (diameter**2 / 4 + sag**2) / (2 * sag)
    assert fit[0] == pytest.approx(true_r, rel=0.08)
    # the sign matters: a flat (uncurved) object gives no lens
    flat = np.ones_like(stack[0])
    assert lens_cap(tie_phase(flat, flat, flat, 2.0, 0.55, UM_PX), _disc(flat.shape, diameter / 2), UM_PX,
                    0.55, 0.5) is None


def test_reconstruct_measures_a_lens_sag_from_its_phase_without_a_glass_reference():
    dzs = [-4.0, -2.0, 0.0, 2.0, 4.0]
    inten = _render_stack(_lens(50.0, 9.0), dzs, absorption=0.03)
    stack = np.clip(255 * (0.8 * inten) ** (1 / 2.2), 0, 255).astype(np.uint8)  # a gamma-2.2 camera
    mask = _disc(stack.shape[1:], 25.0)
    rec = reconstruct(stack, [100 + d for d in dzs], mask, "microlens", 100.0, None, UM_PX, ReconstructSettings())
    assert rec.source == "tie-curvature"
    assert rec.peak_um == pytest.approx(9.0, abs=1.0)
    assert np.isnan(rec.heights[~mask]).all()


def test_flat_topped_prints_take_twice_their_focus_height_over_the_glass():
    stack = np.full((5, 40, 50), 200, np.uint8)
    mask = np.zeros((40, 50), bool)
    mask[10:30, 12:40] = True
    s = ReconstructSettings()
    rec = reconstruct(stack, [96, 98, 100, 102, 104], mask, "pentagon", 100.0, 93.5, UM_PX, s)
    assert rec.source == "focus-offset" and rec.peak_um == pytest.approx(13.0) and rec.base_z_um == 93.5
    inner = mask.copy()
    inner[:, :] = False
    inner[16:24, 18:34] = True  # more than edge_um inside the mask's edge
    assert np.allclose(rec.heights[inner], 13.0) and np.isnan(rec.heights[~mask]).all()
    edge = mask & ~np.pad(mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:],
                          1)
    assert (rec.heights[edge] < 0.5 * 13.0).all()  # the map rises from the mask's edge over edge_um
    wood = reconstruct(stack, [96, 98, 100, 102, 104], mask, "woodpile", 100.0, 93.5, UM_PX, s)
    assert np.allclose(wood.heights[inner], 13.0 * s.woodpile_fill)
    step = reconstruct(stack, [96, 98, 100, 102, 104], mask, "pentagon", 100.0, 93.5, UM_PX,
                       ReconstructSettings(edge_um=0.0))
    assert np.allclose(step.heights[mask], 13.0)
    sff = reconstruct(stack, [96, 98, 100, 102, 104], mask, "pentagon", 100.0, 93.5, UM_PX,
                      ReconstructSettings(method="focus"))
    assert sff.source == "shape-from-focus"
    below = reconstruct(stack, [96, 98, 100, 102, 104], mask, "pentagon", 100.0, 101.0, UM_PX, s)
    assert below.source == "shape-from-focus"  # in focus under the glass: the focus offset is no measurement


@pytest.mark.parametrize("kwargs, words", [
    ({"method": "guess"}, ["method", "guess", "phase"]),
    ({"index_delta": 0.0}, ["index_delta", "0.0"]),
    ({"camera_gamma": float("nan")}, ["camera_gamma", "nan"]),
    ({"edge_um": -1.0}, ["edge_um", "-1.0", "10.0"]),
    ({"depth_of_field_um": 0.0}, ["depth_of_field_um", "0.0", "5000"]),
    ({"depth_of_field_um": True}, ["depth_of_field_um", "True"]),
])
def test_bad_settings_are_named(kwargs, words):
    with pytest.raises(ValueError) as err:
        ReconstructSettings(**kwargs)
    for w in words:
        assert w in str(err.value)


def test_tie_rejects_mismatched_planes_and_bad_steps():
    a = np.ones((20, 20))
    with pytest.raises(ValueError, match="shape"):
        tie_phase(a, a, np.ones((20, 21)), 2.0, 0.55, UM_PX)
    with pytest.raises(ValueError, match="dz_um"):
        tie_phase(a, a, a, 0.0, 0.55, UM_PX)
    with pytest.raises(ValueError, match="gamma"):
        linear_intensity(np.zeros((20, 20), np.uint8), 0.0)


def test_mask_finds_a_structure_that_fills_most_of_the_crop():
    img = np.full((200, 200), 200, np.uint8)
    disc = _disc(img.shape, 52.0)  # 186 px across: the blur-of-itself background used to lose it
    ring = disc & ~_disc(img.shape, 45.0)
    img[ring] = 60
    img[disc & ~ring] = 175
    m = structure_mask(img, (4, 4, 196, 196))
    assert (m & disc).sum() / (m | disc).sum() > 0.95


def test_open_shapes_keep_their_holes():
    img = np.full((120, 120), 200, np.uint8)
    img[20:100, 20:26] = img[20:100, 94:100] = img[20:26, 20:100] = img[94:100, 20:100] = 70
    box = (16, 16, 104, 104)
    assert structure_mask(img, box)[60, 60]
    assert not structure_mask(img, box, fill_holes=False)[60, 60]


def test_height_score_counts_height_put_on_glass():
    true = np.zeros((10, 10), np.float32)
    true[2:5, 2:5] = 10.0
    exact = np.where(true > 0, true, np.nan)
    assert height_errors(exact, true) == (0.0, 9)
    spread = np.full((10, 10), 10.0, np.float32)  # height everywhere: the glass pixels count against it
    rmse, n = height_errors(spread, true)
    assert n == 100 and rmse == pytest.approx(10.0 * math.sqrt(91 / 100))


def test_a_faint_print_on_light_that_falls_off_across_the_crop_is_in_the_mask():
    # light falling 24 grey levels corner to corner is no noise: about one level its border's MAD is 8 and a
    # threshold of four of them missed a print 30 levels under the glass; about a plane the print is plain
    rows, cols = np.indices((120, 120))
    img = 190.0 - 24.0 * (rows + cols) / 240.0 + np.random.default_rng(3).normal(0, 1.0, (120, 120))
    img[40:80, 40:80] -= 30.0
    m = structure_mask(np.clip(img, 0, 255).astype(np.uint8), (30, 30, 90, 90))
    square = np.zeros((120, 120), bool)
    square[40:80, 40:80] = True
    assert (m & square).sum() / (m | square).sum() > 0.9


def test_the_glass_plane_holds_with_a_neighbour_in_the_border():
    rows, cols = np.indices((100, 100))
    glass = 180.0 + 0.2 * cols - 0.1 * rows
    img = glass + np.random.default_rng(4).normal(0, 1.0, glass.shape)
    img[:, :3] = 40.0  # a dark neighbour along one side of the border
    plane, noise = glass_plane(cv2.GaussianBlur(img.astype(np.float32), (0, 0), 1.0))
    assert np.abs(plane - glass)[10:90, 10:90].max() < 1.5 and noise < 2.0


def test_the_mask_threshold_follows_a_faint_object_but_not_a_clear_one():
    clear = np.linspace(0.0, 80.0, 1000)  # a print tens of grey levels off the glass: the fixed 6 levels
    assert mask_threshold(clear, noise=1.0) == 6.0
    assert mask_threshold(clear, noise=2.5) == 10.0  # a noisy camera: 4 sigma
    faint = np.linspace(0.0, 5.6, 1000)  # the cheap colour camera's faint ring (seed 3412): half its contrast
    assert mask_threshold(faint, noise=0.08) == pytest.approx(0.5 * np.percentile(faint, 99))
    assert mask_threshold(np.full(100, 0.5), noise=0.0) == 2.0  # never under two 8-bit steps
