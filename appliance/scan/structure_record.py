"""Recording a structure: its frame, crop, stack, height map and 3-D plot written, its row added to the field's."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from appliance.hardware.camera.base import Frame
from appliance.results.store import Annotation, ObjectRecord
from appliance.scan.field_focus import FieldWork
from appliance.scan.protocols import Detection, FocusOutcome, VisionResult
from appliance.scan.runner_core import RunnerCore
from appliance.scan.scan_status import FieldStep
from appliance.scan.structure_stack import Shape, Stack


class StructureRecord(RunnerCore):
    """The runner's ``RECORD`` step for a structure (:meth:`_record_structure`)."""

    def _record_structure(self, w: FieldWork, det: Detection, focused: Frame, seen: VisionResult,
                          out: FocusOutcome, stack: Stack, shape: Shape, xy: tuple[float, float],
                          box_um: tuple[float, float, float, float], types: dict[str, Any]) -> None:
        """Write the structure's frame, crop, stack, height map and 3-D plot, and add its row to the field's."""
        self._checkpoint(FieldStep.RECORD)
        t = time.perf_counter()
        name = self._next_name()
        um_px = self.cal.um_per_px
        heights, zs = shape.rec.heights, stack.zs
        # named by type and file, not by the database id: the row (and its id) comes after its files are durable,
        # and rewriting them once it exists would open a window where a power cut tears them; structures.csv maps
        # each id to its files
        title = f"{det.cls} {name}"
        paths = [self.folder.png("frames", name, focused.image), self.folder.png("crops", name, shape.crop),
                 self.folder.stack(name, stack.planes, zs, um_px, (focused.position.x_um, focused.position.y_um),
                                   title),
                 self.folder.heights(name, heights, um_px), self.folder.plot_3d(name, heights, um_px, title)]
        w.files.extend(paths)
        fw, fh = self.camera.size_px
        frame_rel = self.folder.rel(paths[0])
        for d in seen.detections:  # every box in the saved frame, for the exports
            w.annotations.append(Annotation(frame_rel, fw, fh, d.cls, *d.box_px))
        valid = heights[np.isfinite(heights)]
        (x, y), (bx0, by0, bx1, by1) = xy, box_um
        cx0, cy0 = stack.crop_box[:2]
        w.objects.append(ObjectRecord(
            cell=w.pos.cell, kind="structure", cls=det.cls, confidence=det.confidence, x_um=x, y_um=y,
            z_um=shape.focus_z_um, width_um=bx1 - bx0, height_um=by1 - by0, frame_path=frame_rel,
            box=det.box_px, crop_path=self.folder.rel(paths[1]), stack_path=self.folder.rel(paths[2]),
            height_map_path=self.folder.rel(paths[3]), plot_path=self.folder.rel(paths[4]), scores=dict(det.scores),
            extra={"focus_frames": out.frames, "focus_ok": out.ok, "autofocus_z_um": out.z_um,
                   "focus_reading_um": out.read_um,
                   "base_z_um": shape.rec.base_z_um,
                   "max_height_um": float(np.percentile(valid, 98)) if valid.size else 0.0,
                   "height_source": shape.rec.source, "peak_height_um": shape.rec.peak_um,
                   "glass_z_um": shape.glass, "glass_source": shape.glass_source,
                   "specks_z_um": shape.specks_z,
                   "height_focus_z_um": shape.rec.focus_z_um,
                   "crop_origin_px": [cx0, cy0], "stage_xy_um": [focused.position.x_um, focused.position.y_um],
                   "true_position_um": _true_position(focused),
                   "true_focus_z_um": _true_z_at(stack.frames, shape.focus_z_um), **types}))
        w.timings["record"] = w.timings.get("record", 0.0) + time.perf_counter() - t


def _true_z_at(frames: Sequence[Frame], z_um: float) -> float | None:
    """The simulator's true focal plane at the drive's ``z_um``, from the stack's frames (for scoring).

    A line through each frame's (reported, true) z: the drive's z and the slide's agree but for an offset on a
    sound drive, and not even in sign on one wired the other way round; a focus that drifts moves the offset. None
    from real hardware, or a stack without two planes.
    """
    pairs = [(f.position.z_um, t[2]) for f in frames if (t := _true_position(f)) is not None]
    if len({round(r, 6) for r, _ in pairs}) < 2:
        return None
    rep, true = np.array(pairs, dtype=np.float64).T
    slope, offset = np.polyfit(rep, true, 1)
    return float(slope * z_um + offset)


def _true_position(frame: Frame) -> list[float] | None:
    """The simulator's true stage position of a frame (for scoring), None from real hardware."""
    true = frame.meta.get("true_position_um")
    return [float(v) for v in true] if isinstance(true, tuple) else None
