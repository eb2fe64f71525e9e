"""The commands a trigger can give, and the short/long press rule every button follows."""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class Command(enum.Enum):
    """What a trigger asks of the service."""

    START = "start"        # start a scan (refused while one runs)
    STOP = "stop"          # stop the running scan; it stays resumable
    PAUSE = "pause"        # pause a running scan, or resume a paused one
    STATUS = "status"      # report state and progress
    BUTTON = "button"      # a short button press: start when idle, pause/resume while scanning


@dataclass(frozen=True)
class TriggerEvent:
    """One command from one source (``gpio``, ``board``, ``serial``, ``socket``)."""

    command: Command
    source: str
    args: dict[str, str] = field(default_factory=dict)


Handler = Callable[[TriggerEvent], Any]  # the reply: a line for the serial console, ignored by buttons


class PressClassifier:
    """A button's edges -> BUTTON (short press) or STOP (held at least ``long_press_s``), on release.

    Edges arrive with the device's timestamps in nanoseconds; a release without a press, or a second press
    without a release between (an edge lost in an event-buffer overflow), restarts the measurement
    rather than inventing a press.
    """

    def __init__(self, long_press_s: float) -> None:
        if not 0 < long_press_s <= 30:
            raise ValueError(f"long_press_s must be in (0, 30], got {long_press_s}")
        self.long_press_ns = int(long_press_s * 1e9)
        self._down_ns: int | None = None

    def feed(self, pressed: bool, t_ns: int) -> Command | None:
        """One edge (True: pressed); the command a completed press gives, else None."""
        if pressed:
            self._down_ns = t_ns
            return None
        if self._down_ns is None:
            return None
        held = t_ns - self._down_ns
        self._down_ns = None
        if held < 0:
            return None
        return Command.STOP if held >= self.long_press_ns else Command.BUTTON


class TriggerError(RuntimeError):
    """A trigger device could not be opened."""


class WatcherThread:
    """The one background thread every trigger watches its device in; subclasses write ``_run``.

    ``_run`` must return soon after ``self._stop`` is set (poll it, or wait on it): ``stop`` joins for two
    seconds at most, so a device read that never returns cannot hang the service's shutdown.
    """

    thread_name = "trigger"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _start_thread(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def _stop_thread(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None

    @property
    def alive(self) -> bool:
        """Whether the watching thread runs (it ends on its own when the device fails: it logs why)."""
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        raise NotImplementedError
