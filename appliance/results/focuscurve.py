"""Reading a focus from a sharpness curve through a stack: one peak, or the middle of two lobes.

An object that mostly absorbs is sharpest in focus: its curve has one peak. A thin phase object (a print's
wall, rim or rods; a dust speck a few µm across, which is as tall as it is wide) has no contrast in focus and
inverts through it: its curve has two lobes either side of its focus and a dip at it, and the higher lobe is
4-7 µm off. :func:`curve_focus` reads both kinds.
"""

from __future__ import annotations

import numpy as np

#: A curve is two-lobed when the dip between its two strongest maxima is below this fraction of the weaker.
DIP_FRACTION = 0.8
#: Distance between the two lobes of a thin phase object's focus curve, µm (about one depth of field at NA 0.25).
LOBE_GAP_UM = (6.0, 20.0)


def lobes(z: np.ndarray, v: np.ndarray) -> list[tuple[float, float]]:
    """Local maxima of a curve inside the stack, (z refined by a parabola, value), strongest first."""
    out = []
    for k in range(1, v.size - 1):
        if v[k] >= v[k - 1] and v[k] > v[k + 1]:
            den = v[k - 1] - 2.0 * v[k] + v[k + 1]
            d = 0.5 * (v[k - 1] - v[k + 1]) / den if den < 0 else 0.0
            out.append((float(z[k] + max(-0.5, min(0.5, d)) * 0.5 * (z[k + 1] - z[k - 1])), float(v[k])))
    return sorted(out, key=lambda p: -p[1])


def two_lobe_centre(z: np.ndarray, v: np.ndarray, max_dip: float = DIP_FRACTION,
                    lobe_gap_um: tuple[float, float] = LOBE_GAP_UM) -> float | None:
    """Halfway between the two strongest maxima of a two-lobed curve, None for any other curve.

    Two-lobed: the maxima lie ``lobe_gap_um`` apart with a dip between them below ``max_dip`` of the weaker.
    """
    found = lobes(z, v)
    if len(found) < 2:
        return None
    (za, va), (zb, vb) = found[0], found[1]
    lo, hi = sorted((za, zb))
    between = (z > lo) & (z < hi)
    if not (lobe_gap_um[0] <= hi - lo <= lobe_gap_um[1]) or not between.any():
        return None
    if float(v[between].min()) > max_dip * min(va, vb):
        return None
    return 0.5 * (lo + hi)


def curve_focus(z: np.ndarray, v: np.ndarray) -> float | None:
    """The focus a curve says: between its two lobes, else its peak; None when the peak is at an end of the stack."""
    mid = two_lobe_centre(z, v)
    if mid is not None:
        return mid
    found = lobes(z, v)
    if not found or found[0][1] < float(v.max()):
        return None  # the curve's maximum is at an end: its peak lies outside the stack
    return found[0][0]
