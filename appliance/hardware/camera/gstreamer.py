"""CSI cameras on a Jetson: ``nvarguscamerasrc`` through a GStreamer pipeline opened by OpenCV.

Needs an OpenCV built with GStreamer (the Jetson's system OpenCV is; the PyPI wheels are not): checked at open,
with an error that says so instead of a silent failure to open. The pipeline converts to GRAY8 on the Jetson's
converter (``nvvidconv``), so the CPU never sees colour. Exposure is fixed in the pipeline
(``exposuretimerange`` in nanoseconds, auto-exposure locked), so changing it rebuilds the pipeline.

The Argus ISP's temporal noise reduction and edge enhancement are on unless a pipeline turns them off
(``tnr-mode`` and ``ee-mode`` default to 1, "fast"), and this one does. Temporal noise reduction averages each
frame with the frames before it: after a stage move the old field shows through the new one, and through a
focus walk each frame keeps some of the plane before it.
Edge enhancement sharpens the frames, which is the focus measure's job and changes the focus curves the
autofocus reads (the virtual microscope's ``camera.sharpen`` knob shows how much). A measuring instrument
wants the sensor's frames as they are.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import cv2

from appliance.hardware.camera.base import CameraError
from appliance.hardware.camera.fresh import DEFAULT_LATENCY_MS
from appliance.hardware.camera.opencv import OpenCVCamera, PositionSource

# the ISP's temporal noise reduction and edge enhancement off (both default to 1, "fast"): see the module docstring
ISP_RAW = "tnr-mode=0 ee-mode=0"


def argus_pipeline(sensor_id: int, width: int, height: int, fps: float, exposure_ms: float | None) -> str:
    """The nvarguscamerasrc -> nvvidconv -> GRAY8 -> appsink pipeline for one CSI sensor."""
    exposure = ""
    if exposure_ms is not None:
        ns = int(round(exposure_ms * 1e6))
        exposure = f' exposuretimerange="{ns} {ns}" aelock=true'
    rate = max(1, int(round(fps)))
    return (f"nvarguscamerasrc sensor-id={sensor_id}{exposure} {ISP_RAW} ! "
            f"video/x-raw(memory:NVMM),width={width},height={height},framerate={rate}/1 ! "
            f"nvvidconv ! video/x-raw,format=GRAY8,width={width},height={height} ! "
            "appsink drop=true max-buffers=1 sync=false")


def opencv_has_gstreamer(build_info: str | None = None) -> bool:
    """Whether this OpenCV was built with the GStreamer video backend."""
    info = build_info if build_info is not None else cv2.getBuildInformation()
    for line in info.splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line.split(":", 1)[1]
    return False


class GStreamerCamera(OpenCVCamera):
    """A CSI camera (or any GStreamer pipeline ending in appsink) read through ``cv2.CAP_GSTREAMER``."""

    def __init__(self, sensor_id: int = 0, width: int = 640, height: int = 480, fps: float = 30.0,
                 exposure_ms: float | None = None, timeout_s: float = 2.0, *, pipeline: str | None = None,
                 position_source: PositionSource | None = None, capture_factory: Callable[..., Any] | None = None,
                 build_info: str | None = None, latency_ms: float = DEFAULT_LATENCY_MS,
                 clock: Callable[[], float] = time.monotonic):
        if not 0 <= sensor_id <= 7:
            raise ValueError(f"sensor_id must be 0..7, got {sensor_id}")
        self.sensor_id = sensor_id
        self._custom = pipeline
        self._build_info = build_info
        super().__init__(pipeline or argus_pipeline(sensor_id, width, height, fps, exposure_ms), width, height, fps,
                         exposure_ms, timeout_s, backend=cv2.CAP_GSTREAMER, position_source=position_source,
                         capture_factory=capture_factory, name="gstreamer camera", latency_ms=latency_ms, clock=clock)

    def open(self) -> None:
        """Check OpenCV's GStreamer support, then open the pipeline."""
        if not opencv_has_gstreamer(self._build_info):
            raise CameraError("gstreamer camera: this OpenCV has no GStreamer backend (PyPI wheels do not); use the "
                              "Jetson's system OpenCV (python3-opencv from JetPack) or camera.kind: jetson")
        super().open()

    @property
    def exposure_ms(self) -> float:
        """Exposure fixed in the pipeline, ms (NaN: automatic)."""
        return self._exposure_ms if self._exposure_ms is not None else float("nan")

    @exposure_ms.setter
    def exposure_ms(self, value: float) -> None:
        if not 0 < value <= 10000:
            raise ValueError(f"exposure_ms must be in (0, 10000], got {value}")
        self._exposure_ms = float(value)
        if self._custom is None:
            w, h = self._want
            self.device = argus_pipeline(self.sensor_id, w, h, self._fps, self._exposure_ms)
        if self._cap is not None:  # the exposure lives in the pipeline: rebuild it
            self.close()
            self.open()
