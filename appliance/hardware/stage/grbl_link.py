"""Line-level GRBL 1.1 I/O over a byte transport: send a line and collect its one ``ok``/``error:N``.

A :class:`GrblLink` sends one line at a time and waits for the reply that ends it (GRBL's simple
send-response streaming), sorts every line it reads on the way (status reports, ``[MSG:...]`` pushes,
``ALARM:N``, the reset banner) and enforces deadlines on a monotonic clock. It knows nothing of
positions or units: the stage driver (:mod:`appliance.hardware.stage.grbl`) and the streaming sender
(:mod:`appliance.hardware.stage.streamer`) sit on top of it.

The transport is anything with pyserial's ``read``/``write``/``in_waiting``/``reset_input_buffer``/
``close``, so tests run the link over a pseudo-terminal or pyserial's ``loop://``.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from appliance.hardware.stage.base import (
    HomingDisabled,
    StageAlarm,
    StageError,
    StageLimitError,
    StageProtocolError,
    StageTimeout,
)
from appliance.hardware.stage.grbl_protocol import (
    MAX_LINE_LENGTH,
    STATUS_QUERY,
    Line,
    LineKind,
    StatusReport,
    alarm_text,
    classify,
    error_text,
    excerpt,
    parse_status,
)

#: Bytes GRBL executes at once wherever they appear in the stream (0x18 is not printable anyway).
REALTIME_CHARS = "?!~"

#: A reply line longer than this is a broken link or not GRBL: GRBL's longest lines are ~80 chars.
MAX_REPLY_LENGTH = 512

#: Alarms after which stock GRBL serves nothing, not even ``?``, until a reset (protocol.c, critical event).
CRITICAL_ALARMS = (1, 2)

#: Stock GRBL's push once a reset will be honoured after ALARM:1/2 (about 500 ms after the alarm).
RESET_TO_CONTINUE = "[MSG:Reset to continue]"

#: How long a status query waits after ALARM:1/2 before concluding the board is in GRBL's silent loop.
CRITICAL_SILENCE_S = 0.25


class Transport(Protocol):
    """The part of ``serial.Serial`` the link uses (``timeout`` must be small: it is the poll period)."""

    @property
    def in_waiting(self) -> int:
        """Bytes ready to read."""
        ...

    def read(self, size: int = 1) -> bytes:
        """Read up to ``size`` bytes, waiting at most the port's timeout."""
        ...

    def write(self, data: bytes) -> int | None:
        """Write bytes."""
        ...

    def reset_input_buffer(self) -> None:
        """Drop bytes received but not yet read."""
        ...

    def close(self) -> None:
        """Close the port."""
        ...


class StageConnectionError(StageError):
    """The serial link failed (unplugged, port vanished) and could not be re-established."""


class GarbledLineError(StageProtocolError):
    """A line GRBL never sends stood where a reply or a status report was awaited (line noise, EMI).

    The link has marked itself dirty: the next exchange drains first. An exchange that is harmless to repeat
    (a status query, an absolute move, a servo angle) may be sent again once.
    """


class StageResetError(StageProtocolError):
    """The board printed its reset banner when no reset was asked for (brown-out, watchdog, another host).

    Everything the host knew of the board is stale: queued motion is gone, the G-code modes are back at
    their defaults, a servo angle and the backlash side are unknown, the position may be lost.
    """


class SoftLimitAlarm(StageAlarm):
    """``ALARM:2``: stock GRBL's answer to a G-code target beyond the travel (soft limits).

    It is an alarm (stock GRBL wants a reset and ``$X`` or ``$H``) caused by a target outside the
    travel; :class:`~appliance.hardware.stage.base.StageLimitError` is raised for ``error:15``.
    """


@dataclass(frozen=True)
class Reply:
    """The outcome of one line: the lines printed before its ``ok``, or the error code."""

    command: str
    lines: tuple[str, ...]
    ok: bool
    error_code: int | None = None

    @property
    def result(self) -> str:
        """``ok`` or ``error:N``, as the board printed it."""
        return "ok" if self.ok else f"error:{self.error_code}"


@dataclass
class StatusWatch:
    """The ``?`` asked while a long line runs (:meth:`GrblLink.send_watched`), and how long one went unanswered.

    Stock GRBL 1.1h answers no ``?`` during its homing cycle (``limits.c``: "No time to run
    protocol_execute_realtime() in this loop") and one report when it ends; our firmware and grblHAL report
    throughout. So a board known to report (``expect``), or one that has reported once during this line, and
    then leaves a ``?`` unanswered for ``silence_s`` has stopped; a board that has not reported yet is
    bounded only by the line's own timeout.
    """

    board: str           # the port, for the message
    poll_s: float        # the wait between one report and the next '?'
    silence_s: float     # how long an expected report may take
    expect: bool         # the board is known to report while the line runs
    running: str         # the state a report shows while the line runs ("Home")
    why: str = "the board reports while this line runs"
    asked_at: float | None = None   # when the '?' still unanswered was sent
    next_at: float = 0.0            # when the next '?' is due

    def wake_at(self) -> float:
        """When the link must look again: the next ``?`` is due, or the unanswered one is overdue."""
        if self.asked_at is None:
            return self.next_at
        return self.asked_at + self.silence_s if self.expect else math.inf

    def answered(self, now: float, state: str | None) -> None:
        """A report came (``state``: None if mangled); the next ``?`` is due after ``poll_s``.

        Only a report in the ``running`` state shows that the board reports while the line runs: a ``?``
        that overtook the line is answered before the line starts, on stock GRBL too.
        """
        if not self.expect and state == self.running:
            self.expect, self.why = True, f"it had reported {state!r} earlier while the line ran"
        self.asked_at, self.next_at = None, now + self.poll_s


def alarm_error(code: int, context: str) -> StageAlarm:
    """The exception for ``ALARM:code`` seen while ``context`` (``ALARM:2`` is a :class:`SoftLimitAlarm`)."""
    if code == 0:  # the state says Alarm, but no ALARM:N line was read (power-up lock, or it was missed)
        return StageAlarm(f"the board is in Alarm {context}; home ($H) or unlock ($X)")
    cls = SoftLimitAlarm if code == 2 else StageAlarm
    return cls(f"ALARM:{code} ({alarm_text(code)}) {context}; reset, then home ($H) or unlock ($X)")


class GrblLink:
    """Send lines and real-time bytes to a GRBL 1.1 board and read its replies.

    Parameters
    ----------
    transport : Transport
        An open port; its read timeout is the poll period (20-50 ms suits).
    clock : callable, optional
        A monotonic clock in seconds (tests may inject one).

    Notes
    -----
    Lines are sent one at a time and the next is sent only after the board has answered: GRBL's
    "send-response" streaming. It never overflows the board's 128-byte receive buffer, the one place
    GRBL drops bytes. ``[MSG:...]`` lines the board pushes at any time (the button, for one) are kept
    in :attr:`messages`; ``ALARM:N`` pushes are recorded in :attr:`last_alarm`.
    """

    def __init__(self, transport: Transport, clock: Callable[[], float] = time.monotonic) -> None:
        self.transport = transport
        self._clock = clock
        self._buf = bytearray()
        #: bytes read, and lines in GRBL's words among them: a port that sends bytes but never such a line is
        #: at the wrong baud rate, or not a GRBL board (``GrblStage`` says so when it finds no status report)
        self.bytes_in = 0
        self.grbl_lines = 0
        self.messages: deque[str] = deque(maxlen=256)
        self.last_alarm: int | None = None
        self.last_status: StatusReport | None = None
        self.banners: deque[str] = deque(maxlen=16)
        self._dirty = False
        self._skipping = False           # inside an over-long line: discard up to its newline
        #: True while the host itself resets the board (handshake, soft reset): a banner is expected then.
        self.expect_reset = False
        #: The banner of a reset nobody asked for, until the stage has dealt with it.
        self.unexpected_reset: str | None = None
        #: ALARM:1/2 seen and no banner since: stock GRBL is in its silent loop until reset.
        self.critical_alarm: int | None = None
        #: ``[MSG:Reset to continue]`` seen since the last ALARM:1/2 (a reset will now be honoured).
        self.reset_to_continue = False
        #: The last line sent, to name it when its reply comes late.
        self.last_command: str | None = None
        self._late: Line | None = None    # an error:N poll() read: raised by the next command or query

    # -- reading --------------------------------------------------------------------------------------

    def _fill(self) -> None:
        waiting = self.transport.in_waiting
        chunk = self.transport.read(max(1, min(waiting, 4096)))
        self.bytes_in += len(chunk)
        self._buf.extend(chunk)

    def read_line(self, deadline: float, waiting_for: str) -> str | None:
        """Read the next line before ``deadline`` (monotonic seconds); None if none arrived.

        Raises
        ------
        StageProtocolError
            If a line grows beyond :data:`MAX_REPLY_LENGTH` bytes without a newline.
        """
        while True:
            if self._skipping:
                nl = self._buf.find(b"\n")
                if nl < 0:
                    self._buf.clear()   # still inside the over-long line: drop it as it arrives
                else:
                    del self._buf[: nl + 1]
                    self._skipping = False
                    continue
            else:
                nl = self._buf.find(b"\n", 0, MAX_REPLY_LENGTH + 1)
                if nl >= 0:
                    raw = bytes(self._buf[:nl])
                    del self._buf[: nl + 1]
                    return raw.decode("ascii", errors="replace").rstrip("\r")
                if len(self._buf) > MAX_REPLY_LENGTH:
                    junk = bytes(self._buf[:64])
                    end = self._buf.find(b"\n")
                    if end >= 0:
                        del self._buf[: end + 1]  # the lines after it are kept
                    else:
                        self._buf.clear()
                        self._skipping = True  # the rest of this line is dropped too, up to its newline
                    self._dirty = True
                    raise StageProtocolError(
                        f"reply longer than {MAX_REPLY_LENGTH} bytes without a newline while {waiting_for} "
                        f"(starts {junk!r}): wrong baud rate or not a GRBL board?")
            if self._clock() >= deadline:
                return None
            self._fill()

    def _note(self, line: Line) -> None:
        """Record what a line says about the board, whatever it answers."""
        if line.kind not in (LineKind.OTHER, LineKind.EMPTY):
            self.grbl_lines += 1
        if line.kind is LineKind.FEEDBACK and line.text.startswith("[MSG:"):
            self.messages.append(line.text)
            if line.text == RESET_TO_CONTINUE:
                self.reset_to_continue = True
                if self.critical_alarm is None:
                    self.critical_alarm = self.last_alarm or 0
        elif line.kind is LineKind.ALARM:
            self.last_alarm = line.code if line.code is not None else 0
            if self.last_alarm in CRITICAL_ALARMS:
                self.critical_alarm = self.last_alarm
                self.reset_to_continue = False
        elif line.kind is LineKind.BANNER:
            self.banners.append(line.text)
            self.critical_alarm = None
            self.reset_to_continue = False
            # before the board's first status report a banner is its power-up (a DTR reset on open)
            if not self.expect_reset and self.last_status is not None:
                self.unexpected_reset = line.text

    def _raise_if_reset(self) -> None:
        if self.unexpected_reset is not None:
            self._dirty = True
            raise StageResetError(f"the board reset by itself ({self.unexpected_reset!r}, no reset was sent): "
                                  "queued motion is gone, the position and the G-code modes must be re-established")

    def drain(self, quiet_s: float = 0.05, max_s: float = 1.0) -> list[str]:
        """Read and return whatever the board sends until it is quiet for ``quiet_s`` (at most ``max_s``).

        Noise (an endless line, a wrong baud rate) is discarded, not raised: draining is how the link
        resynchronises. Status reports are kept; a malformed one is dropped with the rest.
        """
        out: list[str] = []
        end = self._clock() + max_s
        while True:
            now = self._clock()
            try:
                line = self.read_line(min(now + quiet_s, end), "draining")
            except StageProtocolError:
                continue  # an over-long line: read_line now skips to its end
            if line is None:
                break
            parsed = classify(line)
            self._note(parsed)
            if parsed.kind is LineKind.STATUS:
                try:
                    self._store_status(parsed.text)
                except StageProtocolError:
                    pass  # a mangled report while resynchronising: the next query asks again
            out.append(line)
        if self._clock() < end:
            # quiet: a partial line left now is a fragment, not the start of a reply; the next line is new
            self._buf.clear()
            self._skipping = False
        self._dirty = False
        return out

    def poll(self) -> list[str]:
        """Read what has arrived, without waiting; returns the complete lines (a partial one stays buffered).

        Pushed lines (``[MSG:...]``, ``ALARM:N``) are recorded as usual. Use it between commands only.

        Raises
        ------
        StageResetError
            If the board printed its banner without being reset by this host.
        """
        while self.transport.in_waiting:
            self._fill()
        out: list[str] = []
        while True:
            try:
                line = self.read_line(-1.0, "polling")
            except StageProtocolError:
                continue  # noise: dropped up to its newline, as drain() does
            if line is None:
                self._raise_if_reset()
                return out
            parsed = classify(line)
            self._note(parsed)
            if parsed.kind is LineKind.STATUS:
                try:
                    self._store_status(parsed.text)
                except StageProtocolError:
                    pass  # a pushed report nobody asked for: a mangled one is not worth failing over
            elif parsed.kind is LineKind.ERROR and self._late is None:
                self._late = parsed  # a late reply: the thread that sent the line hears of it next
            out.append(line)

    def _store_status(self, text: str) -> StatusReport:
        report = parse_status(text)
        self.last_status = report
        return report

    # -- commands -------------------------------------------------------------------------------------

    def write_realtime(self, byte: bytes) -> None:
        """Send one real-time byte (``?``, ``!``, ``~`` or 0x18); it needs no newline and gets no ``ok``."""
        if len(byte) != 1:
            raise ValueError(f"a real-time command is one byte, got {byte!r}")
        self.transport.write(byte)

    def send(self, command: str, timeout_s: float) -> Reply:
        """Send one line and wait for its ``ok`` or ``error:N``.

        Parameters
        ----------
        command : str
            The line without its newline; at most 80 characters, printable ASCII.
        timeout_s : float
            How long to wait for the reply.

        Returns
        -------
        Reply
            ``ok`` with the lines printed before it, or the ``error:N`` code (not raised here: the
            caller decides, see :func:`check`).

        Raises
        ------
        ValueError
            If the line is too long, not printable ASCII, or holds ``?``/``!``/``~`` (it would draw
            ``error:11``, garble the link or act as a real-time command).
        StageTimeout
            If no ``ok``/``error:N`` arrives within ``timeout_s``.
        StageAlarm
            If the board pushes ``ALARM:N`` instead of answering (stock GRBL does for soft limits).
        StageProtocolError
            If a line that GRBL never sends arrives, or the board resets while the line is pending.
        """
        self._write_line(command)
        return self._await_reply(command, self._clock() + timeout_s, timeout_s)

    def send_watched(self, command: str, timeout_s: float, watch: StatusWatch) -> Reply:
        """:meth:`send` for a line that runs long (``$H``), asking ``?`` meanwhile to tell a live board from a gone one.

        Raises
        ------
        StageTimeout
            Also when the board leaves a ``?`` unanswered for ``watch.silence_s`` while it is expected to
            report (see :class:`StatusWatch`).
        """
        self._write_line(command)
        try:
            return self._await_reply(command, self._clock() + timeout_s, timeout_s, watch)
        finally:
            if watch.asked_at is not None:
                self._dirty = True  # the answer to the last '?' may still come: the next exchange drains it

    def _write_line(self, command: str) -> None:
        if len(command) > MAX_LINE_LENGTH:
            raise ValueError(f"a GRBL line is at most {MAX_LINE_LENGTH} characters, got {len(command)}: "
                             f"{command[:40]!r}...")
        if not command.isascii() or not command.isprintable():
            raise ValueError(f"a GRBL line must be printable ASCII without line breaks, got {command!r}")
        if any(c in command for c in REALTIME_CHARS):
            # GRBL acts on these bytes wherever they appear, so inside a line they would hold or query
            raise ValueError(f"a GRBL line cannot contain the real-time characters ? ! ~, got {command!r}")
        if self._dirty:
            self.drain()
        self._drop_stale_replies()
        self._raise_if_reset()
        self.last_command = command
        self.transport.write(command.encode("ascii") + b"\n")

    def _drop_stale_replies(self) -> None:
        """Read complete lines already received; a stray ``ok`` (a duplicate) must not answer the next line.

        Raises
        ------
        StageError
            For a stray ``error:N``: the previous line was refused after all (its reply came late).
        """
        if self._late is not None:
            late, self._late = self._late, None
            self._late_error(late)
        while self.transport.in_waiting:
            self._fill()
        while True:
            try:
                text = self.read_line(-1.0, "reading stray replies")
            except StageProtocolError:
                continue
            if text is None:
                return
            line = classify(text)
            self._note(line)
            if line.kind is LineKind.ERROR:
                self._late_error(line)
            elif line.kind is LineKind.STATUS:
                try:
                    self._store_status(line.text)
                except StageProtocolError:
                    pass

    def _late_error(self, line: Line) -> None:
        """An ``error:N`` with no line pending: the reply of :attr:`last_command`, shifted by a stray ``ok``."""
        self._dirty = True
        late = Reply(self.last_command or "(no line sent yet)", (), False, line.code)
        try:
            check(late)
        except StageError as exc:
            raise type(exc)(f"{exc} (the reply came late, out of step with the commands: the board had "
                            "answered an extra 'ok')") from None

    def _await_reply(self, command: str, deadline: float, timeout_s: float,
                     watch: StatusWatch | None = None) -> Reply:
        payload: list[str] = []
        while True:
            wake = deadline if watch is None else min(deadline, watch.wake_at())
            text = self.read_line(wake, f"waiting for the reply to {command!r}")
            if text is None and watch is not None and self._clock() < deadline:
                self._watch_tick(watch, command)
                continue
            if text is None:
                self._dirty = True
                if self.critical_alarm is not None:
                    raise alarm_error(self.critical_alarm, f"before {command!r} was answered (the board "
                                      "answers nothing after this alarm until it is reset)")
                raise StageTimeout(f"no ok/error for {command!r} within {timeout_s:g} s "
                                   f"(got {excerpt(payload)}); is the board powered and on this port?")
            line = classify(text)
            self._note(line)
            if line.kind is LineKind.OK:
                return Reply(command, tuple(payload), True)
            if line.kind is LineKind.ERROR:
                return Reply(command, tuple(payload), False, line.code)
            if line.kind is LineKind.ALARM:
                self._dirty = True
                raise alarm_error(line.code or 0, f"while waiting for the reply to {command!r}")
            if line.kind is LineKind.BANNER:
                self._dirty = True
                if self.unexpected_reset is not None:
                    raise StageResetError(f"the board reset ({text!r}) while {command!r} was pending")
                raise StageProtocolError(f"the board reset ({text!r}) while {command!r} was pending")
            if line.kind is LineKind.STATUS:
                state = None
                try:
                    state = self._store_status(line.text).state
                except StageProtocolError:
                    pass  # a mangled report pushed amid a reply: the reply itself is what counts here
                if watch is not None:
                    watch.answered(self._clock(), state)  # even a mangled report says the board is alive
            elif line.kind is LineKind.OTHER:
                self._dirty = True
                raise GarbledLineError(f"unexpected reply {excerpt(text)} to {command!r}: not a GRBL 1.1 line")
            elif line.kind is not LineKind.EMPTY:
                payload.append(line.text)

    def _watch_tick(self, watch: StatusWatch, command: str) -> None:
        """Ask ``?`` when one is due; raise when an expected report is overdue."""
        now = self._clock()
        if watch.asked_at is None:
            if now >= watch.next_at:
                self.write_realtime(STATUS_QUERY)
                watch.asked_at = now
            return
        if watch.expect and now - watch.asked_at >= watch.silence_s:
            self._dirty = True
            raise StageTimeout(f"no status report from {watch.board} within {watch.silence_s:g} s of '?' while "
                               f"{command!r} ran: {watch.why}, so it has stopped answering (power, cable, "
                               "hung firmware?); it may still be moving")

    def query_status(self, timeout_s: float) -> StatusReport:
        """Send ``?`` and return the status report that answers it.

        Raises
        ------
        StageTimeout
            If no report arrives within ``timeout_s``.
        StageAlarm
            If ``ALARM:N`` arrives meanwhile, or the board stays silent after ALARM:1/2 (stock GRBL answers
            nothing, not even ``?``, until it is reset).
        StageResetError
            If the board prints its banner without having been reset by this host.
        StageError
            If an ``error:N`` arrives meanwhile (a late reply: :func:`check` picks the class).
        StageProtocolError
            If the report is malformed, or a line GRBL never sends arrives.
        """
        if self._dirty:
            self.drain()
        self._drop_stale_replies()
        self._raise_if_reset()
        self.write_realtime(STATUS_QUERY)
        start = self._clock()
        deadline = start + timeout_s
        while True:
            wait_until = deadline
            if self.critical_alarm is not None:
                wait_until = min(deadline, start + CRITICAL_SILENCE_S)
            text = self.read_line(wait_until, "waiting for a status report")
            if text is None:
                self._dirty = True
                if self.critical_alarm is not None:
                    raise alarm_error(self.critical_alarm, "(no answer to '?': stock GRBL serves nothing after "
                                      "this alarm until it is reset)")
                raise StageTimeout(f"no status report (<...>) within {timeout_s:g} s of '?'")
            line = classify(text)
            self._note(line)
            if line.kind is LineKind.STATUS:
                try:
                    report = self._store_status(line.text)
                except StageProtocolError:
                    self._dirty = True
                    raise
                self.critical_alarm = None  # it answers '?': not in stock GRBL's silent loop (ours never is)
                return report
            if line.kind is LineKind.ALARM:
                self._dirty = True
                raise alarm_error(line.code or 0, "pushed by the board while waiting for a status report")
            if line.kind is LineKind.ERROR:
                self._late_error(line)
            if line.kind is LineKind.BANNER:
                self._raise_if_reset()
            if line.kind is LineKind.OTHER:
                self._dirty = True
                raise GarbledLineError(f"unexpected reply {excerpt(text)} while waiting for a status report")


def check(reply: Reply) -> Reply:
    """Return ``reply`` if it is ``ok``; raise the matching stage error for ``error:N``.

    Raises
    ------
    StageAlarm
        For ``error:9`` (G-code locked out in alarm).
    StageLimitError
        For ``error:15`` (target beyond the travel).
    HomingDisabled
        For ``error:5`` in answer to ``$H`` (homing is off: ``$22=0``).
    StageProtocolError
        For every other ``error:N``, with GRBL's text.
    """
    if reply.ok:
        return reply
    code = reply.error_code if reply.error_code is not None else 0
    msg = f"board rejected {reply.command!r}: error:{code} ({error_text(code)})"
    if code == 9:
        raise StageAlarm(msg + "; home ($H) or unlock ($X) first")
    if code == 15:
        raise StageLimitError(msg)
    if code == 5 and reply.command.strip().upper() == "$H":
        # stock GRBL ships with homing off ($22=0): say which setting turns it on
        raise HomingDisabled(msg + "; homing is off on this board: `tppscan stage settings --set 22=1` turns it "
                                 "on (limit switches wired)")
    raise StageProtocolError(msg)
