"""Keeps the configured triggers up: one that cannot start, or stops reading, is retried with back-off.

A trigger is an extra way in (the control socket is always there): a serial adapter unplugged, the gpiod package
missing or a GPIO line another program holds must not take the service down. Such a trigger is logged once as
an ERROR naming it, its device and what to do; ``status`` says it is down until it is back; it is retried after
5 s, doubling up to 5 min (an adapter plugged back in comes back on its own).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("tppscan.service")


@dataclass
class TriggerSpec:
    """One trigger: its config name (``serial``), its device (``/dev/ttyTHS1``), how to make it (not started)."""

    name: str
    device: str
    make: Callable[[], Any]
    obj: Any = None
    down: str | None = None      # why it is down (None: up, or never tried)
    delay_s: float = 0.0
    next_try: float = 0.0        # time.time() of the next try while down


class TriggerKeeper:
    """Starts the triggers, watches them, and retries those that are down."""

    def __init__(self, specs: list[TriggerSpec], *, retry_s: float = 5.0, max_retry_s: float = 300.0,
                 tick_s: float = 0.5) -> None:
        self.specs = specs
        self.retry_s = retry_s
        self.max_retry_s = max(max_retry_s, retry_s)
        self.tick_s = tick_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Try every trigger once, then watch them in a thread."""
        for spec in self.specs:
            self._try(spec)
        self._thread = threading.Thread(target=self._watch, name="trigger-keeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching and stop every trigger; safe twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        with self._lock:
            for spec in reversed(self.specs):
                obj, spec.obj = spec.obj, None
                if obj is not None:
                    try:
                        obj.stop()
                    except Exception as exc:  # noqa: BLE001 - on the way out: say it, stop the others
                        log.warning("trigger %s: stopping it failed: %s", spec.name, exc)

    @property
    def running(self) -> list[str]:
        """The names of the triggers that are up."""
        with self._lock:
            return [s.name for s in self.specs if s.obj is not None]

    def problems(self) -> list[str]:
        """One clause per trigger that is down, for ``status``."""
        out = []
        with self._lock:
            for s in self.specs:
                if s.down is not None:
                    when = time.strftime("%H:%M:%S UTC", time.gmtime(s.next_try))
                    out.append(f"trigger {s.name} ({s.device}) is down: {s.down}; next try {when}")
        return out

    def _watch(self) -> None:
        while not self._stop.wait(self.tick_s):
            for spec in self.specs:
                if self._stop.is_set():
                    return
                obj = spec.obj
                if obj is not None and getattr(obj, "alive", True) is False:  # its thread ended: the device failed
                    spec.obj = None
                    try:
                        obj.stop()
                    except Exception:  # noqa: BLE001, S110 - already failed; the retry reopens it
                        pass
                    self._down(spec, "its device stopped answering (unplugged?)")
                elif obj is None and spec.down is not None and time.time() >= spec.next_try:
                    self._try(spec)

    def _try(self, spec: TriggerSpec) -> None:
        try:
            obj = spec.make()
            obj.start()
        except Exception as exc:  # noqa: BLE001 - a trigger that cannot start must not stop the service
            self._down(spec, " ".join(str(exc).split()) or type(exc).__name__)
            return
        with self._lock:
            if self._stop.is_set():
                obj.stop()
                return
            was_down, spec.obj, spec.down, spec.delay_s = spec.down, obj, None, 0.0
        if was_down is not None:
            log.info("trigger %s on %s is back", spec.name, spec.device)

    def _down(self, spec: TriggerSpec, why: str) -> None:
        first = spec.down is None
        with self._lock:
            spec.delay_s = self.retry_s if first else min(spec.delay_s * 2, self.max_retry_s)
            spec.down, spec.next_try = why, time.time() + spec.delay_s
        if first:  # once; its retries are quiet until it is back
            log.error("trigger %s on %s is down: %s; the service runs without it and retries it (in %g s, then "
                      "less often): fix or plug in the device, or set triggers.%s.enabled: false", spec.name,
                      spec.device, why, spec.delay_s, spec.name)
        else:
            log.debug("trigger %s on %s still down: %s; next try in %g s", spec.name, spec.device, why, spec.delay_s)
