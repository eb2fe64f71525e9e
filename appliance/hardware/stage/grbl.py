"""The stage driver for a GRBL 1.1 board: our ATmega328P firmware or a stock GRBL CNC-shield board.

:class:`GrblStage` implements :class:`~appliance.hardware.stage.base.Stage` over a serial port with
pyserial. Moves are ``G90`` + ``G1`` lines; completion is read from status reports (``?``) until the
board is ``Idle`` at the target. Focus is either a hobby servo on the fine-focus knob (``M280 P0 S<deg>``,
our firmware only) or the Z stepper (stock GRBL), behind one :meth:`GrblStage.focus_to_um` that always
finishes its approach from below so the knob's backlash is taken up the same way every time.

Every reply is checked (``error:N`` and ``ALARM:N`` become stage errors with GRBL's text); every wait
has a deadline on a monotonic clock; a serial failure (unplug) closes the port, finds it again (path or
USB VID:PID), re-opens it and repeats the handshake, a bounded number of times. See docs/stage-driver.md.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import serial

from appliance.hardware.stage.base import (
    Position,
    Stage,
    StageError,
    StageLimitError,
    StageProtocolError,
    StageTimeout,
)
from appliance.hardware.stage.grbl_link import (
    GrblLink,
    Reply,
    StageConnectionError,
    Transport,
    alarm_error,
    check,
)
from appliance.hardware.stage.grbl_protocol import (
    CYCLE_START,
    FEED_HOLD,
    SOFT_RESET,
    BuildInfo,
    LineKind,
    StatusReport,
    classify,
    format_number,
    parse_build_info,
    parse_setting,
)
from appliance.hardware.stage.ports import find_port, parse_usb_id

FocusMode = Literal["auto", "servo", "stepper"]
_FOCUS_MODES = ("auto", "servo", "stepper")
_BAUDS = (9600, 19200, 38400, 57600, 115200, 230400, 250000, 500000, 1000000)
T = TypeVar("T")


def _positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        what = "a finite number >= 0" if allow_zero else "a finite number > 0"
        raise ValueError(f"GrblStageConfig.{name}: must be {what}, got {value!r}")


@dataclass(frozen=True)
class GrblStageConfig:
    """Typed, validated settings of the GRBL stage driver (read once, at construction).

    Attributes
    ----------
    port : str or None
        Device path or pyserial URL (``/dev/ttyACM0``, ``/dev/serial/by-id/...``). Wins over ``usb_id``.
    usb_id : str or None
        ``"VID:PID"`` to find the port by (``2341:0043`` Uno, ``1a86:7523`` CH340 Nano clones).
    baud : int
        Serial speed; GRBL 1.1 and our firmware use 115200.
    focus : {"auto", "servo", "stepper"}
        How focus is driven. ``auto``: servo when ``$I`` names our firmware (``tppscan``), else the Z stepper.
    um_per_servo_degree : float
        Focus travel per servo degree (the knob's um per revolution / 360 times the gearing).
    servo_min_deg, servo_max_deg : float
        The servo's allowed range; z = 0 um is ``servo_min_deg``.
    servo_resolution_deg : float
        The servo angle step the firmware honours; angles are rounded to it.
    servo_settle_s : float
        Time the servo needs to reach an angle after ``M280`` (there is no feedback).
    backlash_approach_um : float
        How far below a focus target the approach starts (more than the knob's backlash); 0 disables.
    feed_xy_mm_per_min, feed_z_mm_per_min : float
        ``F`` of the ``G1`` moves.
    reply_timeout_s : float
        Deadline for one line's ``ok``/``error`` and for a status report.
    handshake_timeout_s : float
        Deadline for the first status report after opening (covers a bootloader after a DTR reset).
    boot_delay_s : float
        Wait after opening before talking (a real Arduino resets on open: about 2 s; 0 in simavr).
    move_timeout_margin_s : float
        Added to the computed duration of a move (distance / feed) to make its deadline.
    homing_timeout_s : float
        Deadline of ``$H``.
    poll_interval_s : float
        Period of ``?`` while waiting for a move; also the serial read timeout.
    reconnect_attempts : int
        How many times a failed port is re-found and re-opened before giving up (0: never).
    reconnect_delay_s : float
        Wait before each reconnect attempt (USB re-enumeration takes about a second).
    settings : mapping of int to float
        ``$N`` values to write to the board at open when they differ (steps/mm, rates, travel...).
    position_tolerance_um : float or None
        How close the reported position must be to the target; None derives it from steps/mm.
    reset_on_open : bool
        Send a soft reset (0x18) at open; the board then reports its banner (and, after a reset in motion,
        an alarm).
    """

    port: str | None = None
    usb_id: str | None = None
    baud: int = 115200
    focus: FocusMode = "auto"
    um_per_servo_degree: float = 1.0
    servo_min_deg: float = 0.0
    servo_max_deg: float = 180.0
    servo_resolution_deg: float = 1.0
    servo_settle_s: float = 0.3
    backlash_approach_um: float = 20.0
    feed_xy_mm_per_min: float = 600.0
    feed_z_mm_per_min: float = 60.0
    reply_timeout_s: float = 2.0
    handshake_timeout_s: float = 5.0
    boot_delay_s: float = 0.0
    move_timeout_margin_s: float = 5.0
    homing_timeout_s: float = 120.0
    poll_interval_s: float = 0.02
    reconnect_attempts: int = 3
    reconnect_delay_s: float = 1.0
    settings: Mapping[int, float] = field(default_factory=dict)
    position_tolerance_um: float | None = None
    reset_on_open: bool = False

    def __post_init__(self) -> None:
        if not self.port and not self.usb_id:
            raise ValueError("GrblStageConfig.port: give port (e.g. /dev/ttyACM0) or usb_id (VID:PID), got neither")
        if self.usb_id is not None:
            try:
                parse_usb_id(self.usb_id)
            except ValueError as exc:
                raise ValueError(f"GrblStageConfig.{exc}") from None
        if self.baud not in _BAUDS:
            raise ValueError(f"GrblStageConfig.baud: must be one of {_BAUDS}, got {self.baud!r}")
        if self.focus not in _FOCUS_MODES:
            raise ValueError(f"GrblStageConfig.focus: must be one of {_FOCUS_MODES}, got {self.focus!r}")
        for name in ("um_per_servo_degree", "servo_resolution_deg", "feed_xy_mm_per_min", "feed_z_mm_per_min",
                     "reply_timeout_s", "handshake_timeout_s", "move_timeout_margin_s", "homing_timeout_s",
                     "poll_interval_s"):
            _positive(name, getattr(self, name))
        for name in ("servo_settle_s", "backlash_approach_um", "boot_delay_s", "reconnect_delay_s"):
            _positive(name, getattr(self, name), allow_zero=True)
        if not (0 <= self.servo_min_deg < self.servo_max_deg <= 180):
            raise ValueError("GrblStageConfig.servo_min_deg/servo_max_deg: need 0 <= min < max <= 180, got "
                             f"{self.servo_min_deg!r}, {self.servo_max_deg!r}")
        if not isinstance(self.reconnect_attempts, int) or not 0 <= self.reconnect_attempts <= 100:
            raise ValueError(f"GrblStageConfig.reconnect_attempts: must be an integer 0..100, "
                             f"got {self.reconnect_attempts!r}")
        if self.position_tolerance_um is not None:
            _positive("position_tolerance_um", self.position_tolerance_um)
        for key, value in dict(self.settings).items():
            if not isinstance(key, int) or isinstance(key, bool) or not 0 <= key <= 255:
                raise ValueError(f"GrblStageConfig.settings: keys are $ numbers 0..255, got {key!r}")
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"GrblStageConfig.settings[{key}]: must be a finite number, got {value!r}")
        object.__setattr__(self, "settings", dict(self.settings))


def open_serial(port: str, baud: int, poll_s: float, write_timeout_s: float) -> Transport:
    """Open ``port`` (a path or a pyserial URL such as ``loop://``) as the link's transport."""
    return serial.serial_for_url(port, baudrate=baud, timeout=poll_s, write_timeout=write_timeout_s)


@dataclass(frozen=True)
class MoveTarget:
    """A commanded target in machine mm (None: axis not moved) and the deadline to reach it."""

    x_mm: float | None
    y_mm: float | None
    z_mm: float | None
    deadline: float
    command: str


class GrblStage(Stage):
    """A GRBL 1.1 board as a :class:`Stage` (our firmware in simavr or on an Arduino, or stock GRBL).

    Parameters
    ----------
    config : GrblStageConfig
    opener : callable, optional
        ``opener(port, baud, poll_s, write_timeout_s) -> Transport``; pyserial by default.
    clock, sleep : callable, optional
        Monotonic clock and sleep (tests may inject them).

    Notes
    -----
    Positions are machine coordinates in um. Commands are sent in work coordinates after subtracting
    the ``WCO`` the board reports (zero on our firmware). In servo focus mode z is derived from the last
    commanded servo angle (the servo has no feedback); it is NaN until the first focus move.
    """

    def __init__(self, config: GrblStageConfig, *,
                 opener: Callable[[str, int, float, float], Transport] = open_serial,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self._opener = opener
        self._clock = clock
        self._sleep = sleep
        self._link: GrblLink | None = None
        self.port: str | None = None
        self.build_info: BuildInfo | None = None
        self.board_settings: dict[int, float] = {}
        self.focus_mode: Literal["servo", "stepper"] = "stepper"
        self._wco = (0.0, 0.0, 0.0)
        self._modal_synced = False
        self._servo_deg: float | None = None
        self._z_last_up = False
        self.reconnects = 0
        self._lock = threading.RLock()

    # -- connection -----------------------------------------------------------------------------------

    @property
    def link(self) -> GrblLink:
        """The open link; raises if the stage is not open."""
        if self._link is None:
            raise StageError("stage is not open: call open() or use 'with GrblStage(...)'")
        return self._link

    def open(self) -> None:
        """Find and open the port, then handshake (status query, ``$I``, settings sync)."""
        if self._link is not None:
            return
        try:
            self._connect()
        except (serial.SerialException, OSError) as exc:
            self.close()
            raise StageConnectionError(f"cannot open stage port {self.port or self.config.port!r}: {exc}") from exc
        except BaseException:
            self.close()
            raise

    def _connect(self) -> None:
        cfg = self.config
        self.port = find_port(cfg.port, cfg.usb_id)
        transport = self._opener(self.port, cfg.baud, cfg.poll_interval_s, cfg.reply_timeout_s)
        self._link = GrblLink(transport, self._clock)
        if cfg.boot_delay_s:
            self._sleep(cfg.boot_delay_s)
        self._handshake()

    def __enter__(self) -> GrblStage:
        self.open()
        return self

    def close(self) -> None:
        """Close the port; safe to call twice."""
        link, self._link = self._link, None
        if link is not None:
            try:
                link.transport.close()
            except (serial.SerialException, OSError):
                pass  # the port is already gone (unplugged): nothing left to release

    def _handshake(self) -> None:
        cfg, link = self.config, self.link
        if cfg.reset_on_open:
            link.write_realtime(SOFT_RESET)
        # A newline ends any half line a previous host left in the board's buffer; its reply is drained.
        link.transport.write(b"\n")
        link.drain(quiet_s=0.1, max_s=1.0)
        self._first_status()
        self.build_info = parse_build_info(list(self._cmd("$I").lines))
        if not self.build_info.is_grbl_11:
            raise StageProtocolError(f"board reports GRBL version {self.build_info.version!r}; this driver "
                                     "speaks GRBL 1.1 only")
        self.focus_mode = self._pick_focus_mode(self.build_info)
        self.board_settings = self._read_settings()
        if cfg.settings:
            self._sync_settings(cfg.settings)
        if self.board_settings.get(13, 0.0) != 0.0:
            raise StageProtocolError("board reports positions in inches ($13=1); set $13=0 "
                                     "(add 13: 0 to GrblStageConfig.settings)")
        self._modal_synced = False
        # A (re)connected board may have been power-cycled (an Arduino resets on open): the servo has no
        # feedback, so its angle is unknown until the next focus move, which then approaches from below.
        self._servo_deg = None
        self._z_last_up = False
        self._update(link.query_status(cfg.reply_timeout_s))

    def _first_status(self) -> StatusReport:
        """Ask ``?`` until a report arrives: the board may still be in its bootloader after a DTR reset."""
        cfg, link = self.config, self.link
        deadline = self._clock() + cfg.handshake_timeout_s
        last: Exception | None = None
        while self._clock() < deadline:
            try:
                return self._update(link.query_status(min(0.5, cfg.handshake_timeout_s)))
            except (StageTimeout, StageProtocolError) as exc:
                last = exc
        raise StageTimeout(f"no GRBL status report from {self.port} within {cfg.handshake_timeout_s:g} s "
                           f"(wrong port or baud {cfg.baud}? last problem: {last})")

    def _pick_focus_mode(self, info: BuildInfo) -> Literal["servo", "stepper"]:
        if self.config.focus != "auto":
            return self.config.focus
        text = " ".join(info.lines).lower()
        return "servo" if "tppscan" in text else "stepper"

    def _reconnect(self, cause: BaseException) -> None:
        """Close, re-find, re-open and re-handshake; bounded attempts."""
        cfg = self.config
        self.close()
        for _ in range(cfg.reconnect_attempts):
            self._sleep(cfg.reconnect_delay_s)
            try:
                self._connect()
                self.reconnects += 1
                return
            except (serial.SerialException, OSError, StageError) as exc:
                cause = exc
                self.close()
        raise StageConnectionError(f"lost the stage on {self.port} ({cause}); {cfg.reconnect_attempts} "
                                   "reconnect attempts failed") from cause

    def _io(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` under the stage's lock; on a serial failure reconnect and run it again.

        Every exchange here is safe to repeat (absolute targets, queries). The lock lets a second thread
        (a button poller calling :meth:`pending_messages`) share the stage with the scan thread: exchanges
        never interleave on the wire.
        """
        with self._lock:
            return self._io_unlocked(fn)

    def _io_unlocked(self, fn: Callable[[], T]) -> T:
        for _ in range(self.config.reconnect_attempts + 1):
            self.link  # noqa: B018 - raises if not open
            try:
                return fn()
            except (serial.SerialException, OSError) as exc:
                self._reconnect(exc)
        raise StageConnectionError(f"stage on {self.port} kept failing after {self.config.reconnect_attempts} "
                                   "reconnects")

    # -- low level ------------------------------------------------------------------------------------

    def _cmd(self, line: str, timeout_s: float | None = None) -> Reply:
        return check(self.link.send(line, timeout_s or self.config.reply_timeout_s))

    def _update(self, report: StatusReport) -> StatusReport:
        if report.wco_mm is not None:
            self._wco = report.wco_mm[:3]  # type: ignore[assignment]
        return report

    def status(self) -> StatusReport:
        """Query and return a fresh status report."""
        return self._io(lambda: self._update(self.link.query_status(self.config.reply_timeout_s)))

    def _machine_mm(self, report: StatusReport) -> tuple[float, float, float]:
        if report.mpos_mm is not None:
            return report.mpos_mm[0], report.mpos_mm[1], report.mpos_mm[2]
        w = report.wpos_mm or (0.0, 0.0, 0.0)
        return w[0] + self._wco[0], w[1] + self._wco[1], w[2] + self._wco[2]

    def _servo_z_um(self) -> float:
        if self._servo_deg is None:
            return math.nan
        return (self._servo_deg - self.config.servo_min_deg) * self.config.um_per_servo_degree

    def _to_position(self, report: StatusReport) -> Position:
        x, y, z = self._machine_mm(report)
        z_um = self._servo_z_um() if self.focus_mode == "servo" else z * 1000.0
        return Position(x * 1000.0, y * 1000.0, z_um)

    def position_um(self) -> Position:
        """The position the board reports (z from the servo angle in servo mode)."""
        return self._to_position(self.status())

    def pending_messages(self) -> list[str]:
        """``[MSG:...]`` lines the board pushed (``[MSG:BUTTON ...]`` among them), oldest first; clears them."""
        def take() -> list[str]:
            self.link.poll()
            out = list(self.link.messages)
            self.link.messages.clear()
            return out
        return self._io(take)

    # -- settings -------------------------------------------------------------------------------------

    def read_settings(self) -> dict[int, float]:
        """Read ``$$`` into ``{N: value}``."""
        return self._io(self._read_settings)

    def sync_settings(self, wanted: Mapping[int, float]) -> dict[int, float]:
        """Write every ``$N`` in ``wanted`` that differs on the board, then verify; returns what changed.

        Raises
        ------
        StageProtocolError
            If the board rejects a value, lacks a setting, or reads back a different value.
        """
        return self._io(lambda: self._sync_settings(wanted))

    def _read_settings(self) -> dict[int, float]:
        reply = self._cmd("$$")
        out = {}
        for line in reply.lines:
            if classify(line).kind is LineKind.SETTING:
                n, v = parse_setting(line)
                out[n] = v
        if not out:
            raise StageProtocolError(f"'$$' listed no settings: {reply.lines!r}")
        return out

    def _sync_settings(self, wanted: Mapping[int, float]) -> dict[int, float]:
        # not wrapped in _io: it also runs inside the handshake, itself inside a reconnect
        current = self._read_settings()
        changed: dict[int, float] = {}
        for n, value in sorted(wanted.items()):
            if n not in current:
                raise StageProtocolError(f"board has no setting ${n} (it lists {sorted(current)})")
            if not math.isclose(current[n], value, rel_tol=1e-6, abs_tol=5e-4):
                self._cmd(f"${n}={format_number(value)}")
                changed[n] = value
        if changed:
            after = self._read_settings()
            for n, value in changed.items():
                if not math.isclose(after.get(n, math.nan), value, rel_tol=1e-6, abs_tol=5e-4):
                    raise StageProtocolError(f"setting ${n} reads back {after.get(n)} after writing {value}")
            current = after
        self.board_settings = current
        return changed

    # -- motion ---------------------------------------------------------------------------------------

    def _tolerance_mm(self, axis: int) -> float:
        if self.config.position_tolerance_um is not None:
            return self.config.position_tolerance_um / 1000.0
        steps_per_mm = self.board_settings.get(100 + axis, 0.0)
        half_step = 0.5 / steps_per_mm if steps_per_mm > 0 else 0.001
        return half_step + 0.0005 + 1e-9  # half a step, plus the 3-decimal rounding of the report

    def _ensure_modal(self) -> None:
        if not self._modal_synced:
            self._cmd("G90")
            self._modal_synced = True

    def begin_move_to_um(self, x: float | None = None, y: float | None = None,
                         z: float | None = None) -> MoveTarget:
        """Send a ``G1`` to the target and return without waiting (see :meth:`wait_for_move`).

        ``z`` here is the Z stepper; in servo focus mode use :meth:`move_to_um` or :meth:`focus_to_um`.
        """
        for name, v in (("x", x), ("y", y), ("z", z)):
            if v is not None and not math.isfinite(v):
                raise ValueError(f"move target {name} must be a finite number of um, got {v!r}")
        if z is not None and self.focus_mode == "servo":
            raise StageError("z is the focus servo on this board: use move_to_um or focus_to_um")
        start = self._machine_mm(self.link.last_status) if self.link.last_status else (0.0, 0.0, 0.0)
        target = [None if v is None else round(v / 1000.0, 3) for v in (x, y, z)]
        words = []
        dist2 = 0.0
        for i, (letter, t) in enumerate(zip("XYZ", target, strict=True)):
            if t is not None:
                words.append(f"{letter}{format_number(t - self._wco[i])}")
                dist2 += (t - start[i]) ** 2
        if not words:
            raise ValueError("move needs at least one axis target")
        feed = self.config.feed_xy_mm_per_min if (x is not None or y is not None) else self.config.feed_z_mm_per_min
        command = f"G1 {' '.join(words)} F{format_number(feed)}"

        def send() -> None:
            self._ensure_modal()
            self._cmd(command)
            self.link.last_alarm = None  # accepted, so not in alarm: any ALARM:N from here is this move's
        self._io(send)
        duration = math.sqrt(dist2) / (feed / 60.0)
        deadline = self._clock() + 1.5 * duration + self.config.move_timeout_margin_s
        return MoveTarget(target[0], target[1], target[2], deadline, command)

    def _at_target(self, pos: tuple[float, float, float], target: MoveTarget) -> bool:
        for axis, t in enumerate((target.x_mm, target.y_mm, target.z_mm)):
            if t is not None and abs(pos[axis] - t) > self._tolerance_mm(axis):
                return False
        return True

    def wait_for_move(self, target: MoveTarget) -> Position:
        """Poll ``?`` until the board is Idle at ``target``; returns the reported position.

        Raises
        ------
        StageAlarm
            If the board enters alarm (limit switch, reset) on the way.
        StageError
            If the board goes Idle away from the target (the move was cancelled).
        StageTimeout
            If the target is not reached by the move's deadline.
        """
        idle_off_since: float | None = None
        while True:
            report = self.status()
            now = self._clock()
            if report.alarm:
                code = self.link.last_alarm or 0
                raise alarm_error(code, f"during {target.command!r} (status {report.raw})")
            pos = self._machine_mm(report)
            if report.idle and self._at_target(pos, target):
                return self._to_position(report)
            if report.idle:
                idle_off_since = idle_off_since if idle_off_since is not None else now
                if now - idle_off_since > max(1.0, 20 * self.config.poll_interval_s):
                    raise StageError(f"stage stopped at {pos} mm, not at the target of {target.command!r}")
            else:
                idle_off_since = None
            if now > target.deadline:
                raise StageTimeout(f"{target.command!r} not finished by its deadline: last status {report.raw}")
            self._sleep(self.config.poll_interval_s)

    def move_to_um(self, x: float | None = None, y: float | None = None, z: float | None = None) -> Position:
        """Move to an absolute position (um) and wait until the board reports it reached.

        Raises
        ------
        StageLimitError
            If the target lies beyond the travel (``error:15``; :class:`SoftLimitAlarm` on stock GRBL).
        StageAlarm
            If the board is in alarm (home or unlock first) or enters it on the way.
        StageTimeout, StageProtocolError
            On a silent or misbehaving board.
        """
        servo_z = z if self.focus_mode == "servo" else None
        stepper_z = None if self.focus_mode == "servo" else z
        pos: Position | None = None
        if x is not None or y is not None or stepper_z is not None:
            if stepper_z is not None:
                current = self._machine_mm(self.link.last_status)[2] * 1000 if self.link.last_status else 0.0
                if not math.isclose(stepper_z, current, abs_tol=1e-6):
                    self._z_last_up = stepper_z > current
            pos = self.wait_for_move(self.begin_move_to_um(x, y, stepper_z))
        if servo_z is not None:
            self._servo_to_um(servo_z)
            pos = None
        return pos if pos is not None else self.position_um()

    def move_by_um(self, dx: float = 0.0, dy: float = 0.0, dz: float = 0.0) -> Position:
        """Move relative to the current position; axes with a zero step are not commanded."""
        p = self.position_um()
        if dz and math.isnan(p.z_um):
            raise StageError("focus servo angle is unknown until the first focus move: use focus_to_um first")
        return self.move_to_um(p.x_um + dx if dx else None, p.y_um + dy if dy else None,
                               p.z_um + dz if dz else None)

    # -- focus ----------------------------------------------------------------------------------------

    def _servo_angle(self, z_um: float) -> float:
        cfg = self.config
        raw = cfg.servo_min_deg + z_um / cfg.um_per_servo_degree
        angle = round(raw / cfg.servo_resolution_deg) * cfg.servo_resolution_deg
        if not (cfg.servo_min_deg - 1e-9 <= angle <= cfg.servo_max_deg + 1e-9):
            top = (cfg.servo_max_deg - cfg.servo_min_deg) * cfg.um_per_servo_degree
            raise StageLimitError(f"focus z={z_um:g} um needs servo angle {raw:g} deg, outside "
                                  f"[{cfg.servo_min_deg:g}, {cfg.servo_max_deg:g}] deg (z 0..{top:g} um)")
        return angle

    def _servo_to_um(self, z_um: float) -> None:
        if not math.isfinite(z_um):
            raise ValueError(f"focus target must be a finite number of um, got {z_um!r}")
        angle = self._servo_angle(z_um)
        self._io(lambda: self._cmd(f"M280 P0 S{format_number(angle)}"))
        if self._servo_deg is not None and angle != self._servo_deg:
            self._z_last_up = angle > self._servo_deg
        self._servo_deg = angle
        if self.config.servo_settle_s:
            self._sleep(self.config.servo_settle_s)

    def focus_to_um(self, z: float) -> Position:
        """Move focus to ``z`` um, always finishing the approach upwards.

        A downward or unknown approach first goes ``backlash_approach_um`` under the target, so the
        knob's backlash is always taken up in the same direction.

        Raises
        ------
        StageLimitError
            If ``z`` (or the approach point) is outside the focus travel.
        """
        if not math.isfinite(z):
            raise ValueError(f"focus target must be a finite number of um, got {z!r}")
        if self.focus_mode == "servo":
            self._servo_angle(z)  # out of range: refuse before any approach move
        current = self.position_um().z_um
        coming_up = self._z_last_up and not math.isnan(current) and z >= current
        approach = self.config.backlash_approach_um
        if not coming_up and approach > 0:
            below = z - approach
            if self.focus_mode == "servo":
                below = max(below, 0.0)  # the servo cannot go under its range; start from its bottom
            self.move_to_um(z=below)
        return self.move_to_um(z=z)

    # -- homing, hold, reset --------------------------------------------------------------------------

    def home(self) -> Position:
        """Run ``$H`` and wait until the board is Idle; returns the position afterwards."""
        deadline = self._clock() + self.config.homing_timeout_s

        def run() -> None:
            self.link.last_alarm = None
            self._cmd("$H", self.config.homing_timeout_s)
        self._io(run)
        while True:
            report = self.status()
            if report.idle:
                self._z_last_up = False
                return self._to_position(report)
            if report.alarm:
                raise alarm_error(self.link.last_alarm or 0, "during homing ($H)")
            if self._clock() > deadline:
                raise StageTimeout(f"homing not finished within {self.config.homing_timeout_s:g} s: {report.raw}")
            self._sleep(self.config.poll_interval_s)

    def unlock(self) -> None:
        """``$X``: leave alarm without homing (the position is trusted as it is)."""
        self._io(lambda: self._cmd("$X"))

    def feed_hold(self) -> None:
        """``!``: decelerate to a stop and hold (state ``Hold``); :meth:`resume` continues."""
        self._io(lambda: self.link.write_realtime(FEED_HOLD))

    def resume(self) -> None:
        """``~``: continue after a feed hold."""
        self._io(lambda: self.link.write_realtime(CYCLE_START))

    def soft_reset(self) -> list[str]:
        """Send 0x18 and wait for the banner; returns the lines the board printed.

        Raises
        ------
        StageTimeout
            If no banner follows within the reply timeout.
        """
        def run() -> list[str]:
            link = self.link
            link.write_realtime(SOFT_RESET)
            seen: list[str] = []
            deadline = self._clock() + self.config.reply_timeout_s
            while True:
                text = link.read_line(deadline, "waiting for the banner after a soft reset")
                if text is None:
                    raise StageTimeout(f"no banner within {self.config.reply_timeout_s:g} s of a soft reset "
                                       f"(got {seen!r})")
                seen.append(text)
                parsed = classify(text)
                link._note(parsed)
                if parsed.kind is LineKind.BANNER:
                    seen += link.drain(quiet_s=0.1, max_s=0.5)
                    return seen
        lines = self._io(run)
        self._modal_synced = False
        return lines

    def stop(self) -> None:
        """Stop now: feed hold (decelerate, keeps steps in sync), then a soft reset to drop the queue.

        After a reset in motion the board is in ``ALARM`` (position unknown) until homed.
        """
        self.feed_hold()
        deadline = self._clock() + self.config.reply_timeout_s
        while self._clock() < deadline:
            report = self.status()
            if report.idle or report.alarm or (report.state == "Hold" and report.substate == 0):
                break
            self._sleep(self.config.poll_interval_s)
        self.soft_reset()
        self._z_last_up = False
