"""Cameras through jetson-utils' ``videoSource`` (CSI ``csi://0``, V4L2 ``v4l2:///dev/video0``, files, RTSP).

An adapter for a library that only exists on a Jetson; tested here against a fake that follows jetson-utils'
documented Python API (``python/bindings/PyVideo.cpp``, ``PyCUDA.cpp``), awkward parts included:
- ``videoSource(uri, options={...})`` raises a plain ``Exception`` when the stream cannot be created;
- ``Capture(format=..., timeout=ms)`` returns ``None`` on a timeout and raises ``Exception`` on an error or at the
  end of a stream;
- the returned ``cudaImage`` lives in the source's ring of ``numBuffers`` buffers and is overwritten by a later
  capture; ``cudaToNumpy`` maps it without a copy, and the GPU may still be writing it until
  ``cudaDeviceSynchronize()``. So: synchronise, then copy (``to_gray`` always copies);
- ``Capture`` hands out the newest frame at once when it has not been read yet, however old: after a stage move,
  a frame of the move. Each capture drops frames until one delivered an exposure (a frame period: videoSource
  has no exposure control) plus ``latency_ms`` after the call (:mod:`appliance.hardware.camera.fresh`);
- a ``csi://`` source is gstCamera's own ``nvarguscamerasrc`` pipeline, which sets no ISP property: the Argus
  ISP's temporal noise reduction and edge enhancement stay on (see :mod:`appliance.hardware.camera.gstreamer`),
  and on JetPack 5 and later gstCamera turns the frame 180 degrees unless asked to flip it (the scan's
  calibration reads either). Opening one logs a warning naming ``camera.kind: gstreamer``, which turns both off.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from appliance.hardware.camera.base import Camera, CameraError, Frame
from appliance.hardware.camera.convert import to_gray
from appliance.hardware.camera.fresh import DEFAULT_LATENCY_MS, check_latency_ms, fresh_gate_s, read_fresh
from appliance.hardware.camera.opencv import NO_POSITION, PositionSource

_log = logging.getLogger(__name__)


def _import_jetson_utils() -> ModuleType:
    for name in ("jetson_utils", "jetson.utils"):  # the second is the pre-2023 package name
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise CameraError("jetson camera: jetson_utils is not installed (build jetson-inference on the Jetson; "
                      "see the README), or use camera.kind: opencv / gstreamer")


class JetsonCamera(Camera):
    """Frames from ``jetson_utils.videoSource``, captured as gray8 on the GPU.

    Parameters
    ----------
    uri : str
        A videoSource URI: ``csi://0``, ``v4l2:///dev/video0``, a file or folder.
    width, height, fps : requested stream format.
    timeout_s : float
        Longest wait for one frame (``Capture``'s timeout).
    jetson_utils : module, optional
        The module to use (tests pass a fake); imported on open otherwise.
    latency_ms : float
        The longest the camera takes from the end of an exposure to delivering the frame (0: the first frame).
    clock : callable
        Monotonic seconds (tests pass the fake's clock).
    """

    def __init__(self, uri: str = "csi://0", width: int = 640, height: int = 480, fps: float = 30.0,
                 timeout_s: float = 2.0, *, position_source: PositionSource | None = None,
                 jetson_utils: ModuleType | Any | None = None, num_buffers: int = 4,
                 latency_ms: float = DEFAULT_LATENCY_MS, clock: Callable[[], float] = time.monotonic):
        if not (16 <= width <= 8192 and 16 <= height <= 8192):
            raise ValueError(f"width and height must be 16..8192 pixels, got {width}x{height}")
        if not 0 < timeout_s <= 3600:
            raise ValueError(f"timeout_s must be in (0, 3600], got {timeout_s}")
        if not 0 < fps <= 240:
            raise ValueError(f"fps must be in (0, 240], got {fps}")
        self.latency_ms = check_latency_ms(latency_ms)
        self._clock = clock
        self.uri = uri
        self._want = (width, height)
        self._fps = fps
        self.timeout_s = timeout_s
        self._position = position_source or (lambda: NO_POSITION)
        self._ju = jetson_utils
        self._num_buffers = num_buffers
        self._source: Any = None
        self._size: tuple[int, int] | None = None

    def open(self) -> None:
        """Create the videoSource stream."""
        if self._source is not None:
            return
        ju = self._ju if self._ju is not None else _import_jetson_utils()
        self._ju = ju
        options = {"width": self._want[0], "height": self._want[1], "framerate": float(self._fps),
                   "numBuffers": self._num_buffers, "zeroCopy": True}
        try:
            self._source = ju.videoSource(self.uri, options=options)
        except Exception as exc:  # jetson_utils raises plain Exception
            raise CameraError(f"jetson camera: cannot open {self.uri!r}: {exc}") from None
        self._size = (int(self._source.GetWidth()), int(self._source.GetHeight()))
        if self.uri.startswith("csi://"):
            _log.warning("jetson camera %s: the ISP's temporal noise reduction and edge enhancement stay on in "
                         "videoSource (each frame blends the ones before it, edges are sharpened); camera.kind: "
                         "gstreamer turns them off", self.uri)

    def close(self) -> None:
        """Stop the stream; safe twice."""
        src, self._source = self._source, None
        if src is not None:
            src.Close()

    def capture(self) -> Frame:
        """One gray frame, copied out of the source's ring buffer."""
        if self._source is None:
            raise CameraError("jetson camera is not open: call open() or use it in a with block")
        position = self._position()
        t0 = self._clock()
        img, dropped = read_fresh(self._capture_one, fresh_gate_s(float("nan"), self._fps, self.latency_ms),
                                  self._clock)
        ju: Any = self._ju
        ju.cudaDeviceSynchronize()  # the converter may still be writing the mapped buffer
        image = to_gray(ju.cudaToNumpy(img), "rgb", "jetson camera")  # copies: the ring buffer is reused
        return Frame(image=image, position=position, time_s=t0, exposure_ms=float("nan"),
                     meta={"source": "jetson camera", "uri": self.uri, "dropped_frames": dropped})

    def _capture_one(self) -> Any:
        """One ``Capture`` as a cudaImage; CameraError on an error or a timeout."""
        try:
            img = self._source.Capture(format="gray8", timeout=int(self.timeout_s * 1000))
        except Exception as exc:
            raise CameraError(f"jetson camera {self.uri!r}: capture failed: {exc}") from None
        if img is None:
            raise CameraError(f"jetson camera {self.uri!r}: no frame within {self.timeout_s:g} s")
        return img

    @property
    def size_px(self) -> tuple[int, int]:
        """(width, height) of the stream."""
        return self._size or self._want

    @property
    def exposure_ms(self) -> float:
        """No exposure control in videoSource: NaN (the camera's automatic exposure)."""
        return float("nan")

    @exposure_ms.setter
    def exposure_ms(self, value: float) -> None:
        raise CameraError("jetson camera: videoSource has no exposure control; use camera.kind: gstreamer")
