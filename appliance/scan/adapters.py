"""The product vision and focus behind the runner's Protocols (``appliance/vision``, ``appliance/focus``).

- :class:`PipelineVision` wraps ``appliance.vision.pipeline.Pipeline`` (gate -> detector -> classifier, the
  detector skipped when the gate finds nothing); each box's verdict, structure (of a type) or debris, weighs
  the detector's call against the classifier's distribution (``appliance.vision.decision``).
- :class:`AutofocusFocuser` calls ``appliance.focus.autofocus`` on a detection's box (or on the largest dark
  object in view) within the stage's focus travel.
- :class:`FocusMapAdapter` wraps ``appliance.focus.FocusMap`` (its ``predict`` raises while empty; the
  runner's Protocol answers None).

The imports happen at construction, so a build without those packages fails with one clear message.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from appliance.hardware.camera.base import Camera, Frame
from appliance.hardware.stage.base import Stage
from appliance.scan.protocols import Box, Detection, FocusOutcome, VisionResult
from appliance.vision.decision import Evidence, decide, join_overlapping


def _box(b: tuple[float, float, float, float], size: tuple[int, int]) -> Box:
    w, h = size
    x0, y0 = max(0, int(math.floor(b[0]))), max(0, int(math.floor(b[1])))
    x1, y1 = min(w, int(math.ceil(b[2]))), min(h, int(math.ceil(b[3])))
    return (x0, y0, max(x1, x0 + 1), max(y1, y0 + 1))


class PipelineVision:
    """``appliance.vision`` as the runner's :class:`~appliance.scan.protocols.Vision`.

    Parameters
    ----------
    um_per_px : float
        Pixel size at the sample (from the calibration), for the gate's size limits.
    pipeline : object, optional
        A loaded ``Pipeline``; by default the shipped detector and classifier are loaded.
    rule : DecisionRule, optional
        How the detector's and the classifier's evidence are weighed (``appliance.vision.decision``).
    """

    name = "appliance.vision"

    def __init__(self, um_per_px: float, pipeline: Any | None = None, rule: Any | None = None) -> None:
        if pipeline is None:
            try:
                from appliance.vision.classifier import StructureClassifier
                from appliance.vision.detector import Detector
                from appliance.vision.pipeline import Pipeline
            except ImportError as exc:
                raise ValueError(f"the vision pipeline (appliance/vision) is not installed in this build ({exc})") \
                    from None
            pipeline = Pipeline(Detector(None, None), StructureClassifier(), um_per_px=um_per_px, skip_empty=True,
                                type_uncovered=True)
        self.pipeline = pipeline
        self.rule = rule
        self.um_per_px = float(um_per_px)

    def analyse(self, frame: Frame) -> VisionResult:
        """Gate, detect, classify one frame."""
        t = time.perf_counter()
        r = self.pipeline.run(frame.image)
        dt = time.perf_counter() - t
        size = (frame.shape[1], frame.shape[0])
        dets = []
        seen = join_overlapping([Evidence(o.box, {o.cls: float(o.score)} if o.cls else {}, o.type_probs)
                                 for o in r.objects])
        for e in seen:
            v = decide(e, self.rule, self.um_per_px)
            if not e.detector and v.kind != "structure":  # a candidate the detector left out, and no print
                continue
            if v.kind == "structure" and not v.cls:  # no classifier: a structure of unknown type is not recorded
                v = replace(v, kind="debris", cls="debris")
            scores = {**{c: round(float(p), 6) for c, p in e.probs.items()},
                      **{f"detector_{c}": float(s) for c, s in e.detector.items()}}
            dets.append(Detection(_box(e.box, size), v.kind, v.cls, v.confidence, scores, recheck=not v.agree))
        return VisionResult(r.gate_candidates, tuple(dets), {"vision": dt})


class AutofocusFocuser:
    """``appliance.focus.autofocus`` as the runner's :class:`~appliance.scan.protocols.Focuser`.

    Parameters
    ----------
    strategy : str
        ``sweep``, ``classical``, ``neural`` or ``map`` (see docs/autofocus.md).
    z_travel_um : (float, float)
        The stage's focus travel; searches never leave it.
    focus_map : FocusMapAdapter, optional
        Needed by the ``map`` strategy.
    estimator : object, optional
        The focus net (a ``DefocusEstimator``) for ``neural`` and ``map``.
    now_s : callable, optional
        The device clock (the simulator's virtual clock).
    """

    def __init__(self, strategy: str, z_travel_um: tuple[float, float], focus_map: FocusMapAdapter | None = None,
                 estimator: Any | None = None, now_s: Callable[[], float] | None = None) -> None:
        try:
            from appliance.focus import autofocus
        except ImportError as exc:
            raise ValueError(f"autofocus (appliance/focus) is not installed in this build ({exc})") from None
        self._autofocus = autofocus
        self.strategy = strategy
        self.z_travel_um = (float(z_travel_um[0]), float(z_travel_um[1]))
        self.focus_map = focus_map
        self.estimator = estimator
        self.now_s = now_s

    def focus(self, stage: Stage, camera: Camera, z_guess_um: float, range_um: float,
              roi_px: Box | None = None) -> FocusOutcome:
        """Search ``z_guess_um`` ± ``range_um`` (within the travel) on ``roi_px``."""
        lo = max(self.z_travel_um[0], z_guess_um - range_um)
        hi = min(self.z_travel_um[1], z_guess_um + range_um)
        roi = None if roi_px is None else (roi_px[0], roi_px[1], roi_px[2] - roi_px[0], roi_px[3] - roi_px[1])
        p = stage.position_um()
        fmap = self.focus_map.inner if self.focus_map is not None and len(self.focus_map.inner) else None
        strategy = self.strategy if (self.strategy != "map" or fmap is not None) else "classical"
        r = self._autofocus(stage, camera, strategy, z_range_um=(lo, hi), roi=roi, start_um=z_guess_um,
                            estimator=self.estimator, focus_map=fmap, xy_um=(p.x_um, p.y_um), now_s=self.now_s)
        return FocusOutcome(float(r.z_um), int(r.frames), bool(r.ok))


class FocusMapAdapter:
    """``appliance.focus.FocusMap`` as the runner's :class:`~appliance.scan.protocols.FocusMapLike`."""

    def __init__(self) -> None:
        try:
            from appliance.focus import FocusMap
        except ImportError as exc:
            raise ValueError(f"the focus map (appliance/focus) is not installed in this build ({exc})") from None
        self.inner = FocusMap()

    def add(self, x_um: float, y_um: float, z_um: float) -> None:
        """Add a focused point."""
        self.inner.add(x_um, y_um, z_um)

    def predict(self, x_um: float, y_um: float) -> tuple[float, float] | None:
        """The map's z and sigma, or None while it has fewer than three points (a single z is no map)."""
        if len(self.inner) < 3:
            return None
        z, sigma = self.inner.predict(x_um, y_um)
        return float(z), float(sigma)
