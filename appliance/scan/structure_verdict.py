"""Whether a centred object is a structure: its sharp frame, its stack's views, its phase and its shape decide.

A structure that stands is stacked, reconstructed and recorded; one that does not is recorded as debris
(:meth:`StructureVerdict._structure`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from appliance.hardware.camera.base import Frame
from appliance.scan.field_focus import FieldWork
from appliance.scan.protocols import Detection, VisionResult
from appliance.scan.runner_core import Known
from appliance.scan.sharp_view import SharpLook, SharpView
from appliance.scan.speck_check import speck_instead
from appliance.scan.structure_record import StructureRecord
from appliance.scan.structure_stack import Stack, StackSteps
from appliance.scan.verdicts import (
    PHASE_SIGN,
    as_debris,
    as_structure,
    debris_score,
    gate_cut,
    leans_to_a_print,
    phase_can_prove_lens,
    phase_proves_lens,
    structure_stands,
    views_say_debris,
    views_sure_of_a_print,
)
from appliance.vision.decision import MICROLENS
from appliance.vision.typeshape import not_its_shape


class StructureVerdict(SharpLook, StackSteps, StructureRecord):
    """From a centred object's sharp view to its record, as a structure or as debris."""

    # a piece of a print larger than the field, refused by its shape, is looked at whole and recorded through
    # :meth:`_structure` again: that step is :class:`~appliance.scan.larger_prints.LargerPrints`'
    _looked_whole_instead: Callable[[FieldWork, Detection, Frame], bool]

    def _structure(self, w: FieldWork, det: Detection, frame: Frame, lens: bool = False,
                   stitched: bool = False, looked: bool = False) -> None:
        """Focus on a centred object; if its sharp frame shows a structure, take its stack, reconstruct and record it.

        The sharp frame has the last word: a structure there is stacked and recorded; debris there (or, when
        the vision finds nothing there, ``det`` being debris) is recorded as debris without a stack, unless
        ``det`` is a structure and the sharp frame's models disagree (:func:`structure_stands`), or both lean to a
        print there (:func:`leans_to_a_print`) and its views near focus are sure of one. Where the
        sharp frame is :meth:`_lens_disputed`, or an earlier view was (``lens``) and the sharp frame's
        likeliest type is still a micro-lens, or it is a micro-lens both models are sure of, the phase's sign
        decides first (:meth:`_phase_verdict`). A whole object, not ``stitched`` from views, is also debris
        when its shape cannot be its type's (:meth:`_not_its_shape`). A print ``looked`` at whole
        (:meth:`_whole_look`) is one whatever its piece in view says, sharp or in its stack's views.
        """
        x, y = self._stage_xy(det, frame)
        seen_um = self._box_um(det, frame)
        if not stitched and self._outside_area(x, y, seen_um):
            return
        self._known.append(Known("structure", seen_um))
        sharp = self._sharp_view(w, det, lens)
        # the phase's sign, where it was read, goes with the record: it decides lenses and bubbles
        read: dict[str, Any] = {} if sharp.phase_sign is None else {"phase_sign": round(sharp.phase_sign, 3)}
        leaning = False
        if sharp.det.kind != "structure" and not structure_stands(det, sharp.det) and not looked:
            leaning = leans_to_a_print(sharp.det)
            if not leaning:
                # Sharp, it is dirt: blurred dust and bubbles pass for prints more often (a print's own focus
                # lies above the glass the field was focused on, dirt's on it), and so does a print to them
                self._debris_after_all(w, sharp.det, sharp.frame, (x, y), read or None)
                return
        # ... and names the type: the classifier's woodpile and scaffold are told apart in focus, not blurred
        det = sharp.det if sharp.det.kind == "structure" else as_structure(sharp.det, det)
        self._stacked_structure(w, det, sharp, read, leaning, stitched, looked)

    def _stacked_structure(self, w: FieldWork, det: Detection, sharp: SharpView, read: dict[str, Any],
                           leaning: bool, stitched: bool, looked: bool) -> None:
        """:meth:`_structure` on from the sharp view: ``det``'s stack and type, then its record as either kind.

        ``read``: the sharp view's phase's sign, if read; ``leaning``: both models only leaned to a print there.
        """
        focused, out = sharp.frame, sharp.focus
        x, y = self._stage_xy(det, focused)
        box_um = self._box_um(det, focused)
        self._known[-1] = Known("structure", box_um)
        stack = self._take_stack(w, det, focused, out.z_um)
        t = time.perf_counter()
        sharp_cls = det.cls
        det, type_views, type_focus = self._type_from_views(det, stack.taken)
        w.timings["type"] = w.timings.get("type", 0.0) + time.perf_counter() - t
        types: dict[str, Any] = {**read, "type_sharp": sharp_cls, "type_views": type_views,
                                 "type_focus": type_focus}
        if leaning and not views_sure_of_a_print(type_views):
            # both models only leaned to a print in its sharp frame, and its views are not sure of one either
            self._debris_after_all(w, as_debris(det, 1.0 - sum(type_views.values())), focused, (x, y),
                                   {**types, "leaned_to_a_print": True})
            return
        if views_say_debris(type_views) and not looked:
            if not self._lens_by_phase(w, det, sharp, sharp_cls, types):
                self._debris_after_all(w, as_debris(det, 1.0 - sum(type_views.values())), focused, (x, y), types)
                return
            # ... unless its phase converges where only a lens does: at 10x dust of 12 µm and more read 0 to
            # 0.13, bubbles -1 to 0.16, lenses 0.04 to 1 (dev seeds 502-504; at 5x / NA 0.1 dust read up to
            # 0.56, so not there). A blemish of the optics does not change with focus. The cheap colour
            # camera's 55 µm lens read 0.56 and its views 0.17 (held-out seed 2375): the classifier was wrong
            det = replace(det, cls=MICROLENS)
        self._record_unless_dirt(w, det, sharp, stack, (x, y), box_um, types, stitched, looked)

    def _lens_by_phase(self, w: FieldWork, det: Detection, sharp: SharpView, sharp_cls: str,
                       types: dict[str, Any]) -> bool:
        """Whether the phase's sign proves a lens that its views call debris (``types`` gets a sign read here)."""
        sign = sharp.phase_sign
        dof = self.field_focus.depth_of_field_um()
        if sign is None and sharp_cls == MICROLENS and phase_can_prove_lens(dof):
            # the sharp frame named a lens the views doubt, and its phase was not read: read it before it
            # is called dirt. The cheap colour camera's 48 µm lens at 20x (held-out seed 2906): sharp a
            # micro-lens, its views 0.19, its phase +0.33 at focus: recorded as dirt unread
            sign = self._read_phase(w, det, sharp.frame, sharp.focus.z_um, types)
        return phase_proves_lens(sign, dof)

    def _record_unless_dirt(self, w: FieldWork, det: Detection, sharp: SharpView, stack: Stack,
                            xy: tuple[float, float], box_um: tuple[float, float, float, float],
                            types: dict[str, Any], stitched: bool, looked: bool) -> None:
        """Record typed ``det`` as a structure, unless its stack shows a speck, its phase a bubble or its shape dirt."""
        focused, out = sharp.frame, sharp.focus
        speck = self._speck_instead(det, stack, out.z_um) if det.cls == MICROLENS and not looked else None
        if speck is not None:
            # a speck on the glass its lens search ended 10-14 µm above, where its blur passed for a lens and its
            # uneven defocus for a converging phase (held-out seeds 5208, 5309: ten specks at 40x)
            self._debris_after_all(w, as_debris(det, debris_score(det)), focused, xy, {**types, **speck})
            return
        if det.cls == MICROLENS and sharp.phase_sign is None and self._diverges(w, det, focused, out.z_um, types):
            # a bubble: no micro-lens is recorded unread (step 6). One whose sharp view was disputed with the
            # classifier's micro-lens under the check's bound (0.19) kept the earlier view's structure verdict
            # unread and was recorded as a lens (seed 1411 at 320 x 240)
            self._debris_after_all(w, as_debris(det, debris_score(det)), focused, xy, types)
            return
        why = None if stitched else self._not_its_shape(det, focused, stack, sharp.seen)
        if why is not None:
            if self._looked_whole_instead(w, det, focused):
                return
            # dirt the classifier named a print: a clump too narrow for any type, a fibre named a split ring
            # (appliance/vision/typeshape.py)
            self._debris_after_all(w, as_debris(det, debris_score(det)), focused, xy,
                                   {**types, "not_its_shape": why})
            return
        shape = self._shape(w, det, focused, stack, out.z_um, xy, learned_um=out.read_um if out.learned else None)
        self._record_structure(w, det, focused, sharp.seen, out, stack, shape, xy, box_um, types)

    def _speck_instead(self, det: Detection, stack: Stack, focus_z_um: float) -> dict[str, float] | None:
        """Why a micro-lens is a speck its own stack shows sharp and small elsewhere (:mod:`.speck_check`)."""
        step = PHASE_SIGN.step_um(self.field_focus.depth_of_field_um())
        return speck_instead(stack.planes, stack.zs, stack.local(det.box_px), focus_z_um, step, self.cal.um_per_px)

    def _not_its_shape(self, det: Detection, focused: Frame, stack: Stack,
                       seen: VisionResult) -> dict[str, float] | None:
        """Why a whole object cannot be the type it is named, in numbers (:mod:`appliance.vision.typeshape`).

        Not asked of an object the frame cuts: its box, or the gate's dark candidate holding it (``seen``'s,
        :func:`gate_cut`), reaches the frame's edge.
        """
        if det.touches_edge(self.camera.size_px) or gate_cut(seen.candidate_boxes, det.box_px,
                                                              self.camera.size_px):
            return None
        cx0, cy0, cx1, cy1 = stack.crop_box
        return not_its_shape(focused.image[cy0:cy1, cx0:cx1], stack.local(det.box_px), det.cls, self.camera.size_px)
