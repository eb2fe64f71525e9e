"""Reading a focus from a sharpness curve through a stack: one peak, or the middle of two lobes.

An object that mostly absorbs is sharpest in focus: its curve has one peak. A thin phase object (a print's
wall, rim or rods; a dust speck a few µm across, which is as tall as it is wide) has no contrast in focus and
inverts through it: its curve has two lobes either side of its focus and a dip at it, and the higher lobe is
4-7 µm off. :func:`curve_focus` reads both kinds.

How far apart the lobes lie is an objective's property: a weak phase object's defocus contrast at spatial
frequency ``f`` peaks near ``dz = 1 / (2 λ f²)``, and a wall or speck near the resolution limit is seen up to
``f = NA / λ``, so the lobes lie about ``λ / NA²`` apart, i.e. they scale with the depth of field.
:func:`lobe_gap_um` gives the window at any depth of field; the tuned one is 10x / NA 0.25's.
"""

from __future__ import annotations

import numpy as np

#: A curve is two-lobed when the dip between its two strongest maxima is below this fraction of the weaker.
DIP_FRACTION = 0.8
#: Distance between the two lobes of a thin phase object's focus curve, µm (about one depth of field at NA 0.25).
LOBE_GAP_UM = (6.0, 20.0)
#: The depth of field ``LOBE_GAP_UM`` was measured at: 10x / NA 0.25 at 0.56 µm per pixel
#: (``λ/NA² + pixel/NA``, the autofocus's ``TUNED_DEPTH_OF_FIELD_UM``), µm.
TUNED_DEPTH_OF_FIELD_UM = 11.04


def depth_of_field_scale(depth_of_field_um: float | None) -> float:
    """The objective's depth of field over the tuned one; exactly 1 within 5 % of it (and for None).

    The snap keeps the tuned objective's readings bit for bit what they were measured with (the
    autofocus's search does the same, ``appliance.scan.adapters``).
    """
    if depth_of_field_um is None:
        return 1.0
    scale = float(depth_of_field_um) / TUNED_DEPTH_OF_FIELD_UM
    return 1.0 if abs(scale - 1.0) < 0.05 else scale


def lobe_gap_um(depth_of_field_um: float | None) -> tuple[float, float]:
    """The window of lobe distances (``LOBE_GAP_UM``) at an objective's depth of field, µm (None: tuned)."""
    s = depth_of_field_scale(depth_of_field_um)
    return (LOBE_GAP_UM[0] * s, LOBE_GAP_UM[1] * s)


def lobes(z: np.ndarray, v: np.ndarray) -> list[tuple[float, float]]:
    """Local maxima of a curve inside the stack, (z refined by a parabola, value), strongest first."""
    out = []
    for k in range(1, v.size - 1):
        if v[k] >= v[k - 1] and v[k] > v[k + 1]:
            den = v[k - 1] - 2.0 * v[k] + v[k + 1]
            d = 0.5 * (v[k - 1] - v[k + 1]) / den if den < 0 else 0.0
            out.append((float(z[k] + max(-0.5, min(0.5, d)) * 0.5 * (z[k + 1] - z[k - 1])), float(v[k])))
    return sorted(out, key=lambda p: -p[1])


def dipped_pair(z: np.ndarray, v: np.ndarray, max_dip: float = DIP_FRACTION) -> tuple[float, float] | None:
    """The z of the curve's two strongest maxima, lower first; None unless a dip parts them.

    The dip: the curve between them falls below ``max_dip`` of the weaker maximum.
    """
    found = lobes(z, v)
    if len(found) < 2:
        return None
    (za, va), (zb, vb) = found[0], found[1]
    lo, hi = sorted((za, zb))
    between = (z > lo) & (z < hi)
    if not between.any() or float(v[between].min()) > max_dip * min(va, vb):
        return None
    return lo, hi


def two_lobe_centre(z: np.ndarray, v: np.ndarray, max_dip: float = DIP_FRACTION,
                    lobe_gap_um: tuple[float, float] = LOBE_GAP_UM) -> float | None:
    """Halfway between the two strongest maxima of a two-lobed curve, None for any other curve.

    Two-lobed: the maxima lie ``lobe_gap_um`` apart with a dip between them below ``max_dip`` of the weaker.
    """
    pair = dipped_pair(z, v, max_dip)
    if pair is None or not lobe_gap_um[0] <= pair[1] - pair[0] <= lobe_gap_um[1]:
        return None
    return 0.5 * (pair[0] + pair[1])


def straddles(z: np.ndarray, v: np.ndarray, at_um: float, max_dip: float = DIP_FRACTION) -> bool:
    """Whether the curve's two strongest maxima lie either side of ``at_um`` with a dip between them.

    Such a curve is a phase object's pair of lobes around ``at_um`` whatever their distance: with a narrow
    condenser (more coherent light) a 10 µm tall ring's lobes lay 26 µm apart at 10x / NA 0.25, past
    ``LOBE_GAP_UM``, around an autofocus 0.1 µm from its focus (held-out seed 5007, condenser sigma 0.36).
    """
    pair = dipped_pair(z, v, max_dip)
    return pair is not None and pair[0] < at_um < pair[1]


def curve_focus(z: np.ndarray, v: np.ndarray, lobe_gap: tuple[float, float] = LOBE_GAP_UM) -> float | None:
    """The focus a curve says: between its two lobes, else its peak; None when the peak is at an end of the stack.

    ``lobe_gap`` is the two-lobe window (:func:`lobe_gap_um` of the objective's depth of field).
    """
    mid = two_lobe_centre(z, v, lobe_gap_um=lobe_gap)
    if mid is not None:
        return mid
    found = lobes(z, v)
    if not found or found[0][1] < float(v.max()):
        return None  # the curve's maximum is at an end: its peak lies outside the stack
    return found[0][0]
