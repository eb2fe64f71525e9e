"""Focus scores of one frame: over the whole frame, a rectangle, the blobs, or the seed's widest edge.

On a TPP slide most of a frame is empty glass, whose Laplacian is sensor noise: a whole-frame score then
follows the noise and the dust, not the structure. The blob modes score only where the fused analysis
(:func:`kernels.analyse_frame`) finds dark objects; the target modes pick one object and score a fixed
rectangle around it, so every frame of a search is scored over the same pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from kernels import analyse_frame, laplacian_variance

Rect = tuple[int, int, int, int]

#: Score modes: ``frame`` (variance of Laplacian over the whole frame), ``roi`` (over a caller's or a chosen
#: target rectangle), ``blobs`` (mean squared Laplacian over the boxes of all blobs found in that frame),
#: ``widest_edge`` (the seed's mode: the rectangle around the blob with the widest extent).
SCORE_MODES: tuple[str, ...] = ("roi", "frame", "blobs", "widest_edge")

#: Blob search settings: the demo's adaptive Gaussian threshold, dark objects; a target must cover at least
#: ``TARGET_MIN_AREA_PX`` pixels (about 45 µm² at 0.56 µm per pixel: smaller specks are dust).
BLOCK_SIZE = 31
THRESHOLD_C = 15.0
TARGET_MIN_AREA_PX = 150
#: Pixels added around a target's blob box: defocus spreads an edge over several micrometres.
TARGET_MARGIN_PX = 24


def _blobs(image: np.ndarray, min_area: int) -> np.ndarray:
    block = min(BLOCK_SIZE, (min(image.shape) - 1) | 1)
    return analyse_frame(image, "gaussian", block_size=block, c=THRESHOLD_C, invert=True, connectivity=8,
                         min_area=min_area).stats


def grow_rect(rect: Rect, margin: int, shape: tuple[int, int]) -> Rect:
    """``rect`` (x, y, w, h) grown by ``margin`` pixels on every side and clipped to a frame of ``shape``."""
    x, y, w, h = rect
    x0, y0 = max(0, x - margin), max(0, y - margin)
    x1, y1 = min(shape[1], x + w + margin), min(shape[0], y + h + margin)
    return (int(x0), int(y0), int(x1 - x0), int(y1 - y0))


def find_target(image: np.ndarray, mode: str = "roi", min_area_px: int = TARGET_MIN_AREA_PX) -> Rect | None:
    """The rectangle a search should score in ``image``, or None when no object is large enough.

    Parameters
    ----------
    image : (H, W) ndarray of uint8
    mode : str
        ``"widest_edge"`` picks the blob with the widest extent (the seed's "focus on the widest edge");
        any other mode picks the blob with the largest area.
    min_area_px : int
        Smallest blob, in pixels, that counts as an object.

    Returns
    -------
    (x, y, w, h) or None
        The blob's box grown by ``TARGET_MARGIN_PX``.
    """
    stats = _blobs(image, min_area_px)
    if stats.shape[0] == 0:
        return None
    key = np.maximum(stats[:, 2], stats[:, 3]) if mode == "widest_edge" else stats[:, 4]
    k = int(np.argmax(key))
    x, y, w, h = (int(v) for v in stats[k, :4])
    return grow_rect((x, y, w, h), TARGET_MARGIN_PX, (image.shape[0], image.shape[1]))


def blob_score(image: np.ndarray, min_area_px: int = 12) -> float:
    """Mean squared Laplacian over the boxes of the blobs found in ``image`` (0.0 when there are none)."""
    block = min(BLOCK_SIZE, (min(image.shape) - 1) | 1)
    r = analyse_frame(image, "gaussian", block_size=block, c=THRESHOLD_C, invert=True, connectivity=8,
                      min_area=min_area_px)
    if r.n_blobs == 0:
        return 0.0
    area = float(np.sum(r.stats[:, 2].astype(np.int64) * r.stats[:, 3]))
    return float(np.sum(r.focus) / area)


def score(image: np.ndarray, mode: str, rect: Rect | None = None) -> float:
    """Focus score of one frame (higher is sharper).

    Parameters
    ----------
    image : (H, W) ndarray of uint8
    mode : {'roi', 'frame', 'blobs', 'widest_edge'}
    rect : (x, y, w, h), optional
        The rectangle of the ``roi`` and ``widest_edge`` modes; without one they score the whole frame.

    Raises
    ------
    ValueError
        An unknown mode, or a bad frame or rectangle.
    """
    if mode not in SCORE_MODES:
        raise ValueError(f"score mode must be one of {list(SCORE_MODES)}, got {mode!r}")
    if mode == "blobs":
        return blob_score(image)
    if mode == "frame" or rect is None:
        return laplacian_variance(image)
    return laplacian_variance(image, rect)


def biharmonic_variance(image: np.ndarray, rect: Rect | None = None) -> float:
    """Variance of the Laplacian of the Laplacian over the frame or a rectangle (the fine focus measure).

    The focus curves of transparent structures are skewed by a phase-contrast term that changes sign
    through focus; the higher the spatial frequencies a measure weights, the narrower its curve and the
    closer its centre to the true focus (docs/autofocus.md: on the tuning slides the curve centre was within
    1 µm for 89 % of structures with this measure, 73 % with the variance of the Laplacian). It also weights
    sensor noise most, so the classical search walks on the Laplacian and reads the centre here.

    Parameters
    ----------
    image : (H, W) ndarray of uint8
    rect : (x, y, w, h), optional
        Evaluated with the real neighbours outside it (two pixels each side), as the kernels do.
    """
    H, W = image.shape
    x, y, w, h = (0, 0, W, H) if rect is None else rect
    x0, y0 = max(0, x - 2), max(0, y - 2)
    x1, y1 = min(W, x + w + 2), min(H, y + h + 2)
    sub = image[y0:y1, x0:x1].astype(np.float32)
    lap2 = cv2.Laplacian(cv2.Laplacian(sub, cv2.CV_32F), cv2.CV_32F)
    core = lap2[y - y0:y - y0 + h, x - x0:x - x0 + w]
    return float(np.var(core, dtype=np.float64))


#: Side of the tiles :func:`noise_floor` splits a rectangle into, pixels.
FLOOR_TILE_PX = 32


def noise_floor(image: np.ndarray, rect: Rect | None) -> float:
    """Variance of the Laplacian of the glass in a rectangle: the 10th percentile over 32-pixel tiles.

    A target's rectangle always has some clear glass (its margin at least), whose Laplacian is sensor
    noise: this is the score the rectangle would have with nothing in focus in it. A faint structure (a
    thin ring on a large box) raises the rectangle's score only a little above it, so the search measures
    its curve from here rather than from the lowest frame it happened to take. ``inf`` without a rectangle.
    """
    if rect is None:
        return math.inf
    x, y, w, h = rect
    t = FLOOR_TILE_PX
    vals = [laplacian_variance(image, (tx, ty, t, t))
            for ty in range(y, y + h - t + 1, t) for tx in range(x, x + w - t + 1, t)]
    if len(vals) < 4:
        return math.inf
    return float(np.percentile(vals, 10))


def check_roi(roi: Sequence[int] | None, size_px: tuple[int, int]) -> Rect | None:
    """Validate a caller's rectangle (x, y, w, h) against the camera's (width, height); None passes."""
    if roi is None:
        return None
    try:
        x, y, w, h = (int(v) for v in roi)
    except (TypeError, ValueError):
        raise ValueError(f"roi must be four integers (x, y, w, h), got {roi!r}") from None
    W, H = size_px
    if w < 3 or h < 3 or x < 0 or y < 0 or x + w > W or y + h > H:
        raise ValueError(f"roi must lie inside the {W}x{H} frame and be at least 3x3 px, got {roi!r}")
    return (x, y, w, h)
