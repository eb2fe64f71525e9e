"""Is an object on the slide, or of the optics? Told by whether it moves with the slide when the stage moves.

Out-of-focus dust on a lens or the camera's window, a lamp's hot spot or an uneven lamp's dark band show in
every field at the same place in the frame; the models may call them anything (the cheap colour camera's
blotch at the frame's centre was a scaffold to both, recorded in 92 fields of seed 441). An object on the
slide keeps its slide position whatever the stage does; one fixed to the optics keeps its place in the frame.
The scan runner asks while it centres an object (``ScanRunner._centre``); a proved blemish is remembered, with
its verdict, and the same thing in the same place is skipped after.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from appliance.hardware.camera.base import Camera, Frame
from appliance.hardware.stage.base import StageLimitError
from appliance.scan.boxes import on_slide_um, same_box
from appliance.scan.calibration import Calibration
from appliance.scan.protocols import Detection, VisionResult
from appliance.scan.stitch import cut_sides
from appliance.vision.decision import iou

_log = logging.getLogger(__name__)

#: A move of at least this many pixels shows whether an object moves with the slide
#: (:meth:`SlideOrOptics.moved_with_slide`); well above the stage's repeatability after the approach (2 µm,
#: 4 px at 10x) and a box's jitter.
SLIDE_CHECK_MIN_PX = 16
#: ... and one of at least this fraction of the object's box (its longer side): the detector's box of a large,
#: faint print moves by a few percent of its size from view to view (a 135 µm scaffold's by 6.7 µm over a
#: 9 µm centring move, seed 602, which called it the optics'), so a short move proves nothing about it.
SLIDE_CHECK_BOX_FRACTION = 0.25
#: A side of a cut object's box counts as having stayed put, or as having moved with the slide, within this
#: fraction of the shift the stage's move gives it (``SlideOrOptics._cut_moved_with_slide``): a lamp band's uncut
#: sides jittered by up to 15-20 px over 80-100 px moves (seed 858).
SIDE_SHIFT_TOLERANCE = 0.25
#: Shifted looks :meth:`SlideOrOptics.probe` takes at most, while none shows the object.
PROBE_LOOKS = 2
#: A detection whose frame box overlaps a proved blemish of the optics this much (IoU) is that blemish again.
BLEMISH_IOU = 0.6


class SlideOrOptics:
    """Tells objects on the slide from blemishes of the optics, and remembers the blemishes it proved.

    Parameters
    ----------
    camera : Camera
        The scan's (checked) camera: frame size, and the extra looks.
    calibration : Calibration
        Pixel -> stage map.
    approach : callable
        ``approach(x_um, y_um)``: the runner's move to a stage position, backlash taken up as for every view.
    analyse : callable
        ``analyse(frame) -> VisionResult``: the runner's analysis (its events go to the live view).
    """

    def __init__(self, camera: Camera, calibration: Calibration, approach: Callable[[float, float], None],
                 analyse: Callable[[Frame], VisionResult]) -> None:
        self.camera, self.cal = camera, calibration
        self._approach, self._analyse = approach, analyse
        self._seen: list[tuple[tuple[int, int, int, int], str, str]] = []  # frame box, kind, class

    def _on_slide(self, det: Detection, frame: Frame) -> tuple[float, float]:
        return on_slide_um(self.cal, det, frame)

    def remember(self, det: Detection) -> None:
        """Remember an object that stayed where it was in the frame while the slide moved; nothing is recorded.

        It is a blemish of the optics (out-of-focus dust on a lens or the camera's window, a lamp's hot spot),
        seen in every field: seed 441's cheap colour camera showed a blotch at the frame's centre that both
        models called a scaffold, recorded in 92 fields.
        """
        _log.debug("an object that does not move with the slide (frame box %s) is the optics': not recorded",
                   det.box_px)
        self._seen.append((det.box_px, det.kind, det.cls))

    def known(self, det: Detection) -> bool:
        """Whether ``det`` is a blemish of the optics seen before: in its place and with its verdict.

        Its place is its frame box (IoU >= 0.6), its verdict the kind and class it had when it was proved. The
        place alone is not enough: a blemish the vision called debris (a diffuse 257 x 150 px blotch, seed 832
        with the slide tilted 4 µm/mm) made a 90 µm pentagon both models were sure of (0.99, detector
        ``structure`` 0.88), which lay in that place of a later field's frame, be skipped unseen.
        """
        return any(iou(det.box_px, b) >= BLEMISH_IOU and det.kind == kind and det.cls == cls
                   for b, kind, cls in self._seen)

    def moved_with_slide(self, before: Detection, before_frame: Frame, after: Detection,
                          after_frame: Frame) -> bool | None:
        """Whether an object seen in two views moved with the slide (True), stayed put in the frame (False).

        None when the views cannot say: the stage moved less than ``SLIDE_CHECK_MIN_PX`` between them or less
        than ``SLIDE_CHECK_BOX_FRACTION`` of the object's box (whose place jitters with its size), or the
        object touches the frame's edge in either (a cut view's box moves as more of the object comes in).
        An object on the slide keeps its slide position (its box centre through the calibration) whatever the
        stage does; one fixed to the optics keeps its place in the frame, so its slide position follows the
        stage.
        """
        size = self.camera.size_px
        if before.touches_edge(size) or after.touches_edge(size):
            return self._cut_moved_with_slide(before, before_frame, after, after_frame)
        p0, p1 = before_frame.position, after_frame.position
        move = math.hypot(p1.x_um - p0.x_um, p1.y_um - p0.y_um)
        x0, y0, x1, y1 = before.box_px
        if move < max(SLIDE_CHECK_MIN_PX, SLIDE_CHECK_BOX_FRACTION * max(x1 - x0, y1 - y0)) * self.cal.um_per_px:
            return None
        (ax, ay), (bx, by) = self._on_slide(before, before_frame), self._on_slide(after, after_frame)
        return math.hypot(bx - ax, by - ay) <= 0.5 * move

    def _cut_moved_with_slide(self, before: Detection, before_frame: Frame, after: Detection,
                              after_frame: Frame) -> bool | None:
        """:meth:`moved_with_slide` for an object cut by the frame's edge in either view: read on its other sides.

        A cut side moves as more of the object comes into view; a side inside the frame in both views is the
        object's own edge, and it moves with the stage if the object lies on the slide, not at all if it is the
        optics'. An uneven lamp's dark band (``sensor.illumination_variation=0.25``, seed 858), always cut by
        the frame's bottom edge, was centred and stitched as a print larger than the field in every field; its
        footprint swallowed two prints beside it. A side counts where the move shifts it by at least
        ``SLIDE_CHECK_MIN_PX`` and ``SLIDE_CHECK_BOX_FRACTION`` of the box's longer side; False needs two
        such sides to have stayed put (a large print's pieces are strips whose one edge may land anywhere).
        """
        size = self.camera.size_px
        cut = [a or b for a, b in zip(cut_sides(before.box_px, size), cut_sides(after.box_px, size), strict=True)]
        p0 = (before_frame.position.x_um, before_frame.position.y_um)
        p1 = (after_frame.position.x_um, after_frame.position.y_um)
        x0, y0, x1, y1 = before.box_px
        u0, v0 = self.cal.stage_to_pixel(*self.cal.pixel_to_stage(x0, y0, p0), p1)
        u1, v1 = self.cal.stage_to_pixel(*self.cal.pixel_to_stage(x1, y1, p0), p1)
        least = max(SLIDE_CHECK_MIN_PX, SLIDE_CHECK_BOX_FRACTION * max(x1 - x0, y1 - y0))
        stayed, moved = 0, 0
        for side, was, now, on_slide in zip(range(4), before.box_px, after.box_px, (u0, v0, u1, v1), strict=True):
            expected = on_slide - was
            if cut[side] or abs(expected) < least:
                continue
            if abs(now - was) <= SIDE_SHIFT_TOLERANCE * abs(expected):
                stayed += 1
            elif abs(now - on_slide) <= SIDE_SHIFT_TOLERANCE * abs(expected):
                moved += 1
            else:
                return None
        if stayed and moved:
            return None
        return True if moved else (False if stayed >= 2 else None)

    def fixed_in_frame(self, seen: Detection, kept: Detection, frame: Frame) -> bool:
        """Whether an object the centred view did not show lies where the view before showed it, in the frame.

        ``seen`` is its box in the view before, ``kept`` the same box centred, ``frame`` the centred view. The
        detector boxes a faint blemish in one frame and not the next, so one more frame is taken: in place when
        the centring moved it (a blemish lies at ``seen``'s box, a print at ``kept``'s), shifted when it did not
        (:meth:`probe`).
        """
        if iou(seen.box_px, kept.box_px) >= 0.3 or seen.touches_edge(self.camera.size_px):
            return self.probe(kept, frame) is False
        again = self._analyse(self.camera.capture()).detections
        return same_box(again, seen.box_px, 0.5) is not None and same_box(again, kept.box_px) is None

    def probe(self, det: Detection, frame: Frame) -> bool | None:
        """Look with the object shifted in the frame, to see whether it moves with the slide.

        For an object the centring did not move far enough to tell (:meth:`moved_with_slide`; it lay near the
        frame's centre already). The stage moves so the object should appear a quarter of the frame to one
        side (less for a large box), the view is analysed, and the stage returns. True: a detection lies where
        the object should be; False: one lies where it was and none where it should be; None: neither, in
        ``PROBE_LOOKS`` looks shifted different ways (the object is kept), or no room to shift it, or the stage
        cannot go there. The detector boxes a faint blotch of the optics in some frames and not in the next:
        with one look, the cheap colour camera's blotch at the frame's centre was recorded as a scaffold in 6
        fields of seed 834 where that look saw nothing.
        """
        w, h = self.camera.size_px
        if det.touches_edge((w, h)):
            return None
        x0, y0, x1, y1 = det.box_px
        # a quarter of the frame, or what room there is to shift it and keep it whole in view
        rooms = ((min(w // 4, w - 4 - x1), 0), (-min(w // 4, x0 - 4), 0),
                 (0, min(h // 4, h - 4 - y1)), (0, -min(h // 4, y0 - 4)))
        shifts = [(dx, dy) for dx, dy in rooms if max(abs(dx), abs(dy)) >= SLIDE_CHECK_MIN_PX]
        back = (frame.position.x_um, frame.position.y_um)
        looks = 0
        try:
            for dx, dy in shifts:  # the other way where the stage's travel ends (a field at the slide's edge)
                # the view's centre moves dx, dy px against the object, so it appears dx, dy px further on
                try:
                    self._approach(*self.cal.pixel_to_stage((w - 1) / 2.0 - dx, (h - 1) / 2.0 - dy, back))
                except StageLimitError:
                    continue
                seen = self._analyse(self.camera.capture())
                looks += 1
                moved = (x0 + dx, y0 + dy, x1 + dx, y1 + dy)
                fits = [(max(iou(d.box_px, moved), iou(d.box_px, det.box_px)), d) for d in seen.detections]
                best = max(fits, key=lambda f: f[0], default=None)
                if best is not None and best[0] >= 0.3:
                    return iou(best[1].box_px, moved) >= iou(best[1].box_px, det.box_px)
                if looks >= PROBE_LOOKS:
                    break
        finally:
            self._approach(*back)
        return None
