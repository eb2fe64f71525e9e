"""Captures the scan can trust: camera errors and black or saturated frames are retried, then one clear error.

:class:`CheckedCamera` wraps the scan's :class:`~appliance.hardware.camera.base.Camera` (the runner, the
focuser and the calibration all capture through it). A capture that raises ``CameraError`` (a timeout, an
unplugged camera: the drivers raise it and reopen the device on the next capture) or returns a frame that
:func:`frame_fault` rejects is tried again ``retries`` times, ``retry_wait_s`` apart; then
:class:`CaptureFailed` (a ``CameraError``) names every attempt. The runner records it against the field.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from appliance.hardware.camera.base import Camera, CameraError, CameraWrapper, Frame

# A black frame (lamp off, shutter shut, a dead sensor link sending zeros): almost no pixel above this level.
BLACK_LEVEL = 8
# A saturated frame (lamp or exposure far too high): at least half the pixels clipped. A bright-field frame
# of a slide is mostly mid-grey background; structures and debris only darken it.
SATURATED_LEVEL = 254
MOSTLY = 0.99
HALF = 0.5


class CaptureFailed(CameraError):
    """Every attempt at one capture failed (the message lists them)."""


def frame_fault(frame: Frame) -> str | None:
    """Why ``frame`` cannot be used (``black frame ...``, ``saturated frame ...``), or None if it can."""
    img = frame.image
    n = img.size
    dark = np.count_nonzero(img <= BLACK_LEVEL)
    if dark >= MOSTLY * n:
        return f"black frame ({100 * dark / n:.1f} % of pixels <= {BLACK_LEVEL})"
    clipped = np.count_nonzero(img >= SATURATED_LEVEL)
    if clipped >= HALF * n:
        return f"saturated frame ({100 * clipped / n:.1f} % of pixels >= {SATURATED_LEVEL})"
    return None


class CheckedCamera(CameraWrapper):
    """A camera whose ``capture`` retries camera errors and bad frames, then raises :class:`CaptureFailed`.

    Parameters
    ----------
    inner : Camera
        The open camera (opening and closing stay with its owner).
    retries : int
        Attempts after the first.
    retry_wait_s : float
        Seconds before each retry.
    on_retry : callable, optional
        Called with each failed attempt's reason before its retry (for logs and counts).
    """

    def __init__(self, inner: Camera, retries: int = 2, retry_wait_s: float = 0.5,
                 on_retry: Callable[[str], None] | None = None) -> None:
        super().__init__(inner)
        self.retries = retries
        self.retry_wait_s = retry_wait_s
        self.on_retry = on_retry or (lambda reason: None)

    def capture(self) -> Frame:
        """One good frame, or :class:`CaptureFailed` after ``1 + retries`` attempts."""
        reasons: list[str] = []
        for attempt in range(self.retries + 1):
            if attempt:
                self.on_retry(reasons[-1])
                time.sleep(self.retry_wait_s)
            try:
                frame = self.inner.capture()
            except CameraError as exc:
                reasons.append(f"{type(exc).__name__}: {exc}")
                continue
            fault = frame_fault(frame)
            if fault is None:
                return frame
            reasons.append(fault)
        raise CaptureFailed(f"capture failed {len(reasons)} times: " + "; ".join(reasons))
