"""Focus measures over a whole frame or a rectangle, each in one pass with exact integer sums.

Derivative measures (variance of Laplacian, Tenengrad) use OpenCV's default border, BORDER_REFLECT_101
(``dcb|abcdefgh|gfe``), applied at the frame's edges: inside a rectangle the derivatives see the real
neighbours outside it, so a rectangle's value equals the whole-frame derivative image cropped to it.
Sums of derivatives and their squares are accumulated in int64, so the only rounding is the final float64
division; results agree with a float64 NumPy reference to about 1e-15 relative.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from kernels._checks import check_frame, check_rect

__all__ = ["brenner", "laplacian_variance", "normalized_variance", "tenengrad"]


@njit(cache=True, nogil=True, inline="always")
def _reflect101(i: int, n: int) -> int:
    if n == 1:
        return 0
    if i < 0:
        return -i
    if i >= n:
        return 2 * n - 2 - i
    return i


@njit(cache=True, nogil=True, inline="always")
def _edge_column(e: int, x0: int, x1: int, width: int) -> int:
    """Edge column ``e`` (0: the first, 1: the last) if it lies in ``[x0, x1)`` and is distinct, else -1."""
    xx = 0 if e == 0 else width - 1
    if xx < x0 or xx >= x1 or (e == 1 and width == 1):
        return -1
    return xx


@njit(cache=True, nogil=True)
def _laplacian_row_sums(src: np.ndarray, y: int, x0: int, x1: int) -> tuple[int, int]:
    """Sum and sum of squares of the 4-neighbour Laplacian on row ``y``, columns ``x0 <= x < x1``.

    Kernel [[0, 1, 0], [1, -4, 1], [0, 1, 0]] (``cv2.Laplacian`` with ksize=1), reflect-101 borders.
    """
    height, width = src.shape
    up = src[_reflect101(y - 1, height)]
    c = src[y]
    dn = src[_reflect101(y + 1, height)]
    s = 0
    ss = 0
    # Interior columns first (no border logic, vectorised), then up to two edge columns.
    lo = max(x0, 1)
    hi = min(x1, width - 1)
    if hi > lo:
        n = hi - lo
        u = up[lo:hi]
        d = dn[lo:hi]
        m = c[lo:hi]
        left = c[lo - 1:hi - 1]
        right = c[lo + 1:hi + 1]
        for i in range(n):
            v = (np.int32(u[i]) + np.int32(d[i]) + np.int32(left[i]) + np.int32(right[i])
                 - 4 * np.int32(m[i]))
            s += v
            ss += v * v
    # Columns of [x0, x1) outside [1, width - 1) can only be the two edge columns.
    for e in range(2):
        x = _edge_column(e, x0, x1, width)
        if x < 0:
            continue
        v = (np.int32(up[x]) + np.int32(dn[x]) + np.int32(c[_reflect101(x - 1, width)])
             + np.int32(c[_reflect101(x + 1, width)]) - 4 * np.int32(c[x]))
        s += v
        ss += v * v
    return s, ss


@njit(cache=True, nogil=True)
def _laplacian_row(src: np.ndarray, y: int, dst: np.ndarray) -> None:
    """The 4-neighbour Laplacian of row ``y`` (reflect-101 borders) into ``dst`` (int32, frame width)."""
    height, width = src.shape
    up = src[_reflect101(y - 1, height)]
    c = src[y]
    dn = src[_reflect101(y + 1, height)]
    for x in range(width):
        xl = _reflect101(x - 1, width)
        xr = _reflect101(x + 1, width)
        dst[x] = np.int32(up[x]) + np.int32(dn[x]) + np.int32(c[xl]) + np.int32(c[xr]) - 4 * np.int32(c[x])


@njit(cache=True, nogil=True)
def _laplacian_variance_core(src: np.ndarray, x: int, y: int, w: int, h: int) -> float:
    s = 0
    ss = 0
    for yy in range(y, y + h):
        a, b = _laplacian_row_sums(src, yy, x, x + w)
        s += a
        ss += b
    n = w * h
    mean = s / n
    return (ss - s * mean) / n


@njit(cache=True, nogil=True)
def _laplacian_sq_sum_box(src: np.ndarray, x: int, y: int, w: int, h: int) -> int:
    """Sum of squared Laplacian over a box (the per-blob focus score)."""
    height, width = src.shape
    if x >= 1 and y >= 1 and x + w <= width - 1 and y + h <= height - 1:
        # A box clear of the frame's edges needs no border logic: plain 2-D indexing, no per-row views.
        # Blob boxes are small (tens of pixels wide), where the per-row slicing of the general path cost
        # 5x more than the arithmetic (113 boxes at 640x480: 0.157 -> 0.029 ms).
        ss = 0
        for yy in range(y, y + h):
            rs = 0
            for xx in range(x, x + w):
                v = (np.int32(src[yy - 1, xx]) + np.int32(src[yy + 1, xx]) + np.int32(src[yy, xx - 1])
                     + np.int32(src[yy, xx + 1]) - 4 * np.int32(src[yy, xx]))
                rs += v * v
            ss += rs
        return ss
    ss = 0
    for yy in range(y, y + h):
        ss += _laplacian_row_sums(src, yy, x, x + w)[1]
    return ss


@njit(cache=True, nogil=True)
def _tenengrad_core(src: np.ndarray, x: int, y: int, w: int, h: int) -> float:
    height, width = src.shape
    total = 0
    for yy in range(y, y + h):
        up = src[_reflect101(yy - 1, height)]
        c = src[yy]
        dn = src[_reflect101(yy + 1, height)]
        lo = max(x, 1)
        hi = min(x + w, width - 1)
        if hi > lo:
            n = hi - lo
            ul, um, ur = up[lo - 1:hi - 1], up[lo:hi], up[lo + 1:hi + 1]
            cl, cr = c[lo - 1:hi - 1], c[lo + 1:hi + 1]
            dl, dm, dr = dn[lo - 1:hi - 1], dn[lo:hi], dn[lo + 1:hi + 1]
            for i in range(n):
                gx = (np.int32(ur[i]) + 2 * np.int32(cr[i]) + np.int32(dr[i])
                      - np.int32(ul[i]) - 2 * np.int32(cl[i]) - np.int32(dl[i]))
                gy = (np.int32(dl[i]) + 2 * np.int32(dm[i]) + np.int32(dr[i])
                      - np.int32(ul[i]) - 2 * np.int32(um[i]) - np.int32(ur[i]))
                total += gx * gx + gy * gy
        for e in range(2):
            xx = _edge_column(e, x, x + w, width)
            if xx < 0:
                continue
            xl = _reflect101(xx - 1, width)
            xr = _reflect101(xx + 1, width)
            gx = (np.int32(up[xr]) + 2 * np.int32(c[xr]) + np.int32(dn[xr])
                  - np.int32(up[xl]) - 2 * np.int32(c[xl]) - np.int32(dn[xl]))
            gy = (np.int32(dn[xl]) + 2 * np.int32(dn[xx]) + np.int32(dn[xr])
                  - np.int32(up[xl]) - 2 * np.int32(up[xx]) - np.int32(up[xr]))
            total += gx * gx + gy * gy
    return total / (w * h)


#: Longest stretch of a row summed in uint32: 65535 * 255**2 < 2**32 (no overflow in the row sums).
_CHUNK = 65535


@njit(cache=True, nogil=True)
def _brenner_core(src: np.ndarray, x: int, y: int, w: int, h: int) -> float:
    total = 0
    n = w - 2
    # Squares go through a uint16 row buffer (|d| <= 255, so d*d fits), then a separate uint32 sum: LLVM
    # vectorises the two simple loops better than one fused loop (measured 0.20 vs 0.23 ms at 2592x1944).
    sq = np.empty(min(n, _CHUNK), np.uint16)
    for yy in range(y, y + h):
        row = src[yy]
        for c0 in range(0, n, _CHUNK):
            m = min(_CHUNK, n - c0)
            a = row[x + c0:x + c0 + m]
            b = row[x + c0 + 2:x + c0 + 2 + m]
            for i in range(m):
                p = b[i]
                q = a[i]
                d = np.uint16(max(p, q) - min(p, q))
                sq[i] = d * d
            acc = np.uint32(0)
            for i in range(m):
                acc += sq[i]
            total += acc
    return total / (n * h)


@njit(cache=True, nogil=True)
def _normalized_variance_core(src: np.ndarray, x: int, y: int, w: int, h: int) -> float:
    s = 0
    ss = 0
    for yy in range(y, y + h):
        for c0 in range(x, x + w, _CHUNK):
            row = src[yy, c0:min(c0 + _CHUNK, x + w)]
            # Sums over at most _CHUNK pixels fit uint32, which keeps the loop in 32-bit lanes.
            rs = np.uint32(0)
            rss = np.uint32(0)
            for i in range(row.size):
                v = np.uint32(row[i])
                rs += v
                rss += v * v
            s += rs
            ss += rss
    n = w * h
    mean = s / n
    if mean == 0.0:
        return 0.0
    var = (ss - s * mean) / n
    return var / mean


def laplacian_variance(frame: np.ndarray, rect: tuple[int, int, int, int] | None = None) -> float:
    """Variance of the Laplacian: ``cv2.Laplacian(frame, cv2.CV_64F).var()`` over the frame or a rectangle.

    Parameters
    ----------
    frame : (M, N) ndarray of uint8
    rect : tuple of int (x, y, w, h), optional
        Pixels ``x <= col < x + w``, ``y <= row < y + h``; the whole frame when None.

    Returns
    -------
    float
        Population variance of the 4-neighbour Laplacian (reflect-101 border at the frame's edges).

    Raises
    ------
    ValueError
        On a bad frame or rectangle.
    """
    frame = check_frame(frame)
    x, y, w, h = check_rect(rect, frame.shape)
    return float(_laplacian_variance_core(frame, x, y, w, h))


def tenengrad(frame: np.ndarray, rect: tuple[int, int, int, int] | None = None) -> float:
    """Tenengrad: mean of ``Gx**2 + Gy**2`` with 3x3 Sobel derivatives (``cv2.Sobel`` ksize=3, reflect-101).

    Parameters
    ----------
    frame : (M, N) ndarray of uint8
    rect : tuple of int (x, y, w, h), optional
        The whole frame when None.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        On a bad frame or rectangle.
    """
    frame = check_frame(frame)
    x, y, w, h = check_rect(rect, frame.shape)
    return float(_tenengrad_core(frame, x, y, w, h))


def brenner(frame: np.ndarray, rect: tuple[int, int, int, int] | None = None) -> float:
    """Brenner gradient: mean of ``(I[r, c + 2] - I[r, c]) ** 2`` over pairs lying inside the rectangle.

    Parameters
    ----------
    frame : (M, N) ndarray of uint8
    rect : tuple of int (x, y, w, h), optional
        The whole frame when None; at least 3 pixels wide.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        On a bad frame, or a rectangle (or frame) narrower than 3 pixels.
    """
    frame = check_frame(frame)
    x, y, w, h = check_rect(rect, frame.shape, min_size=(3, 1))
    return float(_brenner_core(frame, x, y, w, h))


def normalized_variance(frame: np.ndarray, rect: tuple[int, int, int, int] | None = None) -> float:
    """Normalised variance: ``var(I) / mean(I)`` over the frame or a rectangle (0.0 for an all-black area).

    Parameters
    ----------
    frame : (M, N) ndarray of uint8
    rect : tuple of int (x, y, w, h), optional
        The whole frame when None.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        On a bad frame or rectangle.
    """
    frame = check_frame(frame)
    x, y, w, h = check_rect(rect, frame.shape)
    return float(_normalized_variance_core(frame, x, y, w, h))
