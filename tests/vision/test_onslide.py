"""Whether an object moves with the slide or stays with the optics (``appliance/vision/onslide.py``)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from appliance.vision.onslide import on_slide

H, W = 240, 320


def _lamp() -> np.ndarray:
    """A smooth lamp field with vignetting, fixed to the frame like the blemish (it must not count)."""
    yy, xx = np.mgrid[:H, :W].astype(np.float32)
    return 200.0 * (1 - 0.2 * (((xx - W / 2) / W) ** 2 + ((yy - H / 2) / H) ** 2)) * (1 + 0.03 * np.cos(xx / 40))


def _specks(seed: int, box: tuple[int, int, int, int], depth: float) -> np.ndarray:
    """Gain < 1 over ``box``: blurred specks, as out-of-focus dust or a faint clump."""
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = box
    s = np.zeros((H, W), np.float32)
    s[y0:y1, x0:x1] = rng.random((y1 - y0, x1 - x0)) < 0.03
    s = cv2.GaussianBlur(s, (0, 0), 2.0)
    return 1.0 - depth * s / s.max()


def _frame(gain: np.ndarray, seed: int, jpeg: int = 0) -> np.ndarray:
    img = np.clip(_lamp() * gain + np.random.default_rng(seed).normal(0, 1.0, (H, W)), 0, 255).astype(np.uint8)
    if jpeg:
        img = cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, jpeg])[1], cv2.IMREAD_GRAYSCALE)
    return img


@pytest.mark.parametrize("jpeg", [0, 40])
def test_a_clump_on_the_slide_moves_and_a_blemish_of_the_optics_stays(jpeg: int) -> None:
    box, shift = (120, 80, 200, 160), (48, -16)
    clump = _specks(1, box, 0.3)
    moved = np.roll(clump, (shift[1], shift[0]), axis=(0, 1))
    before = _frame(clump, 2, jpeg)
    assert on_slide(before, box, _frame(moved, 3, jpeg), shift) is True
    assert on_slide(before, box, _frame(clump, 3, jpeg), shift) is False  # the same place in the frame: the optics
    assert on_slide(before, box, _frame(np.ones((H, W), np.float32), 3, jpeg), shift) is None  # gone: cannot say


def test_a_faint_blemish_over_the_lamp_field_is_told_too() -> None:
    """Seed 441's blotch: specks a few grey levels deep, over a lamp field that varies more across the box."""
    box, shift = (100, 60, 220, 180), (64, 0)
    blotch = _specks(4, box, 0.04)
    assert on_slide(_frame(blotch, 5), box, _frame(blotch, 6), shift) is False


def test_it_says_nothing_where_it_cannot_tell() -> None:
    f = _frame(_specks(1, (120, 80, 200, 160), 0.3), 2)
    assert on_slide(f, (120, 80, 200, 160), f, (4, 3)) is None  # a move within the stage's repeatability
    assert on_slide(f, (120, 80, 200, 160), f, (200, 0)) is None  # it would lie outside the second frame
    with pytest.raises(ValueError, match="box"):
        on_slide(f, (300, 80, 400, 160), f, (48, 0))
    with pytest.raises(ValueError, match="shape"):
        on_slide(f, (120, 80, 200, 160), f[:100], (48, 0))
