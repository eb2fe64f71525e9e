"""A camera that fails on cue, wrapping a working one, as the real drivers fail (``appliance/hardware/camera``).

The drivers' documented behaviour, which this follows: ``capture`` raises ``CameraError`` when no frame comes
within ``timeout_s`` (after waiting that long), or when the device is gone (unplugged: the driver returns no
frame, and reopening it fails until it is back); a camera that failed is reopened on the next capture, so it
works again as soon as the device does. A bad frame is not an error to a driver: a black frame (lamp off,
shutter shut) or a saturated one (lamp or exposure far too high) comes back as a normal ``Frame``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np

from appliance.hardware.camera.base import Camera, CameraError, CameraWrapper, Frame

FAULTS = ("timeout", "black", "saturated", "gone")


class FaultyCamera(CameraWrapper):
    """Wraps ``inner``; capture number ``k`` (from 0) fails as ``script[k]`` says, or ``gone_from`` on.

    Parameters
    ----------
    inner : Camera
        A working, open camera.
    script : mapping of int to str
        Capture index -> one of ``FAULTS``.
    gone_from : int, optional
        From this capture on the camera is unplugged for good.
    timeout_s : float
        How long a ``timeout`` capture waits before it raises.
    """

    def __init__(self, inner: Camera, script: Mapping[int, str] | None = None, gone_from: int | None = None,
                 timeout_s: float = 0.02) -> None:
        for k, v in (script or {}).items():
            if v not in FAULTS:
                raise ValueError(f"capture {k}: fault must be one of {FAULTS}, got {v!r}")
        super().__init__(inner)
        self.script, self.gone_from, self.timeout_s = dict(script or {}), gone_from, timeout_s
        self.calls = 0
        self.injected: list[str] = []

    def capture(self) -> Frame:
        k = self.calls
        self.calls += 1
        fault = "gone" if self.gone_from is not None and k >= self.gone_from else self.script.get(k)
        if fault is not None:
            self.injected.append(fault)
        if fault == "timeout":
            time.sleep(self.timeout_s)
            raise CameraError(f"faulty camera: no frame within {self.timeout_s} s")
        if fault == "gone":
            raise CameraError("faulty camera: cannot open /dev/video0 (missing, busy, or no permission)")
        frame = self.inner.capture()
        if fault == "black":
            return Frame(np.zeros_like(frame.image), frame.position, frame.time_s, frame.exposure_ms, frame.meta)
        if fault == "saturated":
            img = np.full_like(frame.image, 255)
            img[: img.shape[0] // 4] = frame.image[: img.shape[0] // 4]  # a quarter still shows the slide
            return Frame(img, frame.position, frame.time_s, frame.exposure_ms, frame.meta)
        return frame
