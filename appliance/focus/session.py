"""One autofocus's frames: moves (always approaching from below), captures, target choice, scores, time."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from appliance.focus import scores as _s
from appliance.focus.result import FocusResult
from appliance.focus.scores import Rect, biharmonic_variance, find_target, noise_floor, score
from appliance.hardware.camera.base import Camera
from appliance.hardware.stage.base import Stage


class FocusSession:
    """The frames one autofocus takes and the bookkeeping every strategy shares.

    Every move goes through ``stage.focus_to_um`` so the final approach is always from below and the
    backlash is taken up; the z recorded for a frame is the z the stage reports after that move (on a
    servo focus, whole degrees).

    Parameters
    ----------
    stage, camera : Stage, Camera
        Open devices.
    mode : str
        Score mode (:data:`appliance.focus.scores.SCORE_MODES`).
    roi : (x, y, w, h) or None
        The caller's target rectangle; None lets the session pick one (:func:`find_target`).
    z_range_um : (float, float)
        Lowest and highest z the search may visit.
    now_s : callable, optional
        The device clock (the simulator's virtual clock); ``time.monotonic`` by default.
    """

    def __init__(self, stage: Stage, camera: Camera, mode: str, roi: Rect | None,
                 z_range_um: tuple[float, float], now_s: Callable[[], float] | None = None) -> None:
        self.stage = stage
        self.camera = camera
        self.mode = mode
        self.roi = roi
        self.target: Rect | None = roi
        #: ``specks`` mode: the specks' rectangles, found in the first frame that shows one (None until then)
        self.specks: tuple[Rect, ...] | None = None
        self._speck_values: list[tuple[np.ndarray, np.ndarray]] = []
        self.lo, self.hi = z_range_um
        self.now_s = now_s or time.monotonic
        self.t0 = self.now_s()
        self.z: list[float] = []
        self.images: list[np.ndarray] = []
        self._scores: list[float] = []
        self._fine: list[float] = []
        self._floor: list[float] = []

    # ----- motion and capture ------------------------------------------------------------------------

    def move(self, z_um: float) -> float:
        """Focus to ``z_um`` (clipped to the range) from below; returns the z the stage reports."""
        z = min(max(float(z_um), self.lo), self.hi)
        return float(self.stage.focus_to_um(z).z_um)

    def capture(self, z_um: float) -> float:
        """Move to ``z_um``, take a frame, score it; returns the frame's reported z."""
        z = self.move(z_um)
        frame = self.camera.capture()
        self.z.append(z)
        self.images.append(frame.image)
        if self.target is None and self.roi is None and self.mode in ("roi", "widest_edge"):
            found = find_target(frame.image, self.mode)
            if found is not None:
                self.target = found
                self._scores = [score(im, self.mode, found) for im in self.images[:-1]]
                self._fine = [self._fine_score(im) for im in self.images[:-1]]
                self._floor = [noise_floor(im, found) for im in self.images[:-1]]
        if self.mode == "specks":
            self._score_specks(frame.image)
            return z
        self._scores.append(score(frame.image, self.mode, self.target))
        self._fine.append(self._fine_score(frame.image))
        self._floor.append(noise_floor(frame.image, self.target) if self.mode in ("roi", "widest_edge")
                           else math.inf)
        return z

    def _score_specks(self, image: np.ndarray) -> None:
        """``specks`` mode: score the specks in every frame, and the glass's curves from those that change.

        The specks are found in the first frame that shows one; until then a frame scores its whole area.
        """
        self._floor.append(math.inf)
        if self.specks is None:
            self.specks = _s.find_specks(image)
            if self.specks is None:
                self._scores.append(score(image, "frame"))
                self._fine.append(biharmonic_variance(image))
                return
            self.target = self.specks[0]
            self._speck_values = [_s.speck_scores(im, self.specks) for im in self.images[:-1]]
        self._speck_values.append(_s.speck_scores(image, self.specks))
        walking, fine = _s.glass_curve(np.array([v[0] for v in self._speck_values]),
                                    np.array([v[1] for v in self._speck_values]), self.specks)
        self._scores, self._fine = [float(v) for v in walking], [float(v) for v in fine]

    def floor(self) -> float:
        """The walking score of bare glass in the target's rectangle (median over the frames).

        ``inf`` when unknown (whole-frame and blob modes).
        """
        return float(np.median(self._floor)) if self._floor else math.inf

    def _fine_score(self, image: np.ndarray) -> float:
        if self.mode == "blobs":
            return score(image, self.mode)
        return biharmonic_variance(image, None if self.mode == "frame" else self.target)

    def has_frame_at(self, z_um: float, tol_um: float = 1e-6) -> bool:
        """Whether a frame was already taken at ``z_um``."""
        return any(abs(z - z_um) <= tol_um for z in self.z)

    # ----- what the frames say -------------------------------------------------------------------------

    @property
    def frames(self) -> int:
        """Frames captured so far."""
        return len(self.images)

    def curve(self, fine: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(z, score) of the frames so far, sorted by z; a z visited twice keeps its best score.

        ``fine`` selects the fine measure (:func:`biharmonic_variance`) instead of the walking one.
        """
        best: dict[float, float] = {}
        for z, s in zip(self.z, self._fine if fine else self._scores, strict=True):
            best[z] = max(s, best.get(z, -math.inf))
        zs = np.array(sorted(best), dtype=np.float64)
        return zs, np.array([best[z] for z in zs], dtype=np.float64)

    def result(self, z_um: float, ok: bool, reason: str, strategy: str, score_at: float = math.nan,
               moved: bool = False) -> FocusResult:
        """Finish: focus to ``z_um`` (unless ``moved``) and build the result."""
        z = float(self.stage.position_um().z_um) if moved else self.move(z_um)
        return FocusResult(z_um=z, frames=self.frames, score=float(score_at), ok=ok, reason=reason,
                           strategy=strategy, time_s=self.now_s() - self.t0,
                           trace=tuple(zip(self.z, self._scores, strict=True)))


def check_range(z_range_um: object) -> tuple[float, float]:
    """Validate ``(lo, hi)`` in µm, both finite, ``lo < hi``; raises ``ValueError`` naming the value."""
    try:
        lo, hi = (float(v) for v in z_range_um)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise ValueError(f"z_range_um must be two numbers (lo, hi) in um, got {z_range_um!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"z_range_um must be finite with lo < hi, got {z_range_um!r}")
    return lo, hi
