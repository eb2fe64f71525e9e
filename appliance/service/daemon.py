"""``tppscan run``: the service. Connects the hardware, waits for triggers, runs one scan at a time.

States: STARTING -> (connecting, retried while a device is missing, 5 s doubling to 5 min; never a switch to
simulation; a :class:`~appliance.config.schema.ConfigError` ends the run with exit 2 instead of a retry) -> IDLE
<-> SCANNING <-> PAUSED; STOPPING on SIGTERM/SIGINT. A :class:`NeedsAttention` failure (homing failed: another
try would drive the axes again) is not retried on its own: the service waits in ATTENTION until a START asks for
one more try. A scan that fails because a device was lost (:class:`DeviceLost`) sends the service back to
STARTING, which reconnects. ``status`` carries the last connect error and the next retry's time. A trigger's
command is answered at once from the state (``handle``); the scan itself runs in a worker thread through a
:class:`Backend`, which owns devices, models and the scan runner. On SIGTERM mid-scan the worker is asked to
stop between fields, so the scan is left ``interrupted`` in the store and the next START (or the next service
start) resumes it.

systemd: READY=1 once warm and answering status (a service still connecting is up: its status says why),
STATUS= on every change, WATCHDOG=1 from the main loop.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from types import FrameType
from typing import Any, Protocol

from appliance.config.schema import ConfigError
from appliance.hardware.triggers.events import Command, TriggerEvent
from appliance.service.notify import Notifier

log = logging.getLogger("tppscan.service")


class State(enum.Enum):
    """The service's state, as ``tppscan status`` reports it."""

    STARTING = "starting"
    ATTENTION = "needs attention"
    IDLE = "idle"
    SCANNING = "scanning"
    PAUSED = "paused"
    STOPPING = "stopping"


class NeedsAttention(RuntimeError):
    """A connect failure that must not be retried on its own (a failed homing: each try drives the axes again).

    Its message says what failed and what to do; the service waits until a START asks for another try.
    """


class DeviceLost(RuntimeError):
    """A scan failed because a device went away (unplugged, power-cycled): the service reconnects."""


MAX_CONNECT_RETRY_S = 300.0
CONNECT_WATCHDOG_S = 600.0  # a connect (handshake, camera, homing) that takes longer is left to systemd's watchdog


@dataclass(frozen=True)
class Progress:
    """What the running (or last) scan has done."""

    scan_id: str | None = None
    fields_done: int = 0
    fields_total: int = 0
    structures: int = 0
    eta_s: float | None = None
    outcome: str | None = None   # completed | cancelled | failed (of the last scan; the report's words)
    message: str = ""
    report: str | None = None    # the last scan's report.html, once written
    finished_at: float | None = None  # when the last scan ended, seconds since the epoch


class ScanControl:
    """Handed to the backend's scan: pause and stop requests, and where to report progress."""

    def __init__(self, on_progress: Any) -> None:
        self._resume = threading.Event()
        self._resume.set()
        self.stop_requested = threading.Event()
        self._on_progress = on_progress
        self.new_scan = False  # ``tppscan start --new``: a new scan, the unfinished one abandoned
        self.claimed: Any = None  # the scan START claimed, its row written (the backend's ``claim_scan``), or None

    def pause(self) -> None:
        """Pause between fields."""
        self._resume.clear()

    def resume(self) -> None:
        """Go on."""
        self._resume.set()

    @property
    def paused(self) -> bool:
        """Whether a pause is requested."""
        return not self._resume.is_set()

    def checkpoint(self) -> bool:
        """Called by the scan between fields: waits while paused; True when the scan must stop now."""
        while not self._resume.wait(0.2):
            if self.stop_requested.is_set():
                return True
        return self.stop_requested.is_set()

    def report(self, **changes: Any) -> None:
        """Progress from the scan (fields_done, fields_total, structures, eta_s, scan_id)."""
        self._on_progress(**changes)


class Backend(Protocol):
    """What the service needs from the rest of the appliance (devices, models, the scan runner)."""

    def connect(self) -> None:
        """Open the devices; raises with a clear message when one is missing (the service retries)."""

    def warm(self) -> None:
        """Compile kernels and load models, so the first scan starts at full speed."""

    def next_scan(self, new: bool = False) -> Any:
        """What a START would run: ``scan_id``, ``resumed``, ``fields_done``, ``fields_total`` attributes.

        ``new`` (``start --new``): a new scan, and ``abandons``, the unfinished one it gives up (or None).
        """

    def run_scan(self, control: ScanControl) -> str:
        """Run (or resume) a scan to its end; returns completed | cancelled | failed (the report's words)."""

    def close(self) -> None:
        """Release the devices."""


@dataclass
class _Shared:
    state: State = State.STARTING
    progress: Progress = field(default_factory=Progress)
    connect_error: str | None = None   # why the hardware is not connected (while STARTING or ATTENTION)
    retry_at: float | None = None      # when the next connect try is, seconds since the epoch (None: none planned)


class Service:
    """The daemon's state machine; ``run()`` is the main loop."""

    def __init__(self, backend: Backend, *, connect_retry_s: float = 5.0, notifier: Notifier | None = None,
                 on_status: Any = None, connect_retry_max_s: float = MAX_CONNECT_RETRY_S,
                 results_db: Any = None) -> None:
        self.backend = backend
        self.on_status = on_status
        self.connect_retry_s = connect_retry_s
        self.connect_retry_max_s = max(connect_retry_max_s, connect_retry_s)
        self.results_db = results_db  # for the serial console's STATUS, in tppscan status's words
        self.problems: Any = None  # a callable giving lines about parts that are down (a trigger), for status
        self._retry = threading.Event()  # a START in ATTENTION: try connecting once more
        self._lost = threading.Event()   # a scan lost a device: reconnect
        self.notify = notifier or Notifier()
        self._lock = threading.Lock()
        self._shared = _Shared()
        self._control: ScanControl | None = None
        self._worker: threading.Thread | None = None
        self._shutdown = threading.Event()

    # -- commands (any thread) -----------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """A snapshot for ``tppscan status`` and the serial console."""
        with self._lock:
            s, p = self._shared.state, self._shared.progress
            err, retry_at = self._shared.connect_error, self._shared.retry_at
        problems = list(self.problems()) if self.problems is not None else []
        return {"state": s.value, "scan_id": p.scan_id, "fields_done": p.fields_done,
                "fields_total": p.fields_total, "structures": p.structures, "eta_s": p.eta_s,
                "last_outcome": p.outcome, "message": p.message, "report": p.report, "finished_at": p.finished_at,
                "connect_error": err, "retry_at": retry_at, "problems": problems}

    def handle(self, ev: TriggerEvent) -> dict[str, Any]:
        """Answer one trigger command: ``{"ok": bool, "message": str, "status": {...}}``."""
        with self._lock:
            state = self._shared.state
        cmd = ev.command
        if cmd is Command.BUTTON:
            cmd = Command.START if state is State.IDLE else Command.PAUSE
        ok, msg = True, ""
        if cmd is Command.STATUS:
            msg = state.value
        elif cmd is Command.START:
            ok, msg = self._start(ev.source, new=_wants_new(ev))
        elif cmd is Command.PAUSE:
            ok, msg = self._pause_or_resume()
        elif cmd is Command.STOP:
            ok, msg = self._stop()
        # A status query changes nothing: at INFO a monitoring script polling it would flood the journal.
        log.log(logging.DEBUG if cmd is Command.STATUS else logging.INFO, "command %s from %s: %s",
                cmd.value, ev.source, msg)
        return {"ok": ok, "message": msg, "status": self.status()}

    def serial_reply(self, ev: TriggerEvent) -> str:
        """The serial console's one-line answer."""
        r = self.handle(ev)
        st = r["status"]
        if ev.command is Command.STATUS:
            from appliance.service.cli import status_text

            return "STATUS " + " ".join(status_text(st, self.results_db).split())
        return f"{'OK' if r['ok'] else 'ERROR'} {r['message']}"

    def _start(self, source: str, new: bool = False) -> tuple[bool, str]:
        with self._lock:
            state, err = self._shared.state, self._shared.connect_error
            if state is State.ATTENTION:
                self._retry.set()
                return True, f"trying to connect the hardware again (it failed: {err})"
            if state is State.STARTING:
                why = f": {err}" if err else ""
                return False, f"cannot start: the hardware is not connected yet{why}"
            if state is not State.IDLE:
                return False, f"cannot start: the service is {state.value}"
            problem = self._preflight()
            if problem:
                return False, f"cannot start: {problem}"
            nxt, claimed = self._next_scan(new)
            self._control = ScanControl(self._on_progress)
            self._control.new_scan = new
            self._control.claimed = nxt if claimed else None
            self._shared.state = State.SCANNING
            if nxt is None:
                self._shared.progress, msg = Progress(message=f"started by {source}"), "scan started"
            else:
                self._shared.progress = Progress(scan_id=str(nxt.scan_id), fields_done=nxt.fields_done,
                                                 fields_total=nxt.fields_total, message=f"started by {source}")
                msg = (f"scan resumed (scan {nxt.scan_id}, {nxt.fields_done} of {nxt.fields_total} fields done)"
                       if nxt.resumed else f"scan started (scan {nxt.scan_id}{_abandoned(nxt)})")
            self._worker = threading.Thread(target=self._scan, args=(self._control,), name="scan", daemon=True)
            self._worker.start()
        self._status_changed()
        return True, msg

    def _preflight(self) -> str | None:
        """The backend's reason a scan cannot start now (a full disk), before anything is created; None: none."""
        check = getattr(self.backend, "preflight", None)
        if check is None:
            return None
        try:
            return check()
        except Exception as exc:  # noqa: BLE001 - the scan itself will say more
            log.warning("cannot check whether a scan can start: %s", exc)
            return None

    def _next_scan(self, new: bool = False) -> tuple[Any, bool]:
        """The scan a START runs, for its answer, and whether its row is written; None where it cannot say.

        A backend with ``claim_scan`` writes a new scan's row here, so the answer and a STATUS right after it name
        the id the database gave, not one foreseen before the row (``next_scan``, else). Where the claim fails
        the scan itself says why (it claims again, and raises).
        """
        claim = getattr(self.backend, "claim_scan", None)
        try:
            if claim is not None:
                return claim(new=new), True
            return (self.backend.next_scan(new=True) if new else self.backend.next_scan()), False
        except Exception as exc:  # noqa: BLE001 - a database it cannot read now: the scan itself will say so
            log.warning("cannot tell which scan a start runs: %s", exc)
            return None, False

    def _pause_or_resume(self) -> tuple[bool, str]:
        with self._lock:
            c, state = self._control, self._shared.state
            if c is None or state not in (State.SCANNING, State.PAUSED):
                return False, f"nothing to pause: the service is {state.value}"
            if state is State.SCANNING:
                c.pause()
                self._shared.state, msg = State.PAUSED, "paused (after the field in progress)"
            else:
                c.resume()
                self._shared.state, msg = State.SCANNING, "resumed"
        self._status_changed()
        return True, msg

    def _stop(self) -> tuple[bool, str]:
        with self._lock:
            c = self._control
            if c is None:
                return False, f"no scan to stop: the service is {self._shared.state.value}"
            c.stop_requested.set()
            c.resume()
        return True, "stopping after the field in progress (the scan stays resumable)"

    def _on_progress(self, **changes: Any) -> None:
        with self._lock:
            self._shared.progress = replace(self._shared.progress, **changes)
        self._status_changed()

    # -- the scan worker --------------------------------------------------------------------------------------------

    def _scan(self, control: ScanControl) -> None:
        lost: str | None = None  # why a device was lost, for status while reconnecting
        try:
            outcome = self.backend.run_scan(control)
            message = f"scan {outcome}"
        except DeviceLost as exc:  # unplugged or power-cycled: reconnect (the scan stays resumable)
            log.error("scan failed: %s; reconnecting the hardware", exc)
            outcome, message, lost = "failed", f"scan failed: {exc}", str(exc)
        except Exception as exc:  # the scan failed: record it, keep serving
            if _refusal(exc):  # the scan refused what it was given: the message says it all
                log.error("scan failed: %s", exc)
            else:
                log.exception("scan failed: %s", exc)
            outcome, message = "failed", f"scan failed: {exc}"
        with self._lock:
            self._shared.progress = replace(self._shared.progress, outcome=outcome, message=message,
                                            finished_at=time.time())
            if self._shared.state is not State.STOPPING:
                self._shared.state = State.STARTING if lost is not None else State.IDLE
                if lost is not None:
                    self._shared.connect_error = _one_line(lost)
                    self._lost.set()
            self._control = None
        log.info("%s", message)
        self._status_changed()

    # -- main loop ------------------------------------------------------------------------------------------------

    def _status_changed(self) -> None:
        st = self.status()
        text = st["state"]
        if st["scan_id"] is not None and st["state"] in ("scanning", "paused"):
            text += f": scan {st['scan_id']} field {st['fields_done']}/{st['fields_total']}, {st['structures']} found"
        elif st["last_outcome"]:
            text += f" (last scan {st['last_outcome']})"
        if st["connect_error"] and st["state"] in (State.STARTING.value, State.ATTENTION.value):
            text += f": {st['connect_error']}"
        self.notify.send(status=text)
        if self.on_status is not None:
            self.on_status(st)

    def request_shutdown(self, signum: int | None = None, frame: FrameType | None = None) -> None:
        """SIGTERM/SIGINT: stop the scan between fields (it stays resumable) and leave the main loop."""
        self._shutdown.set()

    def connect(self) -> bool:
        """Open devices, retrying while one is missing (back-off: doubling up to ``connect_retry_max_s``).

        A :class:`NeedsAttention` failure is not retried on its own: the state is ATTENTION until a START (or
        shutdown). Returns False when shut down first.

        Raises
        ------
        ConfigError
            The configuration cannot work (not retried: no wait makes it right).
        """
        delay = self.connect_retry_s
        while not self._shutdown.is_set():
            try:
                with self._watchdog_fed(CONNECT_WATCHDOG_S):
                    self.backend.connect()
                with self._lock:
                    self._shared.connect_error = self._shared.retry_at = None
                return True
            except ConfigError:
                raise
            except NeedsAttention as exc:  # homing failed: another try drives the axes again; wait for a person
                log.error("cannot connect the hardware: %s; not retrying on its own: fix it, then 'tppscan start' "
                          "tries once more (or restart the service)", exc)
                self._set_connect(State.ATTENTION, str(exc), None)
                while not self._shutdown.is_set() and not self._retry.is_set():
                    self._sleep(1.0)
                self._retry.clear()
                delay = self.connect_retry_s
                self._set_connect(State.STARTING, str(exc), None)
                continue
            except Exception as exc:  # a missing device: say so, wait, try again (never fall back)
                log.error("cannot connect the hardware: %s; retrying in %g s", exc, delay)
                self._set_connect(State.STARTING, str(exc), time.time() + delay)
                self.notify.send(status=f"waiting for hardware: {exc}")
                self._sleep(delay)
                delay = min(delay * 2, self.connect_retry_max_s)
        return False

    @contextlib.contextmanager
    def _watchdog_fed(self, at_most_s: float) -> Iterator[None]:
        """Send WATCHDOG=1 from a thread while the block runs, for ``at_most_s`` at most.

        READY=1 comes before the hardware connects, and systemd's watchdog runs from there: a homing at start may
        take ``homing_timeout_s`` (120 s), longer than ``WatchdogSec``. A connect hung past ``at_most_s`` is left
        to the watchdog.
        """
        if not self.notify.watchdog_s:
            yield
            return
        done = threading.Event()
        end = time.monotonic() + at_most_s
        period = self.notify.watchdog_s / 3

        def feed() -> None:
            while not done.wait(period) and time.monotonic() < end:
                self.notify.send(watchdog=1)

        t = threading.Thread(target=feed, name="watchdog-connect", daemon=True)
        t.start()
        try:
            yield
        finally:
            done.set()
            t.join(1.0)

    def _set_connect(self, state: State, error: str | None, retry_at: float | None) -> None:
        with self._lock:
            if self._shared.state is not State.STOPPING:
                self._shared.state = state
            self._shared.connect_error, self._shared.retry_at = _one_line(error), retry_at
        self._status_changed()

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._shutdown.is_set() and time.monotonic() < end:
            self._shutdown.wait(min(0.5, self.notify.watchdog_s / 2 if self.notify.watchdog_s else 0.5))
            self.notify.send(watchdog=1)

    def run(self, install_signals: bool = True) -> int:
        """Serve until SIGTERM/SIGINT; returns the exit code."""
        if install_signals:
            signal.signal(signal.SIGTERM, self.request_shutdown)
            signal.signal(signal.SIGINT, self.request_shutdown)
        self.notify.send(status="warming up")
        self.backend.warm()
        # up and answering status from here: a service still connecting is not a failed start (its status says why)
        self.notify.send(ready=1)
        while True:
            try:
                connected = self.connect()
            except ConfigError as exc:
                log.error("cannot connect the hardware: %s; not retrying, this is the configuration's error: fix it "
                          "(tppscan config check), then restart the service", exc)
                self.notify.send(status=f"configuration error: {exc}")
                self.backend.close()
                self.notify.close()
                return 2
            if not connected:
                break
            self._lost.clear()
            with self._lock:
                if self._shared.state is not State.STOPPING:
                    self._shared.state = State.IDLE
            self._status_changed()
            log.info("ready: waiting for a trigger")
            tick = min(1.0, self.notify.watchdog_s / 3) if self.notify.watchdog_s else 1.0
            while not self._shutdown.wait(tick):
                self.notify.send(watchdog=1)
                if self._lost.is_set():
                    break
            if self._shutdown.is_set():
                break
            self.backend.close()  # a device was lost: close what is left, then connect again
        self._finish()
        return 0

    def _finish(self) -> None:
        log.info("shutting down")
        self.notify.send(stopping=1, status="stopping")
        with self._lock:
            self._shared.state = State.STOPPING
            c, w = self._control, self._worker
        if c is not None:
            c.stop_requested.set()
            c.resume()
        if w is not None:
            while w.is_alive():
                w.join(1.0)
                self.notify.send(watchdog=1)
        self.backend.close()
        self.notify.close()


def _one_line(text: str | None) -> str | None:
    return None if text is None else " ".join(text.split())


def _wants_new(ev: TriggerEvent) -> bool:
    """``tppscan start --new`` (the socket's ``{"args": {"new": "yes"}}``): abandon the unfinished scan."""
    return ev.args.get("new", "").lower() in ("yes", "true", "1")


def _abandoned(nxt: Any) -> str:
    """START --new's answer's tail: the unfinished scan it gives up, where there is one."""
    old = getattr(nxt, "abandons", None)
    return "" if old is None else f"; scan {old} abandoned, marked cancelled"


def _refusal(exc: Exception) -> bool:
    """Whether a scan's error is a refusal of its inputs (a bad value, a calibration that does not fit the camera).

    Those are logged as their one line; anything else with its traceback, for the engineer who reads the log.
    """
    from appliance.scan.calibration import CalibrationError

    return isinstance(exc, (ValueError, CalibrationError))
