"""Prints larger than the field of view: partial views joined into one footprint in slide micrometres.

A detection whose box reaches the frame's edge is a *partial view*: the print may go on beyond that edge. A
print smaller than the field is seen whole once the runner centres it; one larger than the field never is,
and before this module the runner recorded it from whichever partial view its centring ended on (the box
centre of a cut view, 14-34 µm from the print's centre at 40x) and again from the next field that saw
another part of it (seed 91: 3 duplicates of 6 prints).

So, as a slide scanner tiles an object larger than its view: the runner starts a :class:`Footprint` from the
partial views it has (the field's and the centred one), and while a side of the footprint was set by a view
cut on that side, it looks past that side (:meth:`Footprint.next_view`). In each new view the detections that
are the same print (:func:`same_print`: they overlap what is already known of it in that view) are joined;
their union extends the footprint. A side closes once a view sees the print end there, or when a view sent
to look past it shows nothing further (so a print is never chased for ever), and after ``MAX_VIEWS`` views
in any case. The print is then centred on the footprint's centre, focused and stacked there (that view holds
the most of it, so its sharp frame names the type), and recorded once with the footprint as its box.

Everything here is geometry on boxes: pixel boxes are ``xmin, ymin, xmax, ymax`` (exclusive max), slide
boxes ``x0, y0, x1, y1`` in µm; sides are indexed left, top, right, bottom.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from appliance.scan.calibration import Calibration
from appliance.scan.protocols import Box, Detection

BoxUm = tuple[float, float, float, float]
Sides = tuple[bool, bool, bool, bool]

#: Views (the field's and the centred one included) a footprint may take before its open sides are closed
#: anyway: a 170 µm print at 40x (90 x 67 µm field) needs about six.
MAX_VIEWS = 10
#: A box this close to the frame's border (fraction of the frame's width or height) counts as cut there. The
#: detector's boxes stop a few pixels short of an edge the print runs over (2-5 px at 40x, up to 1 % of the
#: frame); a whole print taken for cut costs one view, which then sees it end.
CUT_MARGIN_FRACTION = 0.02
#: A detection is a piece of the footprint's print when this much of the smaller of (its box, the part of the
#: footprint in view) is shared by the two (grown by the tolerance). Prints lie 30 µm and more apart, so a
#: neighbour's box meets a footprint, if at all, by a sliver.
SAME_PRINT_OVERLAP = 0.3
#: Stage repeatability after the runner's approach from -x, -y (backlash taken up), µm.
STAGE_REPEAT_UM = 2.0


def stitch_tolerance_um(cal: Calibration) -> float:
    """How far apart two views' boxes of one print's edge may lie: the stage's and the calibration's error, µm.

    The stage's repeatability, three times the calibration's RMS misfit, and the two pixels by which a box's
    edge is uncertain.
    """
    return STAGE_REPEAT_UM + 3.0 * cal.residual_um + 2.0 * cal.um_per_px


def cut_sides(box_px: Box, size_px: tuple[int, int]) -> Sides:
    """Which sides of ``box_px`` reach the frame's border (left, top, right, bottom): where the print may go on."""
    w, h = size_px
    mx, my = max(2.0, CUT_MARGIN_FRACTION * w), max(2.0, CUT_MARGIN_FRACTION * h)
    x0, y0, x1, y1 = box_px
    return (x0 <= mx, y0 <= my, x1 >= w - mx, y1 >= h - my)


def area(b: BoxUm) -> float:
    """Area of a box (0 if empty)."""
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def intersect(a: BoxUm, b: BoxUm) -> BoxUm:
    """The common part of two boxes (possibly empty: then ``area`` is 0)."""
    return (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))


def grow(b: BoxUm, d: float) -> BoxUm:
    """``b`` grown by ``d`` on every side."""
    return (b[0] - d, b[1] - d, b[2] + d, b[3] + d)


def union(a: BoxUm, b: BoxUm) -> BoxUm:
    """The smallest box holding both."""
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def same_print(piece_um: BoxUm, footprint_um: BoxUm, view_um: BoxUm, tol_um: float) -> bool:
    """Whether a detection in a view is a piece of the print whose footprint is known so far.

    It is when it overlaps (or abuts, within ``tol_um``) the part of the footprint this view shows, by at
    least ``SAME_PRINT_OVERLAP`` of the smaller of the two: a piece found past the footprint's edge still
    holds the part of it the view shares with the footprint, while a neighbour at most touches it.
    """
    shown = intersect(footprint_um, view_um)
    shared = area(intersect(piece_um, grow(shown, tol_um)))
    smaller = min(area(piece_um), area(shown))
    return smaller > 0.0 and shared >= SAME_PRINT_OVERLAP * smaller


def structure_types(det: Detection) -> dict[str, float]:
    """A detection's probabilities of the structure types (its classifier's).

    A structure whose scores hold none (a vision double) gives its own type at its confidence.
    """
    types = {c: float(p) for c, p in det.scores.items() if c != "debris" and not c.startswith("detector_")}
    if not types and det.kind == "structure":
        types = {det.cls: float(det.confidence)}
    return types


def join_pieces(pieces: Sequence[Detection]) -> Detection:
    """One detection for the pieces of one print in one frame: the union of their boxes, the largest's verdict.

    The detector may draw one print as two boxes (a 116 µm split ring at 20x: two boxes, one of them
    disputed); the largest piece shows the most of it, so its verdict stands for the print.
    """
    if not pieces:
        raise ValueError("join_pieces: no pieces")
    largest = max(pieces, key=lambda d: (d.box_px[2] - d.box_px[0]) * (d.box_px[3] - d.box_px[1]))
    x0 = min(d.box_px[0] for d in pieces)
    y0 = min(d.box_px[1] for d in pieces)
    x1 = max(d.box_px[2] for d in pieces)
    y1 = max(d.box_px[3] for d in pieces)
    return replace(largest, box_px=(x0, y0, x1, y1))


@dataclass
class Footprint:
    """What is known of one print's extent on the slide, from the partial views of it taken so far.

    Attributes
    ----------
    box_um : (float, float, float, float)
        The union of the views' boxes, slide µm.
    open : list of bool
        Per side (left, top, right, bottom): the view that set that side was cut there, so the print may go
        on past it.
    tol_um : float
        :func:`stitch_tolerance_um`.
    views : int
        Views joined so far.
    """

    box_um: BoxUm
    open: list[bool]
    tol_um: float
    views: int = 1
    votes: dict[str, float] = field(default_factory=dict)
    _tried: list[int] = field(default_factory=lambda: [0, 0, 0, 0])

    @classmethod
    def start(cls, box_um: BoxUm, cut: Sides, tol_um: float) -> Footprint:
        """A footprint from its first partial view."""
        return cls(box_um, list(cut), tol_um)

    @property
    def centre_um(self) -> tuple[float, float]:
        """The footprint's centre: where the print is recorded and stacked."""
        b = self.box_um
        return ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0)

    @property
    def size_um(self) -> tuple[float, float]:
        """Width and height, µm."""
        b = self.box_um
        return (b[2] - b[0], b[3] - b[1])

    @property
    def done(self) -> bool:
        """No side left to look past, or no views left."""
        return not any(self.open) or self.views >= MAX_VIEWS

    def add(self, box_um: BoxUm, cut: Sides) -> None:
        """Join one more view's box of the print (``cut``: the sides where that view cut it)."""
        old = self.box_um
        # a side moves out when the new box reaches past it; lower sides (left, top) grow downwards
        past = (box_um[0] < old[0] - self.tol_um, box_um[1] < old[1] - self.tol_um,
                box_um[2] > old[2] + self.tol_um, box_um[3] > old[3] + self.tol_um)
        reach = (box_um[0] <= old[0] + self.tol_um, box_um[1] <= old[1] + self.tol_um,
                 box_um[2] >= old[2] - self.tol_um, box_um[3] >= old[3] - self.tol_um)
        self.box_um = union(old, box_um)
        for s in range(4):
            if past[s]:
                self.open[s] = cut[s]
            elif reach[s] and not cut[s]:
                self.open[s] = False  # this view sees the print end where the footprint ends
        self.views += 1

    def close(self, sides: Sequence[int]) -> None:
        """Give up looking past ``sides`` (a view sent there showed nothing of the print, or no more of it)."""
        for s in sides:
            self.open[s] = False

    def next_view(self) -> tuple[tuple[float, float], list[int]] | None:
        """Where to look next (stage x, y, µm) and the sides that view looks past; None when done.

        The view is centred on one open side's edge, level with the footprint's centre, so it shares half a
        field with the footprint (to find the print in it again) and shows half a field past it; the side
        looked past fewest times goes first (right, bottom, left, top on a tie). Not a corner: a round print
        shows a corner view only a sliver of its rim, which the detector did not see (a 93 µm micro-lens at
        40x, seed 91). :meth:`looked_past` closes a side the view did not move out: a print is never chased
        for ever.
        """
        if self.done:
            return None
        pick = [s for s in (2, 3, 0, 1) if self.open[s]]
        if not pick:
            return None
        side = min(pick, key=lambda s: self._tried[s])
        self._tried[side] += 1
        x, y = self.centre_um
        if side in (0, 2):
            x = self.box_um[side]
        else:
            y = self.box_um[side]
        return (x, y), [side]

    def looked_past(self, sides: Sequence[int], before: BoxUm) -> None:
        """After a view sent past ``sides``: close those it did not move out (within the tolerance)."""
        after = self.box_um
        moved = (after[0] < before[0] - self.tol_um, after[1] < before[1] - self.tol_um,
                 after[2] > before[2] + self.tol_um, after[3] > before[3] + self.tol_um)
        self.close([s for s in sides if not moved[s]])

    def vote(self, det: Detection, area_um2: float) -> None:
        """Count one piece's structure types, weighted by the slide area its box covers (µm²).

        Every view's pieces vote: no single view shows such a print whole, and one view's verdict can be
        split (a sharp frame of an 82 µm woodpile at 40x held it as two boxes, woodpile 0.79 and scaffold 0.82,
        where the six views before had all said woodpile at 0.72-0.94).
        """
        for cls, p in structure_types(det).items():
            self.votes[cls] = self.votes.get(cls, 0.0) + p * area_um2

    def type(self) -> tuple[str, float] | None:
        """The structure type with the most votes and its share of them; None before any vote."""
        total = sum(self.votes.values())
        if total <= 0.0:
            return None
        cls = max(self.votes, key=lambda c: self.votes[c])
        return cls, self.votes[cls] / total
