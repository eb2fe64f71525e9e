"""A structure's focus stack: taken about its focus, read for its type, and reconstructed into a height map."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from appliance.focus.stack import SAME_PLANE_UM
from appliance.hardware.camera.base import Frame
from appliance.hardware.stage.base import StageLimitError
from appliance.results.focuscurve import TUNED_DEPTH_OF_FIELD_UM
from appliance.results.reconstruct import (
    Reconstruction,
    ReconstructSettings,
    reconstruct,
    stack_focus,
    structure_mask,
)
from appliance.scan.field_focus import FieldWork
from appliance.scan.protocols import Box, Detection
from appliance.scan.runner_core import RunnerCore
from appliance.scan.scan_status import FieldStep
from appliance.scan.verdicts import type_scores

#: Whether an object is a print is read from its stack's planes this far either side of its focus, µm at the tuned depth
#: of field (``ScanRunner._type_from_views``; :func:`~appliance.scan.verdicts.views_say_debris`); which type, from the
#: plane at focus alone.
TYPE_VIEW_RANGE_UM = 2.0


@dataclass
class Stack:
    """A structure's focus stack: the frames by offset from focus (µm), and the crop box of the structure."""

    taken: dict[float, Frame]
    crop_box: tuple[int, int, int, int]

    @cached_property
    def frames(self) -> list[Frame]:
        """The frames, bottom plane first."""
        return [self.taken[off] for off in sorted(self.taken)]

    @cached_property
    def zs(self) -> list[float]:
        """Each frame's z, µm."""
        return [f.position.z_um for f in self.frames]

    @cached_property
    def planes(self) -> np.ndarray:
        """The crops, bottom plane first (the height map's stack and the saved OME-TIFF)."""
        cx0, cy0, cx1, cy1 = self.crop_box
        return np.stack([f.image[cy0:cy1, cx0:cx1] for f in self.frames])

    def whole(self) -> np.ndarray:
        """The whole frames, bottom plane first (the glass is read beside the structure)."""
        return np.stack([f.image for f in self.frames])

    def local(self, box: Box) -> Box:
        """A frame's box (xmin, ymin, xmax, ymax) in the crop's pixels."""
        cx0, cy0 = self.crop_box[0], self.crop_box[1]
        return (box[0] - cx0, box[1] - cy0, box[2] - cx0, box[3] - cy0)


@dataclass
class Shape:
    """What the reconstruction made of a structure's stack."""

    crop: np.ndarray
    rec: Reconstruction
    glass: float | None
    glass_source: str | None
    focus_z_um: float  # the structure's focus as its stack reads it (:meth:`ScanRunner._stack_focus`)
    specks_z: float | None = None  # the specks' focus on both sides of it (the drive's direction check)


class StackSteps(RunnerCore):
    """The runner's ``STACK`` and ``RECONSTRUCT`` steps, and the type read from the stack's planes."""

    def _crop_box(self, det: Detection) -> tuple[int, int, int, int]:
        m = self.plan.imaging.crop_margin_px
        w, h = self.camera.size_px
        x0, y0, x1, y1 = det.box_px
        return (max(0, x0 - m), max(0, y0 - m), min(w, x1 + m), min(h, y1 + m))

    def _take_stack(self, w: FieldWork, det: Detection, focused: Frame, focus_z_um: float) -> Stack:
        """The focus stack about ``focus_z_um`` (``focused`` is its plane at focus); the stage ends at focus."""
        self._checkpoint(FieldStep.STACK)
        t = time.perf_counter()
        taken: dict[float, Frame] = {0.0: focused}  # the plane at focus is the frame just analysed
        offsets = self.plan.focus.stack_offsets_um
        for off in offsets:
            self._stack_plane(focus_z_um, off, taken)
        step = self.plan.focus.stack_step_um
        for k in (1, 2):  # a stack cut by an end of the travel to fewer than the 3 planes a height map needs
            for off in (offsets[0] - k * step, offsets[-1] + k * step):  # goes on past its other end
                if len(taken) < 3:
                    self._stack_plane(focus_z_um, off, taken)
        self.stage.focus_to_um(focus_z_um)
        w.timings["stack"] = w.timings.get("stack", 0.0) + time.perf_counter() - t
        return Stack(taken, self._crop_box(det))

    def _stack_plane(self, focus_z_um: float, offset_um: float, taken: dict[float, Frame]) -> None:
        """Capture the stack's plane ``offset_um`` from focus into ``taken``; none beyond the focus travel.

        A focus drive coarser than the stack's step (stock GRBL's 250 steps/mm on a 1 mm screw: 4 µm a step)
        lands two planes on one z (``SAME_PLANE_UM``): the second is left out, as ``capture_stack`` leaves it, so
        the stack's z rise strictly (a repeated z stopped a scan on stock GRBL, "x must be strictly increasing").
        """
        if offset_um in taken:
            return
        try:
            z = self.stage.focus_to_um(focus_z_um + offset_um).z_um
        except StageLimitError:  # a focus near an end of the travel: the stack stops there
            return
        if any(abs(f.position.z_um - z) < SAME_PLANE_UM for f in taken.values()):
            return
        taken[offset_um] = self.camera.capture()

    def _type_from_views(self, det: Detection, taken: Mapping[float, Frame]
                         ) -> tuple[Detection, dict[str, float], dict[str, float]]:
        """``det`` named by its plane at focus, with the types the planes near focus agree on and the focus plane's.

        Two reads through the vision's ``read_type``, each crop with its flipped copies, pooled by mean
        log-probability. **Whether it is a print**: the planes within ``TYPE_VIEW_RANGE_UM`` of focus (scaled
        with the depth of field: at 10x the sharp frame and the planes 2 µm either side, frames the stack takes
        anyway), a dozen views where one frame can be fooled (:func:`views_say_debris`). **Which type**: the
        plane at focus alone, its flips included; the sharp frame alone named a 43 µm woodpile scaffold (0.64;
        its flipped copies said woodpile: dev seed 608). Planes off focus are where woodpile and scaffold look
        alike: a woodpile 2-16 µm above its focus reads scaffold at 0.95 on some prints, so pooling the planes
        ±2 µm named two woodpiles scaffold that their focus plane named right (0.94; held-out seeds 2311 and
        2325), and over 334 prints of 25 scans the focus plane with its flips named every type right against
        332 for the pooled planes (docs/held-out.md, "The type from the plane at focus, session 24"). A vision
        without ``read_type``, or one that says nothing of the types, leaves the sharp frame's type.
        """
        read = getattr(self.vision, "read_type", None)
        if read is None:
            return det, {}, {}
        reach = TYPE_VIEW_RANGE_UM * self.field_focus.depth_of_field_um() / TUNED_DEPTH_OF_FIELD_UM
        images = [taken[off].image for off in sorted(taken) if abs(off) <= reach + 1e-9]
        views = type_scores(read(images, det.box_px))
        at_focus = type_scores(read([taken[0.0].image], det.box_px))
        rounded = ({c: round(p, 4) for c, p in views.items()}, {c: round(p, 4) for c, p in at_focus.items()})
        if not at_focus:
            return det, *rounded
        cls = max(at_focus, key=lambda c: at_focus[c])
        return replace(det, cls=cls, confidence=at_focus[cls]), *rounded

    def _shape(self, w: FieldWork, det: Detection, focused: Frame, stack: Stack, focus_z_um: float,
               xy: tuple[float, float], learned_um: float | None = None) -> Shape:
        """The structure's mask and height map from its stack, with the glass they stand on.

        ``learned_um``: the focus the learned reader read (:attr:`FocusOutcome.read_um`, which on a servo lies
        between the whole degrees ``focus_z_um`` stands on); it is recorded as it is.
        """
        self._checkpoint(FieldStep.RECONSTRUCT)
        t = time.perf_counter()
        cx0, cy0, cx1, cy1 = stack.crop_box
        crop = np.ascontiguousarray(focused.image[cy0:cy1, cx0:cx1])
        mask = structure_mask(crop, stack.local(det.box_px), fill_holes=det.cls != "scaffold")
        rp = self.plan.reconstruct
        settings = ReconstructSettings(method=rp.method, wavelength_um=rp.wavelength_um, index_delta=rp.index_delta,
                                       camera_gamma=rp.camera_gamma, tie_dz_um=rp.tie_dz_um,
                                       depth_of_field_um=self.field_focus.depth_of_field_um())
        # the glass lies under the structure's focus as its own stack reads it (reconstruct reads the pair again);
        # a lens's TIE keeps its autofocus's plane
        planes, zs = stack.planes, stack.zs
        if learned_um is not None:
            record = learned_um  # the stack is not read again (its reading carries the bias the reader removed)
        else:
            focus_z = focus_z_um if det.cls == "microlens" else stack_focus(planes, zs, mask, focus_z_um,
                                                                            lobe_gap_um=settings.lobe_gap)
            record = self._stack_focus(planes, zs, det.cls, focus_z, focus_z_um)
        used = focus_z_um if det.cls == "microlens" else record
        glass, glass_source = self.field_focus.structure_glass(stack.whole(), zs, det.box_px, *xy, used,
                                                               settings.lobe_gap)
        specks_z = self.field_focus.specks_either_side_z
        rec = reconstruct(planes, zs, mask, det.cls, used, glass, self.cal.um_per_px, settings)
        w.timings["reconstruct"] = w.timings.get("reconstruct", 0.0) + time.perf_counter() - t
        return Shape(crop, rec, glass, glass_source, record, specks_z)

    def _stack_focus(self, planes: np.ndarray, zs: Sequence[float], cls: str, two_lobe_z: float,
                     autofocus_z: float) -> float:
        """The structure's focus to record, from its stack: its pair of lobes, else its curve's symmetry.

        A pair of lobes the stack shows (or a peak far from the autofocus's, ``stack_focus``) stands; otherwise
        the focuser's own reading of the stack (``read_stack``: the search's symmetry reading, both wings in
        view), else the autofocus's z. Development slides 100-111 (143 prints): within 1 um 72.0 % at the
        autofocus, 76.9 % with the pairs alone, 81.8 % with both (docs/scan.md, "Structure focus in a scan").
        Not asked where the learned reader read the autofocus's z: it is nearer than either (development slides
        500 and 502: 39 of 40 prints within 1 µm at the autofocus, 35 of 40 as the stack re-read them).
        """
        if two_lobe_z != autofocus_z:
            return float(two_lobe_z)
        read = getattr(self.focuser, "read_stack", None)
        z = read(planes, zs, cls, near_um=autofocus_z) if callable(read) else None
        return float(z) if z is not None and math.isfinite(z) else float(autofocus_z)
