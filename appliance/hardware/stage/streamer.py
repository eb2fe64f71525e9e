"""A plain GRBL streaming sender: send a line, wait for its ``ok``/``error:N``, send the next.

This is GRBL's "send-response" protocol, the simplest one every GRBL host implements: it never has more
than one line in the board's receive buffer, so it cannot overflow it. Comments (``;`` to end of line,
``( ... )``), ``%`` program markers and blank lines are stripped before sending. The sender stops at the
first ``error:N`` unless told to go on, and returns a transcript of every line sent and its reply.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from appliance.hardware.stage.base import StageTimeout
from appliance.hardware.stage.grbl_link import REALTIME_CHARS, GrblLink, alarm_error
from appliance.hardware.stage.grbl_protocol import MAX_LINE_LENGTH, error_text

_PAREN_COMMENT = re.compile(r"\([^)]*\)")


@dataclass(frozen=True)
class TranscriptEntry:
    """One sent line: where it came from, what was sent, what came back before the reply, the reply."""

    source_line: int
    sent: str
    payload: tuple[str, ...]
    result: str

    @property
    def ok(self) -> bool:
        """True when the board answered ``ok``."""
        return self.result == "ok"

    def describe(self) -> str:
        """``sent -> result`` with GRBL's text for an error."""
        if self.ok:
            return f"{self.sent} -> ok"
        code = int(self.result.split(":")[1]) if self.result.startswith("error:") else None
        why = f" ({error_text(code)})" if code is not None else ""
        return f"{self.sent} -> {self.result}{why}"


@dataclass(frozen=True)
class Transcript:
    """The outcome of a stream: every entry in order, and whether it stopped early."""

    entries: tuple[TranscriptEntry, ...]
    stopped_early: bool

    @property
    def errors(self) -> tuple[TranscriptEntry, ...]:
        """Entries the board rejected."""
        return tuple(e for e in self.entries if not e.ok)

    def text(self) -> str:
        """One ``sent -> result`` line per entry."""
        return "\n".join(e.describe() for e in self.entries)


def clean_line(line: str) -> str:
    """Strip comments, ``%`` markers and surrounding blanks from one G-code line ('' if nothing is left).

    Raises
    ------
    ValueError
        If an opened ``(`` comment is not closed on the line (GRBL rejects those too).
    """
    text = line.split(";", 1)[0]
    text = _PAREN_COMMENT.sub("", text)
    if "(" in text or ")" in text:
        raise ValueError(f"unbalanced parenthesis comment in G-code line {line!r}")
    text = text.strip()
    return "" if text == "%" else text


def program_lines(lines: Iterable[str]) -> list[tuple[int, str]]:
    """``(source line number, cleaned line)`` for every line that has something to send.

    Raises
    ------
    ValueError
        If a cleaned line is longer than GRBL's 80 characters, not printable ASCII, or holds a real-time
        character ``?``/``!``/``~`` (named by number).
    """
    out = []
    for number, raw in enumerate(lines, start=1):
        try:
            text = clean_line(raw.rstrip("\r\n"))
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}") from None
        if not text:
            continue
        if len(text) > MAX_LINE_LENGTH:
            raise ValueError(f"line {number}: {len(text)} characters, GRBL takes at most {MAX_LINE_LENGTH}")
        if not text.isascii() or not text.isprintable():
            raise ValueError(f"line {number}: not printable ASCII: {text!r}")
        if any(c in text for c in REALTIME_CHARS):
            raise ValueError(f"line {number}: contains a real-time character (? ! ~) outside a comment: {text!r}")
        out.append((number, text))
    return out


def stream(link: GrblLink, lines: Iterable[str], *, stop_on_error: bool = True,
           line_timeout_s: float = 30.0) -> Transcript:
    """Send a G-code program line by line, waiting for each reply.

    Parameters
    ----------
    link : GrblLink
        An open link to the board.
    lines : iterable of str
        The program, one G-code line per item (a file object works).
    stop_on_error : bool
        Stop at the first ``error:N`` (default); otherwise send every line and report all errors.
    line_timeout_s : float
        How long one line may take to be answered (a ``G4`` dwell or a full planner delays the ``ok``).

    Returns
    -------
    Transcript

    Raises
    ------
    ValueError
        If the program has a line GRBL cannot take (checked before anything is sent).
    StageTimeout, StageAlarm, StageProtocolError
        From the link, when the board stops answering, alarms or says something GRBL never says.
    """
    program = program_lines(lines)
    entries: list[TranscriptEntry] = []
    for number, text in program:
        reply = link.send(text, line_timeout_s)
        entries.append(TranscriptEntry(number, text, reply.lines, reply.result))
        if not reply.ok and stop_on_error:
            return Transcript(tuple(entries), stopped_early=True)
    return Transcript(tuple(entries), stopped_early=False)


def stream_file(link: GrblLink, path: Path, *, stop_on_error: bool = True,
                line_timeout_s: float = 30.0) -> Transcript:
    """:func:`stream` a G-code file (read as UTF-8; non-ASCII lines are refused before sending)."""
    with open(path, encoding="utf-8") as fh:
        return stream(link, fh.readlines(), stop_on_error=stop_on_error, line_timeout_s=line_timeout_s)


def wait_idle(link: GrblLink, stall_timeout_s: float, poll_s: float = 0.02) -> str:
    """Poll ``?`` until the board reports ``Idle`` (motion finished); returns that report.

    A long program is fine: the deadline moves on every time the reported position changes, so only a
    board that makes no progress for ``stall_timeout_s`` (held, stuck, silent) times out.

    A board that is in ``Alarm`` without having pushed an ``ALARM:N`` since ``link.last_alarm`` was cleared
    (locked at power-up, every motion line refused) has nothing to finish: its report is returned.

    Raises
    ------
    StageAlarm
        If the board pushed ``ALARM:N`` (limit switch, reset) instead of finishing.
    StageTimeout
        If the board is not idle and its position has not changed for ``stall_timeout_s``.
    """
    deadline = time.monotonic() + stall_timeout_s
    last_pos: tuple[float, ...] | None = None
    while True:
        report = link.query_status(min(2.0, stall_timeout_s))
        if report.idle:
            return report.raw
        if report.alarm:
            if link.last_alarm is None:
                return report.raw
            raise alarm_error(link.last_alarm, f"before the streamed motion finished (status {report.raw})")
        pos = report.mpos_mm or report.wpos_mm
        if pos != last_pos:
            last_pos = pos
            deadline = time.monotonic() + stall_timeout_s
        elif time.monotonic() > deadline:
            raise StageTimeout(f"board not idle and not moving for {stall_timeout_s:g} s after the stream: "
                               f"{report.raw}")
        time.sleep(poll_s)
