"""What every step of a field shares: the devices and the plan, the checkpoint between steps, moves, looks, records.

:class:`RunnerCore` holds the state :class:`~appliance.scan.runner.ScanRunner` sets up and the small steps all the
others make: the pause and cancel checkpoint, the move that takes up backlash, the vision's analysis, an object's
place on the slide, and the objects already recorded (each is recorded once: see the runner's "Overlap").
The steps of one object build on it: :mod:`~appliance.scan.centring`, :mod:`~appliance.scan.phase_reading`,
:mod:`~appliance.scan.sharp_view`, :mod:`~appliance.scan.structure_stack`, :mod:`~appliance.scan.structure_record`,
:mod:`~appliance.scan.structure_verdict` and :mod:`~appliance.scan.larger_prints`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from appliance.hardware.camera.base import Frame
from appliance.hardware.stage.base import Stage, StageLimitError
from appliance.results.files import ScanFolder
from appliance.results.store import ObjectRecord, ResultStore
from appliance.scan.boxes import on_slide_box_um, on_slide_um
from appliance.scan.calibration import Calibration
from appliance.scan.capture import CheckedCamera
from appliance.scan.events import Event, FrameAnalysed
from appliance.scan.field_focus import FieldFocus, FieldWork
from appliance.scan.grid import Grid
from appliance.scan.plan import ScanPlan
from appliance.scan.protocols import Detection, Focuser, Vision, VisionResult
from appliance.scan.scan_status import FieldStep, ScanCancelled, ScanState
from appliance.scan.slide_or_optics import SlideOrOptics
from appliance.scan.stitcher import Stitcher
from appliance.scan.whole_look import WholeLook

# the runner's own log lines: the service's log names the logger, and it is the runner's as before the split
_log = logging.getLogger("appliance.scan.runner")

DUPLICATE_MARGIN_UM = 8.0


@dataclass
class Known:
    """An object already recorded (for duplicate suppression)."""

    kind: str
    box_um: tuple[float, float, float, float]

    def contains(self, x: float, y: float, margin: float) -> bool:
        """Whether ``(x, y)`` lies in the box grown by ``margin`` on every side."""
        x0, y0, x1, y1 = self.box_um
        return x0 - margin <= x <= x1 + margin and y0 - margin <= y <= y1 + margin


class RunnerCore:
    """The state the steps of a field share, and their small steps (``ScanRunner`` is one)."""

    stage: Stage
    vision: Vision
    camera: CheckedCamera
    focuser: Focuser
    field_focus: FieldFocus
    store: ResultStore
    folder: ScanFolder
    plan: ScanPlan
    grid: Grid
    cal: Calibration
    approach_um: float
    scan_id: int
    area_um: tuple[float, float, float, float] | None
    slide_or_optics: SlideOrOptics
    stitcher: Stitcher
    whole_look: WholeLook
    _emit: Callable[[Event], None]
    _lock: threading.Lock
    _resume_evt: threading.Event
    _cancel: bool
    _state: ScanState
    _step: FieldStep | None
    _cell: int | None
    _t_commit: float | None
    _known: list[Known]
    _next_object: int
    _xy_loaded: tuple[float, float] | None
    _analysed: deque[tuple[Frame, VisionResult]]

    def _set(self, state: ScanState | None = None, step: FieldStep | None = None, cell: int | None = None) -> None:
        with self._lock:
            if state is not None:
                self._state = state
            self._step = step
            if cell is not None:
                self._cell = cell

    def _checkpoint(self, step: FieldStep) -> None:
        """Between steps: honour pause and cancel, then enter ``step``."""
        if not self._resume_evt.is_set():
            self._set(state=ScanState.PAUSED, step=self._step)
            t = time.monotonic()
            self._resume_evt.wait()
            if self._t_commit is not None:  # a pause is no part of the field's time, nor of the ETA's pace
                self._t_commit += time.monotonic() - t
            self._set(state=ScanState.RUNNING, step=self._step)
        if self._cancel:
            raise ScanCancelled
        self._set(step=step)

    def _analyse(self, frame: Frame) -> VisionResult:
        """Run the vision on ``frame`` and hand both to the subscribers (by reference: the live view)."""
        result = self.vision.analyse(frame)
        self._analysed.append((frame, result))
        self._emit(FrameAnalysed(frame, result.detections))
        return result

    def _analysis_of(self, frame: Frame) -> VisionResult:
        """``frame``'s analysis: the one made when it was taken, if it is among the last few, else a new one."""
        seen = [r for f, r in self._analysed if f is frame]
        return seen[-1] if seen else self._analyse(frame)

    def _approach(self, x: float, y: float) -> None:
        """Move so the stage ends moving +x, +y (backlash taken up the same way every time).

        The detour below the target is skipped where the move itself ends that way: the stage stands where
        this method's last move left it (so both axes' slack is taken up +x, +y) and the target lies at or
        beyond it on both axes. Half of a snake's fields and of the centring moves are such, and the detour
        was a second move and settle each (at 5x, 0.14 s of a field's 0.7 s of moves).
        """
        a = self.approach_um
        here = self.stage.position_um()
        loaded, self._xy_loaded = self._xy_loaded, None  # unknown until this move has ended moving +x, +y
        straight = loaded is not None and loaded == (here.x_um, here.y_um) and x >= here.x_um and y >= here.y_um
        if a > 0 and not straight:
            try:
                self.stage.move_to_um(x=x - a, y=y - a)
            except StageLimitError:  # at the very edge of the travel: go straight there (backlash stays)
                self.stage.move_to_um(x=x, y=y)
                return
        self.stage.move_to_um(x=x, y=y)
        if a > 0:
            end = self.stage.position_um()
            self._xy_loaded = (end.x_um, end.y_um)

    def _stage_xy(self, det: Detection, frame: Frame) -> tuple[float, float]:
        return on_slide_um(self.cal, det, frame)

    def _box_um(self, det: Detection, frame: Frame) -> tuple[float, float, float, float]:
        return on_slide_box_um(self.cal, det, frame)

    def _duplicate(self, kind: str, x: float, y: float) -> bool:
        return any(k.kind == kind and k.contains(x, y, DUPLICATE_MARGIN_UM) for k in self._known)

    def _outside_area(self, x: float, y: float, box_um: tuple[float, float, float, float]) -> bool:
        """Whether an object centred at ``(x, y)`` lies outside the scanned area; then it is known and not recorded.

        The fields reach past the area's edges by up to half a field, and what they show there is another
        scan's (a neighbouring area of the same slide: each object is its centre's) or off the slide: the cheap
        colour camera's blotch at a frame's edge, stitched from three views, was a 42 µm scaffold centred 40 µm
        beyond the top edge of the slide (seed 856). It is kept among the known objects so that later fields
        skip it.
        """
        if self.area_um is None:
            return False
        left, top, right, bottom = self.area_um
        if left <= x <= right and top <= y <= bottom:
            return False
        _log.info("an object centred at (%.0f, %.0f) um lies outside the scanned area %s: not recorded", x, y,
                  self.area_um)
        self._known.append(Known("structure", box_um))
        return True

    def _next_name(self) -> str:
        self._next_object += 1
        return f"obj_{self.scan_id:03d}_{self._next_object:05d}"

    def _record_debris(self, w: FieldWork, det: Detection, frame: Frame,
                       extra: dict[str, Any] | None = None) -> None:
        self._checkpoint(FieldStep.RECORD)
        x, y = self._stage_xy(det, frame)
        b = self._box_um(det, frame)
        self._known.append(Known("debris", b))
        w.objects.append(ObjectRecord(cell=w.pos.cell, kind="debris", cls=det.cls, confidence=det.confidence,
                                      x_um=x, y_um=y, z_um=frame.position.z_um, width_um=b[2] - b[0],
                                      height_um=b[3] - b[1], box=det.box_px, scores=dict(det.scores), extra=extra))

    def _debris_after_all(self, w: FieldWork, det: Detection, frame: Frame, xy: tuple[float, float],
                          extra: dict[str, Any] | None = None) -> None:
        """Drop the structure :meth:`_structure` took ``det`` for and record it as debris at ``xy``, once."""
        self._known.pop()
        if not self._duplicate("debris", *xy):
            self._record_debris(w, det, frame, extra)
