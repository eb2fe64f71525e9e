"""Frames exposed after the call: a streaming camera hands out frames it took before it.

A USB camera read through OpenCV (V4L2), a CSI camera through a GStreamer ``appsink`` and a jetson-utils
``videoSource`` all stream: the sensor exposes frame after frame whether anyone reads them or not, and the first
read after a stage move returns a frame the driver already holds, exposed while the stage was still moving or
before it moved at all.
- V4L2 fills a ring of buffers (OpenCV asks for 4; ``CAP_PROP_BUFFERSIZE`` is a request a driver may round up)
  and, when every buffer is full, drops the *newest* frames: after a one-second move the ring holds the frames of
  that second's start.
- ``appsink drop=true max-buffers=1`` and jetson-utils keep the newest frame only, but hand it out at once if it
  has not been read: one frame from before the call.
- A frame reaches the host some time after its exposure ends (readout, USB transfer, the ISP, decoding): tens of
  milliseconds, more for MJPEG at high resolution.

:func:`read_fresh` reads and drops frames until one is delivered ``exposure + latency`` after the call began: a
frame delivered then began its exposure after the call, for any camera whose latency (end of exposure to
delivery) is within ``latency``. Frames queued before the call are delivered at once, before that gate, and are
dropped. The camera's frame rate does not enter: the gate is a time, however fast the frames come.

The Camera contract (``Camera.capture``: expose and return one frame; ``Frame.position``: the stage where the
exposure started) depends on it: an autofocus that moves z and reads the frame before the move would read its
focus curve one step late, and a calibration would measure no shift at all.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: The longest a camera is assumed to take from the end of an exposure to handing the frame over (USB cameras:
#: 30-100 ms; a camera that needs more says so in its config, ``camera.latency_ms``).
DEFAULT_LATENCY_MS = 100.0
#: The largest latency a config may state.
MAX_LATENCY_MS = 5000.0


def fresh_gate_s(exposure_ms: float, fps: float, latency_ms: float) -> float:
    """Seconds after a call before a delivered frame surely began its exposure after the call.

    ``exposure_ms`` NaN (the camera's automatic exposure) counts as one frame period at ``fps``, the longest an
    exposure can be at that rate. A ``latency_ms`` of 0 turns the gate off: the first frame read is taken (a
    camera triggered per capture, or a source of files).
    """
    if latency_ms <= 0:
        return 0.0
    exposure_s = exposure_ms / 1000.0 if math.isfinite(exposure_ms) and exposure_ms > 0 else 1.0 / fps
    return exposure_s + latency_ms / 1000.0


def check_latency_ms(latency_ms: float) -> float:
    """``latency_ms`` as a float, or ValueError naming the allowed range."""
    if isinstance(latency_ms, bool) or not isinstance(latency_ms, (int, float)) \
            or not 0.0 <= latency_ms <= MAX_LATENCY_MS:
        raise ValueError(f"latency_ms must be in [0, {MAX_LATENCY_MS:g}] ms (0 takes the first frame read), "
                         f"got {latency_ms!r}")
    return float(latency_ms)


def read_fresh(read: Callable[[], T], gate_s: float,
               clock: Callable[[], float] = time.monotonic) -> tuple[T, int]:
    """The first frame from ``read`` delivered ``gate_s`` or more after this call, and how many were dropped.

    ``read`` raises on a failed or timed-out read (each read has its own deadline), so the loop ends within the
    gate plus one read's timeout.
    """
    t0 = clock()
    dropped = 0
    while True:
        item = read()
        if clock() - t0 >= gate_s:
            return item, dropped
        dropped += 1
