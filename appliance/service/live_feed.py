"""What the scan hands to the live view: references, no copies, no encoding (cheap enough for every frame).

The scan thread calls :meth:`LiveFeed.frame`, :meth:`status`, :meth:`field`, :meth:`obj`; each stores a reference
and bumps a version under a lock, in microseconds. The live server (another thread) reads snapshots when a browser
is watching and only then encodes the frame, at most a few times a second. A frame is an immutable capture
(cameras return a new array per frame), so holding a reference is safe.
"""

from __future__ import annotations

import collections
import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

Box = tuple[float, float, float, float, str]  # x0, y0, x1, y1 in pixels, label


@dataclass(frozen=True)
class FrameRef:
    """The latest frame, its boxes and its version."""

    image: np.ndarray
    boxes: tuple[Box, ...]
    version: int


class LiveFeed:
    """Thread-safe latest-state holder between the scan and the live view."""

    def __init__(self, log_lines: int = 200, map_points: int = 20000) -> None:
        self._lock = threading.Lock()
        self._frame: FrameRef | None = None
        self._status: dict[str, Any] = {"state": "idle"}
        self._fields: collections.deque[dict[str, Any]] = collections.deque(maxlen=map_points)
        self._objects: collections.deque[dict[str, Any]] = collections.deque(maxlen=map_points)
        self._log: collections.deque[str] = collections.deque(maxlen=log_lines)
        self.version = 0
        self._frame_version = 0

    def frame(self, image: np.ndarray, boxes: list[Box] | tuple[Box, ...] = ()) -> None:
        """The newest frame and its labelled boxes (pixels)."""
        with self._lock:
            self._frame_version += 1
            self._frame = FrameRef(image, tuple(boxes), self._frame_version)
            self.version += 1

    def status(self, **status: Any) -> None:
        """Replace the status (state, scan_id, fields_done, fields_total, structures, eta_s, ...)."""
        with self._lock:
            self._status = dict(status)
            self.version += 1

    def field(self, x_um: float, y_um: float, w_um: float, h_um: float, z_um: float | None) -> None:
        """A field was done: its rectangle on the slide and its focus z (None: no focus)."""
        with self._lock:
            self._fields.append({"x": x_um, "y": y_um, "w": w_um, "h": h_um, "z": z_um})
            self.version += 1

    def obj(self, x_um: float, y_um: float, cls: str, type_: str | None) -> None:
        """An object was recorded at (x, y) µm."""
        with self._lock:
            self._objects.append({"x": x_um, "y": y_um, "cls": cls, "type": type_})
            self.version += 1

    def log_line(self, line: str) -> None:
        """One log line for the page's tail."""
        with self._lock:
            self._log.append(line[:500])
            self.version += 1

    def reset_map(self) -> None:
        """A new scan starts: forget the previous scan's map."""
        with self._lock:
            self._fields.clear()
            self._objects.clear()
            self.version += 1

    def latest_frame(self) -> FrameRef | None:
        """The newest frame reference."""
        with self._lock:
            return self._frame

    def snapshot(self) -> dict[str, Any]:
        """Everything but the frame's pixels, JSON-ready."""
        with self._lock:
            return {"version": self.version, "status": dict(self._status),
                    "frame_version": self._frame.version if self._frame else 0,
                    "fields": list(self._fields), "objects": list(self._objects), "log": list(self._log)}


class FeedLogHandler(logging.Handler):
    """Copies log lines into the feed's tail."""

    def __init__(self, feed: LiveFeed) -> None:
        super().__init__(logging.INFO)
        self.feed = feed
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        """Append the formatted line."""
        try:
            self.feed.log_line(self.format(record))
        except Exception:  # noqa: BLE001 - logging must never raise into the scan
            self.handleError(record)
