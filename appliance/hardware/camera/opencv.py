"""USB and V4L2 cameras through OpenCV's ``VideoCapture`` (the common USB microscope camera).

What a real V4L2 camera does, and this class allows for:
- ``set()`` of width, height, FPS or exposure may return True and still be ignored by the driver: the size is
  read back after opening and frames of another size are an error, not silently used.
- ``read()`` returns ``(False, None)`` when the device is unplugged, and may block for seconds first: reads run
  under :func:`call_with_timeout`, and a camera that timed out or failed is reopened before the next capture.
- The first frames after opening or after an exposure change are often dark or from the old setting: ``warmup``
  frames are read and dropped at open.
- V4L2's manual exposure (``CAP_PROP_AUTO_EXPOSURE`` = 1) is in units of 100 µs (``exposure_time_absolute``).
- The driver streams into a ring of buffers and hands out what it holds, frames exposed before the call (after a
  stage move, frames of the move): each capture drops frames until one delivered ``exposure + latency_ms`` after
  the call (:mod:`appliance.hardware.camera.fresh`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from appliance.hardware.camera.base import Camera, CameraError, Frame
from appliance.hardware.camera.convert import call_with_timeout, to_gray
from appliance.hardware.camera.fresh import DEFAULT_LATENCY_MS, check_latency_ms, fresh_gate_s, read_fresh
from appliance.hardware.stage.base import Position

NO_POSITION = Position(float("nan"), float("nan"), float("nan"))
PositionSource = Callable[[], Position]


class OpenCVCamera(Camera):
    """A camera opened with ``cv2.VideoCapture`` (V4L2 on Linux, or any backend given).

    Parameters
    ----------
    device : str or int
        ``/dev/videoN``, an index, or (with ``backend=cv2.CAP_GSTREAMER``) a pipeline string.
    width, height : int
        Requested frame size; the size the driver really delivers is checked at open.
    fps : float
        Requested frame rate.
    exposure_ms : float or None
        Manual exposure in milliseconds; None leaves the camera's automatic exposure on.
    timeout_s : float
        Longest wait for one frame.
    position_source : callable, optional
        Returns the stage position to stamp on each frame (the scan passes the stage's last known position).
    capture_factory : callable, optional
        ``cv2.VideoCapture`` unless a test passes a fake with the same API.
    warmup : int
        Frames read and dropped after opening.
    latency_ms : float
        The longest the camera takes from the end of an exposure to delivering the frame; each capture takes the
        first frame delivered an exposure plus this after the call (0: the first frame read).
    clock : callable
        Monotonic seconds (tests pass the fake driver's clock).
    """

    def __init__(self, device: str | int = 0, width: int = 640, height: int = 480, fps: float = 30.0,
                 exposure_ms: float | None = None, timeout_s: float = 2.0, *,
                 backend: int = cv2.CAP_V4L2, position_source: PositionSource | None = None,
                 capture_factory: Callable[..., Any] | None = None, warmup: int = 2, name: str = "opencv camera",
                 latency_ms: float = DEFAULT_LATENCY_MS, clock: Callable[[], float] = time.monotonic):
        if not (16 <= width <= 8192 and 16 <= height <= 8192):
            raise ValueError(f"width and height must be 16..8192 pixels, got {width}x{height}")
        if not 0 < fps <= 240:
            raise ValueError(f"fps must be in (0, 240], got {fps}")
        if exposure_ms is not None and not 0 < exposure_ms <= 10000:
            raise ValueError(f"exposure_ms must be in (0, 10000], got {exposure_ms}")
        if not 0 < timeout_s <= 3600:
            raise ValueError(f"timeout_s must be in (0, 3600], got {timeout_s}")
        self.latency_ms = check_latency_ms(latency_ms)
        self._clock = clock
        self.device = int(device) if isinstance(device, str) and device.isdigit() else device
        self._want = (width, height)
        self._fps = fps
        self._exposure_ms = exposure_ms
        self.timeout_s = timeout_s
        self._backend = backend
        self._position = position_source or (lambda: NO_POSITION)
        self._factory = capture_factory or cv2.VideoCapture
        self._warmup = warmup
        self.name = name
        self._cap: Any = None
        self._size: tuple[int, int] | None = None
        self._broken = False

    # -- Camera interface -------------------------------------------------------------------------------------

    def open(self) -> None:
        """Open the device, apply size, rate and exposure, read back the real size, drop warm-up frames."""
        if self._cap is not None:
            return
        cap = call_with_timeout(lambda: self._factory(self.device, self._backend), self.timeout_s + 5.0,
                                f"{self.name} {self.device} open")
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"{self.name}: cannot open {self.device!r} (missing, busy, or no permission: "
                              "is the user in group video?)")
        self._cap = cap
        self._configure()
        for _ in range(self._warmup):
            self._read_raw()
        self._broken = False

    def close(self) -> None:
        """Release the device; safe twice."""
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()

    def capture(self) -> Frame:
        """One gray frame; reopens a camera that failed before. Raises CameraError on timeout or bad data."""
        if self._cap is None and not self._broken:
            raise CameraError(f"{self.name} is not open: call open() or use it in a with block")
        if self._broken:
            self.close()
            self.open()
        position = self._position()
        t0 = self._clock()
        gate = fresh_gate_s(self.exposure_ms, self._fps, self.latency_ms)
        try:
            raw, dropped = read_fresh(self._read_raw, gate, self._clock)
        except CameraError:
            self._broken = True
            raise
        image = to_gray(raw, "bgr", self.name)
        if self._size is not None and (image.shape[1], image.shape[0]) != self._size:
            self._broken = True
            raise CameraError(f"{self.name}: frame is {image.shape[1]}x{image.shape[0]}, the camera said "
                              f"{self._size[0]}x{self._size[1]}")
        return Frame(image=image, position=position, time_s=t0,
                     exposure_ms=self._exposure_ms if self._exposure_ms is not None else float("nan"),
                     meta={"source": self.name, "device": str(self.device), "dropped_frames": dropped})

    @property
    def size_px(self) -> tuple[int, int]:
        """(width, height) the driver really delivers (the requested size before open)."""
        return self._size or self._want

    @property
    def exposure_ms(self) -> float:
        """Manual exposure in ms (NaN while the camera's automatic exposure is on)."""
        return self._exposure_ms if self._exposure_ms is not None else float("nan")

    @exposure_ms.setter
    def exposure_ms(self, value: float) -> None:
        if not 0 < value <= 10000:
            raise ValueError(f"exposure_ms must be in (0, 10000], got {value}")
        self._exposure_ms = float(value)
        if self._cap is not None:
            self._apply_exposure()  # the next capture's gate drops the frames exposed before this

    # -- internals --------------------------------------------------------------------------------------------

    def _configure(self) -> None:
        cap = self._cap
        if self._backend == cv2.CAP_V4L2:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self._want[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self._want[1])
            cap.set(cv2.CAP_PROP_FPS, self._fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not one queued before the stage moved
            if self._exposure_ms is not None:
                self._apply_exposure()
        w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self._size = (w, h) if w > 0 and h > 0 else None

    def _apply_exposure(self) -> None:
        if self._backend != cv2.CAP_V4L2 or self._exposure_ms is None:
            return
        self._cap.set(cv2.CAP_PROP_AUTO_EXPOSURE, 1)  # V4L2_EXPOSURE_MANUAL
        self._cap.set(cv2.CAP_PROP_EXPOSURE, self._exposure_ms * 10.0)  # units of 100 µs

    def _read_raw(self) -> np.ndarray:
        cap = self._cap

        def read() -> np.ndarray:
            ok, img = cap.read()
            if not ok or img is None:
                raise CameraError(f"{self.name} {self.device!r}: the driver returned no frame (unplugged?)")
            return img

        return call_with_timeout(read, self.timeout_s, f"{self.name} {self.device!r}")
