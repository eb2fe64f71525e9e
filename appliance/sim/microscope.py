"""The virtual microscope: one seeded slide, stage and camera on one virtual clock, plus ground truth.

>>> from appliance.sim.microscope import VirtualMicroscope
>>> scope = VirtualMicroscope(seed=3)
>>> with scope.stage, scope.camera:
...     _ = scope.stage.move_to_um(x=5000, y=5000, z=95)
...     frame = scope.camera.capture()
>>> boxes = scope.boxes_in_view(frame)   # what is in that frame, in pixels, with class
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from appliance.hardware.camera.base import Frame
from appliance.sim.camera import SimCamera, frame_rect_um, pixel_axes, slide_to_pixel
from appliance.sim.capture import CameraChainParams
from appliance.sim.clock import VirtualClock
from appliance.sim.optics import OpticsParams
from appliance.sim.sensor import SensorParams
from appliance.sim.slide import Slide, SlideParams, make_slide
from appliance.sim.stage import SimStage, SimStageParams


@dataclass(frozen=True)
class ViewBox:
    """One object in a frame.

    Attributes
    ----------
    id : int
        The object's id in the slide's ground truth.
    kind : str
        ``"structure"`` or ``"debris"``.
    cls : str
        Structure type or debris type.
    box_px : (int, int, int, int)
        ``xmin, ymin, xmax, ymax`` in pixels (exclusive max), clipped to the frame.
    complete : bool
        True when the whole footprint lies inside the frame.
    focus_z_um : float
        Stage z at which the object is in focus.
    """

    id: int
    kind: str
    cls: str
    box_px: tuple[int, int, int, int]
    complete: bool
    focus_z_um: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"id": self.id, "kind": self.kind, "cls": self.cls, "box_px": list(self.box_px),
                "complete": self.complete, "focus_z_um": self.focus_z_um}


class VirtualMicroscope:
    """Slide + SimStage + SimCamera built from one seed, sharing a :class:`VirtualClock`.

    Parameters
    ----------
    seed : int
        Seeds the slide, the stage's jitter and the camera's lamp field and noise.
    slide : SlideParams, optional
        Slide parameters (defaults: 10 x 10 mm, 20 structures).
    stage : SimStageParams, optional
        Stage mechanics.
    optics : OpticsParams, optional
        Objective and condenser.
    sensor : SensorParams, optional
        Sensor and illumination.
    realtime : bool
        Moves and exposures also take wall-clock time.
    chain : CameraChainParams, optional
        The camera's capture chain (default: a colour camera; ``appliance.sim.capture.PRESETS``).
    """

    def __init__(self, seed: int = 0, slide: SlideParams | None = None, stage: SimStageParams | None = None,
                 optics: OpticsParams | None = None, sensor: SensorParams | None = None,
                 realtime: bool = False, chain: CameraChainParams | None = None) -> None:
        self.seed = int(seed)
        self.clock = VirtualClock(realtime=realtime)
        self.slide: Slide = make_slide(self.seed, slide)
        self.stage = SimStage(self.clock, stage, seed=self.seed)
        self.camera = SimCamera(self.stage, self.slide, optics, sensor, seed=self.seed, chain=chain)

    def truth(self) -> dict[str, Any]:
        """Ground truth of the slide (JSON-ready) plus the imaging parameters."""
        t = dict(self.slide.truth())
        t["imaging"] = {"um_per_px": self.camera.um_per_px, "size_px": list(self.camera.size_px),
                        "optics": vars(self.camera.optics).copy(), "sensor": vars(self.camera.sensor).copy(),
                        "chain": vars(self.camera.chain_params).copy()}
        return t

    def boxes_at(self, x_um: float, y_um: float) -> list[ViewBox]:
        """Pixel boxes of every object in a frame whose centre is at stage (true) x, y.

        Parameters
        ----------
        x_um, y_um : float
            The stage's true position when the frame was taken, µm.

        Returns
        -------
        list of ViewBox
            Ordered by id; boxes come from each object's footprint (its nonzero map region).
        """
        w, h = self.camera.size_px
        s = self.camera.um_per_px
        axes = pixel_axes(self.camera.sensor.rotation_deg, bool(self.camera.sensor.mirror))
        x0, y0, x1, y1 = frame_rect_um((x_um, y_um), (w, h), s, axes)
        out = []
        for o in sorted(self.slide.objects_in_rect(x0, y0, x1, y1), key=lambda o: o.id):
            fw, fh = o.footprint_um
            # Pixel edge coordinates: pixel u spans [u - 0.5, u + 0.5] around its centre.
            if axes is None:
                ua = (o.center_um[0] - fw / 2 - x0) / s
                ub = (o.center_um[0] + fw / 2 - x0) / s
                va = (o.center_um[1] - fh / 2 - y0) / s
                vb = (o.center_um[1] + fh / 2 - y0) / s
            else:  # a turned camera: the box around the footprint's four corners as the frame shows them
                cx = o.center_um[0] + np.array([-fw, fw, -fw, fw]) / 2
                cy = o.center_um[1] + np.array([-fh, -fh, fh, fh]) / 2
                us, vs = slide_to_pixel(cx, cy, (x_um, y_um), (w, h), s, axes)
                ua, ub = float(np.min(us)) + 0.5, float(np.max(us)) + 0.5
                va, vb = float(np.min(vs)) + 0.5, float(np.max(vs)) + 0.5
            box = (max(0, int(ua)), max(0, int(va)), min(w, int(ub + 0.999)), min(h, int(vb + 0.999)))
            if box[2] <= box[0] or box[3] <= box[1]:
                continue
            complete = ua >= 0 and va >= 0 and ub <= w and vb <= h
            out.append(ViewBox(o.id, o.kind, o.cls, box, complete, o.focus_z_um))
        return out

    def boxes_in_view(self, frame: Frame) -> list[ViewBox]:
        """Pixel boxes of every object in ``frame`` (uses the true position the camera recorded)."""
        true = frame.meta.get("true_position_um")
        if not isinstance(true, tuple):
            raise ValueError("frame has no true_position_um in its meta: it was not taken by this simulator")
        return self.boxes_at(float(true[0]), float(true[1]))

    def overview(self, um_per_px: float = 10.0) -> np.ndarray:
        """A map of the whole slide: every object imaged in focus, shrunk to ``um_per_px``.

        Parameters
        ----------
        um_per_px : float
            Scale of the map, 1..200 µm per pixel.

        Returns
        -------
        (H, W) ndarray of uint8
            Clear glass at 200, objects darker; no noise and no vignetting.
        """
        if not (isinstance(um_per_px, (int, float)) and 1.0 <= um_per_px <= 200.0):
            raise ValueError(f"um_per_px must be a number in [1, 200], got {um_per_px!r}")
        p = self.slide.params
        w, h = int(math.ceil(p.width_um / um_per_px)), int(math.ceil(p.height_um / um_per_px))
        out = np.ones((h, w), dtype=np.float32)
        r = self.camera.renderer
        for o in self.slide.objects:
            spec, img = r.patch(o, 0.0)
            f = spec.pitch_um[0] / um_per_px
            small = cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
            # INTER_AREA keeps the mean: a structure smaller than a pixel still shows as a grey dot.
            u0 = int(round(spec.origin_um[0] / um_per_px))
            v0 = int(round(spec.origin_um[1] / um_per_px))
            sh, sw = small.shape
            a0, b0 = max(0, v0), max(0, u0)
            a1, b1 = min(h, v0 + sh), min(w, u0 + sw)
            if a1 > a0 and b1 > b0:
                out[a0:a1, b0:b1] *= small[a0 - v0:a1 - v0, b0 - u0:b1 - u0]
        return np.ascontiguousarray(np.clip(out * 200.0, 0, 255).round().astype(np.uint8))
