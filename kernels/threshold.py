"""Thresholds with OpenCV's exact semantics: global fixed, Otsu, adaptive mean and adaptive Gaussian.

Every function returns a binary ``uint8`` frame whose foreground pixels are ``maxval`` and background 0,
pixel-identical to ``cv2.threshold`` / ``cv2.adaptiveThreshold`` (adaptive Gaussian: see
:func:`adaptive_gaussian` for the one rounding that can differ). The compiled cores work one row at a time
so that :mod:`kernels.analysis` can fuse them with the blob search.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from kernels._checks import check_block_size, check_frame, check_int, check_out, check_real

__all__ = ["adaptive_gaussian", "adaptive_mean", "gaussian_kernel", "otsu", "otsu_level", "threshold"]


# ---------------------------------------------------------------------------------------------------- cores


@njit(cache=True, nogil=True)
def _threshold_core(src: np.ndarray, thresh: int, maxval: int, invert: bool, out: np.ndarray) -> None:
    # Typed uint8 constants keep the loop in 8-bit lanes (about 3x faster than Python ints here).
    t = np.uint8(thresh)
    hi = np.uint8(maxval)
    lo = np.uint8(0)
    if invert:
        hi, lo = lo, hi
    s = src.reshape(-1)
    o = out.reshape(-1)
    for i in range(s.size):
        o[i] = hi if s[i] > t else lo


@njit(cache=True, nogil=True)
def _histogram(src: np.ndarray) -> np.ndarray:
    # Four interleaved sub-histograms break the store-to-load chain on runs of equal pixels.
    s = src.reshape(-1)
    n = s.size
    h4 = np.zeros((4, 256), np.int64)
    n4 = n - n % 4
    for i in range(0, n4, 4):
        h4[0, s[i]] += 1
        h4[1, s[i + 1]] += 1
        h4[2, s[i + 2]] += 1
        h4[3, s[i + 3]] += 1
    for i in range(n4, n):
        h4[0, s[i]] += 1
    hist = np.zeros(256, np.int64)
    for k in range(256):
        hist[k] = h4[0, k] + h4[1, k] + h4[2, k] + h4[3, k]
    return hist


@njit(cache=True, nogil=True)
def _otsu_from_hist(hist: np.ndarray, size: int) -> int:
    # Same sequence of float64 operations as OpenCV's getThreshVal_Otsu_8u, so ties resolve identically.
    scale = 1.0 / size
    mu = 0.0
    for i in range(256):
        mu += i * float(hist[i])
    mu *= scale
    mu1 = 0.0
    q1 = 0.0
    max_sigma = 0.0
    max_val = 0
    eps = 1.1920928955078125e-07  # FLT_EPSILON
    for i in range(256):
        p_i = hist[i] * scale
        mu1 *= q1
        q1 += p_i
        q2 = 1.0 - q1
        if min(q1, q2) < eps or max(q1, q2) > 1.0 - eps:
            continue
        mu1 = (mu1 + i * p_i) / q1
        mu2 = (mu - q1 * mu1) / q2
        sigma = q1 * q2 * (mu1 - mu2) * (mu1 - mu2)
        if sigma > max_sigma:
            max_sigma = sigma
            max_val = i
    return max_val


@njit(cache=True, nogil=True)
def _otsu_core(src: np.ndarray, maxval: int, invert: bool, out: np.ndarray) -> int:
    level = _otsu_from_hist(_histogram(src), src.size)
    _threshold_core(src, level, maxval, invert, out)
    return level


@njit(cache=True, nogil=True)
def _mean_init(src: np.ndarray, r: int, col: np.ndarray) -> None:
    """Column sums of rows -r..r (replicated) for output row 0."""
    height, width = src.shape
    col[:] = 0
    for k in range(-r, r + 1):
        yy = min(max(k, 0), height - 1)
        for x in range(width):
            col[x] += src[yy, x]


@njit(cache=True, nogil=True)
def _mean_row(src: np.ndarray, y: int, r: int, idelta: int, hi: np.uint8, lo: np.uint8,
              col: np.ndarray, pre: np.ndarray, dst: np.ndarray) -> None:
    """Threshold row ``y`` against its block mean; ``col`` holds the column sums for row ``y``.

    OpenCV rounds the box mean to the nearest uint8, then sets ``src - mean > -idelta``. With ``d`` the
    (odd) block area, ``round(s / d) = floor((s + d // 2) / d)``, and for an integer ``a``,
    ``a > floor(m)`` iff ``a > m``; so the test is the exact integer ``(src + idelta) * d > s + d // 2``:
    no division, no rounding, vectorisable.
    """
    height, width = src.shape
    block = 2 * r + 1
    d = block * block
    half = d // 2
    # Prefix sums over the row of column sums, padded by replicating the end columns.
    acc = 0
    pre[0] = 0
    c0 = col[0]
    for j in range(r):
        acc += c0
        pre[j + 1] = acc
    for x in range(width):
        acc += col[x]
        pre[r + 1 + x] = acc
    cl = col[width - 1]
    for j in range(r):
        acc += cl
        pre[r + 1 + width + j] = acc
    upper = pre[block:block + width]
    srow = src[y]
    for x in range(width):
        s = upper[x] - pre[x]
        v = (np.int64(srow[x]) + idelta) * d
        dst[x] = hi if v > s + half else lo


@njit(cache=True, nogil=True)
def _mean_advance(src: np.ndarray, y: int, r: int, col: np.ndarray) -> None:
    """Move the column sums from row ``y - 1`` to row ``y`` (add row y+r, drop row y-r-1, replicated)."""
    height, width = src.shape
    add = min(y + r, height - 1)
    sub = max(y - r - 1, 0)
    if add == sub:
        return
    for x in range(width):
        col[x] += np.int32(src[add, x]) - np.int32(src[sub, x])


@njit(cache=True, nogil=True)
def _adaptive_mean_core(src: np.ndarray, block: int, idelta: int, maxval: int, invert: bool,
                        out: np.ndarray) -> None:
    height, width = src.shape
    r = block // 2
    hi = np.uint8(maxval)
    lo = np.uint8(0)
    if invert:
        hi, lo = lo, hi
    col = np.empty(width, np.int32)
    pre = np.empty(width + 2 * r + 1, np.int64)
    _mean_init(src, r, col)
    for y in range(height):
        if y > 0:
            _mean_advance(src, y, r, col)
        _mean_row(src, y, r, idelta, hi, lo, col, pre, out[y])


@njit(cache=True, nogil=True)
def _gauss_hrow(srow: np.ndarray, k: np.ndarray, r: int, pad: np.ndarray, dst: np.ndarray) -> None:
    """Horizontal pass of one row: float32 symmetric convolution with replicated ends."""
    width = srow.size
    first = srow[0]
    last = srow[width - 1]
    for j in range(r):
        pad[j] = first
        pad[r + width + j] = last
    mid = pad[r:r + width]
    for x in range(width):
        mid[x] = srow[x]
    # Shifted views indexed by x alone: an index such as pad[x + j] makes Numba emit its negative-index
    # wrap-around check, which stops LLVM from vectorising the loop (measured 2.5x slower).
    kc = k[r]
    mid = pad[r:r + width]
    for x in range(width):
        dst[x] = kc * mid[x]
    # Four taps per sweep keep the running sum in a register: the same additions in the same order as one
    # tap per sweep (bit-identical), with a quarter of the loads and stores of dst (640 px, block 31:
    # 0.68 -> 0.57 ms for the whole threshold).
    j = 0
    while j + 4 <= r:
        k0, k1, k2, k3 = k[j], k[j + 1], k[j + 2], k[j + 3]
        l0, r0 = pad[j:j + width], pad[2 * r - j:2 * r - j + width]
        l1, r1 = pad[j + 1:j + 1 + width], pad[2 * r - j - 1:2 * r - j - 1 + width]
        l2, r2 = pad[j + 2:j + 2 + width], pad[2 * r - j - 2:2 * r - j - 2 + width]
        l3, r3 = pad[j + 3:j + 3 + width], pad[2 * r - j - 3:2 * r - j - 3 + width]
        for x in range(width):
            a = dst[x]
            a += k0 * (l0[x] + r0[x])
            a += k1 * (l1[x] + r1[x])
            a += k2 * (l2[x] + r2[x])
            a += k3 * (l3[x] + r3[x])
            dst[x] = a
        j += 4
    while j < r:
        kj = k[j]
        left = pad[j:j + width]
        right = pad[2 * r - j:2 * r - j + width]
        for x in range(width):
            dst[x] += kj * (left[x] + right[x])
        j += 1


@njit(cache=True, nogil=True)
def _gauss_ring_fill(src: np.ndarray, row: int, k: np.ndarray, r: int, ring: np.ndarray, pad: np.ndarray) -> None:
    """Horizontally filter source row ``row`` into its ring slot."""
    _gauss_hrow(src[row], k, r, pad, ring[row % ring.shape[0]])


@njit(cache=True, nogil=True)
def _gauss_row(src: np.ndarray, y: int, k: np.ndarray, r: int, idelta: int, hi: np.uint8, lo: np.uint8,
               ring: np.ndarray, acc: np.ndarray, dst: np.ndarray) -> None:
    """Vertical pass for output row ``y`` from the ring of filtered rows, then the threshold test."""
    height, width = src.shape
    nr = ring.shape[0]
    centre = ring[y % nr]
    kc = k[r]
    for x in range(width):
        acc[x] = kc * centre[x]
    j = 1
    while j + 3 <= r:  # four taps per sweep, as in _gauss_hrow (bit-identical to one at a time)
        u0, d0 = ring[max(y - j, 0) % nr], ring[min(y + j, height - 1) % nr]
        u1, d1 = ring[max(y - j - 1, 0) % nr], ring[min(y + j + 1, height - 1) % nr]
        u2, d2 = ring[max(y - j - 2, 0) % nr], ring[min(y + j + 2, height - 1) % nr]
        u3, d3 = ring[max(y - j - 3, 0) % nr], ring[min(y + j + 3, height - 1) % nr]
        k0, k1, k2, k3 = k[r + j], k[r + j + 1], k[r + j + 2], k[r + j + 3]
        for x in range(width):
            a = acc[x]
            a += k0 * (u0[x] + d0[x])
            a += k1 * (u1[x] + d1[x])
            a += k2 * (u2[x] + d2[x])
            a += k3 * (u3[x] + d3[x])
            acc[x] = a
        j += 4
    while j <= r:
        up = ring[max(y - j, 0) % nr]
        dn = ring[min(y + j, height - 1) % nr]
        kj = k[r + j]
        for x in range(width):
            acc[x] += kj * (up[x] + dn[x])
        j += 1
    srow = src[y]
    fd = np.float32(idelta)
    for x in range(width):
        # OpenCV rounds the float mean half-to-even (cvRound) to uint8, then tests src - mean > -idelta.
        m = np.rint(acc[x])
        dst[x] = hi if np.float32(srow[x]) + fd > m else lo


@njit(cache=True, nogil=True)
def _gauss_start(src: np.ndarray, k: np.ndarray, r: int, ring: np.ndarray, pad: np.ndarray) -> None:
    """Fill the ring with the filtered rows 0..r that output row 0 needs."""
    height = src.shape[0]
    for row in range(min(r, height - 1) + 1):
        _gauss_ring_fill(src, row, k, r, ring, pad)


@njit(cache=True, nogil=True)
def _adaptive_gaussian_core(src: np.ndarray, k: np.ndarray, idelta: int, maxval: int, invert: bool,
                            out: np.ndarray) -> None:
    height, width = src.shape
    r = k.size // 2
    hi = np.uint8(maxval)
    lo = np.uint8(0)
    if invert:
        hi, lo = lo, hi
    ring = np.empty((min(2 * r + 1, height), width), np.float32)
    pad = np.empty(width + 2 * r, np.float32)
    acc = np.empty(width, np.float32)
    _gauss_start(src, k, r, ring, pad)
    for y in range(height):
        nxt = y + r
        if y > 0 and nxt < height:
            _gauss_ring_fill(src, nxt, k, r, ring, pad)
        _gauss_row(src, y, k, r, idelta, hi, lo, ring, acc, out[y])


# ---------------------------------------------------------------------------------------------------- API


def gaussian_kernel(block_size: int) -> np.ndarray:
    """The 1-D Gaussian weights of ``cv2.getGaussianKernel(block_size, 0, cv2.CV_32F)``.

    Sigma is ``0.3 * ((block_size - 1) * 0.5 - 1) + 0.8``; sizes 3, 5, 7 and 9 use OpenCV's fixed
    tables (binomial up to 7; the 9-tap one is 1, 3.25, 7.5, 12.75, 15, ... / 64). Other sizes are computed
    in float64, normalised, then rounded to float32, as OpenCV does.

    Parameters
    ----------
    block_size : int
        Odd kernel length >= 3.

    Returns
    -------
    (block_size,) ndarray of float32
    """
    tables = {3: [0.25, 0.5, 0.25], 5: [0.0625, 0.25, 0.375, 0.25, 0.0625],
              7: [0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125],
              9: [0.015625, 0.05078125, 0.1171875, 0.19921875, 0.234375, 0.19921875, 0.1171875, 0.05078125,
                  0.015625]}
    if block_size in tables:
        return np.array(tables[block_size], np.float32)
    sigma = 0.3 * ((block_size - 1) * 0.5 - 1) + 0.8
    x = np.arange(block_size, dtype=np.float64) - (block_size - 1) * 0.5
    w = np.exp((-0.5 / (sigma * sigma)) * x * x)
    return (w * (1.0 / w.sum())).astype(np.float32)


def _binary_params(maxval: int, invert: bool) -> tuple[int, bool]:
    return check_int(maxval, "maxval", 0, 255), bool(invert)


def threshold(frame: np.ndarray, thresh: float, maxval: int = 255, invert: bool = False,
              out: np.ndarray | None = None) -> np.ndarray:
    """Global fixed threshold, identical to ``cv2.threshold`` with THRESH_BINARY / THRESH_BINARY_INV.

    Parameters
    ----------
    frame : (M, N) ndarray of uint8
        C-contiguous input.
    thresh : float
        Level in [0, 255]; floored as OpenCV does. A pixel is foreground where ``frame > floor(thresh)``.
    maxval : int, optional
        Foreground value in [0, 255].
    invert : bool, optional
        THRESH_BINARY_INV: foreground where ``frame <= floor(thresh)``.
    out : (M, N) ndarray of uint8, optional
        Preallocated output; may be ``frame`` itself (this kernel works in place).

    Returns
    -------
    (M, N) ndarray of uint8

    Raises
    ------
    ValueError
        On a bad frame, level, maxval or output.

    Examples
    --------
    >>> threshold(np.array([[10, 200]], np.uint8), 100).tolist()
    [[0, 255]]
    """
    frame = check_frame(frame)
    level = math.floor(check_real(thresh, "thresh", 0.0, 255.0))
    mv, inv = _binary_params(maxval, invert)
    out = check_out(out, frame.shape, np.uint8)
    _threshold_core(frame, level, mv, inv, out)
    return out


def otsu_level(frame: np.ndarray) -> int:
    """Otsu's level as ``cv2.threshold(..., THRESH_OTSU)`` returns it (between-class variance maximum).

    Parameters
    ----------
    frame : (M, N) ndarray of uint8

    Returns
    -------
    int
        The level in [0, 255]; foreground is ``frame > level``.
    """
    frame = check_frame(frame)
    return int(_otsu_from_hist(_histogram(frame), frame.size))


def otsu(frame: np.ndarray, maxval: int = 255, invert: bool = False,
         out: np.ndarray | None = None) -> tuple[int, np.ndarray]:
    """Otsu threshold, identical to ``cv2.threshold(frame, 0, maxval, THRESH_BINARY[_INV] | THRESH_OTSU)``.

    Parameters
    ----------
    frame : (M, N) ndarray of uint8
    maxval : int, optional
        Foreground value in [0, 255].
    invert : bool, optional
        Foreground where ``frame <= level``.
    out : (M, N) ndarray of uint8, optional
        Preallocated output; may be ``frame`` itself.

    Returns
    -------
    level : int
        Otsu's level.
    binary : (M, N) ndarray of uint8

    Raises
    ------
    ValueError
        On a bad frame, maxval or output.
    """
    frame = check_frame(frame)
    mv, inv = _binary_params(maxval, invert)
    out = check_out(out, frame.shape, np.uint8)
    level = _otsu_core(frame, mv, inv, out)
    return int(level), out


def _adaptive_delta(c: float, invert: bool) -> int:
    """OpenCV's integer offset: ceil(C) for BINARY, floor(C) for BINARY_INV, clamped to [-256, 256].

    Clamping cannot change a result: ``src - mean`` lies in [-255, 255].
    """
    cv = check_real(c, "c")
    d = math.floor(cv) if invert else math.ceil(cv)
    return max(-256, min(256, d))


def adaptive_mean(frame: np.ndarray, block_size: int, c: float, maxval: int = 255, invert: bool = False,
                  out: np.ndarray | None = None) -> np.ndarray:
    """Adaptive mean threshold, pixel-identical to ``cv2.adaptiveThreshold(..., ADAPTIVE_THRESH_MEAN_C)``.

    The mean is the ``block_size`` x ``block_size`` box mean with replicated borders, rounded to uint8.
    BINARY: foreground where ``frame - mean > -ceil(c)``; BINARY_INV: where ``frame - mean <= -floor(c)``.
    Running column sums plus one prefix sum per row; the rounding is folded into an integer comparison.

    Parameters
    ----------
    frame : (M, N) ndarray of uint8
    block_size : int
        Odd, >= 3, at most ``min(M, N)`` and 2047.
    c : float
        Constant subtracted from the mean.
    maxval : int, optional
        Foreground value in [0, 255].
    invert : bool, optional
        THRESH_BINARY_INV.
    out : (M, N) ndarray of uint8, optional
        Preallocated output, not overlapping ``frame``.

    Returns
    -------
    (M, N) ndarray of uint8

    Raises
    ------
    ValueError
        On a bad frame, block size, c, maxval or output.
    """
    frame = check_frame(frame)
    block = check_block_size(block_size, frame.shape)
    idelta = _adaptive_delta(c, invert)
    mv, inv = _binary_params(maxval, invert)
    out = check_out(out, frame.shape, np.uint8, frame)
    # BINARY_INV is the complement of BINARY with idelta' = idelta (src - mean <= -idelta), so the core runs
    # the BINARY test and swaps the output values.
    _adaptive_mean_core(frame, block, idelta, mv, inv, out)
    return out


def adaptive_gaussian(frame: np.ndarray, block_size: int, c: float, maxval: int = 255, invert: bool = False,
                      out: np.ndarray | None = None) -> np.ndarray:
    """Adaptive Gaussian threshold, as ``cv2.adaptiveThreshold(..., ADAPTIVE_THRESH_GAUSSIAN_C)``.

    OpenCV converts the frame to float32, blurs it with the separable ``getGaussianKernel(block_size, 0)``
    (replicated borders), rounds the blur half-to-even to uint8 and tests ``frame - mean > -ceil(c)``
    (BINARY_INV: ``<= -floor(c)``). This kernel does the same in float32 with a symmetric row pass and a
    ring of filtered rows for the column pass. Its float32 sums are added in a different order from
    OpenCV's SIMD code, so where the blur lies within a few float32 ulps of a ``k + 0.5`` rounding edge the
    rounded mean, and then the pixel, can differ: measured on the test images, well under 0.1% of pixels
    (usually none; see ``docs/kernels.md``).

    Parameters
    ----------
    frame : (M, N) ndarray of uint8
    block_size : int
        Odd, >= 3, at most ``min(M, N)`` and 2047.
    c : float
        Constant subtracted from the mean.
    maxval : int, optional
        Foreground value in [0, 255].
    invert : bool, optional
        THRESH_BINARY_INV.
    out : (M, N) ndarray of uint8, optional
        Preallocated output, not overlapping ``frame``.

    Returns
    -------
    (M, N) ndarray of uint8

    Raises
    ------
    ValueError
        On a bad frame, block size, c, maxval or output.
    """
    frame = check_frame(frame)
    block = check_block_size(block_size, frame.shape)
    idelta = _adaptive_delta(c, invert)
    mv, inv = _binary_params(maxval, invert)
    out = check_out(out, frame.shape, np.uint8, frame)
    _adaptive_gaussian_core(frame, gaussian_kernel(block), idelta, mv, inv, out)
    return out
