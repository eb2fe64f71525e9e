"""Test helpers on the virtual microscope, and a TEST DOUBLE of a defocus estimator. It is NOT the focus net.

The double (:class:`GroundTruthDefocus`) exists to test the neural strategy's logic. It reads the
simulator's ground truth (the stage's true z and the focus z of the structure nearest the frame centre),
adds seeded Gaussian noise, and can be told to give deliberately wrong or unsure answers. No figure from
it may be reported as the focus net's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from appliance.focus.neural import DefocusEstimate
from appliance.focus.scores import TARGET_MARGIN_PX, grow_rect
from appliance.hardware.stage.base import Position
from appliance.sim.microscope import VirtualMicroscope
from appliance.sim.slide import SlideObject


class FocusOnly:
    """A stage that only focuses, at x = y = 0, starting at ``z_um``: the base of hand-made search-test devices.

    A subclass adds ``size_px`` and ``capture`` and is passed to the search as both stage and camera.
    """

    def __init__(self, z_um: float = 100.0) -> None:
        self.z = z_um

    def position_um(self) -> Position:
        """Where the stage is: x = y = 0 and its focus z, µm."""
        return Position(0.0, 0.0, self.z)

    def focus_to_um(self, z: float) -> Position:
        """Go to focus ``z`` µm at once (no backlash, no steps)."""
        self.z = z
        return self.position_um()


class GroundTruthDefocus:
    """A truth-reading stand-in for the focus net (test double).

    Parameters
    ----------
    scope : VirtualMicroscope
    noise_um : float
        Standard deviation of the Gaussian noise added to the true defocus.
    seed : int
        Seeds the noise.
    confidence : float
        Confidence reported with a structure in view (0.1 without one: a net shown only debris is unsure).
    override : callable, optional
        ``override(call_index) -> DefocusEstimate | None``: replaces the answer of that call (wrong answers).
    """

    def __init__(self, scope: VirtualMicroscope, noise_um: float = 0.3, seed: int = 0, confidence: float = 0.9,
                 override: Callable[[int], DefocusEstimate | None] | None = None) -> None:
        self.scope = scope
        self.noise_um = noise_um
        self.rng = np.random.default_rng(seed)
        self.confidence = confidence
        self.override = override
        self.calls = 0

    def predict(self, crops: Sequence[np.ndarray]) -> list[DefocusEstimate]:
        """One estimate per crop, from the truth at the stage's true position."""
        out = []
        for _ in crops:
            k = self.calls
            self.calls += 1
            forced = self.override(k) if self.override is not None else None
            if forced is not None:
                out.append(forced)
                continue
            x, y, z = self.scope.stage.true_position_um()
            structs = [b for b in self.scope.boxes_at(x, y) if b.kind == "structure"]
            if not structs:
                out.append(DefocusEstimate(float(self.rng.normal(0, 5)), 0.1))
                continue
            w, h = self.scope.camera.size_px
            target = min(structs, key=lambda b: float(np.hypot((b.box_px[0] + b.box_px[2] - w) / 2,
                                                               (b.box_px[1] + b.box_px[3] - h) / 2)))
            out.append(DefocusEstimate(z - target.focus_z_um + float(self.rng.normal(0, self.noise_um)),
                                       self.confidence))
        return out


def structures(scope: VirtualMicroscope) -> list[SlideObject]:
    """The slide's structures, by id."""
    return [o for o in scope.slide.objects if o.kind == "structure"]


def centre_on(scope: VirtualMicroscope, obj: SlideObject, z_um: float) -> tuple[int, int, int, int]:
    """Move the stage over ``obj`` at ``z_um`` (from below); return its roi as a detection would give it."""
    scope.stage.move_to_um(x=obj.center_um[0], y=obj.center_um[1])
    scope.stage.focus_to_um(z_um)
    box = next(b for b in scope.boxes_at(*obj.center_um) if b.id == obj.id)
    w, h = scope.camera.size_px
    x0, y0, x1, y1 = box.box_px
    return grow_rect((x0, y0, x1 - x0, y1 - y0), TARGET_MARGIN_PX, (h, w))


def find_field(scope: VirtualMicroscope, want: str) -> tuple[float, float]:
    """A stage x, y whose frame shows nothing (``want='empty'``) or only debris (``'debris'``)."""
    for y in range(600, 9400, 97):
        for x in range(600, 9400, 131):
            boxes = scope.boxes_at(float(x), float(y))
            if want == "empty" and not boxes:
                return float(x), float(y)
            if want == "debris" and len(boxes) >= 2 and all(b.kind == "debris" for b in boxes) \
                    and any(b.cls == "fibre" for b in boxes):
                return float(x), float(y)
    raise LookupError(f"no {want} field on slide {scope.seed}")
