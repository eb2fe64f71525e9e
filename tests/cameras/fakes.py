"""Fakes of the camera libraries that follow their documented behaviour, awkward parts first.

``FakeVideoCapture`` (cv2.VideoCapture with V4L2):
- ``set()`` returns True even when the driver ignores the value (V4L2 cameras keep their native size, and a
  ``CAP_PROP_BUFFERSIZE`` of 1 is rounded up to the driver's least ring of 2 buffers);
- ``read()`` returns ``(False, None)`` once the device is unplugged, and blocks while a hung device is "hung";
- frames are BGR and come in one buffer that the next read overwrites;
- the sensor streams whether anyone reads or not, on :class:`FakeClock`: frame k is exposed for ``exposure_s``
  and delivered ``latency_s`` after its exposure ends, one every ``period_s``, into the ring; a full ring drops
  the *newest* frames (V4L2 has no free buffer to fill), and ``read()`` hands out the oldest held frame at once
  (plus ``decode_s``) or waits for the next. What a frame shows is ``world(exposure start, h, w)`` when a test
  sets ``world`` (the slide under a moving stage), else :func:`scene` of its index.
- opened on an ``nvarguscamerasrc`` pipeline, the frames pass the Argus ISP as that element's documentation has it:
  temporal noise reduction and edge enhancement are on unless the pipeline sets ``tnr-mode=0`` / ``ee-mode=0``
  (both default to 1). Argus documents the modes, not the filters: the fake's noise reduction averages every
  sensor frame half and half with the output before it (read or not, as an ISP runs on every frame), and its
  edge enhancement is an unsharp mask (amount 0.5, sigma 1 px).

``FakeJetsonUtils`` (jetson_utils, python/bindings/PyVideo.cpp and PyCUDA.cpp):
- ``videoSource(uri, options=...)`` raises a plain Exception when the stream cannot be created;
- with a ``clock``, the stream runs on it like the V4L2 fake's, and ``Capture`` hands out the newest delivered
  frame at once if it was not handed out before, however old, else waits for the next (gstCamera's ring);
- ``Capture(format, timeout)`` returns None on a timeout and raises Exception at the end of the stream;
- images live in a ring of ``numBuffers`` buffers reused by later captures; ``cudaToNumpy`` maps without a copy,
  and the content is only complete after ``cudaDeviceSynchronize()`` (before it, the fake shows a half-written
  buffer).
"""

from __future__ import annotations

import re
import threading
import types
from collections.abc import Callable
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


class FakeClock:
    """Monotonic seconds that move only when a fake driver waits or decodes, or a test advances them."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


World = Callable[[float, int, int], np.ndarray]  # (exposure start, height, width) -> BGR frame


class _Stream:
    """A sensor streaming on a clock: frame k's exposure start and delivery time."""

    def __init__(self, clock: FakeClock, period_s: float, exposure_s: float, latency_s: float) -> None:
        self.clock, self.period_s, self.exposure_s, self.latency_s = clock, period_s, exposure_s, latency_s
        self.t0 = clock.now

    def delivered(self, k: int) -> float:
        return self.t0 + (k + 1) * self.period_s

    def exposed(self, k: int) -> float:
        return self.delivered(k) - self.latency_s - self.exposure_s

    def last_delivered(self) -> int:
        """The newest frame delivered by now (-1: none yet)."""
        return int(np.floor((self.clock.now - self.t0) / self.period_s + 1e-9)) - 1


class FakeVideoCapture:
    devices: dict[Any, tuple[int, int]] = {}  # device -> native (width, height)
    unplugged: set[Any] = set()
    hung: set[Any] = set()
    release_hang = threading.Event()
    clock = FakeClock()
    period_s = 1 / 30
    exposure_s = 0.010
    latency_s = 0.040
    decode_s = 0.004
    min_buffers = 2
    world: World | None = None

    def __init__(self, device: Any, backend: int = 0) -> None:
        self.device = device
        self.backend = backend
        self._open = device in self.devices
        self._native = self.devices.get(device, (0, 0))
        self._i = 0
        self._buf = np.zeros((max(1, self._native[1]), max(1, self._native[0]), 3), np.uint8)
        self.props: dict[int, float] = {}
        self.stream = _Stream(self.clock, self.period_s, self.exposure_s, self.latency_s)
        self._held: list[int] = []  # frames in the ring, oldest first
        self._next = 0  # the next frame the sensor delivers
        self._tnr, self._ee = _argus_isp(device)
        self._isp_k = -1  # the last sensor frame the ISP has filtered
        self._isp_out: np.ndarray | None = None

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
        self._fill()
        if not self._held:  # nothing held: wait for the sensor's next frame
            self.clock.now = max(self.clock.now, self.stream.delivered(self._next))
            self._fill()
        k = self._held.pop(0)
        self.clock.advance(self.decode_s)
        h, w = self._native[1], self._native[0]
        self._buf[:] = self._isp(k, h, w)  # one buffer, overwritten each read
        self._i += 1
        return True, self._buf

    def _sensor(self, k: int, h: int, w: int) -> np.ndarray:
        world = type(self).world  # a plain function: read through the class, not bound to this instance
        return world(self.stream.exposed(k), h, w) if world is not None else scene(k, h, w)

    def _isp(self, k: int, h: int, w: int) -> np.ndarray:
        """Frame k as the ISP hands it on: through its noise reduction and edge enhancement when they are on."""
        if not (self._tnr or self._ee):
            return self._sensor(k, h, w)
        out = self._sensor(k, h, w).astype(np.float32)
        if self._tnr:
            for j in range(max(self._isp_k + 1, k - 30), k + 1):  # every frame since the last, read or not
                raw = self._sensor(j, h, w).astype(np.float32)
                self._isp_out = raw if self._isp_out is None else 0.5 * self._isp_out + 0.5 * raw
            self._isp_k = max(self._isp_k, k)
            assert self._isp_out is not None
            out = self._isp_out.copy()
        if self._ee:
            out = out + 0.5 * (out - cv2.GaussianBlur(out, (0, 0), 1.0))
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)

    def _fill(self) -> None:
        """Frames delivered by now go into free buffers; with none free, they are lost."""
        ring = max(self.min_buffers, int(self.props.get(cv2.CAP_PROP_BUFFERSIZE, 4)))
        newest = self.stream.last_delivered()
        while self._next <= newest:
            if len(self._held) < ring:
                self._held.append(self._next)
            self._next += 1


def _argus_isp(device: Any) -> tuple[bool, bool]:
    """(temporal noise reduction on, edge enhancement on) for a pipeline's nvarguscamerasrc; (False, False) else."""
    if not (isinstance(device, str) and device.lstrip().startswith("nvarguscamerasrc")):
        return False, False
    source = device.split("!", 1)[0]
    modes = dict(re.findall(r"\b(tnr-mode|ee-mode)=(\d)", source))
    return modes.get("tnr-mode", "1") != "0", modes.get("ee-mode", "1") != "0"


class _CudaImage:
    def __init__(self, buf: np.ndarray) -> None:
        self.buf = buf
        self.shape = buf.shape
        self.width = buf.shape[1]
        self.height = buf.shape[0]


def make_jetson_utils(native: tuple[int, int] = (640, 480), frames: int | None = None,
                      timeouts: set[int] | None = None, fail_uri: str = "csi://9", clock: FakeClock | None = None,
                      world: World | None = None, period_s: float = 1 / 30, latency_s: float = 0.040) -> Any:
    """A fake ``jetson_utils`` module; ``frames``: end of stream after that many; ``timeouts``: capture indices
    that time out; ``clock``: stream on it (newest frame first, see the module's docstring), else each capture is
    the next frame at once."""
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
            self.stream = _Stream(clock, period_s, period_s, latency_s) if clock is not None else None
            self.handed = -1  # the newest frame handed out

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
            k = self._next_frame() if self.stream is not None else i
            buf = self.ring[k % self.n]
            bgr = world(self.stream.exposed(k), self.h, self.w) if world is not None and self.stream else None
            gray = cv2.cvtColor(bgr if bgr is not None else scene(k, self.h, self.w), cv2.COLOR_BGR2GRAY)
            buf[:, :, 0] = 0  # the GPU has started writing: complete only after cudaDeviceSynchronize()
            buf[: self.h // 2, :, 0] = gray[: self.h // 2]
            state["pending"] = (buf, gray)
            return _CudaImage(buf)

        def _next_frame(self) -> int:
            """The newest delivered frame if not handed out yet, however old; else wait for the next."""
            assert self.stream is not None and clock is not None
            newest = self.stream.last_delivered()
            if newest <= self.handed:
                newest = self.handed + 1
                clock.now = max(clock.now, self.stream.delivered(newest))
            self.handed = newest
            return newest

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
