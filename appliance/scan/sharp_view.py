"""An object's sharp view: focus on it and look again, the lens check, and the phase's sign where it decides."""

from __future__ import annotations

import time
from dataclasses import dataclass

from appliance.hardware.camera.base import Frame
from appliance.scan.boxes import a_small_part_of, in_place, same_box
from appliance.scan.field_focus import FieldWork
from appliance.scan.phase_reading import PhaseReading
from appliance.scan.protocols import Detection, FocusOutcome, VisionResult
from appliance.scan.scan_status import FieldStep
from appliance.scan.verdicts import still_a_lens
from appliance.vision.decision import MICROLENS, lens_disputed, too_small


@dataclass
class SharpView:
    """An object's view at its focus.

    Its detection there, the frame, the frame's analysis, the focus, and the phase's sign where it was read
    (:meth:`ScanRunner._phase_verdict`).
    """

    det: Detection
    frame: Frame
    seen: VisionResult
    focus: FocusOutcome
    phase_sign: float | None


class SharpLook(PhaseReading):
    """The runner's ``FOCUS_STRUCTURE`` step (:meth:`_sharp_view`) and the lens check it and the field's look share."""

    def _too_small(self, det: Detection, frame: Frame) -> bool:
        """Whether ``det``'s box is under the gate's size limits (``appliance.vision.decision.too_small``)."""
        x0, y0, x1, y1 = self._box_um(det, frame)
        return too_small((x1 - x0, y1 - y0))

    def _lens_disputed(self, det: Detection, frame: Frame, seen_before: bool = False) -> bool:
        """A micro-lens or a bubble only the phase's sign can tell (``appliance.vision.decision.lens_disputed``).

        With ``seen_before`` (an earlier view of the object was disputed so) it is enough that this view's
        likeliest structure type is still a micro-lens (:func:`still_a_lens`). A box under the gate's size limits
        never is.
        """
        x0, y0, x1, y1 = self._box_um(det, frame)
        size = (x1 - x0, y1 - y0)
        if seen_before:
            return still_a_lens(det.scores) and not too_small(size)
        return lens_disputed(det.scores, det.kind, agree=not det.recheck, size_um=size)

    def _sharp_view(self, w: FieldWork, det: Detection, lens: bool) -> SharpView:
        """Focus on ``det`` and look again: its view in that frame, the frame and its analysis, the focus."""
        self._checkpoint(FieldStep.FOCUS_STRUCTURE)
        t = time.perf_counter()
        # Only a structure's type has a reference height and a map of foci: a disputed piece of debris focused
        # for a last look is searched like the field, and its focus never joins the structures' map of foci
        out = self.focuser.focus(self.stage, self.camera, w.z_um, self.plan.focus.search_range_um, det.box_px,
                                 cls=det.cls if det.kind == "structure" else None)
        if not out.ok:
            out = self._refocus_where_seen(w, det, out)
        focused = self.camera.capture()
        seen = self._analyse(focused)
        w.timings["focus_structure"] = w.timings.get("focus_structure", 0.0) + time.perf_counter() - t
        # the sharp frame's view of it: the box that overlaps it most, else the object in its place. A 2 px
        # sliver of a fibre at a field's edge, unseen centred, was kept as its own sliver box; sharp, the fibre's
        # box (debris) held that sliver's place but overlapped it by 1 %, and the sliver stayed a pentagon
        again = same_box(seen.detections, det.box_px) or in_place(seen.detections, det.box_px) or det
        # a print both models named whole is not what the sharp frame boxes of a small part of it (a shallow lens's
        # rim fades at its focus and its middle was typed instead): it keeps its view, now at this focus
        if det.kind == "structure" and not det.recheck and a_small_part_of(again.box_px, det.box_px):
            again = det
        # a micro-lens both models are sure of is read too, and dropped only when it diverges: bubbles are
        # named lenses at 0.96 (dev seed 207), and no lens has read below -0.06 (docs/scan.md, step 6)
        sure_lens = again.kind == "structure" and not again.recheck and again.cls == MICROLENS
        sign = None
        if sure_lens or self._lens_disputed(again, focused, seen_before=lens):
            t = time.perf_counter()
            again, sign = self._phase_verdict(w, again, focused, out.z_um)
            w.timings["focus_structure"] += time.perf_counter() - t
        return SharpView(again, focused, seen, out, sign)

    def _refocus_where_seen(self, w: FieldWork, det: Detection, failed: FocusOutcome) -> FocusOutcome:
        """A second search for a structure whose first one failed, around the z its field was seen at.

        The first search centres on what the focus map and the type's reference height predict; where the map
        is wrong (a tilted or bowed slide between its points) the structure's focus lies outside it, the search
        ends at the best frame of its range, and the type is read off a frame 10 µm out of focus (a woodpile
        taken for a scaffold, seed 85). The field's own z was close enough to see the structure, so its focus
        lies within the search range of it. Without a peak there either, the first result stands.
        """
        again = self.focuser.focus(self.stage, self.camera, w.z_um, self.plan.focus.search_range_um, det.box_px)
        if again.ok:
            return FocusOutcome(again.z_um, failed.frames + again.frames, True)
        self.stage.focus_to_um(failed.z_um)
        return FocusOutcome(failed.z_um, failed.frames + again.frames, False)
