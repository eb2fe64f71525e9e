"""Where a sampled focus curve says the focus is: its maximum, a three-point peak fit, or its centre.

The structures are transparent phase objects. Their sharpness curves are not symmetric about focus: an
odd-in-defocus phase-contrast term adds to the even blur term, so the maximum of a sharpness score sits a
few micrometres from the true focus, on the side that depends on the object, and thin rims and bars show
two maxima with a dip at focus (docs/autofocus.md has the measured curves). The centre of the curve's
main lobe (the midpoint of its crossings of a level low on the lobe) cancels most of that shift, so it is
the classical search's default; the peak fits are there for amplitude-like objects and comparison.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: Estimators of :func:`estimate_focus`.
ESTIMATORS: tuple[str, ...] = ("centre", "parabola", "gaussian", "max")


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
    estimator : {'centre', 'parabola', 'gaussian', 'max'}
        ``centre``: midpoint of the two crossings of ``min + level * (max - min)`` around the maximum (falls
        back to ``parabola`` when a side has no crossing); ``parabola`` / ``gaussian``: a parabola through the
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
