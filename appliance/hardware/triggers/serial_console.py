"""A serial console trigger: a line protocol on a port (a terminal, a PLC, another controller).

Lines (case-insensitive, CR/LF/CRLF ended): ``START``, ``START NEW`` (abandon an interrupted scan and start a new
one, as ``tppscan start --new``), ``STOP``, ``PAUSE``, ``STATUS``. Every line gets exactly
one reply line: the handler's answer (``OK ...`` / ``ERROR ...`` / ``STATUS ...``), or ``ERROR`` naming what was
wrong: an unknown command, a line longer than 128 bytes (discarded up to its end), bytes that are not ASCII.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from appliance.hardware.triggers.events import Command, Handler, TriggerError, TriggerEvent, WatcherThread

log = logging.getLogger(__name__)

MAX_LINE = 128
COMMANDS = {c.value.upper(): c for c in (Command.START, Command.STOP, Command.PAUSE, Command.STATUS)}
#: Lines that are a command with arguments: the control socket's ``{"args": {"new": "yes"}}`` of ``start --new``.
WITH_ARGS = {"START NEW": (Command.START, {"new": "yes"})}


class LineParser:
    """Bytes in -> complete lines out, bounded, with the error for an over-long line."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._overflow = False

    def feed(self, data: bytes) -> list[bytes | None]:
        """Complete lines in ``data`` (None for a line that was too long)."""
        out: list[bytes | None] = []
        for b in data:
            if b in (10, 13):
                if self._overflow:
                    out.append(None)
                elif self._buf:
                    out.append(bytes(self._buf))
                self._buf.clear()
                self._overflow = False
            elif not self._overflow:
                self._buf.append(b)
                if len(self._buf) > MAX_LINE:
                    self._overflow = True
                    self._buf.clear()
        return out


def answer(line: bytes | None, handler: Handler) -> str:
    """The one reply line to one received line."""
    if line is None:
        return f"ERROR line longer than {MAX_LINE} bytes"
    try:
        text = line.decode("ascii").strip()
    except UnicodeDecodeError:
        return "ERROR not ASCII text"
    key = " ".join(text.upper().split())
    if key in WITH_ARGS:
        with_args, args = WITH_ARGS[key]
        return str(handler(TriggerEvent(with_args, "serial", dict(args))))
    cmd = COMMANDS.get(key)
    if cmd is None:
        shown = text if len(text) <= 32 else text[:32] + "..."
        return f"ERROR unknown command {shown!r} (allowed: {', '.join([*COMMANDS, *WITH_ARGS])})"
    return str(handler(TriggerEvent(cmd, "serial")))


class SerialConsole(WatcherThread):
    """Reads command lines from a serial port in a thread and writes one reply line to each."""

    thread_name = "serial-console"

    def __init__(self, handler: Handler, port: str, baud: int = 115200, *,
                 serial_factory: Callable[..., Any] | None = None) -> None:
        super().__init__()
        self.handler = handler
        self.port = port
        self.baud = baud
        self._factory = serial_factory
        self._ser: Any = None

    def start(self) -> None:
        """Open the port and start serving."""
        import serial

        factory = self._factory or serial.Serial
        try:
            self._ser = factory(self.port, self.baud, timeout=0.2)
        except (OSError, serial.SerialException) as exc:
            raise TriggerError(f"serial trigger: cannot open {self.port}: {exc}") from None
        self._start_thread()

    def stop(self) -> None:
        """Stop serving and close the port; safe twice."""
        self._stop_thread()
        ser, self._ser = self._ser, None
        if ser is not None:
            ser.close()

    def _run(self) -> None:
        ser = self._ser  # stop() clears self._ser while a reply may still be on its way: use this one throughout
        parser = LineParser()
        while not self._stop.is_set():
            try:
                data = ser.read(256)
            except OSError as exc:
                if not self._stop.is_set():  # closed by stop(): nothing to report
                    log.error("serial trigger: %s failed: %s", self.port, exc)
                return
            for line in parser.feed(data or b""):
                reply = answer(line, self.handler)
                try:
                    ser.write(reply.encode("ascii", "replace") + b"\r\n")
                except OSError as exc:
                    if not self._stop.is_set():
                        log.error("serial trigger: writing to %s failed: %s", self.port, exc)
                    return
