"""Threshold relative to the glass: dark objects are pixels at least ``contrast`` darker than the background.

The background (the clear glass's brightness) is estimated as a smooth surface, so that light falling off
toward the corners (vignetting, a tilted lamp) is not taken for objects, and so that neither an empty field
(where Otsu's level splits the noise) nor very dark debris (which drags Otsu's level below a faint structure)
moves the threshold:

1. The frame is cut into a grid of at most 8 x 6 cells, each at least 8 px a side. Each cell's sample is the
   75th percentile of its pixels (every second row and column read): the glass, unless a dark object covers
   more than three quarters of the cell.
2. A quadratic surface in x, y is fitted to the samples by least squares. Samples further off the fit than
   25 %, then 10 %, then ``contrast / 2`` of it (at least one grey level) are dropped, refitting after each
   bound: dark objects only pull samples down, and the loose bounds first keep a biased first fit from
   dropping good glass. With fewer than 12 samples left, or a degenerate fit, the surface is flat: the median
   of the pixels above the frame's Otsu level (the same sampled pixels).
3. The surface may run past its samples toward the frame's edges (half a cell) by no more than their spread.
4. A pixel is foreground where ``frame < (1 - contrast) * surface`` (compared in float32).

No OpenCV twin; ``tests/kernels/test_background.py`` checks it against a NumPy statement of the same steps.
The cores work one row at a time so :mod:`kernels.analysis` fuses them with the blob search.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from kernels._checks import check_contrast, check_frame, check_out
from kernels.threshold import _otsu_from_hist

__all__ = ["GRID", "MIN_SAMPLES", "background_map", "background_threshold"]

#: Most cells across and down; cells are at least MIN_CELL pixels on a side.
GRID = (8, 6)
MIN_CELL = 8
#: Fewest glass samples for a fitted (not flat) surface.
MIN_SAMPLES = 12
#: Cell statistics read every SUBSAMPLE-th row and column.
SUBSAMPLE = 2


def grid_shape(height: int, width: int) -> tuple[int, int]:
    """Cells across and down for a frame: ``(gx, gy)``."""
    return min(GRID[0], max(1, width // MIN_CELL)), min(GRID[1], max(1, height // MIN_CELL))


@njit(cache=True, nogil=True)
def _cell_samples(src: np.ndarray, gx: int, gy: int, us: np.ndarray, vs: np.ndarray, ms: np.ndarray,
                  hist: np.ndarray) -> None:
    """Per cell: centre (u, v in [-1, 1]) and the 75th percentile of its pixels; ``hist`` gets their sum.

    Every second row and column is read: the glass varies slowly, and a quarter of the pixels gives the
    percentiles to within a grey level at a quarter of the cost. Cell j spans columns ``j * W // gx`` ..
    ``(j + 1) * W // gx`` (rows likewise).
    """
    height, width = src.shape
    h = np.empty(256, np.int32)
    for i in range(gy):
        y0, y1 = i * height // gy, (i + 1) * height // gy
        for j in range(gx):
            x0, x1 = j * width // gx, (j + 1) * width // gx
            h[:] = 0
            for y in range(y0, y1, SUBSAMPLE):
                row = src[y]
                for x in range(x0, x1, SUBSAMPLE):
                    h[row[x]] += 1
            n = 0
            for v in range(256):
                n += h[v]
                hist[v] += h[v]
            k = i * gx + j
            us[k] = (x0 + x1) / width - 1.0
            vs[k] = (y0 + y1) / height - 1.0
            rank = (3 * n + 3) // 4  # the ceil(0.75 n)-th smallest value
            acc = 0
            for v in range(256):
                acc += h[v]
                if acc >= rank:
                    ms[k] = v
                    break


@njit(cache=True, nogil=True)
def _lower_median_above(hist: np.ndarray, level: int) -> tuple[int, int]:
    """(count of values > level, lower median of those values; -1 when none)."""
    n = 0
    for v in range(level + 1, 256):
        n += hist[v]
    if n == 0:
        return 0, -1
    half = (n + 1) // 2
    acc = 0
    for v in range(level + 1, 256):
        acc += hist[v]
        if acc >= half:
            return n, v
    return n, 255


@njit(cache=True, nogil=True)
def _solve6(a: np.ndarray, b: np.ndarray) -> bool:
    """Solve ``a x = b`` in place (result in ``b``) by Gaussian elimination with partial pivoting.

    Returns False when a pivot is below 1e-9 times the largest diagonal entry (a degenerate fit).
    """
    n = 6
    scale = 0.0
    for i in range(n):
        scale = max(scale, abs(a[i, i]))
    for k in range(n):
        p = k
        for i in range(k + 1, n):
            if abs(a[i, k]) > abs(a[p, k]):
                p = i
        if abs(a[p, k]) <= 1e-9 * scale:
            return False
        if p != k:
            for j in range(n):
                a[k, j], a[p, j] = a[p, j], a[k, j]
            b[k], b[p] = b[p], b[k]
        for i in range(k + 1, n):
            f = a[i, k] / a[k, k]
            for j in range(k, n):
                a[i, j] -= f * a[k, j]
            b[i] -= f * b[k]
    for k in range(n - 1, -1, -1):
        s = b[k]
        for j in range(k + 1, n):
            s -= a[k, j] * b[j]
        b[k] = s / a[k, k]
    return True


@njit(cache=True, nogil=True)
def _fit(us: np.ndarray, vs: np.ndarray, ms: np.ndarray, keep: np.ndarray, coef: np.ndarray) -> bool:
    """Least-squares quadratic ``c0 + c1 u + c2 v + c3 u² + c4 u v + c5 v²`` through the kept samples."""
    a = np.zeros((6, 6))
    b = np.zeros(6)
    basis = np.empty(6)
    for k in range(us.size):
        if not keep[k]:
            continue
        u, v = us[k], vs[k]
        basis[0] = 1.0
        basis[1] = u
        basis[2] = v
        basis[3] = u * u
        basis[4] = u * v
        basis[5] = v * v
        for i in range(6):
            b[i] += basis[i] * ms[k]
            for j in range(6):
                a[i, j] += basis[i] * basis[j]
    if not _solve6(a, b):
        return False
    coef[:] = b
    return True


@njit(cache=True, nogil=True)
def _surface(src: np.ndarray, contrast: float) -> tuple[np.ndarray, float, float]:
    """The glass surface of a frame: 6 coefficients and the (low, high) clamp of the quadratic."""
    height, width = src.shape
    gx = min(GRID[0], max(1, width // MIN_CELL))
    gy = min(GRID[1], max(1, height // MIN_CELL))
    ns = gx * gy
    us = np.empty(ns)
    vs = np.empty(ns)
    ms = np.empty(ns)
    hist = np.zeros(256, np.int64)
    _cell_samples(src, gx, gy, us, vs, ms, hist)
    n = 0
    for v in range(256):
        n += hist[v]
    otsu = _otsu_from_hist(hist, n)
    n_bright, flat = _lower_median_above(hist, otsu)
    if n_bright == 0:  # a flat frame: all of it is the glass
        n_bright, flat = _lower_median_above(hist, -1)
    coef = np.zeros(6)
    coef[0] = flat
    keep = np.ones(ns, np.bool_)
    fitted = np.zeros(6)
    ok = ns >= MIN_SAMPLES and _fit(us, vs, ms, keep, fitted)
    # Objects only darken the glass: drop samples far off the fit, from a loose bound to a tight one, refit.
    for tol in (0.25, 0.1, 0.5 * contrast):
        if not ok:
            break
        n_keep = 0
        for k in range(ns):
            u, v = us[k], vs[k]
            f = fitted[0] + fitted[1] * u + fitted[2] * v + fitted[3] * u * u + fitted[4] * u * v + fitted[5] * v * v
            keep[k] = abs(ms[k] - f) <= max(tol * f, 1.0)
            n_keep += keep[k]
        ok = n_keep >= MIN_SAMPLES and _fit(us, vs, ms, keep, fitted)
    if not ok:
        return coef, float(flat), float(flat)
    lo = 255.0
    hi = 0.0
    for k in range(ns):
        if keep[k]:
            lo = min(lo, ms[k])
            hi = max(hi, ms[k])
    # The surface may go beyond its samples toward the frame's edges (half a cell), by at most their spread.
    return fitted, max(lo - (hi - lo) - 2.0, 0.0), min(hi + (hi - lo) + 2.0, 255.0)


@njit(cache=True, nogil=True)
def _limit_row(coef: np.ndarray, lo: float, hi: float, contrast: float, y: int, height: int,
               lim: np.ndarray) -> None:
    """``lim[x] = (1 - contrast) * surface(x, y)`` for one row: foreground is ``frame < lim``."""
    width = lim.size
    v = (2.0 * y + 1.0) / height - 1.0
    a = coef[0] + coef[2] * v + coef[5] * v * v
    b = coef[1] + coef[4] * v
    c = coef[3]
    keep = 1.0 - contrast
    du = 2.0 / width
    for x in range(width):
        u = (x + 0.5) * du - 1.0
        lim[x] = keep * min(max(a + (b + c * u) * u, lo), hi)


@njit(cache=True, nogil=True)
def _threshold_row_below(srow: np.ndarray, lim: np.ndarray, hi: np.uint8, lo: np.uint8, dst: np.ndarray) -> None:
    """``dst[x] = lo`` where ``srow[x] < lim[x]`` (the dark side), else ``hi``."""
    for x in range(srow.size):
        dst[x] = lo if srow[x] < lim[x] else hi


@njit(cache=True, nogil=True)
def _centre_level(coef: np.ndarray, lo: float, hi: float, contrast: float) -> int:
    """The integer level at the frame's centre: foreground there is ``frame <= level``."""
    return int(math.ceil((1.0 - contrast) * min(max(coef[0], lo), hi))) - 1


@njit(cache=True, nogil=True)
def _background_threshold_core(src: np.ndarray, contrast: float, maxval: int, out: np.ndarray) -> None:
    coef, lo, hi = _surface(src, contrast)
    height, width = src.shape
    lim = np.empty(width, np.float32)
    for y in range(height):
        _limit_row(coef, lo, hi, contrast, y, height, lim)
        _threshold_row_below(src[y], lim, np.uint8(0), np.uint8(maxval), out[y])


@njit(cache=True, nogil=True)
def _background_map_core(src: np.ndarray, contrast: float, out: np.ndarray) -> None:
    coef, lo, hi = _surface(src, contrast)
    height, width = src.shape
    for y in range(height):
        v = (2.0 * y + 1.0) / height - 1.0
        for x in range(width):
            u = (2.0 * x + 1.0) / width - 1.0
            s = coef[0] + coef[1] * u + coef[2] * v + coef[3] * u * u + coef[4] * u * v + coef[5] * v * v
            out[y, x] = min(max(s, lo), hi)


def background_map(frame: np.ndarray, contrast: float = 0.05) -> np.ndarray:
    """The estimated brightness of the clear glass at every pixel (see the module's description).

    Parameters
    ----------
    frame : (M, N) ndarray of uint8
    contrast : float, optional
        In (0, 1); only sets how far a glass sample may lie off the fitted surface before it is dropped.

    Returns
    -------
    (M, N) ndarray of float64

    Raises
    ------
    ValueError
        On a bad frame or contrast.
    """
    frame = check_frame(frame)
    cv = check_contrast(contrast)
    out = np.empty(frame.shape, np.float64)
    _background_map_core(frame, cv, out)
    return out


def background_threshold(frame: np.ndarray, contrast: float = 0.05, maxval: int = 255,
                         out: np.ndarray | None = None) -> np.ndarray:
    """Mark the pixels at least ``contrast`` darker than the glass: ``frame < (1 - contrast) * background``.

    Parameters
    ----------
    frame : (M, N) ndarray of uint8
    contrast : float, optional
        Fraction of the glass's brightness a pixel must lack, in (0, 1).
    maxval : int, optional
        Value of the marked pixels, in [0, 255]; the others are 0.
    out : (M, N) ndarray of uint8, optional
        Preallocated output, not overlapping ``frame``.

    Returns
    -------
    (M, N) ndarray of uint8

    Raises
    ------
    ValueError
        On a bad frame, contrast, maxval or output.

    Examples
    --------
    >>> f = np.full((60, 80), 200, np.uint8); f[20:30, 30:50] = 150; f[40:45, 5:10] = 195
    >>> m = background_threshold(f, 0.1)
    >>> int(m.sum() // 255), int(m[25, 40]), int(m[42, 7])
    (200, 255, 0)
    """
    from kernels._checks import check_int

    frame = check_frame(frame)
    cv = check_contrast(contrast)
    mv = check_int(maxval, "maxval", 0, 255)
    out = check_out(out, frame.shape, np.uint8, frame)
    _background_threshold_core(frame, cv, mv, out)
    return out
