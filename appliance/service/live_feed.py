"""What the scan hands to the live view: references, no copies, no encoding (cheap enough for every frame).

The scan thread calls :meth:`LiveFeed.frame`, :meth:`status`, :meth:`field`, :meth:`obj`; each stores a reference
and bumps a version under a lock, in microseconds. The live server (another thread) reads snapshots when a browser
is watching and only then draws the boxes and encodes the frame, at most a few times a second. A frame is an
immutable capture (cameras return a new array per frame) and the detections are frozen, so holding references is
safe.

The slide map grows by thousands of fields over a scan, so a snapshot carries only the map entries a client has
not seen yet (``fields_from``/``objects_from``), and the map's ``epoch`` tells it when a new scan started over.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


class Labelled(Protocol):
    """A detection as the live view draws it (:class:`appliance.scan.protocols.Detection` is one)."""

    @property
    def box_px(self) -> tuple[int, int, int, int]:
        """``xmin, ymin, xmax, ymax`` in pixels."""
        ...

    @property
    def kind(self) -> str:
        """``structure`` or ``debris``."""
        ...

    @property
    def cls(self) -> str:
        """The structure type, or ``debris``."""
        ...


@dataclass(frozen=True)
class FrameRef:
    """The latest frame, the detections found in it (both by reference) and its version."""

    image: np.ndarray
    detections: Sequence[Labelled]
    version: int


class _Log:
    """Entries appended with a running count, so a reader can ask for those after the ones it has."""

    def __init__(self, maxlen: int) -> None:
        self.items: collections.deque[Any] = collections.deque(maxlen=maxlen)
        self.total = 0

    def append(self, item: Any) -> None:
        self.items.append(item)
        self.total += 1

    def since(self, start: int) -> tuple[int, list[Any]]:
        """``(index of the first returned, entries from start on)``; older ones dropped off are skipped."""
        first = self.total - len(self.items)
        start = max(start, first)
        if start >= self.total:
            return self.total, []
        return start, list(self.items)[start - first:]

    def clear(self) -> None:
        self.items.clear()
        self.total = 0


class LiveFeed:
    """Thread-safe latest-state holder between the scan and the live view."""

    def __init__(self, log_lines: int = 200, map_points: int = 20000) -> None:
        self._lock = threading.Lock()
        self._frame: FrameRef | None = None
        self._status: dict[str, Any] = {"state": "idle"}
        self._fields = _Log(map_points)
        self._objects = _Log(map_points)
        self._log: collections.deque[str] = collections.deque(maxlen=log_lines)
        self._epoch = 0
        self.version = 0
        self._frame_version = 0

    def frame(self, image: np.ndarray, detections: Sequence[Labelled] = ()) -> None:
        """The newest frame and what was found in it; both kept by reference (nothing copied or encoded)."""
        with self._lock:
            self._frame_version += 1
            self._frame = FrameRef(image, detections, self._frame_version)
            self.version += 1

    def status(self, **changes: Any) -> None:
        """Update the status (state, scan_id, fields_done, fields_total, structures, eta_s, area_um, ...)."""
        with self._lock:
            self._status.update(changes)
            self.version += 1

    def field(self, x_um: float, y_um: float, w_um: float, h_um: float, z_um: float | None) -> None:
        """A field was done: its rectangle on the slide and its focus z (None: no focus)."""
        with self._lock:
            self._fields.append({"x": x_um, "y": y_um, "w": w_um, "h": h_um, "z": z_um})
            self.version += 1

    def obj(self, x_um: float, y_um: float, cls: str, type_: str | None) -> None:
        """An object was recorded at (x, y) µm: ``cls`` structure or debris, ``type_`` its structure type."""
        with self._lock:
            self._objects.append({"x": x_um, "y": y_um, "cls": cls, "type": type_})
            self.version += 1

    def log_line(self, line: str) -> None:
        """One log line for the page's tail."""
        with self._lock:
            self._log.append(line[:500])
            self.version += 1

    def reset_map(self) -> None:
        """A new scan starts: forget the previous scan's map (clients see a new ``epoch``)."""
        with self._lock:
            self._fields.clear()
            self._objects.clear()
            self._epoch += 1
            self.version += 1

    def latest_frame(self) -> FrameRef | None:
        """The newest frame reference."""
        with self._lock:
            return self._frame

    def snapshot(self, fields_from: int = 0, objects_from: int = 0) -> dict[str, Any]:
        """Everything but the frame's pixels, JSON-ready; the map only from the given entry counts on."""
        with self._lock:
            f0, fields = self._fields.since(fields_from)
            o0, objects = self._objects.since(objects_from)
            return {"version": self.version, "status": dict(self._status),
                    "frame_version": self._frame.version if self._frame else 0,
                    "map": {"epoch": self._epoch, "fields_from": f0, "fields": fields,
                            "objects_from": o0, "objects": objects},
                    "log": list(self._log)}


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
