"""Where a sampled focus curve says the focus is: its centre of symmetry, its lobe's centre, a peak fit, its maximum.

The structures are transparent phase objects. Their sharpness curves are not peaked at focus: an
odd-in-defocus phase-contrast term mixes with the even blur term, so the maximum of a sharpness score sits a
few micrometres from the true focus, on the side that depends on the object, and thin rims and bars show
two maxima with a dip at focus (docs/autofocus.md has the measured curves). What stays is the curve's
mirror symmetry about the object's plane (exact for a pure phase object, broken only by an
absorption-phase cross term that fades away from focus), so the classical search reads the centre of
symmetry of the wide curve; the centre of the main lobe (the midpoint of its crossings of a level low on
the lobe) is its fall-back, and the peak fits are there for amplitude-like objects and comparison.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.interpolate import CubicSpline

#: Estimators of :func:`estimate_focus`.
ESTIMATORS: tuple[str, ...] = ("symmetry", "centre", "parabola", "gaussian", "max")

#: :func:`symmetry_centre` compares the curve's two sides out to this distance from a candidate centre, µm.
SYMMETRY_HALF_WIDTH_UM = 12.0
#: ... and needs at least this much of both sides sampled around a candidate, µm.
SYMMETRY_MIN_HALF_WIDTH_UM = 6.0


def symmetry_centre(z: np.ndarray, v: np.ndarray, half_width_um: float = SYMMETRY_HALF_WIDTH_UM,
                    min_half_width_um: float = SYMMETRY_MIN_HALF_WIDTH_UM, grid_um: float = 0.1) -> float | None:
    """The z about which the sampled curve is most nearly mirror-symmetric, or None when too little is sampled.

    A thin phase object under a centred condenser images at ``-dz`` as its complex conjugate does at ``+dz``;
    its sharpness curve is symmetric about the object's plane except for a cross term between its absorption
    and its phase. Far from focus that term fades (it oscillates in z at every spatial frequency), so the wide
    wings of the curve place the centre better than its peak or its dip (docs/autofocus.md has the figures).

    Parameters
    ----------
    z : (N,) ndarray, increasing
        Sample positions, µm.
    v : (N,) ndarray
        Scores there.
    half_width_um : float
        How far each side of a candidate centre the two sides are compared, µm.
    min_half_width_um : float
        Candidates need this much sampled curve on both sides, µm (near the sampled ends the comparison runs
        only as far as the samples reach).
    grid_um : float
        Spacing of the candidate centres, µm.

    Returns
    -------
    float or None
        The candidate whose mirrored sides differ least (mean squared difference over the variance of the
        compared values, so flat and steep windows compare fairly); None with fewer than four samples or
        less than ``2 min_half_width_um`` of z sampled.
    """
    if len(z) < 4 or float(z[-1] - z[0]) < 2 * min_half_width_um:
        return None
    f = CubicSpline(z, v)
    best, where = math.inf, None
    for c in np.arange(float(z[0]) + min_half_width_um, float(z[-1]) - min_half_width_um + 1e-9, grid_um):
        w = min(half_width_um, c - float(z[0]), float(z[-1]) - c)
        d = np.arange(grid_um, w + 1e-9, 0.25)
        a, b = f(c + d), f(c - d)
        err = float(np.mean((a - b) ** 2)) / (float(np.var(np.concatenate([a, b]))) + 1e-12)
        if err < best:
            best, where = err, float(c)
    return where


def second_lobes(v: np.ndarray, rise: float) -> int:
    """How often the curve rises again after falling, walking out from its maximum on either side.

    A rise counts when the curve climbs more than ``rise`` times its range (max - min) above the lowest value
    seen since the maximum on that side. One object's focus curve, sampled at a fraction of the depth of field,
    falls away from its lobe on both sides (0); a curve that zigzags (a flat curve's noise, compression blocks
    that come and go) or holds two objects' lobes counts one or more.

    Parameters
    ----------
    v : (N,) ndarray
        Scores in z order.
    rise : float
        The smallest rise that counts, as a fraction of the curve's range, in (0, 1).
    """
    v = np.asarray(v, dtype=np.float64)
    if v.size < 3:
        return 0
    tol = rise * float(v.max() - v.min())
    i = int(np.argmax(v))
    n = 0
    for side in (v[i::-1], v[i:]):
        low = float(side[0])
        for q in side[1:]:
            if q > low + tol:
                n += 1
            low = min(low, float(q)) if q <= low + tol else float(q)
    return n


def crossings(z: np.ndarray, v: np.ndarray, level: float) -> tuple[float | None, float | None]:
    """Where the curve last rises through ``level`` left of its maximum and first falls through it right.

    Parameters
    ----------
    z : (N,) ndarray, increasing
    v : (N,) ndarray
    level : float

    Returns
    -------
    (float or None, float or None)
        Linearly interpolated crossing positions; None on a side where the curve never drops below ``level``.
    """
    i = int(np.argmax(v))
    left: float | None = None
    for j in range(i, 0, -1):
        if v[j - 1] < level <= v[j]:
            left = float(z[j - 1] + (level - v[j - 1]) / (v[j] - v[j - 1]) * (z[j] - z[j - 1]))
            break
    right: float | None = None
    for j in range(i, len(v) - 1):
        if v[j + 1] < level <= v[j]:
            right = float(z[j] + (v[j] - level) / (v[j] - v[j + 1]) * (z[j + 1] - z[j]))
            break
    return left, right


def parabola_peak(z: Sequence[float], v: Sequence[float]) -> float:
    """Vertex of the parabola through three points (any spacing); the middle point if they are collinear."""
    (z0, z1, z2), (a, b, c) = z, v
    den = (z0 - z1) * (z0 - z2) * (z1 - z2)
    A = (z2 * (b - a) + z1 * (a - c) + z0 * (c - b)) / den
    B = (z2 * z2 * (a - b) + z1 * z1 * (c - a) + z0 * z0 * (b - c)) / den
    if A >= 0 or not math.isfinite(A):
        return float(z1)
    peak = -B / (2 * A)
    return float(min(max(peak, z0), z2))  # never beyond the bracketing samples


def estimate_focus(z: Sequence[float] | np.ndarray, v: Sequence[float] | np.ndarray, estimator: str = "centre",
                   level: float = 0.3, floor: float | None = None) -> float:
    """The focus position a sampled curve points to.

    Parameters
    ----------
    z : sequence of float
        Sample positions, µm (any order; sorted here).
    v : sequence of float
        Scores at those positions (higher is sharper).
    estimator : {'symmetry', 'centre', 'parabola', 'gaussian', 'max'}
        ``symmetry``: the centre of mirror symmetry of the sampled curve (:func:`symmetry_centre`; falls back
        to ``centre`` when too little of the curve is sampled); ``centre``: midpoint of the two crossings of
        ``min + level * (max - min)`` around the maximum (falls back to ``parabola`` when a side has no
        crossing); ``parabola`` / ``gaussian``: a parabola through the
        maximum and its neighbours, on the scores or on their logarithm; ``max``: the best sample.
    level : float
        The crossing level of ``centre``, as a fraction of the curve's range, in (0, 1).
    floor : float, optional
        The score of a frame with nothing in focus (the noise floor), when known and below the curve's
        minimum: the level is then measured from it, so a faint lobe is read over its whole width.

    Raises
    ------
    ValueError
        An unknown estimator, a level outside (0, 1), or no samples.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {list(ESTIMATORS)}, got {estimator!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if len(z) == 0 or len(z) != len(v):
        raise ValueError(f"need as many scores as positions (at least one), got {len(z)} and {len(v)}")
    order = np.argsort(np.asarray(z, dtype=np.float64))
    zs = np.asarray(z, dtype=np.float64)[order]
    vs = np.asarray(v, dtype=np.float64)[order]
    i = int(np.argmax(vs))
    if estimator == "max" or len(zs) < 3:
        return float(zs[i])
    if estimator == "symmetry":
        c = symmetry_centre(zs, vs)
        if c is not None:
            return c
        estimator = "centre"
    if estimator == "centre":
        lo, hi = float(vs.min()), float(vs.max())
        if floor is not None:
            lo = min(lo, float(floor))
        left, right = crossings(zs, vs, lo + level * (hi - lo))
        if left is not None and right is not None:
            return 0.5 * (left + right)
    j = min(max(i, 1), len(zs) - 2)
    if i in (0, len(zs) - 1):
        return float(zs[i])  # the maximum is at an end: no vertex to fit
    tri = vs[j - 1:j + 2]
    if estimator == "gaussian":
        tri = np.log(np.maximum(tri, 1e-12))
    return parabola_peak(tuple(zs[j - 1:j + 2]), tuple(tri))
