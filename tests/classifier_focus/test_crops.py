import numpy as np
import pytest

from appliance.vision.crops import FOCUS_CROP_UM, box_crop, focus_crop, square_region, to_gray


def _frame() -> np.ndarray:
    f = np.full((120, 160), 100, np.uint8)
    f[40:60, 70:90] = 250  # a bright 20 x 20 square, pixels 70..89 x 40..59
    return f


def test_box_crop_centres_the_box_with_its_margin():
    crop = box_crop(_frame(), (70, 40, 90, 60), margin=0.25)
    assert crop.shape == (64, 64) and crop.dtype == np.uint8
    # The 20 px box with 25 % margins on each side spans 30 px -> the square covers 64 * 20/30 ≈ 43 px.
    bright = np.argwhere(crop > 175)
    assert abs(bright[:, 0].mean() - 31.5) < 1.0 and abs(bright[:, 1].mean() - 31.5) < 1.0
    assert 40 <= bright[:, 0].max() - bright[:, 0].min() + 1 <= 46


def test_crop_outside_the_frame_repeats_the_edge_not_black():
    crop = box_crop(_frame(), (-30, -30, -5, -5))
    assert crop.min() == 100 and crop.max() == 100
    cut = box_crop(_frame(), (150, 40, 175, 60))  # half outside the right edge
    assert cut.min() >= 100


def test_focus_crop_has_a_fixed_size_in_micrometres():
    f = _frame()
    # At 0.75 µm/px the crop spans 64 frame pixels, at 1.5 µm/px 32: the 20 px square doubles in the crop.
    a = focus_crop(f, (79.5, 49.5), um_per_px=0.75)
    b = focus_crop(f, (79.5, 49.5), um_per_px=1.5)
    assert abs(FOCUS_CROP_UM - 48.0) < 1e-9
    assert (b > 175).sum() == pytest.approx(4 * (a > 175).sum(), rel=0.15)


def test_colour_frames_are_converted_to_grey():
    f = np.dstack([_frame()] * 3)
    assert np.array_equal(box_crop(f, (70, 40, 90, 60)), box_crop(_frame(), (70, 40, 90, 60)))


@pytest.mark.parametrize("call, message", [
    (lambda: box_crop(_frame(), (10, 10, 5, 20)), "xmax > xmin"),
    (lambda: box_crop(_frame(), (10, 10, float("nan"), 20)), "finite"),
    (lambda: focus_crop(_frame(), (10, 10), um_per_px=0.0), "um_per_px"),
    (lambda: focus_crop(_frame(), (float("inf"), 10), um_per_px=1.0), "center_xy"),
    (lambda: to_gray(np.zeros((4, 4), np.float32)), "uint8"),
    (lambda: to_gray(np.zeros((4, 4, 2), np.uint8)), "shape"),
    (lambda: square_region(_frame(), 5, 5, -1.0), "side"),
])
def test_bad_input_names_the_value(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_focus_points_centre_of_a_small_structure_edges_of_a_large_one():
    from appliance.vision.crops import focus_points

    # 30 x 20 px at 1 µm/px fits a 48 µm crop: one point, the centre.
    assert focus_points((10, 10, 40, 30), 1.0) == [(24.5, 19.5)]
    # The same box at 2 µm/px is 60 µm wide: the four edge midpoints (pixel edges at x 10 and 40, y 10 and 30).
    assert focus_points((10, 10, 40, 30), 2.0) == [(9.5, 19.5), (39.5, 19.5), (24.5, 9.5), (24.5, 29.5)]
