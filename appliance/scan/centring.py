"""Centring an object: move it to the middle of the frame and find it again there, where it lies whole in view.

An object that stays put in the frame while the stage moves is a blemish of the optics (:mod:`.slide_or_optics`)
and is not recorded.
"""

from __future__ import annotations

from appliance.hardware.camera.base import Frame
from appliance.hardware.stage.base import StageLimitError
from appliance.scan.boxes import beyond_the_cut, in_place, nearest, recentred, same_box, same_place
from appliance.scan.protocols import Detection, VisionResult
from appliance.scan.runner_core import RunnerCore
from appliance.scan.scan_status import FieldStep
from appliance.scan.verdicts import as_debris, boxed_by_detector, gate_sees

MAX_CENTRING_MOVES = 2


def _centred(det: Detection, size: tuple[int, int]) -> bool:
    """Whether ``det`` lies whole in the frame with its box's middle within 8 px of the frame's."""
    w, h = size
    bx0, by0, bx1, by1 = det.box_px
    off = max(abs((bx0 + bx1 - 1) / 2.0 - (w - 1) / 2.0), abs((by0 + by1 - 1) / 2.0 - (h - 1) / 2.0))
    return off <= 8 and not det.touches_edge(size)


class Centring(RunnerCore):
    """The runner's ``CENTRE`` step (:meth:`_centre`)."""

    def _centre(self, det: Detection, frame: Frame, field_z_um: float) -> tuple[Detection, Frame, bool] | None:
        """Bring the object to the frame's centre and find it again there (its old box, centred, if not).

        Returns the last view of it, its frame, and whether any view on the way was a debris verdict both
        models agreed on.

        The centred view is taken at the field's z, where the field saw the object: after a structure's stack
        the stage stands at that structure's focus, 5-15 µm above the glass, and a 26 µm dust clump the next
        centring saw there, blurred, was a pentagon to both models (seed 72).
        """
        self._checkpoint(FieldStep.CENTRE)
        if self.stage.position_um().z_um != field_z_um:
            self.stage.focus_to_um(field_z_um)
        w, h = self.camera.size_px
        optics = self.slide_or_optics
        cur_det, cur_frame = det, frame
        sure_debris = False
        on_slide: bool | None = None
        for _ in range(MAX_CENTRING_MOVES):
            prev_det, prev_frame = cur_det, cur_frame
            x, y = self._stage_xy(cur_det, cur_frame)
            try:
                self._approach(x, y)
            except StageLimitError:
                # its middle lies past the end of the travel (seen at the edge of a field that overhangs the
                # slide's end; the scan failed there, seed 412): it is judged from the view that holds it
                return self._judged_where_seen(cur_det, cur_frame, on_slide, sure_debris)
            cur_frame = self.camera.capture()
            res = self._analyse(cur_frame)
            near = self._found_again(cur_det, res, (w, h))
            if near is None:
                return self._lost_while_centring(cur_det, prev_frame, cur_frame, res, (w, h), on_slide, sure_debris)
            cur_det = near
            whole = not near.touches_edge((w, h))
            if on_slide is None:
                on_slide = optics.moved_with_slide(prev_det, prev_frame, near, cur_frame)
            if on_slide is False:
                break
            sure_debris = sure_debris or (near.kind != "structure" and not near.recheck and whole)
            if _centred(near, (w, h)):
                break
        if on_slide is None:
            on_slide = optics.probe(cur_det, cur_frame)
        if on_slide is False:
            optics.remember(cur_det)
            return None
        return cur_det, cur_frame, sure_debris

    def _judged_where_seen(self, det: Detection, frame: Frame, on_slide: bool | None,
                           sure_debris: bool) -> tuple[Detection, Frame, bool] | None:
        """:meth:`_centre`'s end where ``det`` cannot be centred: back where ``frame`` was taken, judged from it.

        None (and ``det`` remembered as the optics') where it was not yet seen to move with the slide and the
        probe finds it fixed in the frame.
        """
        self._approach(frame.position.x_um, frame.position.y_um)
        if on_slide is None and self.slide_or_optics.probe(det, frame) is False:
            self.slide_or_optics.remember(det)
            return None
        return det, frame, sure_debris

    def _found_again(self, det: Detection, res: VisionResult, size: tuple[int, int]) -> Detection | None:
        """``det`` in the view after a centring move (``res``), where the move should have put it; else None."""
        w, h = size
        expected = beyond_the_cut(det, recentred(det, size).box_px, size)
        dets = [d for d in res.detections if not self.slide_or_optics.known(d)]
        near = in_place(dets, expected) or nearest(dets, (w - 1) / 2.0, (h - 1) / 2.0)
        if near is None or not same_place(near.box_px, expected):
            return None
        return near

    def _lost_while_centring(self, det: Detection, prev_frame: Frame, frame: Frame, res: VisionResult,
                             size: tuple[int, int], on_slide: bool | None,
                             sure_debris: bool) -> tuple[Detection, Frame, bool] | None:
        """:meth:`_centre`'s end where the view after a move (``frame``, ``res``) does not show ``det`` there.

        None (and the object remembered as the optics') where it stayed put in the frame while the slide moved.
        """
        optics = self.slide_or_optics
        stay = same_box(res.detections, det.box_px, 0.5)
        if stay is not None and optics.moved_with_slide(det, prev_frame, stay, frame) is False:
            optics.remember(det)
            return None
        # seen from the field but not here (a faint object at the gate's edge): keep what the field
        # saw, now centred, rather than lose a structure. The nearest detection elsewhere is another
        # object: following it left a 41 µm split ring for a 6 µm speck beside it (seed 206). The
        # detector boxes a faint blemish in one frame and not the next: one more look may tell
        kept = recentred(det, size)
        if on_slide is None and optics.fixed_in_frame(det, kept, frame):
            optics.remember(kept)
            return None
        if det.recheck and (det.touches_edge(size) or not boxed_by_detector(det)) \
                and not gate_sees(res.candidate_boxes, kept.box_px):
            # disputed, only ever seen cut by the frame's edge or never boxed by the detector, and nothing
            # dark where it should be: nothing confirms it. The corners of a vignetted frame
            # (sensor.vignetting=0.7) showed a 17 x 22 um "woodpile" the classifier alone named at 0.3-0.66,
            # seen in no later look: 10 false structures on a 3 x 3 mm slide. A band of the gate's noise
            # under uneven light (held-out seed 7302, light 1.17 left undivided) gave blank crops the
            # classifier alone named scaffolds, in the middle of each field: 10 more. Where the gate sees it
            # (a print too large in the frame for the detector), its sharp frame decides
            return as_debris(kept), frame, True
        return kept, frame, sure_debris
