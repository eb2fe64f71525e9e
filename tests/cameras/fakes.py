"""Fakes of the camera libraries that follow their documented behaviour, awkward parts first.

``FakeVideoCapture`` (cv2.VideoCapture with V4L2):
- ``set()`` returns True even when the driver ignores the value (V4L2 cameras keep their native size);
- ``read()`` returns ``(False, None)`` once the device is unplugged, and blocks while a hung device is "hung";
- frames are BGR and come in one buffer that the next read overwrites.

``FakeJetsonUtils`` (jetson_utils, python/bindings/PyVideo.cpp and PyCUDA.cpp):
- ``videoSource(uri, options=...)`` raises a plain Exception when the stream cannot be created;
- ``Capture(format, timeout)`` returns None on a timeout and raises Exception at the end of the stream;
- images live in a ring of ``numBuffers`` buffers reused by later captures; ``cudaToNumpy`` maps without a copy,
  and the content is only complete after ``cudaDeviceSynchronize()`` (before it, the fake shows a half-written
  buffer).
"""

from __future__ import annotations

import threading
import types
from typing import Any

import cv2
import numpy as np


def scene(i: int, h: int, w: int) -> np.ndarray:
    """A BGR test frame that differs per index (a dark square moving on a warm background)."""
    img = np.empty((h, w, 3), np.uint8)
    img[:] = (90, 160, 200)
    x = (7 * i) % max(1, w - 20)
    img[10:30, x:x + 20] = (20, 30, 40)
    return img


class FakeVideoCapture:
    devices: dict[Any, tuple[int, int]] = {}  # device -> native (width, height)
    unplugged: set[Any] = set()
    hung: set[Any] = set()
    release_hang = threading.Event()

    def __init__(self, device: Any, backend: int = 0) -> None:
        self.device = device
        self.backend = backend
        self._open = device in self.devices
        self._native = self.devices.get(device, (0, 0))
        self._i = 0
        self._buf = np.zeros((max(1, self._native[1]), max(1, self._native[0]), 3), np.uint8)
        self.props: dict[int, float] = {}

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return self._open

    def release(self) -> None:
        self._open = False

    def set(self, prop: int, value: float) -> bool:
        self.props[prop] = value
        return True  # V4L2 drivers accept and ignore what they cannot do

    def get(self, prop: int) -> float:
        if prop == cv2.CAP_PROP_FRAME_WIDTH:
            return float(self._native[0])
        if prop == cv2.CAP_PROP_FRAME_HEIGHT:
            return float(self._native[1])
        return float(self.props.get(prop, 0.0))

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.device in self.hung:
            self.release_hang.wait(30)
        if not self._open or self.device in self.unplugged:
            return False, None
        self._buf[:] = scene(self._i, self._native[1], self._native[0])  # one buffer, overwritten each read
        self._i += 1
        return True, self._buf


class _CudaImage:
    def __init__(self, buf: np.ndarray) -> None:
        self.buf = buf
        self.shape = buf.shape
        self.width = buf.shape[1]
        self.height = buf.shape[0]


def make_jetson_utils(native: tuple[int, int] = (640, 480), frames: int | None = None,
                      timeouts: set[int] | None = None, fail_uri: str = "csi://9") -> Any:
    """A fake ``jetson_utils`` module; ``frames``: end of stream after that many; ``timeouts``: capture indices
    that time out."""
    mod = types.SimpleNamespace()
    state = {"pending": None, "synced": 0}
    timeouts = timeouts or set()

    class videoSource:  # noqa: N801 - jetson_utils' name
        def __init__(self, uri: str, argv: list[str] | None = None, options: dict[str, Any] | None = None) -> None:
            if uri == fail_uri:
                raise Exception(f"jetson.utils -- failed to create videoSource device ({uri})")  # noqa: TRY002
            opts = options or {}
            self.uri = uri
            self.w, self.h = native  # like V4L2, a camera may not honour the requested size
            self.n = int(opts.get("numBuffers", 4))
            self.ring = [np.zeros((self.h, self.w, 1), np.uint8) for _ in range(self.n)]
            self.i = 0
            self.closed = False

        def GetWidth(self) -> int:  # noqa: N802
            return self.w

        def GetHeight(self) -> int:  # noqa: N802
            return self.h

        def Close(self) -> None:  # noqa: N802
            self.closed = True

        def Capture(self, format: str = "rgb8", timeout: int = 1000, stream: int = 0) -> Any:  # noqa: A002, N802
            if self.closed:
                raise Exception("jetson.utils -- videoSource failed to capture image")  # noqa: TRY002
            i = self.i
            self.i += 1
            if i in timeouts:
                return None
            if frames is not None and i >= frames:
                raise Exception("jetson.utils -- videoSource failed to capture image")  # noqa: TRY002
            buf = self.ring[i % self.n]
            gray = cv2.cvtColor(scene(i, self.h, self.w), cv2.COLOR_BGR2GRAY)
            buf[:, :, 0] = 0  # the GPU has started writing: complete only after cudaDeviceSynchronize()
            buf[: self.h // 2, :, 0] = gray[: self.h // 2]
            state["pending"] = (buf, gray)
            return _CudaImage(buf)

    def cudaDeviceSynchronize() -> None:  # noqa: N802
        if state["pending"] is not None:
            buf, gray = state["pending"]
            buf[:, :, 0] = gray
            state["pending"] = None
        state["synced"] += 1

    def cudaToNumpy(img: _CudaImage) -> np.ndarray:  # noqa: N802
        return img.buf  # mapped, not copied

    mod.videoSource = videoSource
    mod.cudaDeviceSynchronize = cudaDeviceSynchronize
    mod.cudaToNumpy = cudaToNumpy
    mod.state = state
    return mod
