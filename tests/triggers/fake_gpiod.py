"""A fake of libgpiod's v2 Python bindings (``gpiod`` >= 2.0), as its documentation describes them.

- ``request_lines(path, consumer=..., config={offset: LineSettings})`` -> a request; a line already requested
  raises ``OSError(EBUSY)``; an unknown chip path raises ``FileNotFoundError``.
- Edges are *logical*: with ``active_low=True`` a physical high->low (a button to ground) is a RISING edge.
- ``wait_edge_events(timeout)`` -> bool, ``read_edge_events()`` -> the pending events, oldest first; the kernel
  buffer holds ``BUFFER`` events and an overflow drops the oldest ones.
"""

from __future__ import annotations

import enum
import errno
import threading
import types
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

BUFFER = 4


class _Type(enum.Enum):
    RISING_EDGE = 1
    FALLING_EDGE = 2


@dataclass
class EdgeEvent:
    event_type: _Type
    timestamp_ns: int
    line_offset: int
    Type = _Type


@dataclass
class LineSettings:
    direction: Any = None
    edge_detection: Any = None
    bias: Any = None
    active_low: bool = False
    debounce_period: timedelta = timedelta(0)


class Chip:
    """The simulated pins of one chip: ``press(offset, physical_level, t_ns)`` drives a pin."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.requests: dict[int, Request] = {}


class Request:
    def __init__(self, chip: Chip, config: dict[int, LineSettings]) -> None:
        self.chip = chip
        self.config = config
        self.events: list[EdgeEvent] = []
        self.cond = threading.Condition()
        self.released = False
        self.level = {off: 1 for off in config}  # pulled up: physical high

    def drive(self, offset: int, physical: int, t_ns: int) -> None:
        if physical == self.level[offset]:
            return
        self.level[offset] = physical
        logical = physical ^ int(self.config[offset].active_low)
        ev = EdgeEvent(_Type.RISING_EDGE if logical else _Type.FALLING_EDGE, t_ns, offset)
        with self.cond:
            self.events.append(ev)
            del self.events[:-BUFFER]  # overflow: the oldest go
            self.cond.notify_all()

    def wait_edge_events(self, timeout: timedelta | float | None = None) -> bool:
        secs = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
        with self.cond:
            return self.cond.wait_for(lambda: bool(self.events), secs)

    def read_edge_events(self) -> list[EdgeEvent]:
        with self.cond:
            out, self.events = self.events, []
            return out

    def release(self) -> None:
        self.released = True
        for off in self.config:
            self.chip.requests.pop(off, None)


def make_gpiod(chips: dict[str, Chip]) -> Any:
    mod = types.SimpleNamespace()
    mod.LineSettings = LineSettings
    mod.EdgeEvent = EdgeEvent
    mod.line = types.SimpleNamespace(Direction=enum.Enum("Direction", "INPUT OUTPUT AS_IS"),
                                     Edge=enum.Enum("Edge", "NONE RISING FALLING BOTH"),
                                     Bias=enum.Enum("Bias", "AS_IS UNKNOWN DISABLED PULL_UP PULL_DOWN"))

    def request_lines(path: str, consumer: str | None = None, config: dict[int, LineSettings] | None = None,
                      **_: Any) -> Request:
        if path not in chips:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        chip = chips[path]
        cfg = config or {}
        for off in cfg:
            if off in chip.requests:
                raise OSError(errno.EBUSY, "Device or resource busy")
        req = Request(chip, cfg)
        for off in cfg:
            chip.requests[off] = req
        return req

    mod.request_lines = request_lines
    return mod
