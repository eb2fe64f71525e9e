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

#: A reading further than this from where the stage stopped is kept beside it (:meth:`FocusSession.result`), µm.
READING_TOL_UM = 1e-3


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
    speck_scale : float
        ``specks`` mode: the camera's pixels per pixel of the speck sizes (:func:`appliance.focus.scores.speck_scale`).
    """

    def __init__(self, stage: Stage, camera: Camera, mode: str, roi: Rect | None,
                 z_range_um: tuple[float, float], now_s: Callable[[], float] | None = None,
                 speck_scale: float = 1.0) -> None:
        self.stage = stage
        self.camera = camera
        self.mode = mode
        self.roi = roi
        self.speck_scale = float(speck_scale)
        self.target: Rect | None = roi
        #: ``specks`` mode: the specks' rectangles, found in the first frame that shows one (None until then)
        self.specks: tuple[Rect, ...] | None = None
        self._speck_values: list[np.ndarray] = []  # per speck: (2, frames) walking and fine scores
        self._avoid: list[Rect] = []  # larger objects' surroundings, over every frame so far
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

        Far out of focus the first frames show only what is always there (the camera's own dust): while no
        speck scored so far has changed with z, each frame adds the specks it shows (the frames before are
        scored for them too). A speck that any frame shows near a larger object (a fibre or a bubble breaks
        into speck-sized pieces in some frames) is left out of the curves. Until one has changed with z the
        curves are flat (the walk then covers the range); until one is found a frame scores its whole area.
        """
        self._floor.append(math.inf)
        found, avoid = _s.speck_blobs(image, scale=self.speck_scale)
        self._avoid.extend(avoid)
        known = list(self.specks or ())
        if not self.glass_seen():
            new = [r for r in found if not any(_s.overlap(r, k) for k in known)
                   and not any(_s.overlap(r, b) for b in self._avoid)][:max(0, _s.MAX_SPECKS - len(known))]
            for r in new:
                before = [_s.speck_scores(im, [r]) for im in self.images[:-1]]
                self._speck_values.append(np.array([[b[0][0] for b in before], [b[1][0] for b in before]],
                                                   dtype=np.float64).reshape(2, len(before)))
            known += new
        if not known:
            self._scores.append(score(image, "frame"))
            self._fine.append(biharmonic_variance(image))
            return
        self.specks = tuple(known)
        self.target = self.specks[0]
        now = _s.speck_scores(image, self.specks)
        self._speck_values = [np.concatenate([v, np.array([[now[0][k]], [now[1][k]]])], axis=1)
                              for k, v in enumerate(self._speck_values)]
        clear = [k for k, r in enumerate(self.specks) if not any(_s.overlap(r, b) for b in self._avoid)]
        if not clear:  # every speck lies by something large: the curves are that object's, not the glass's
            clear = list(range(len(self.specks)))
        walking = np.stack([self._speck_values[k][0] for k in clear], axis=1)
        fine = np.stack([self._speck_values[k][1] for k in clear], axis=1)
        w, f = _s.glass_curve(walking, fine, [self.specks[k] for k in clear])
        if not self.glass_seen():
            # nothing that lies on the slide has changed yet: the curve is flat, whatever its noise (a noise
            # "peak" of the camera's dust would end the walk far from the glass)
            w, f = np.ones_like(w), np.ones_like(f)
        self._scores, self._fine = [float(v) for v in w], [float(v) for v in f]

    def glass_seen(self) -> bool:
        """``specks`` mode: whether a speck clear of larger objects has changed with z (it lies on the slide)."""
        if not self._speck_values or self.specks is None:
            return False
        live = _s.live_specks(np.stack([v[0] for v in self._speck_values], axis=1))
        return any(bool(live[k]) and not any(_s.overlap(r, b) for b in self._avoid)
                   for k, r in enumerate(self.specks))

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
        """Finish: focus to ``z_um`` (unless ``moved``) and build the result.

        Where the stage cannot stand at ``z_um`` (a servo's whole degrees), the result keeps it as its
        ``reading_um``: the frames read the focus there, and a focus map wants that, not the nearest degree
        (on the development slides the degrees had scattered the map's points 0.45 µm, the readings 0.28).
        """
        z = float(self.stage.position_um().z_um) if moved else self.move(z_um)
        kept = ok and not moved and abs(z - float(z_um)) > READING_TOL_UM
        return FocusResult(z_um=z, frames=self.frames, score=float(score_at), ok=ok, reason=reason,
                           strategy=strategy, time_s=self.now_s() - self.t0,
                           trace=tuple(zip(self.z, self._scores, strict=True)),
                           reading_um=float(z_um) if kept else math.nan)


def check_range(z_range_um: object) -> tuple[float, float]:
    """Validate ``(lo, hi)`` in µm, both finite, ``lo < hi``; raises ``ValueError`` naming the value."""
    try:
        lo, hi = (float(v) for v in z_range_um)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise ValueError(f"z_range_um must be two numbers (lo, hi) in um, got {z_range_um!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"z_range_um must be finite with lo < hi, got {z_range_um!r}")
    return lo, hi
