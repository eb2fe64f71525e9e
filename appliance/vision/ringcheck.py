"""Is what the classifier calls a split ring shaped like one? A ring's circle is centred in its box.

A split ring is a ring with one gap of a few tens of degrees: seen whole, its outline is a circle (or, for a
square split ring, close to one) whose centre is the centre of its box. The classifier sees a 64 x 64 crop
and names a curved fibre a split ring now and then (0.83-0.87 on two fibres of 130-220 µm, held-out seeds
933 and 938), where the detector did not box the fibre at all or only weakly: a quarter arc of a circle fills
its box as a ring's side does. But its circle is centred at the arc's centre of curvature, out in a corner of
its box; and a straight fibre's pixels, long and thin, lie far from the circle an algebraic fit puts at its
middle.

:func:`ring_fit` fits a circle to the object's pixels in its sharp crop (an algebraic least-squares fit,
Kasa's, over the pixels that differ from the glass) and measures how far its centre lies from the box's
centre and how far the pixels lie from the circle, in radii. On 116 true split rings recorded by the scans
of sessions 12 and 13 (other seeds and settings: uneven lamps, vignetting, the cheap colour and the raw
monochrome camera, clear prints, tilt) the offset was 0.02-0.13 and the spread 0.21 at most; on the 5 pieces
of dirt recorded as split rings the offset was 0.24-0.53 for the fibres and dust and 0.04 for a bubble
(round: no outline check can tell it from a ring). The bounds (:data:`RING_MAX_CENTRE_OFFSET`,
:data:`RING_MAX_SPREAD` for elongated objects) lie between. A filled blob (a ring too small or too blurred
to show its hole) fits a circle centred on its centroid and is not elongated, so the check keeps it; with
too few pixels to fit it says nothing, and the runner does not ask it of a box the frame's edge cut (whose
centre is not the object's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from appliance.results.reconstruct import structure_mask

#: A split ring's fitted circle lies at most this many radii from its box's centre (true rings: 0.13 at most
#: on 116; dirt named a ring: 0.24 or more on four of five, the fifth a bubble).
RING_MAX_CENTRE_OFFSET = 0.2
#: ... and its pixels lie within this RMS of the circle, in radii, unless they are about as wide as they are
#: long (a ring too small or blurred to show its hole, filled: about 0.34): true rings 0.21 at most on 116.
#: A straight fibre's circle is put at its middle, its pixels spread from 0 to the radius twice over (0.5).
RING_MAX_SPREAD = 0.35
#: "About as wide as long": the pixels' second moments differ by less than this factor (a filled disk 1,
#: true rings up to 6.9 where part of the ring was faint, a thin straight fibre 20 or more).
MAX_ELONGATION = 3.0
#: Fewer object pixels than this fit no circle worth reading.
MIN_PIXELS = 12


@dataclass(frozen=True)
class RingFit:
    """The circle fitted to an object's pixels.

    ``centre_offset``: how far its centre lies from the box's centre, and ``spread``: how far the pixels lie
    from it (RMS), both in radii; ``elongation``: the ratio of the pixels' second moments.
    """

    centre_offset: float
    spread: float
    elongation: float

    @property
    def no_ring(self) -> bool:
        """Surely no ring: its circle off the box's centre, or a long object's pixels far from any circle."""
        return self.centre_offset > RING_MAX_CENTRE_OFFSET or (
            self.spread > RING_MAX_SPREAD and self.elongation > MAX_ELONGATION)


def ring_fit(crop: np.ndarray, box: tuple[int, int, int, int]) -> RingFit | None:
    """The circle fitted to the object's pixels in ``crop`` (Kasa's algebraic least squares), against ``box``.

    Parameters
    ----------
    crop : (H, W) ndarray of uint8
        The object's sharp frame, cut with a margin of glass around ``box`` (the structure's crop).
    box : (xmin, ymin, xmax, ymax)
        The object's box in ``crop``'s pixels (exclusive max).

    Returns
    -------
    RingFit or None
        None for a box of fewer than ``MIN_PIXELS`` pixels.
    """
    mask = structure_mask(crop, box, fill_holes=False)
    v, u = np.nonzero(mask)
    x0, y0, x1, y1 = box
    if u.size < MIN_PIXELS:
        return None
    # (where nothing in the box differs from the glass the mask is the whole box: a square one reads as a ring)
    u64, v64 = u.astype(np.float64), v.astype(np.float64)
    # x^2 + y^2 = 2 a x + 2 b y + c, linear in (a, b, c): the circle's centre (a, b), radius sqrt(c + a^2 + b^2)
    design = np.column_stack([2.0 * u64, 2.0 * v64, np.ones_like(u64)])
    (a, b, c), *_ = np.linalg.lstsq(design, u64 * u64 + v64 * v64, rcond=None)
    r2 = c + a * a + b * b
    cov = np.cov(np.vstack([u64, v64]))
    small, large = np.linalg.eigvalsh(cov)
    elongation = float(large / small) if small > 0 else math.inf
    if not math.isfinite(r2) or r2 <= 0.0:
        return RingFit(math.inf, math.inf, elongation)  # no circle through these pixels at all
    r = math.sqrt(r2)
    cx, cy = (x0 + x1 - 1) / 2.0, (y0 + y1 - 1) / 2.0
    spread = float(np.sqrt(np.mean((np.hypot(u64 - a, v64 - b) - r) ** 2)) / r)
    return RingFit(float(math.hypot(a - cx, b - cy) / r), spread, elongation)


def not_a_ring(crop: np.ndarray, box: tuple[int, int, int, int]) -> RingFit | None:
    """The fit, when an object named a split ring is surely no ring (:attr:`RingFit.no_ring`), else None.

    For an object seen whole (a box the frame cut has a centre that is not the object's).
    """
    fit = ring_fit(crop, box)
    return fit if fit is not None and fit.no_ring else None
