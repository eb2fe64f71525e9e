"""The stage board's button: the firmware pushes ``[MSG:BUTTON PRESSED]`` / ``[MSG:BUTTON RELEASED]``.

The GRBL driver collects pushed ``[MSG:...]`` lines while it talks to the board; this watcher takes them
(``stage.pending_messages()``) every ``poll_s`` and turns press/release pairs into BUTTON or STOP by the same
short/long rule as the GPIO button, timed on the host's monotonic clock (the board sends no timestamps).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from appliance.hardware.triggers.events import Handler, PressClassifier, TriggerEvent, WatcherThread

log = logging.getLogger(__name__)


class BoardButton(WatcherThread):
    """Polls a message source for the board's button lines in a thread."""

    thread_name = "board-button"

    def __init__(self, handler: Handler, messages: Callable[[], list[str]], *, long_press_s: float = 2.0,
                 poll_s: float = 0.1) -> None:
        super().__init__()
        self.handler = handler
        self.messages = messages
        self.poll_s = poll_s
        self._presses = PressClassifier(long_press_s)

    def feed(self, line: str, t_ns: int | None = None) -> None:
        """One pushed line (others are ignored)."""
        text = line.strip().upper()
        if not text.startswith("[MSG:BUTTON"):
            return
        now = time.monotonic_ns() if t_ns is None else t_ns
        pressed = "PRESSED" in text
        if not pressed and "RELEASED" not in text:
            log.warning("board button: unknown message %r", line[:80])
            return
        cmd = self._presses.feed(pressed, now)
        if cmd is not None:
            self.handler(TriggerEvent(cmd, "board"))

    def start(self) -> None:
        """Start polling."""
        self._start_thread()

    def stop(self) -> None:
        """Stop polling; safe twice."""
        self._stop_thread()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                lines = self.messages()
            except Exception as exc:  # noqa: BLE001 - a stage error here must not kill the watcher
                log.warning("board button: cannot read board messages: %s", exc)
                continue
            for line in lines:
                self.feed(line)
