"""GRBL 1.1 reply parsing: line kinds, status reports, settings lines, and the error/alarm code tables.

Pure functions on text, no I/O, so the parser is tested on its own and shared by the stage driver
(:mod:`appliance.hardware.stage.grbl`), the streaming sender and the CLI. The codes and texts follow
GRBL 1.1's documented tables (``doc/csv/error_codes_en_US.csv`` and ``alarm_codes_en_US.csv`` in the
GRBL repository); our firmware keeps the same numbers where the meaning is the same (docs/protocol.md).
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass, field

from appliance.hardware.stage.base import StageProtocolError

#: ``error:N`` codes of GRBL 1.1 and their short meaning.
ERROR_CODES: dict[int, str] = {
    1: "Expected command letter (G-code words consist of a letter and a value)",
    2: "Bad number format (missing or invalid numeric value)",
    3: "Invalid statement ('$' system command not recognised or supported)",
    4: "Negative value received for an expected positive value",
    5: "Setting disabled (homing cycle is not enabled in settings)",
    6: "Step pulse time must be greater than 3 microseconds",
    7: "EEPROM read failed; settings reset to defaults",
    8: "'$' command cannot be used unless the machine is idle",
    9: "G-code locked out during alarm or jog state",
    10: "Soft limits cannot be enabled without homing also enabled",
    11: "Max characters per line exceeded; line was not processed",
    12: "Setting value exceeds the maximum step rate supported",
    13: "Safety door detected as opened and door state initiated",
    14: "Build info or startup line exceeded EEPROM line length limit",
    15: "Jog/move target exceeds machine travel (soft limit); command ignored",
    16: "Jog command has no '=' or contains prohibited g-code",
    17: "Laser mode requires PWM output",
    20: "Unsupported or invalid g-code command found in block",
    21: "More than one g-code command from the same modal group found in block",
    22: "Feed rate has not yet been set or is undefined",
    23: "G-code command in block requires an integer value",
    24: "More than one g-code command that requires axis words found in block",
    25: "Repeated g-code word found in block",
    26: "No axis words found in block for a command or modal state that requires them",
    27: "Line number value is invalid",
    28: "G-code command is missing a required value word",
    29: "G59.x work coordinate systems are not supported",
    30: "G53 only allowed with G0 and G1 motion modes",
    31: "Axis words found in block when no command or modal state uses them",
    32: "G2 and G3 arcs require at least one in-plane axis word",
    33: "Motion command target is invalid",
    34: "Arc radius value is invalid",
    35: "G2 and G3 arcs require at least one in-plane offset word",
    36: "Unused value words found in block",
    37: "G43.1 dynamic tool length offset is not assigned to the configured tool length axis",
    # GRBL's meaning; the tppscan firmware uses 38 for any value above its maximum (G4 P over 600 s).
    38: "Tool number greater than the maximum supported value (tppscan firmware: a value above its maximum)",
}

#: ``ALARM:N`` codes of GRBL 1.1 and their short meaning.
ALARM_CODES: dict[int, str] = {
    1: "Hard limit triggered; position is likely lost, re-homing is highly recommended",
    2: "Soft limit: motion target exceeds machine travel; position retained, alarm may be unlocked",
    3: "Reset while in motion; position is likely lost, re-homing is highly recommended",
    4: "Probe fail: probe not in the expected initial state",
    5: "Probe fail: probe did not contact the workpiece",
    6: "Homing fail: reset during the homing cycle",
    7: "Homing fail: safety door was opened during homing",
    8: "Homing fail: pull-off failed to clear the limit switch",
    9: "Homing fail: could not find the limit switch within the search distance",
    10: "Homing fail: second dual-axis limit switch not found",
}

#: Machine states a GRBL 1.1 status report may start with (``Hold``/``Door`` carry ``:N``).
STATES: frozenset[str] = frozenset(
    {"Idle", "Run", "Hold", "Jog", "Alarm", "Door", "Check", "Home", "Sleep"})

#: Real-time command bytes; they act at once and are never followed by a newline.
STATUS_QUERY = b"?"
FEED_HOLD = b"!"
CYCLE_START = b"~"
SOFT_RESET = b"\x18"

#: GRBL's receive line buffer is 80 characters (LINE_BUFFER_SIZE); longer lines draw ``error:11``.
MAX_LINE_LENGTH = 80


def error_text(code: int) -> str:
    """The meaning of ``error:code``, or a note that the code is not in GRBL 1.1's table."""
    return ERROR_CODES.get(code, f"unknown error code {code} (not in GRBL 1.1's table; see docs/protocol.md)")


def alarm_text(code: int) -> str:
    """The meaning of ``ALARM:code``, or a note that the code is not in GRBL 1.1's table."""
    return ALARM_CODES.get(code, f"unknown alarm code {code} (not in GRBL 1.1's table; see docs/protocol.md)")


class LineKind(enum.Enum):
    """What one line from the board is."""

    OK = "ok"
    ERROR = "error"          # error:N, the reply to a rejected line
    ALARM = "alarm"          # ALARM:N, pushed when the machine enters alarm
    STATUS = "status"        # <State|...>, the answer to '?'
    FEEDBACK = "feedback"    # [MSG:...], [VER:...], [OPT:...], [GC:...], [HLP:...], ...
    SETTING = "setting"      # $N=value, one line of the '$$' listing
    BANNER = "banner"        # Grbl 1.1h ['$' for help], printed after every reset
    EMPTY = "empty"
    OTHER = "other"          # anything else: not allowed by the protocol


@dataclass(frozen=True)
class Line:
    """One classified line; ``code`` is set for ERROR and ALARM lines."""

    kind: LineKind
    text: str
    code: int | None = None


_CODE_RE = re.compile(r"^(error|ALARM):(\d{1,3})$")
_SETTING_RE = re.compile(r"^\$(\d{1,3})=(\S+)$")
_BANNER_RE = re.compile(r"^Grbl (\S+) \[.*\]$")


def classify(text: str) -> Line:
    """Classify one line received from the board (without its line ending).

    Parameters
    ----------
    text : str
        The line, its line ending already stripped.

    Returns
    -------
    Line
        Its kind, and for ``error:N`` / ``ALARM:N`` the code.
    """
    s = text.strip()
    if not s:
        return Line(LineKind.EMPTY, s)
    if s == "ok":
        return Line(LineKind.OK, s)
    m = _CODE_RE.match(s)
    if m:
        kind = LineKind.ERROR if m.group(1) == "error" else LineKind.ALARM
        return Line(kind, s, int(m.group(2)))
    if s.startswith("<") and s.endswith(">"):
        return Line(LineKind.STATUS, s)
    if s.startswith("[") and s.endswith("]"):
        return Line(LineKind.FEEDBACK, s)
    if _SETTING_RE.match(s):
        return Line(LineKind.SETTING, s)
    if _BANNER_RE.match(s):
        return Line(LineKind.BANNER, s)
    return Line(LineKind.OTHER, s)


@dataclass(frozen=True)
class StatusReport:
    """A parsed GRBL 1.1 status report.

    Attributes
    ----------
    state : str
        ``Idle``, ``Run``, ``Hold``, ``Jog``, ``Alarm``, ``Door``, ``Check``, ``Home`` or ``Sleep``.
    substate : int or None
        The ``N`` of ``Hold:N`` / ``Door:N`` (``Hold:0`` stopped, ``Hold:1`` still decelerating).
    mpos_mm : tuple of float or None
        Machine position (mm), when the report carries ``MPos``.
    wpos_mm : tuple of float or None
        Work position (mm), when the report carries ``WPos`` instead.
    wco_mm : tuple of float or None
        Work coordinate offset (mm), present in some reports only.
    buffer : tuple of int or None
        ``Bf:`` free planner blocks and free receive-buffer bytes.
    pins : str
        ``Pn:`` letters of inputs that read active (``X``, ``Y``, ``Z`` limits, ``P`` probe, ...).
    feed : float or None
        Current feed rate from ``F:`` or ``FS:``.
    extra : dict
        Any other ``Name:value`` fields, kept as text.
    raw : str
        The report as received.
    """

    state: str
    substate: int | None
    mpos_mm: tuple[float, ...] | None
    wpos_mm: tuple[float, ...] | None
    wco_mm: tuple[float, ...] | None
    buffer: tuple[int, ...] | None
    pins: str
    feed: float | None
    extra: dict[str, str] = field(default_factory=dict)
    raw: str = ""

    @property
    def idle(self) -> bool:
        """True when the machine is idle (not moving, not in alarm)."""
        return self.state == "Idle"

    @property
    def alarm(self) -> bool:
        """True when the machine is in alarm."""
        return self.state == "Alarm"


def _numbers(name: str, value: str, raw: str) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in value.split(","))
    except ValueError:
        raise StageProtocolError(f"status report field {name} has a non-numeric value {value!r} in {raw!r}") from None
    if not all(math.isfinite(v) for v in out):
        raise StageProtocolError(f"status report field {name} is not finite: {value!r} in {raw!r}")
    return out


def _position(name: str, value: str, raw: str) -> tuple[float, ...]:
    pos = _numbers(name, value, raw)
    if len(pos) < 3:
        raise StageProtocolError(f"status report field {name} needs 3 axes (x,y,z), got {value!r} in {raw!r}")
    return pos


def _state(token: str, raw: str) -> tuple[str, int | None]:
    name, _, sub = token.partition(":")
    if name not in STATES:
        raise StageProtocolError(
            f"status report state {name!r} is not a GRBL 1.1 state ({', '.join(sorted(STATES))}) in {raw!r}")
    if not sub:
        return name, None
    if not sub.isdigit():
        raise StageProtocolError(f"status report substate {sub!r} is not an integer in {raw!r}")
    return name, int(sub)


def parse_status(text: str) -> StatusReport:
    """Parse a status report such as ``<Idle|MPos:0.000,1.250,0.000|Bf:15,128|FS:0,0>``.

    Parameters
    ----------
    text : str
        The report line including its angle brackets.

    Returns
    -------
    StatusReport

    Raises
    ------
    StageProtocolError
        If the line is not a well-formed report: no brackets, an unknown state, a non-numeric or
        short position, or neither ``MPos`` nor ``WPos``.
    """
    raw = text.strip()
    if not (raw.startswith("<") and raw.endswith(">")) or len(raw) < 3:
        raise StageProtocolError(f"status report must be enclosed in <...>, got {excerpt(raw)}")
    if raw.count("<") != 1 or raw.count(">") != 1:
        # two half reports glued together (a byte lost on the wire): neither half can be trusted
        raise StageProtocolError(f"status report is not exactly one <...>: {excerpt(raw)}")
    tokens = raw[1:-1].split("|")
    state, substate = _state(tokens[0], raw)
    values: dict[str, str] = {}
    for tok in tokens[1:]:
        name, sep, value = tok.partition(":")
        if not sep or not name:
            raise StageProtocolError(f"status report field {tok!r} is not Name:value in {raw!r}")
        values[name] = value
    mpos = _position("MPos", values.pop("MPos"), raw) if "MPos" in values else None
    wpos = _position("WPos", values.pop("WPos"), raw) if "WPos" in values else None
    if mpos is None and wpos is None:
        raise StageProtocolError(f"status report carries neither MPos nor WPos: {raw!r}")
    wco = _position("WCO", values.pop("WCO"), raw) if "WCO" in values else None
    buffer = tuple(int(v) for v in _numbers("Bf", values.pop("Bf"), raw)) if "Bf" in values else None
    feed = None
    for key in ("FS", "F"):
        if key in values:
            feed = _numbers(key, values.pop(key), raw)[0]
    pins = values.pop("Pn", "")
    return StatusReport(state, substate, mpos, wpos, wco, buffer, pins, feed, values, raw)


def parse_setting(text: str) -> tuple[int, float]:
    """Parse one ``$N=value`` line of the ``$$`` listing.

    Raises
    ------
    StageProtocolError
        If the line is not ``$N=number``.
    """
    m = _SETTING_RE.match(text.strip())
    if not m:
        raise StageProtocolError(f"settings line must be $N=value, got {text!r}")
    try:
        value = float(m.group(2))
    except ValueError:
        raise StageProtocolError(f"setting ${m.group(1)} has a non-numeric value {m.group(2)!r}") from None
    return int(m.group(1)), value


def excerpt(text: str | list[str] | tuple[str, ...], limit: int = 160) -> str:
    """``repr`` of a line (or of a list of lines) cut to about ``limit`` characters, with what was left out.

    Error messages quote what the board sent; a flood or noise must not turn one message into kilobytes.
    """
    if isinstance(text, str):
        r = repr(text)
        return r if len(r) <= limit else f"{r[:limit]}... ({len(text)} characters)"
    lines = list(text)
    shown: list[str] = []
    used = 0
    for line in lines:
        r = repr(line if len(line) <= limit else line[:limit] + "...")
        if shown and used + len(r) > limit:
            break
        shown.append(r)
        used += len(r) + 2
    more = len(lines) - len(shown)
    return "[" + ", ".join(shown) + (f", ... {more} more line(s)" if more else "") + "]"


def parse_ngc_parameters(lines: list[str] | tuple[str, ...]) -> dict[str, tuple[float, ...]]:
    """Parse what ``$#`` prints: ``[G54:0.000,0.000,0.000]`` ... ``[G92:...]``, ``[TLO:0.000]`` into a dict.

    ``PRB`` (``[PRB:x,y,z:0]``) is skipped: it is no offset.

    Raises
    ------
    StageProtocolError
        If a ``[Gnn:...]``, ``[TLO:...]`` line does not hold numbers, or ``G54`` or ``G92`` is missing.
    """
    out: dict[str, tuple[float, ...]] = {}
    for line in lines:
        s = line.strip()
        if not (s.startswith("[") and s.endswith("]")) or ":" not in s:
            continue
        name, _, value = s[1:-1].partition(":")
        if name == "PRB" or not (name == "TLO" or re.fullmatch(r"G\d\d", name)):
            continue
        out[name] = _numbers(name, value, s)
    for need in ("G54", "G92"):
        if need not in out:
            raise StageProtocolError(f"'$#' reply has no [{need}:...] line: {excerpt(list(lines))}")
    return out


def format_number(value: float) -> str:
    """A number as GRBL reads it: fixed point, no exponent, at most 3 decimals (1 um in mm)."""
    s = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


@dataclass(frozen=True)
class BuildInfo:
    """What ``$I`` says: ``[VER:1.1h.20190825:name]`` and ``[OPT:V,15,128]``."""

    version: str
    build_name: str
    options: str
    lines: tuple[str, ...]

    @property
    def is_grbl_11(self) -> bool:
        """True when the version string is GRBL 1.1 (``1.1`` followed by a letter or a dot)."""
        return re.match(r"^1\.1(?![0-9])", self.version) is not None


def parse_build_info(lines: list[str]) -> BuildInfo:
    """Parse the lines ``$I`` prints before its ``ok``.

    Raises
    ------
    StageProtocolError
        If no ``[VER:...]`` line is present.
    """
    version = name = options = ""
    found = False
    for line in lines:
        s = line.strip()
        if s.startswith("[VER:") and s.endswith("]"):
            found = True
            body = s[5:-1]
            version, _, name = body.partition(":")
        elif s.startswith("[OPT:") and s.endswith("]"):
            options = s[5:-1]
    if not found:
        raise StageProtocolError(f"'$I' reply has no [VER:...] line: {lines!r}")
    return BuildInfo(version, name, options, tuple(lines))
