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
#: ``widest_edge`` (the seed's mode: the rectangle around the blob with the widest extent), ``specks`` (over
#: small rectangles around the specks on the glass, away from anything large: the glass's own focus).
SCORE_MODES: tuple[str, ...] = ("roi", "frame", "blobs", "widest_edge", "specks")

#: Blob search settings: the demo's adaptive Gaussian threshold, dark objects; a target must cover at least
#: ``TARGET_MIN_AREA_PX`` pixels (about 45 µm² at 0.56 µm per pixel: smaller specks are dust).
BLOCK_SIZE = 31
THRESHOLD_C = 15.0
TARGET_MIN_AREA_PX = 150
#: Pixels added around a target's blob box: defocus spreads an edge over several micrometres.
TARGET_MARGIN_PX = 24


def _blobs(image: np.ndarray, min_area: int, block_size: int = BLOCK_SIZE) -> np.ndarray:
    block = min(block_size, (min(image.shape) - 1) | 1)
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


#: Blobs of this many pixels (at 0.56 µm per pixel: about 2.5-125 µm², dust 2-12 µm across) are specks. A speck
#: stands at most about as tall as it is wide, so its mid-plane, where its focus curve is mirror-symmetric,
#: lies within a micrometre or two of the glass it rests on; fibres, bubbles and clumps stand up to 20 µm tall.
SPECK_MIN_AREA_PX = 8
#: The pixel size the speck sizes are in (10x on a 5.6 µm sensor), µm; other cameras scale them (:func:`speck_scale`).
SPECK_UM_PER_PX = 0.56
SPECK_MAX_AREA_PX = 400
#: Pixels kept around a speck's blob box: its focus measure needs the glass beside it and its defocus blur.
SPECK_MARGIN_PX = 10
#: A speck this close (pixels) to a larger object's box is left out: that object's blur and halo would mix
#: its focus into the speck's curve (about 0.4 µm of halo per µm of defocus: 24 px is 13 µm).
SPECK_CLEARANCE_PX = 24
#: At most this many specks (the largest) are scored: more add frames' worth of work, not information.
MAX_SPECKS = 24


#: A speck's own focus curve must vary at least this much (max over min of its walking score, over the frames
#: so far) to count: dust on the camera's window or sensor casts shadows that look the same at every z.
SPECK_LIVE_CONTRAST = 1.5


def find_specks(image: np.ndarray, min_area_px: int = SPECK_MIN_AREA_PX,
                max_area_px: int = SPECK_MAX_AREA_PX, scale: float = 1.0) -> tuple[Rect, ...] | None:
    """Rectangles around the specks in ``image`` that lie clear of every larger object, or None when none do.

    A blob touching the frame's edge may be the end of a fibre or the rim of a print, so it is kept clear of like
    a large one.

    Parameters
    ----------
    image : (H, W) ndarray of uint8
    min_area_px, max_area_px : int
        A speck's blob area, pixels (see ``SPECK_MIN_AREA_PX``); larger blobs are objects to keep clear of.
    scale : float
        The camera's pixels per pixel at 0.56 µm (:func:`speck_scale`): every size above is in those pixels.

    Returns
    -------
    tuple of (x, y, w, h), or None
        Each speck's blob box grown by ``SPECK_MARGIN_PX``, largest speck first, at most ``MAX_SPECKS``.
    """
    keep, avoid = speck_blobs(image, min_area_px, max_area_px, scale)
    keep = [r for r in keep if not any(overlap(r, b) for b in avoid)]
    return tuple(keep[:MAX_SPECKS]) or None


def speck_scale(um_per_px: float | None) -> float:
    """How many of a camera's pixels span one pixel at ``SPECK_UM_PER_PX``: the speck sizes' scale.

    Exactly 1 within 5 % of it, and for None (the tuned sizes, bit for bit); never below 1. Finer pixels see
    the same dust over more of them: at 40x (0.14 µm per pixel) a 3-7 µm speck covers 360-2,000 pixels, over
    ``SPECK_MAX_AREA_PX``, and the 31-pixel threshold block (4.3 µm) broke a sharp 12 µm fibre's rough edge into
    speck-sized pieces, whose focus 5.7 µm above the glass was taken for the glass's (held-out seed 5014).
    Coarser pixels are left at the tuned sizes: a speck of 2 µm is then a pixel or two, and no speck
    search was measured there.
    """
    if um_per_px is None:
        return 1.0
    s = SPECK_UM_PER_PX / float(um_per_px)
    return 1.0 if abs(s - 1.0) < 0.05 or s < 1.0 else s


def speck_blobs(image: np.ndarray, min_area_px: int = SPECK_MIN_AREA_PX,
                max_area_px: int = SPECK_MAX_AREA_PX, scale: float = 1.0) -> tuple[list[Rect], list[Rect]]:
    """The specks' rectangles in ``image`` (largest first) and the rectangles to keep them clear of.

    The second list holds every larger blob and every blob cut by the frame's edge, grown by
    ``SPECK_CLEARANCE_PX``; a search collects it over its frames, since a fibre or a bubble breaks into
    speck-sized pieces in some of them (:func:`find_specks` applies one frame's). ``scale``: as
    :func:`find_specks` has it (the threshold's block, the areas, the margin and the clearance grow with it).
    """
    block = int(round(BLOCK_SIZE * scale)) | 1
    stats = _blobs(image, max(1, int(round(min_area_px * scale * scale))), block)
    max_area = max_area_px * scale * scale
    margin, clearance = int(round(SPECK_MARGIN_PX * scale)), int(round(SPECK_CLEARANCE_PX * scale))
    H, W = image.shape[0], image.shape[1]

    def box(st: np.ndarray, margin: int) -> Rect:
        return grow_rect((int(st[0]), int(st[1]), int(st[2]), int(st[3])), margin, (H, W))

    def cut(st: np.ndarray) -> bool:
        return bool(st[0] <= 0 or st[1] <= 0 or st[0] + st[2] >= W or st[1] + st[3] >= H)

    avoid = [box(st, clearance) for st in stats if st[4] > max_area or cut(st)]
    keep = [box(st, margin) for st in sorted(stats, key=lambda st: -int(st[4]))
            if st[4] <= max_area and not cut(st)]
    return keep, avoid


def overlap(a: Rect, b: Rect) -> bool:
    """Whether two rectangles (x, y, w, h) share a pixel."""
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def speck_scores(image: np.ndarray, rects: Sequence[Rect]) -> tuple[np.ndarray, np.ndarray]:
    """Each speck's walking and fine focus measure in ``image`` (variance of the Laplacian, of the biharmonic)."""
    return (np.array([laplacian_variance(image, r) for r in rects], dtype=np.float64),
            np.array([biharmonic_variance(image, r) for r in rects], dtype=np.float64))


def live_specks(walking: np.ndarray) -> np.ndarray:
    """Which specks' walking scores, (frames, specks), vary by ``SPECK_LIVE_CONTRAST`` over the frames."""
    return np.asarray(walking.max(axis=0) >= SPECK_LIVE_CONTRAST * np.maximum(walking.min(axis=0), 1e-9))


def glass_curve(walking: np.ndarray, fine: np.ndarray, rects: Sequence[Rect]) -> tuple[np.ndarray, np.ndarray]:
    """The glass's focus curves from each speck's: area-weighted means over the specks that change with z.

    Parameters
    ----------
    walking, fine : (frames, specks) ndarray
        :func:`speck_scores` of every frame.
    rects : sequence of (x, y, w, h)
        The specks' rectangles (their areas weight them).

    Returns
    -------
    ((frames,) ndarray, (frames,) ndarray)
        The walking and fine curves over the specks whose walking score varies by ``SPECK_LIVE_CONTRAST``
        over the frames (all of them while none does yet: one frame, or all out of focus).
    """
    area = np.array([r[2] * r[3] for r in rects], dtype=np.float64)
    live = live_specks(walking)
    w = area * live if live.any() else area
    return walking @ w / w.sum(), fine @ w / w.sum()


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
    mode : {'roi', 'frame', 'blobs', 'widest_edge', 'specks'}
    rect : (x, y, w, h), optional
        The rectangle of the ``roi`` and ``widest_edge`` modes (one speck's for ``specks``, whose searches score
        all of them with :func:`specks_score`); without one they score the whole frame.

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
