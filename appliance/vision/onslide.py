"""Whether an object lies on the slide or on the optics, by whether it moves with the stage between two frames.

An object on the slide keeps its place on the slide whatever the stage does, so between two frames taken at
stage positions some distance apart its image moves by that distance. A blemish of the optics (out-of-focus
dust on a lens, the camera's window or the condenser; a lamp's hot spot) keeps its place in the frame. The
models cannot tell the two apart from one crop: on the virtual microscope's cheap colour camera a faint
blotch at the frame's centre was a scaffold to both (seed 441, docs/scan.md "Structure or debris").

:func:`on_slide` compares the object's patch in the first frame with two patches of the second: where it
should lie if it moved with the slide, and where it was. Both frames are high-passed first (the frame minus a
Gaussian blur), so the lamp's smooth field and the vignetting, which are fixed to the frame too, do not count,
and each comparison is the best normalised correlation over a few pixels of offset (the stage repeats to
about 2 µm, 4 px at 10x). It reads pixels, not detections, so it holds where the detector boxes a faint
object in one frame and not the next.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> glass = rng.normal(200, 1, (120, 160))
>>> blob = np.zeros((120, 160)); blob[50:70, 60:80] = rng.normal(0, 20, (20, 20))
>>> a = glass + blob
>>> b_slide = rng.normal(200, 1, (120, 160)) + np.roll(blob, 32, axis=1)   # moved 32 px with the stage
>>> b_fixed = rng.normal(200, 1, (120, 160)) + blob                         # stayed put
>>> on_slide(a, (55, 45, 85, 75), b_slide, (32, 0)), on_slide(a, (55, 45, 85, 75), b_fixed, (32, 0))
(True, False)
"""

from __future__ import annotations

import math

import cv2
import numpy as np

Box = tuple[int, int, int, int]

#: Smallest shift, px, that can tell: the two places must lie further apart than twice the search radius.
MIN_SHIFT_PX = 16


def on_slide(before: np.ndarray, box: Box, after: np.ndarray, shift_px: tuple[float, float],
             search_px: int = 6, sigma_px: float = 3.0, min_corr: float = 0.3, margin: float = 0.1) -> bool | None:
    """Whether the object in ``box`` of ``before`` moved by ``shift_px`` in ``after`` (True) or stayed (False).

    Parameters
    ----------
    before, after : (H, W) ndarray
        Grey frames of one size, taken at the same focus.
    box : (int, int, int, int)
        The object's ``xmin, ymin, xmax, ymax`` in ``before``, pixels (exclusive max).
    shift_px : (float, float)
        Where the object should appear in ``after`` if it lies on the slide, relative to ``box``, pixels: the
        stage's move between the frames through the calibration.
    search_px : int
        Each comparison is the best over offsets up to this many pixels either way (>= 0).
    sigma_px : float
        Sigma of the blur the high-pass takes away, pixels (> 0).
    min_corr : float
        Below this correlation in both places nothing is said (the object is not seen again).
    margin : float
        The better place must beat the other by this much.

    Returns
    -------
    bool or None
        None when the views cannot say: a shift under ``MIN_SHIFT_PX`` (or under twice ``search_px``), a box
        of less than 8 px a side, either place (with its search margin) not wholly inside ``after``, or no
        clear winner.

    Raises
    ------
    ValueError
        Frames of different or non-2-D shapes, or a box not inside ``before``.
    """
    a, b = np.asarray(before, np.float32), np.asarray(after, np.float32)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"before and after must be 2-D frames of one shape, got {a.shape} and {b.shape}")
    h, w = a.shape
    x0, y0, x1, y1 = (int(v) for v in box)
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise ValueError(f"box must lie inside the {w} x {h} frame and not be empty, got {box!r}")
    dx, dy = int(round(shift_px[0])), int(round(shift_px[1]))
    if max(abs(dx), abs(dy)) < max(MIN_SHIFT_PX, 2 * search_px + 1) or min(x1 - x0, y1 - y0) < 8:
        return None
    r = search_px
    if not (x0 + dx - r >= 0 and x1 + dx + r <= w and y0 + dy - r >= 0 and y1 + dy + r <= h):
        return None
    if not (x0 - r >= 0 and x1 + r <= w and y0 - r >= 0 and y1 + r <= h):
        return None
    patch = _highpass(a, sigma_px)[y0:y1, x0:x1]
    hb = _highpass(b, sigma_px)
    moved = _best_ncc(patch, hb[y0 + dy - r:y1 + dy + r, x0 + dx - r:x1 + dx + r])
    stayed = _best_ncc(patch, hb[y0 - r:y1 + r, x0 - r:x1 + r])
    if max(moved, stayed) < min_corr:
        return None
    if moved >= stayed + margin:
        return True
    if stayed >= moved + margin:
        return False
    return None


def _highpass(img: np.ndarray, sigma_px: float) -> np.ndarray:
    return np.asarray(img - cv2.GaussianBlur(img, (0, 0), sigma_px), np.float32)


def _best_ncc(patch: np.ndarray, region: np.ndarray) -> float:
    """Best zero-mean normalised correlation of ``patch`` over the positions it fits in ``region``."""
    res = cv2.matchTemplate(region, patch, cv2.TM_CCOEFF_NORMED)
    v = float(res.max())
    return v if math.isfinite(v) else 0.0
