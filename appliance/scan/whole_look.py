"""A print larger than the field, looked at whole: one image pasted from views, read by the vision as a frame.

At 40x (a 90 x 67 µm field) a 114 µm split ring was arcs both models called dust in every view, and a 103 µm
micro-lens's rim three whole boxes of dust, the rest of it boxed by nothing: no view ever held a structure, so
stitching (:mod:`appliance.scan.stitcher`, which follows a structure past the sides a view cut it on) never began
and both prints were lost (seed 1601). :class:`WholeLook` asks the question once per such object: paste the
region the print could fill from views (:meth:`~appliance.scan.stitcher.Stitcher.paste_views`, at the current
focus) and let the vision read that one image. It moves the stage and decides; recording stays the runner's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cached_property

import numpy as np

from appliance.hardware.camera.base import Camera, Frame
from appliance.scan.boxes import on_slide_box_um
from appliance.scan.calibration import Calibration
from appliance.scan.mosaic import covered_fov_um, look_cut, look_region
from appliance.scan.protocols import Detection, ImageReader
from appliance.scan.stitch import Footprint, Sides, area, cut_sides, join_pieces, stitch_tolerance_um
from appliance.scan.stitcher import Stitcher
from appliance.vision.typeshape import not_its_shape

_log = logging.getLogger(__name__)

BoxUm = tuple[float, float, float, float]

#: Glass kept around a print's box when its shape is checked in a pasted image (µm): the 16 px of a structure's crop
#: at 10x, where the shape checks' bounds were chosen (``appliance.vision.typeshape``). The whole pasted image's
#: border lies far from the print, across its views' seams: its noise raised the mask's threshold above a faint
#: ring's contrast, and a 105 µm split ring found whole in every look was no ring to the check (40x, seed 1641).
SHAPE_MARGIN_UM = 9.0

#: A piece (joined with every box it touches) spanning this fraction of the field's shorter side is looked at
#: whole even when the frame shows it uncut: at 40x an 81 µm pentagon was two whole boxes, recorded as two
#: pentagons (seed 1605).
LARGE_PIECE = 0.5


class WholeLook:
    """Finds the print larger than the field that an object seen in a frame is a piece of.

    Parameters
    ----------
    reader : ImageReader or None
        The vision's reading of a pasted image; None (a vision that only reads frames, such as the
        ground-truth double, which knows a frame by where it was taken) turns the look off.
    stitcher : Stitcher
        Joins the boxes a frame shows of one object and pastes views into one image.
    calibration : Calibration
        Pixel -> stage map; fixes what one frame shows whole.
    camera : Camera
        The scan's camera: its frame size tells a cut side.
    largest_print_um : float
        The plan's largest print (``imaging.largest_print_um``): no look where one frame holds it.
    approach : callable
        ``approach(x_um, y_um)``: the runner's move, used to go back where the object was seen after a look that
        found nothing (the views moved the stage, and the object is focused and recorded from there).
    """

    def __init__(self, reader: ImageReader | None, stitcher: Stitcher, calibration: Calibration,
                 camera: Camera, largest_print_um: float,
                 approach: Callable[[float, float], None]) -> None:
        self._reader, self._stitcher, self._cal = reader, stitcher, calibration
        self._camera, self._largest, self._approach = camera, largest_print_um, approach
        self._looked: list[BoxUm] = []  # objects a look found no print larger than the field in (slide boxes)

    @cached_property
    def _fov_um(self) -> tuple[float, float]:
        """What one frame shows whole, µm (:func:`~appliance.scan.mosaic.covered_fov_um`)."""
        return covered_fov_um(self._cal)

    @property
    def active(self) -> bool:
        """Whether a print may be larger than the field and the vision can read a pasted image."""
        return self._reader is not None and min(self._fov_um) < self._largest

    def find(self, det: Detection, frame: Frame, on_recorded_print: Callable[[float, float], bool]
             ) -> tuple[Detection, Footprint] | None:
        """The print larger than the field that ``det``, seen whole in ``frame``, is a piece of, or None.

        Only while :attr:`active` and where what the frame shows of ``det`` with the boxes it joins (any verdict)
        still runs off the frame or spans ``LARGE_PIECE`` of it: the region it may fill
        (:func:`~appliance.scan.mosaic.look_region`) is pasted and read. A structure there that holds ``det``,
        larger than the field and shaped like its type (:func:`not_its_shape`, as every object seen whole), is
        the print, with its box as the footprint. One reaching into the image's border band is looked at once
        more, past those sides; one at the border of that image too is longer than any print (a 334 µm scratch
        at 40x, named a scaffold in a 224 µm look, seed 1601). Anything else leaves the verdict as it was, and
        so does a piece lying on a print already recorded (``on_recorded_print(x_um, y_um)``) or on an object
        looked at before. Pasted at the field's z, the prints of three 40x slides that are larger than the
        field were structures of their type, 0.81-0.97 (22 of 22), dust, bubbles and scratches debris or, for
        a 272 µm scratch, too narrow a box (session 16).
        """
        if not self.active:
            return None
        here = on_slide_box_um(self._cal, det, frame)
        cx, cy = (here[0] + here[2]) / 2.0, (here[1] + here[3]) / 2.0
        if any(b[0] <= cx <= b[2] and b[1] <= cy <= b[3] for b in self._looked) or on_recorded_print(cx, cy):
            return None
        joined = join_pieces(self._stitcher.pieces_with(det, frame, any_verdict=True))
        cut = cut_sides(joined.box_px, self._camera.size_px)
        joined_um = on_slide_box_um(self._cal, joined, frame)
        large = max(joined_um[2] - joined_um[0], joined_um[3] - joined_um[1]) >= LARGE_PIECE * min(self._fov_um)
        if not (any(cut) or large):
            return None
        found = self._find(look_region(joined_um, cut, self._largest, self._fov_um), (cx, cy), here)
        if found is None:
            self._approach(frame.position.x_um, frame.position.y_um)
        return found

    def around(self, footprint_um: BoxUm, back: tuple[float, float]) -> tuple[Detection, Footprint] | None:
        """The print whose stitched footprint is ``footprint_um``, looked at whole around it, or None.

        Stitching closes a side where a view boxes no more of the print, so a footprint can fall short of it
        (an 87 µm woodpile at 40x stitched 61 x 59 µm, seed 1643). The region is the footprint with glass
        around it (:func:`~appliance.scan.mosaic.look_region`, no side taken as cut: stitching looked past each),
        looked at once more past a side the print runs into, as :meth:`find` does. Only while :attr:`active`;
        where no print is found the stage goes back to ``back``.
        """
        if not self.active:
            return None
        centre = ((footprint_um[0] + footprint_um[2]) / 2.0, (footprint_um[1] + footprint_um[3]) / 2.0)
        found = self._find(look_region(footprint_um, (False,) * 4, self._largest, self._fov_um), centre,
                          footprint_um)
        if found is None:
            self._approach(*back)
        return found

    def _find(self, region: BoxUm, xy: tuple[float, float], here: BoxUm) -> tuple[Detection, Footprint] | None:
        """The looks of :meth:`find` from ``region``: the print holding slide point ``xy``, or None."""
        fov = self._fov_um
        for look in range(2):
            seen = self._look_at(region, xy)
            if seen is None:
                return None
            best, box_um, edge, border, views, why = seen
            if best is None or best.kind != "structure":
                break
            if any(edge) and look == 0:  # the region cut it: once more, reaching past the sides it was cut on
                region = look_region(box_um, edge, self._largest, fov)
                continue
            # the second region holds it with glass to spare, but a box is looser than the print: only one at
            # the border runs on past it (seed 1611's ring, whole, came within 8 µm of its second region's top)
            larger = box_um[2] - box_um[0] > fov[0] or box_um[3] - box_um[1] > fov[1]
            if larger and not any(edge if look == 0 else border) and why is None:
                _log.info("the object at (%.0f, %.0f) um is part of a %s %.0f x %.0f um, looked at whole in %d views",
                          *xy, best.cls, box_um[2] - box_um[0], box_um[3] - box_um[1], views)
                return best, Footprint(box_um, [False] * 4, stitch_tolerance_um(self._cal), views=views)
            break
        # what was judged is the object holding the piece (or the piece alone): a later piece inside it is that
        # object again, while a piece elsewhere in the region may be another print's (seed 1611: a look from a
        # speck beside a 105 µm ring covered the ring's arcs, which were then never looked at)
        self._looked.append(box_um if best is not None else here)
        return None

    def _look_at(self, region: BoxUm, xy: tuple[float, float]
                 ) -> tuple[Detection | None, BoxUm, Sides, Sides, int, dict[str, float] | None] | None:
        """What the vision sees at slide point ``xy`` in slide box ``region`` pasted from views at the current z.

        The largest detection holding ``xy`` (None if none), its slide box, the sides where it may run on past
        the pasted image (:func:`~appliance.scan.mosaic.look_cut`) and those where it reaches its border
        (:func:`~appliance.scan.stitch.cut_sides`), the views taken, and why its shape cannot
        be its type's (:func:`not_its_shape`, as for any object seen whole: a 138 µm scratch across a 40x look
        was a scaffold's 87 x 155 µm box, seed 1603); None where the region cannot be pasted.
        """
        assert self._reader is not None  # find() looks only while active
        pasted = self._stitcher.paste_views(region)
        if pasted is None:
            return None
        image, views = pasted
        seen = self._reader.analyse_image(image)
        s = self._cal.um_per_px
        u, v = (xy[0] - region[0]) / s, (xy[1] - region[1]) / s
        holding = [d for d in seen.detections if d.box_px[0] <= u <= d.box_px[2] and d.box_px[1] <= v <= d.box_px[3]]
        best = max(holding, key=lambda d: area(d.box_px), default=None)
        if best is None:
            return None, region, (False,) * 4, (False,) * 4, views, None
        b = best.box_px
        box_um = (region[0] + b[0] * s, region[1] + b[1] * s, region[0] + b[2] * s, region[1] + b[3] * s)
        why = _shape_check(image, b, best.cls, s) if best.kind == "structure" else None
        size = (image.shape[1], image.shape[0])
        return best, box_um, look_cut(b, size), cut_sides(b, size), views, why


def _shape_check(image: np.ndarray, box: tuple[int, int, int, int], cls: str, um_per_px: float
                 ) -> dict[str, float] | None:
    """:func:`not_its_shape` of the object boxed ``box`` in a pasted image, cut with ``SHAPE_MARGIN_UM`` of glass."""
    m = max(1, round(SHAPE_MARGIN_UM / um_per_px))
    h, w = image.shape[:2]
    x0, y0, x1, y1 = (int(v) for v in box)
    cx0, cy0, cx1, cy1 = max(0, x0 - m), max(0, y0 - m), min(w, x1 + m), min(h, y1 + m)
    return not_its_shape(image[cy0:cy1, cx0:cx1], (x0 - cx0, y0 - cy0, x1 - cx0, y1 - cy0), cls)
