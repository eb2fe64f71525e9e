"""The crops the structure classifier and the focus net see, cut the same way in training and at run time.

Two conventions, each one function, used by the dataset renderer (``models/data/crops.py``) and by the scan
loop alike, so a model never meets a crop cut differently from the ones it learnt on:

- :func:`box_crop` (classifier): a square around a detection box with a margin on every side, resized to
  64 x 64. The scale is the object's own: a 20 µm split ring and a 120 µm woodpile both fill the crop.
- :func:`focus_crop` (focus net): a fixed patch of the slide, ``FOCUS_CROP_UM`` wide, resampled to 64 x 64
  at ``FOCUS_UM_PER_PX``. Defocus blur has a size in µm, so the focus net needs a crop whose scale in µm
  is known; the caller passes the camera's calibrated µm per pixel.

Parts of a crop that fall outside the frame repeat the frame's edge pixels (a cut structure stays cut,
the border does not turn black).

>>> import numpy as np
>>> frame = np.full((480, 640), 150, np.uint8)
>>> box_crop(frame, (300, 200, 340, 260)).shape
(64, 64)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

CROP_PX = 64
# Margin around a detection box, as a fraction of its longer side on each side: the outline and a ring of glass.
BOX_MARGIN = 0.15
# Focus crops: 64 px at 0.75 µm per px, a 48 µm patch (the smallest structures fit whole with glass around).
FOCUS_UM_PER_PX = 0.75
FOCUS_CROP_UM = CROP_PX * FOCUS_UM_PER_PX


def to_gray(image: np.ndarray) -> np.ndarray:
    """A frame as 2-D uint8 grey: grey passes through, BGR / BGRA are converted, other dtypes rejected.

    Raises
    ------
    ValueError
        Not a 2-D array or an (H, W, 3|4) array of uint8.
    """
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got dtype {img.dtype}")
    if img.ndim == 2:
        return img
    if img.ndim == 3 and img.shape[2] in (3, 4):
        code = cv2.COLOR_BGR2GRAY if img.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
        return np.asarray(cv2.cvtColor(np.ascontiguousarray(img), code))
    raise ValueError(f"image must be (H, W) grey or (H, W, 3|4) colour, got shape {img.shape}")


def square_region(gray: np.ndarray, cx: float, cy: float, side: float, out_px: int = CROP_PX) -> np.ndarray:
    """The square of ``side`` pixels centred on (cx, cy), resampled to ``out_px`` x ``out_px``.

    Parameters
    ----------
    gray : (H, W) ndarray of uint8
        The frame.
    cx, cy : float
        Centre in pixel coordinates (pixel ``u`` spans ``[u - 0.5, u + 0.5]``).
    side : float
        Side of the square, pixels (> 0).
    out_px : int
        Output side.

    Returns
    -------
    (out_px, out_px) ndarray of uint8
        Area-averaged when shrinking (no aliasing of woodpile rods), bilinear when enlarging; the square is
        snapped to whole pixels first (at most half a pixel of shift).
    """
    if not (math.isfinite(side) and side > 0):
        raise ValueError(f"side must be a positive number of pixels, got {side!r}")
    n = max(1, int(round(side)))
    # Pixel u spans [u - 0.5, u + 0.5]: the square's left edge cx - n/2 lies on the edge of pixel u0.
    u0 = int(round(cx - n / 2.0 + 0.5))
    v0 = int(round(cy - n / 2.0 + 0.5))
    region = _padded(gray, u0, v0, n, n)
    interp = cv2.INTER_AREA if n > out_px else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(region, (out_px, out_px), interpolation=interp))


def _padded(gray: np.ndarray, u0: int, v0: int, w: int, h: int) -> np.ndarray:
    """``gray[v0:v0+h, u0:u0+w]`` with the frame's edge pixels repeated where it reaches outside."""
    fh, fw = gray.shape
    a0, b0 = max(0, v0), max(0, u0)
    a1, b1 = min(fh, v0 + h), min(fw, u0 + w)
    if a1 <= a0 or b1 <= b0:  # wholly outside: the nearest edge pixel everywhere
        return np.full((h, w), gray[min(max(v0, 0), fh - 1), min(max(u0, 0), fw - 1)], np.uint8)
    core = gray[a0:a1, b0:b1]
    return np.asarray(cv2.copyMakeBorder(core, a0 - v0, v0 + h - a1, b0 - u0, u0 + w - b1, cv2.BORDER_REPLICATE))


def box_crop(image: np.ndarray, box: Sequence[float], margin: float = BOX_MARGIN) -> np.ndarray:
    """The classifier's crop of one detection: a square around the box with ``margin``, 64 x 64 uint8.

    Parameters
    ----------
    image : (H, W) or (H, W, 3) ndarray of uint8
        The frame (colour is converted to grey).
    box : (xmin, ymin, xmax, ymax)
        Pixel box (exclusive max), as the detector and the datasets give it.
    margin : float
        Glass kept around the box on each side, as a fraction of its longer side.

    Raises
    ------
    ValueError
        A box with xmax <= xmin or ymax <= ymin, or non-finite values.
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or x1 <= x0 or y1 <= y0:
        raise ValueError(f"box must be finite (xmin, ymin, xmax, ymax) with xmax > xmin and ymax > ymin, got {box!r}")
    side = max(x1 - x0, y1 - y0) * (1.0 + 2.0 * margin)
    # Exclusive max: the box covers pixel edges x0..x1, i.e. centres x0..x1-1; its centre is (x0 + x1 - 1) / 2.
    return square_region(to_gray(image), (x0 + x1 - 1) / 2.0, (y0 + y1 - 1) / 2.0, max(side, 4.0))


def focus_crop(image: np.ndarray, center_xy: Sequence[float], um_per_px: float) -> np.ndarray:
    """The focus net's crop: ``FOCUS_CROP_UM`` of slide around a point, as 64 x 64 uint8 at ``FOCUS_UM_PER_PX``.

    Parameters
    ----------
    image : (H, W) or (H, W, 3) ndarray of uint8
        The frame.
    center_xy : (float, float)
        Pixel column and row of the crop's centre (a structure's box centre, say).
    um_per_px : float
        The camera's µm per pixel at the sample, 0.05..20.

    Raises
    ------
    ValueError
        ``um_per_px`` out of range or a non-finite centre.
    """
    if isinstance(um_per_px, bool) or not isinstance(um_per_px, (int, float)) or not 0.05 <= um_per_px <= 20.0:
        raise ValueError(f"um_per_px must be a number in [0.05, 20], got {um_per_px!r}")
    cx, cy = (float(v) for v in center_xy)
    if not (math.isfinite(cx) and math.isfinite(cy)):
        raise ValueError(f"center_xy must be finite pixel coordinates, got {center_xy!r}")
    return square_region(to_gray(image), cx, cy, FOCUS_CROP_UM / float(um_per_px))


def focus_points(box: Sequence[float], um_per_px: float) -> list[tuple[float, float]]:
    """Where to cut focus crops of one structure: its centre if it fits a crop, else its four edge midpoints.

    Defocus shows at a print's edges (blur width and the polarity of the rim's fringe); the flat dark inside of
    a large print carries almost none. A structure up to 0.8 crop wide is cut once around its centre, glass
    and edges included; a larger one at the midpoints of its box's four sides, so every crop holds an edge
    with glass on one side. Average the focus net's answers over the crops (weighted by ``confidence``).

    Parameters
    ----------
    box : (xmin, ymin, xmax, ymax)
        Pixel box (exclusive max).
    um_per_px : float
        The camera's µm per pixel at the sample.

    Returns
    -------
    list of (float, float)
        Crop centres in pixels, for :func:`focus_crop`.
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    cx, cy = box_center(box)
    if max(x1 - x0, y1 - y0) * um_per_px <= 0.8 * FOCUS_CROP_UM:
        return [(cx, cy)]
    return [(x0 - 0.5, cy), (x1 - 0.5, cy), (cx, y0 - 0.5), (cx, y1 - 0.5)]


def box_center(box: Sequence[float]) -> tuple[float, float]:
    """Pixel centre of an exclusive-max box."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return (x0 + x1 - 1) / 2.0, (y0 + y1 - 1) / 2.0
