"""Is an object shaped like the structure type it is named? The five types are compact, and a ring is a ring.

The classifier sees a 64 x 64 crop of a box, scaled to fill it, so it cannot see what the box's own shape
says. Two checks, on an object seen whole in its sharp frame, after its type is final:

**Compact.** Every type tppscan names is about as wide as it is long, whatever its turn: a pentagon's box is
0.95-1 as wide as high, a square woodpile's or scaffold's and a lens's 1, a split ring's 0.93 or more (a
60° gap). A whole object whose box is less than :data:`MIN_BOX_ASPECT` as wide as long is none of them: on
the scans of sessions 12 and 13 (28 slides, other seeds and settings; the sharp frames' boxes of 604 true
prints recorded whole, at least 0.87, stitched footprints at 40x 0.75) the dirt recorded as prints had
boxes of 0.52 (a 25 µm dust clump named a pentagon, seed 938) and 0.64 (an 82 µm clump named a woodpile,
seed 937), and the curved fibres named rings 0.59 and 0.66.

**A split ring is a ring.** A split ring is a ring with one gap of a few tens of degrees: seen whole, its
outline is a circle (or, for a square split ring, close to one) whose centre is the centre of its box. The
classifier names a curved fibre a split ring now and then (0.83-0.87 on two fibres of 130-220 µm, held-out
seeds 933 and 938), where the detector did not box the fibre at all or only weakly: a quarter arc of a
circle fills its box as a ring's side does. But its circle is centred at the arc's centre of curvature, out
in a corner of its box; and a straight fibre's pixels, long and thin, lie far from the circle an algebraic
fit puts at its middle. :func:`ring_fit` fits a circle to the object's pixels in its sharp crop (Kasa's
algebraic least squares over the pixels that differ from the glass) and measures how far its centre lies
from the box's centre and how far the pixels lie from the circle, in radii. On the 116 true split rings of
those scans the offset was 0.02-0.13 and the spread 0.21 at most; of the 5 pieces of dirt recorded as
split rings, the offset was 0.24-0.53 for the fibres and dust and 0.04 for a bubble (round: no outline
check can tell it from a ring). The bounds (:data:`RING_MAX_CENTRE_OFFSET`, :data:`RING_MAX_SPREAD` for
elongated objects) lie between. A filled blob (a ring too small or too blurred to show its hole) fits a
circle centred on its centroid and is not elongated, so the check keeps it; with too few pixels to fit it
says nothing.

The runner asks neither of a box the frame's edge cut (the object may go on beyond it, and the box's centre
is not its own) nor of a print larger than the field, stitched from views.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from appliance.results.reconstruct import structure_mask

#: A whole print's box is at least this wide for its length (true prints 0.87 at least; dirt named a print 0.52
#: and 0.64, curved fibres named rings 0.59 and 0.66: see the module's doc).
MIN_BOX_ASPECT = 0.7
#: A split ring's fitted circle lies at most this many radii from its box's centre (true rings: 0.13 at most
#: on 116; dirt named a ring: 0.24 or more on four of five, the fifth a bubble).
RING_MAX_CENTRE_OFFSET = 0.2
#: ... unless its pixels go around the circle's centre over this many degrees at least: a ring whose box a
#: neighbour or a piece of dirt widened (a 117 µm ring at 20x in a 139 x 116 µm box: offset 0.206, its pixels
#: 0.03 radii RMS from the circle, seed 1461) is still a ring. True rings of sessions 12-13 covered 160-360°,
#: those under 240° with offsets of 0.13 at most; the curved fibres and dust named rings 150-160°.
RING_MIN_COVER_DEG = 240.0
#: ... and its pixels lie within this RMS of the circle, in radii, unless they are about as wide as they are
#: long (a ring too small or blurred to show its hole, filled: about 0.34): true rings 0.21 at most on 116.
#: A straight fibre's circle is put at its middle, its pixels spread from 0 to the radius twice over (0.5).
RING_MAX_SPREAD = 0.35
#: "About as wide as long": the pixels' second moments differ by less than this factor (a filled disk 1,
#: true rings up to 6.9 where part of the ring was faint, a thin straight fibre 20 or more).
MAX_ELONGATION = 3.0
#: A print stitched from views (larger than the field) has a footprint at least this wide for its length: the
#: stitched 40x prints of sessions 12 and 13 were 0.75 or more, a 62 x 108 µm pentagon's of session 14 0.58
#: (views may crop a footprint, so the bound is far looser than a whole box's); a 373 µm scratch stitched
#: from three views was 0.06 (a test double named it a pentagon in every view but the sharp one, where it
#: vanished), a thin fibre's would be 0.1-0.3.
MIN_FOOTPRINT_ASPECT = 0.35
#: A box spanning more than this share of its frame's width or height may not hold the whole object: a 133 µm
#: scaffold at 20x in a 101 µm-high field was boxed 87 µm high, 50 px short of the top and bottom edges (its
#: faint cells there), and called debris for a box 0.66 as wide as long (seed 1465, a 1280 x 720 camera).
MAX_FRAME_FILL = 0.75
SPLIT_RING = "split_ring"
#: Fewer object pixels than this fit no circle worth reading.
MIN_PIXELS = 12


@dataclass(frozen=True)
class RingFit:
    """The circle fitted to an object's pixels.

    ``centre_offset``: how far its centre lies from the box's centre, and ``spread``: how far the pixels lie
    from it (RMS), both in radii; ``elongation``: the ratio of the pixels' second moments; ``cover_deg``: over
    how many degrees around the circle's centre the pixels lie (in 10° steps).
    """

    centre_offset: float
    spread: float
    elongation: float
    cover_deg: float = 360.0

    @property
    def no_ring(self) -> bool:
        """Surely no ring: an arc, its circle off the box's centre, or a long object's pixels far from any circle."""
        arc = self.centre_offset > RING_MAX_CENTRE_OFFSET and self.cover_deg < RING_MIN_COVER_DEG
        return arc or (self.spread > RING_MAX_SPREAD and self.elongation > MAX_ELONGATION)


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
        return RingFit(math.inf, math.inf, elongation, 0.0)  # no circle through these pixels at all
    r = math.sqrt(r2)
    cx, cy = (x0 + x1 - 1) / 2.0, (y0 + y1 - 1) / 2.0
    spread = float(np.sqrt(np.mean((np.hypot(u64 - a, v64 - b) - r) ** 2)) / r)
    sectors = np.unique((np.degrees(np.arctan2(v64 - b, u64 - a)) // 10.0).astype(int))
    return RingFit(float(math.hypot(a - cx, b - cy) / r), spread, elongation, 10.0 * sectors.size)


def not_a_ring(crop: np.ndarray, box: tuple[int, int, int, int]) -> RingFit | None:
    """The fit, when an object named a split ring is surely no ring (:attr:`RingFit.no_ring`), else None.

    For an object seen whole (a box the frame cut has a centre that is not the object's).
    """
    fit = ring_fit(crop, box)
    return fit if fit is not None and fit.no_ring else None


def box_aspect(box: tuple[float, float, float, float]) -> float:
    """How wide a box is for its length: its shorter side over its longer, in (0, 1]."""
    w, h = box[2] - box[0], box[3] - box[1]
    return min(w, h) / max(w, h, 1)


def fills_frame(box: tuple[int, int, int, int], frame_px: tuple[int, int]) -> bool:
    """Whether ``box`` spans more than :data:`MAX_FRAME_FILL` of a ``frame_px`` (width, height) frame either way."""
    return box[2] - box[0] > MAX_FRAME_FILL * frame_px[0] or box[3] - box[1] > MAX_FRAME_FILL * frame_px[1]


def not_a_footprint(box_um: tuple[float, float, float, float]) -> dict[str, float] | None:
    """Why a footprint stitched from views cannot be a print (far too narrow for its length), or None."""
    aspect = box_aspect(box_um)
    return {"footprint_aspect": round(aspect, 3)} if aspect < MIN_FOOTPRINT_ASPECT else None


def not_its_shape(crop: np.ndarray, box: tuple[int, int, int, int], cls: str,
                  frame_px: tuple[int, int] | None = None) -> dict[str, float] | None:
    """Why an object named the structure type ``cls`` cannot be one, in numbers; None when its shape fits.

    ``box`` is the object's box in ``crop`` (its sharp frame, cut with a margin of glass): too narrow for its
    length for any type (``box_aspect``), or, for a split ring, no ring (``centre_offset``, ``spread``,
    ``elongation``, ``cover_deg`` of :class:`RingFit`). With ``frame_px``, the frame's (width, height), a box
    spanning more than :data:`MAX_FRAME_FILL` of it in either direction says nothing: the object may go on
    past the frame where the box stops short of its edge.
    """
    if frame_px is not None and fills_frame(box, frame_px):
        return None
    aspect = box_aspect(box)
    if aspect < MIN_BOX_ASPECT:
        return {"box_aspect": round(aspect, 3)}
    if cls == SPLIT_RING:
        fit = not_a_ring(crop, box)
        if fit is not None:
            return {"centre_offset": round(fit.centre_offset, 3), "spread": round(fit.spread, 3),
                    "elongation": round(fit.elongation, 2), "cover_deg": fit.cover_deg}
    return None
