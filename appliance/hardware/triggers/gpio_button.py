"""A push button on the Jetson's 40-pin header, read through libgpiod's v2 Python bindings (``gpiod`` >= 2).

An adapter for hardware absent here; tested against a fake ``gpiod`` that follows the v2 bindings' documented API
(``gpiod.request_lines(path, consumer=, config={offset: LineSettings(...)})``, ``wait_edge_events(timeout)``,
``read_edge_events()``, ``EdgeEvent.Type.RISING_EDGE/FALLING_EDGE``, ``timestamp_ns``), awkward parts included:
edges are logical, so with ``active_low`` a press (pin pulled to ground) is a RISING edge; a chip without
hardware debounce gets the kernel's software debounce; a burst that overflows the kernel's event buffer drops
the *oldest* events, so a release may arrive without its press. A line held by another program fails the
request with ``OSError`` (EBUSY), reported as a TriggerError naming the chip and line.
"""

from __future__ import annotations

import importlib
import logging
from datetime import timedelta
from types import ModuleType
from typing import Any

from appliance.hardware.triggers.events import Handler, PressClassifier, TriggerError, TriggerEvent, WatcherThread

__all__ = ["GpioButton", "TriggerError"]

log = logging.getLogger(__name__)


class GpioButton(WatcherThread):
    """Watches one GPIO line in a thread and sends BUTTON (short press) or STOP (long press) to the handler."""

    thread_name = "gpio-button"

    def __init__(self, handler: Handler, chip: str = "/dev/gpiochip0", line: int = 0, *, active_low: bool = True,
                 debounce_ms: int = 30, long_press_s: float = 2.0, gpiod: ModuleType | Any | None = None) -> None:
        if not 0 <= line <= 1023:
            raise ValueError(f"line must be 0..1023, got {line}")
        if not 0 <= debounce_ms <= 1000:
            raise ValueError(f"debounce_ms must be 0..1000, got {debounce_ms}")
        super().__init__()
        self.handler = handler
        self.chip = chip
        self.line = line
        self.active_low = active_low
        self.debounce_ms = debounce_ms
        self._presses = PressClassifier(long_press_s)
        self._gpiod = gpiod
        self._request: Any = None

    def start(self) -> None:
        """Request the line (input, both edges, pull-up) and start watching."""
        gpiod = self._gpiod
        if gpiod is None:
            try:
                gpiod = importlib.import_module("gpiod")
            except ImportError:
                raise TriggerError("gpio trigger: the gpiod package (libgpiod v2 bindings) is not installed; "
                                   "pip install gpiod, or disable triggers.gpio") from None
        self._gpiod = gpiod
        settings = gpiod.LineSettings(direction=gpiod.line.Direction.INPUT, edge_detection=gpiod.line.Edge.BOTH,
                                      bias=gpiod.line.Bias.PULL_UP, active_low=self.active_low,
                                      debounce_period=timedelta(milliseconds=self.debounce_ms))
        try:
            self._request = gpiod.request_lines(self.chip, consumer="tppscan-button", config={self.line: settings})
        except (OSError, ValueError) as exc:
            raise TriggerError(f"gpio trigger: cannot request {self.chip} line {self.line}: {exc}") from None
        self._start_thread()

    def stop(self) -> None:
        """Stop watching and release the line; safe twice."""
        self._stop_thread()
        req, self._request = self._request, None
        if req is not None:
            req.release()

    def _run(self) -> None:
        rising = self._gpiod.EdgeEvent.Type.RISING_EDGE  # type: ignore[union-attr]
        while not self._stop.is_set():
            try:
                if not self._request.wait_edge_events(timedelta(milliseconds=200)):
                    continue
                events = self._request.read_edge_events()
            except OSError as exc:  # the chip went away: log once, stop quietly
                log.error("gpio trigger: reading %s line %d failed: %s", self.chip, self.line, exc)
                return
            for ev in events:
                cmd = self._presses.feed(ev.event_type == rising, int(ev.timestamp_ns))
                if cmd is not None:
                    self.handler(TriggerEvent(cmd, "gpio"))
