"""The stage driver for a GRBL 1.1 board: our ATmega328P firmware or a stock GRBL CNC-shield board.

:class:`GrblStage` implements :class:`~appliance.hardware.stage.base.Stage` over a serial port with
pyserial. Moves are single ``G1`` lines that carry every modal word they rely on (``G17 G21 G90 G94 G54``);
completion is read from status reports (``?``) until the board is ``Idle`` at the target. Focus is either
a hobby servo on the fine-focus knob (``M280 P0 S<deg>``, our firmware only) or the Z stepper (stock GRBL),
behind one :meth:`GrblStage.focus_to_um` that always finishes its approach from below so the knob's
backlash is taken up the same way every time.

Every reply is checked (``error:N`` and ``ALARM:N`` become stage errors with GRBL's text); every wait
has a deadline on a monotonic clock; a serial failure (unplug) closes the port, finds it again (path or
USB VID:PID), re-opens it and repeats the handshake, a bounded number of times. See docs/stage-driver.md.
"""

from __future__ import annotations

import errno
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import serial

from appliance.hardware.stage.base import (
    Position,
    Stage,
    StageAlarm,
    StageError,
    StageLimitError,
    StageProtocolError,
    StageTimeout,
    round_half_away,
)
from appliance.hardware.stage.grbl_link import (
    GarbledLineError,
    GrblLink,
    Reply,
    StageConnectionError,
    StageResetError,
    StatusWatch,
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
    excerpt,
    format_number,
    parse_build_info,
    parse_ngc_parameters,
    parse_setting,
)
from appliance.hardware.stage.ports import find_port, parse_usb_id

_log = logging.getLogger(__name__)

#: What one G-code line or status report resolves, µm: millimetres to three decimals.
LINE_RESOLUTION_UM = 1.0

FocusMode = Literal["auto", "servo", "stepper"]
_FOCUS_MODES = ("auto", "servo", "stepper")
_BAUDS = (9600, 19200, 38400, 57600, 115200, 230400, 250000, 500000, 1000000)
T = TypeVar("T")

#: Every modal group the driver's moves rely on, re-asserted on each move line: another host (or a streamed
#: program) may have left inches (G20), relative distances (G91), inverse-time feed (G93), another plane or
#: another work coordinate system; a reset restores them only on a board that was reset.
MODAL_WORDS = "G17 G21 G90 G94 G54"

#: Largest target magnitude accepted (um): 1 m, far beyond any microscope stage, short of float trouble.
MAX_TARGET_UM = 1e6

#: Settings that must be written before others: GRBL refuses soft limits ($20=1) without homing ($22=1), and
#: clears $20 when $22=0 is written; our firmware wants the servo pulse at 0 deg ($201) below the one at
#: 180 deg ($202). Each (first, then, when) writes ``first`` before ``then`` if ``when(wanted)`` holds.
_SETTING_ORDER: tuple[tuple[int, int, Callable[[Mapping[int, float], Mapping[int, float]], bool]], ...] = (
    (22, 20, lambda want, cur: bool(want.get(22, cur.get(22, 0)))),            # enabling: homing first
    (20, 22, lambda want, cur: not want.get(22, cur.get(22, 0))),              # disabling: soft limits first
    (202, 201, lambda want, cur: want.get(201, cur.get(201, 0)) >= cur.get(202, math.inf)),  # raising both
    (201, 202, lambda want, cur: want.get(202, cur.get(202, math.inf)) <= cur.get(201, 0)),  # lowering both
)

#: States in which a board is still carrying out motion another host queued.
_MOVING = ("Run", "Jog", "Home")

#: Between two 0x18 when no banner follows: longer than GRBL's 500 ms pause after an alarm message.
_RESET_RESEND_S = 0.75


#: Upper bounds of the config's numbers: beyond them a value is a typo (1e9 s of boot delay is a hang).
_UPPER = {"um_per_servo_degree": 1000.0, "servo_resolution_deg": 180.0, "feed_xy_mm_per_min": 1e5,
          "feed_z_mm_per_min": 1e5, "reply_timeout_s": 600.0, "handshake_timeout_s": 600.0,
          "move_timeout_margin_s": 3600.0, "homing_timeout_s": 3600.0, "poll_interval_s": 1.0,
          "servo_settle_s": 10.0, "backlash_approach_um": 1e4, "boot_delay_s": 60.0, "reconnect_delay_s": 60.0,
          "position_tolerance_um": 1e4}


def _positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    top = _UPPER[name]
    ok = isinstance(value, (int, float)) and math.isfinite(value) and (value >= 0 if allow_zero else value > 0) \
        and value <= top
    if not ok:
        what = f"a finite number {'>= 0' if allow_zero else '> 0'} and <= {top:g}"
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
    garbled_repeats : int
        How many times an exchange that is harmless to repeat (status, absolute move, servo angle) is sent
        again after a garbled line stood in its reply's way (0: never). On a cable that garbles one line in
        ten, one repeat still fails about one exchange in a hundred, and a field with a through-focus stack
        makes hundreds; two repeats fail about one in a thousand.
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
    garbled_repeats: int = 2
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
        if (not isinstance(self.garbled_repeats, int) or isinstance(self.garbled_repeats, bool)
                or not 0 <= self.garbled_repeats <= 10):
            raise ValueError(f"GrblStageConfig.garbled_repeats: must be an integer 0..10, "
                             f"got {self.garbled_repeats!r}")
        if self.position_tolerance_um is not None:
            _positive("position_tolerance_um", self.position_tolerance_um)
        for key, value in dict(self.settings).items():
            if not isinstance(key, int) or isinstance(key, bool) or not 0 <= key <= 255:
                raise ValueError(f"GrblStageConfig.settings: keys are $ numbers 0..255, got {key!r}")
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"GrblStageConfig.settings[{key}]: must be a finite number, got {value!r}")
        object.__setattr__(self, "settings", dict(self.settings))


def _ours(info: BuildInfo) -> bool:
    """Whether ``$I`` names this project's firmware (``tppscan``), not a stock GRBL build."""
    return "tppscan" in " ".join(info.lines).lower()


def check_target_um(name: str, value: float | None) -> None:
    """Refuse a target that is not a finite number of um within +-MAX_TARGET_UM (None: axis not moved).

    Raises
    ------
    ValueError
        Naming ``name``, the value and the allowed range.
    """
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or abs(value) > MAX_TARGET_UM:
        raise ValueError(f"{name} must be a finite number of um in [-{MAX_TARGET_UM:g}, {MAX_TARGET_UM:g}], "
                         f"got {value!r}")


class StagePortBusy(StageConnectionError):
    """The stage's port is held by another program that locked it (another scan, a ``tppscan stage`` shell)."""


def open_serial(port: str, baud: int, poll_s: float, write_timeout_s: float) -> Transport:
    """Open ``port`` (a path or a pyserial URL such as ``loop://``) as the link's transport, for this process only.

    The port is locked (pyserial's ``exclusive``: ``flock`` on POSIX, the only mode on Windows) so that a second
    scan started on the same board, into another folder, stops at once instead of sending its moves between the
    first one's. The lock is advisory: a terminal program that does not take it can still open the port.

    Raises
    ------
    StagePortBusy
        Another process holds the port's lock.
    serial.SerialException
        The port cannot be opened (missing, no permission).
    """
    try:
        return serial.serial_for_url(port, baudrate=baud, timeout=poll_s, write_timeout=write_timeout_s,
                                     exclusive=True)
    except serial.SerialException as exc:
        if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK) and "lock" in str(exc):
            raise StagePortBusy(f"stage port {port!r} is in use by another program (the tppscan service, "
                                "another scan, or a 'tppscan stage' shell): stop it first ('tppscan status' says "
                                "whether the service holds it; 'sudo systemctl stop tppscan'), or name another "
                                "port") from exc
        raise


def _port_hint(exc: OSError) -> str:
    """What to do about a port that would not open, from its errno (pyserial keeps the OS's), or nothing."""
    if exc.errno == errno.EACCES:
        return ("; the user running tppscan may not open it: add the user to the port's group (usually "
                "'dialout': sudo usermod -aG dialout $USER, then log in again; the service's user has it)")
    if exc.errno in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return "; is the board plugged in and powered? ('ls /dev/ttyACM* /dev/ttyUSB*' lists the serial ports)"
    return ""


def _write_order(wanted: Mapping[int, float], current: Mapping[int, float]) -> list[int]:
    """The setting numbers of ``wanted`` in an order the board accepts: numeric, except where one depends on another.

    See ``_SETTING_ORDER``: ``$22=1`` before ``$20=1``, ``$20=0`` before ``$22=0``, and the servo pulse
    limits so that ``$201 < $202`` holds after every single write.
    """
    order = sorted(wanted)
    for first, then, when in _SETTING_ORDER:
        if first in wanted and then in wanted and when(wanted, current):
            order.remove(first)
            order.insert(order.index(then), first)
    return order


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
    Positions are machine coordinates in um. Commands are sent in G54 work coordinates after subtracting
    the offsets ``$#`` lists at open (G54, G92, tool length; none on our firmware before work offsets);
    ``WPos`` reports are converted with the active system's offset, then with each ``WCO`` field. In servo
    focus mode z is derived from the last commanded servo angle (the servo has no feedback); it is NaN until
    the first focus move, and again after a reset.
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
        self._offsets: dict[str, tuple[float, ...]] = {}
        self._servo_deg: float | None = None
        self._z_last_up = False
        self.reconnects = 0
        self._lock = threading.RLock()
        # Where the carriage can be (machine mm, per-axis low/high): the last reported position widened by
        # every move target sent since it was last seen at rest; None while homing (anywhere).
        self._span: tuple[list[float], list[float]] | None = None
        self._moving = False
        self._homing = False

    @property
    def counts_from_power_up(self) -> bool:
        """Homing off (``$22=0``, as stock GRBL ships): the board's zero is wherever it powered up."""
        return self._link is not None and not self.board_settings.get(22, 0.0)

    @property
    def xy_travel_um(self) -> tuple[tuple[float, float], tuple[float, float]] | None:
        """The homed board's x and y travel, µm, from ``$130``/``$131``; None without homing or before ``open()``.

        Our firmware homes to its minus ends and works from 0 up; stock GRBL's machine space ends at its home
        switches whichever way it homes (``limits.c``), so it works from minus the travel up to 0, and a target
        above 0 is ``ALARM:2`` with soft limits (``$20=1``), or the switches without. A board without homing
        (``$22=0``) has its zero wherever it powered up: None.
        """
        if self._link is None or not self.board_settings.get(22, 0.0):
            return None
        x, y = (self.board_settings.get(n, 0.0) * 1000.0 for n in (130, 131))
        if x <= 0 or y <= 0:
            return None
        if self.build_info is not None and _ours(self.build_info):
            return (0.0, x), (0.0, y)
        return (-x, 0.0), (-y, 0.0)

    @property
    def focus_absolute(self) -> bool:
        """A servo focus's angle survives a restart of the board; a Z stepper's count does not."""
        return self.focus_mode == "servo"

    @property
    def focus_step_um(self) -> float | None:
        """The focus drive's step, µm: the servo's resolution, or one Z step (``$102``); None before ``open()``.

        On the stepper never under 1 µm: G-code lines and status reports carry millimetres to three decimals
        (``format_number``), so a finer Z step is neither commanded nor seen.
        """
        if self._link is None:
            return None
        if self.focus_mode == "servo":
            return self.config.um_per_servo_degree * self.config.servo_resolution_deg
        steps_per_mm = self.board_settings.get(102, 0.0)
        return max(1000.0 / steps_per_mm, LINE_RESOLUTION_UM) if steps_per_mm > 0 else None

    @property
    def focus_travel_um(self) -> tuple[float, float] | None:
        """The focus travel in this driver's z, µm; None before ``open()`` or where the board does not fix it.

        Servo: from ``servo_min_deg`` (z 0) to ``servo_max_deg``. Z stepper: the board's ``$132`` (max travel,
        mm) from 0 up on our firmware (it homes to its minus end), from minus it up to 0 on stock GRBL, whose
        machine space ends at its home switches whichever way it homes (``limits.c``). A stock board without
        homing (``$22=0``) has its zero wherever it powered up: None.
        """
        if self._link is None:
            return None
        if self.focus_mode == "servo":
            c = self.config
            return 0.0, (c.servo_max_deg - c.servo_min_deg) * c.um_per_servo_degree
        travel_um = self.board_settings.get(132, 0.0) * 1000.0
        if travel_um <= 0:
            return None
        if self.build_info is not None and _ours(self.build_info):
            return 0.0, travel_um
        return (-travel_um, 0.0) if self.board_settings.get(22, 0.0) else None

    # -- connection -----------------------------------------------------------------------------------

    @property
    def link(self) -> GrblLink:
        """The open link; raises if the stage is not open."""
        if self._link is None:
            # a connection error: after a reconnect that failed the stage is closed, and a caller sees this
            port = self.port or self.config.port
            raise StageConnectionError(f"the stage{f' {port}' if port else ''} is not connected (lost, or not "
                                       "opened yet)")
        return self._link

    def open(self) -> None:
        """Find and open the port, then handshake (status query, ``$I``, settings sync)."""
        if self._link is not None:
            return
        try:
            self._connect()
        except (serial.SerialException, OSError) as exc:
            self.close()
            port = self.port or self.config.port
            raise StageConnectionError(f"cannot open stage port {port!r}: {exc}{_port_hint(exc)}") from exc
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
        link.expect_reset = True  # a banner now is the board's power-up (DTR reset), or ours
        try:
            if cfg.reset_on_open:
                link.write_realtime(SOFT_RESET)
            # A newline ends any half line a previous host left in the board's buffer; its reply is drained.
            link.transport.write(b"\n")
            link.drain(quiet_s=0.1, max_s=1.0)
            self._wait_until_still(self._first_status())
        finally:
            link.expect_reset = False
            link.unexpected_reset = None
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
        self._read_offsets()
        # A (re)connected board may have been power-cycled (an Arduino resets on open): the servo has no
        # feedback, so its angle is unknown until the next focus move, which then approaches from below.
        self._forget_motion_state()
        self._update(link.query_status(cfg.reply_timeout_s))

    def _first_status(self) -> StatusReport:
        """Ask ``?`` until a report arrives: the board may still be in its bootloader after a DTR reset."""
        cfg, link = self.config, self.link
        deadline = self._clock() + cfg.handshake_timeout_s
        last: Exception | None = None
        while self._clock() < deadline:
            try:
                return self._update(link.query_status(min(0.5, cfg.handshake_timeout_s)))
            except StageAlarm as exc:
                # ALARM:1/2 left by a previous host: stock GRBL is silent until reset, so reset it (the
                # board stays in Alarm afterwards, as it should); any other ALARM line is just history
                if link.critical_alarm is None:
                    last = exc
                    continue
                self._reset_and_wait_banner()
                last = exc
            except (StageTimeout, StageProtocolError) as exc:
                last = exc
        if self._reset_silent_board(last):
            return self._update(link.query_status(cfg.reply_timeout_s))
        if self._noise_only():  # bytes came, but not GRBL's words: most often the baud rate
            raise StageTimeout(f"no GRBL status report from {self.port} within {cfg.handshake_timeout_s:g} s: "
                               f"the port sent {self.link.bytes_in} bytes, but not in GRBL's words; check the baud "
                               f"rate (stage.baud is {cfg.baud}; GRBL 1.1 runs at 115200) and that this port is the "
                               "stage board's")
        raise StageTimeout(f"no GRBL status report from {self.port} within {cfg.handshake_timeout_s:g} s "
                           f"(wrong port or baud {cfg.baud}? last problem: {last})")

    def _noise_only(self) -> bool:
        """The port sent bytes but not one line in GRBL's words: a wrong baud rate, or another device."""
        return self.link.bytes_in > 0 and self.link.grbl_lines == 0

    def _reset_silent_board(self, last: Exception | None) -> bool:
        """One soft reset for a board that answered no ``?`` at open; True when its banner came back.

        Stock GRBL after ALARM:1/2 serves nothing until reset, and a host that connects later never saw the
        alarm line (found on GRBL 1.1h in simavr: open() then blamed the port). The board keeps its position
        and stays in Alarm after the reset, as GRBL does; a port with no GRBL on it answers the reset with
        nothing either, and the caller's error stands.
        """
        if self._noise_only():
            _log.warning("%s answered the status query with bytes that are not GRBL's (%s; a wrong baud rate does "
                         "that): sending one soft reset (0x18) in case it is GRBL after ALARM:1/2", self.port, last)
        else:
            _log.warning("%s answered no status query (%s): sending one soft reset (0x18), as stock GRBL needs "
                         "after ALARM:1/2", self.port, last)
        try:
            self._reset_and_wait_banner()
        except (StageTimeout, StageProtocolError):
            return False
        return True

    def _wait_until_still(self, report: StatusReport) -> StatusReport:
        """Wait (up to ``homing_timeout_s``) for motion another host left running to end; refuse a held board.

        ``$I`` and ``$$`` are refused with ``error:8`` while the board moves or holds.

        Raises
        ------
        StageError
            If the board is in a feed hold (``Hold``) or ``Door``: motion is still queued there.
        StageTimeout
            If the motion does not end in time.
        """
        deadline = self._clock() + self.config.homing_timeout_s
        while report.state in _MOVING:
            if self._clock() > deadline:
                raise StageTimeout(f"the board kept moving for {self.config.homing_timeout_s:g} s after opening "
                                   f"(motion another host started): {report.raw}")
            self._sleep(max(self.config.poll_interval_s, 0.02))
            report = self._update(self.link.query_status(self.config.reply_timeout_s))
        if report.state in ("Hold", "Door"):
            raise StageError(f"the board is in {report.state}" + (f":{report.substate}" if report.substate is not
                                                                    None else "")
                             + " with motion still queued (a stopped or interrupted host left it): resume it with "
                             "a cycle start (~), or drop it with a soft reset (GrblStageConfig.reset_on_open, "
                             "tppscan stage ... --reset)")
        return report

    def _read_offsets(self) -> None:
        """Learn the work offsets from ``$G`` (active system) and ``$#`` (G54..G59, G92, TLO).

        A board that refuses ``$#`` with ``error:3`` has no work coordinates (our firmware before offsets:
        docs/protocol.md), so every offset is zero there.
        """
        modes = self._cmd("$G").lines
        active = "G54"
        for line in modes:
            if line.startswith("[GC:"):
                for word in line[4:-1].split():
                    if word in ("G54", "G55", "G56", "G57", "G58", "G59"):
                        active = word
        reply = self.link.send("$#", self.config.reply_timeout_s)
        if not reply.ok and reply.error_code == 3:
            self._offsets = {}
        else:
            self._offsets = parse_ngc_parameters(list(check(reply).lines))
        self._wco = self._offset_for(active)

    def _offset_for(self, system: str) -> tuple[float, float, float]:
        """Machine minus work position in ``system``: its G5x offset, plus G92, plus the tool length on z."""
        cs = self._offsets.get(system, (0.0, 0.0, 0.0))
        g92 = self._offsets.get("G92", (0.0, 0.0, 0.0))
        tlo = self._offsets.get("TLO", (0.0,))[0]
        return (cs[0] + g92[0], cs[1] + g92[1], cs[2] + g92[2] + tlo)

    def _forget_motion_state(self) -> None:
        """After a reset or a reconnect: the servo angle and the side focus last came from are unknown."""
        self._servo_deg = None
        self._z_last_up = False

    def _after_board_reset(self, *, asked: bool) -> None:
        """What a reset does to the board's parser (GRBL's gc_init): G92 cleared, G54 active again.

        The side focus last came from is forgotten either way (a reset in motion may skip steps). The
        servo angle survives a reset this host sent (our firmware keeps the pulse, docs/protocol.md); after
        a reset nobody asked for (a brown-out restarts the chip) it is unknown.
        """
        if asked:
            self._z_last_up = False
        else:
            self._forget_motion_state()
        self._moving, self._span = False, None   # the next report says where the board now is
        if "G92" in self._offsets:
            self._offsets["G92"] = (0.0, 0.0, 0.0)
        self._wco = self._offset_for("G54")

    def _pick_focus_mode(self, info: BuildInfo) -> Literal["servo", "stepper"]:
        if self.config.focus != "auto":
            return self.config.focus
        return "servo" if _ours(info) else "stepper"

    def _reconnect(self, cause: BaseException) -> None:
        """Close, re-find, re-open and re-handshake; bounded attempts.

        Raises
        ------
        StageConnectionError
            When every attempt failed (the stage is closed: :meth:`open` again once the port is back).
        StageResetError
            When the board came back restarted (see :meth:`_check_survived`); the link is open.
        """
        cfg = self.config
        span = None if self._span is None or self._homing else (list(self._span[0]), list(self._span[1]))
        self.close()
        for _ in range(cfg.reconnect_attempts):
            self._sleep(cfg.reconnect_delay_s)
            try:
                self._connect()
                self.reconnects += 1
                break
            except (serial.SerialException, OSError, StageError) as exc:
                cause = exc
                self.close()
        else:
            raise StageConnectionError(f"lost the stage on {self.port} ({cause}); {cfg.reconnect_attempts} "
                                       "reconnect attempts failed") from cause
        self._check_survived(span)

    def _check_survived(self, span: tuple[list[float], list[float]] | None) -> None:
        """After a reconnect: refuse to carry on as if the board had kept its position when it restarted.

        A board that lost power (or an Uno reset by the re-open) reports a position off the path of the
        motion in flight (power-up zeroes it), or prints its banner. A board in Alarm says so itself
        (homing lock) and is left to the caller's next move, which it refuses.
        """
        report = self.link.last_status
        if report is None or report.alarm:
            return
        pos = self._machine_mm(report)
        off = span is not None and any(
            not (lo - self._tolerance_mm(i) <= p <= hi + self._tolerance_mm(i))
            for i, (p, lo, hi) in enumerate(zip(pos, span[0], span[1], strict=True)))
        banner = bool(self.link.banners) and not self.config.reset_on_open
        if off or banner:
            self._after_board_reset(asked=False)
            self._span = ([*pos], [*pos])
            self._moving = False
            why = f"banner {self.link.banners[-1]!r}" if banner else \
                f"it reports {pos} mm, outside where it was or was moving: {span[0]}..{span[1]} mm"  # type: ignore[index]
            raise StageResetError(f"reconnected to {self.port}, but the board restarted while the port was gone "
                                  f"({why}): the position is lost; home ($H) or re-establish it before moving")

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
            except StageResetError:
                # nothing the host knew still holds: forget it before the caller hears of the reset
                self._after_board_reset(asked=False)
                self.link.unexpected_reset = None
                raise
        raise StageConnectionError(f"stage on {self.port} kept failing after {self.config.reconnect_attempts} "
                                   "reconnects")

    # -- low level ------------------------------------------------------------------------------------

    def _cmd(self, line: str, timeout_s: float | None = None) -> Reply:
        return check(self.link.send(line, timeout_s or self.config.reply_timeout_s))

    def _update(self, report: StatusReport) -> StatusReport:
        if report.wco_mm is not None:
            self._wco = report.wco_mm[:3]  # type: ignore[assignment]
        self._widen_span(self._machine_mm(report), reset=not self._moving)
        return report

    def _widen_span(self, pos: Sequence[float | None], *, reset: bool = False) -> None:
        """Add a position (None: that axis stays) to where the carriage can be; ``reset`` starts afresh."""
        if self._homing:
            return   # anywhere until homing ends
        if self._span is None or reset:
            if None in pos:
                return
            self._span = ([float(p) for p in pos], [float(p) for p in pos])  # type: ignore[arg-type]
            return
        lo, hi = self._span
        for i, p in enumerate(pos):
            if p is not None:
                lo[i], hi[i] = min(lo[i], p), max(hi[i], p)

    def status(self) -> StatusReport:
        """Query and return a fresh status report.

        A garbled line in the way of the report (line noise) is answered by asking again, up to
        ``garbled_repeats`` times (:meth:`_repeat_if_garbled`); the garbled answer after the last is raised.
        """
        return self._io(lambda: self._update(self._repeat_if_garbled(
            lambda: self.link.query_status(self.config.reply_timeout_s))))

    def _repeat_if_garbled(self, exchange: Callable[[], T]) -> T:
        """Run an exchange that is harmless to repeat, again while a garbled line stood in its reply's way.

        Line noise (bytes GRBL never sends) before a reply fails the exchange, and the link then drains what
        was still coming. A status query, an absolute move with its modal words and a servo angle leave the
        board where one alone would (a move accepted twice is the second time a move of length zero), so
        repeating them makes a noisy line cost a round trip instead of an error: up to ``garbled_repeats``
        times, then the last ``GarbledLineError`` is raised. Anything else (an ``error:N``, a banner, an
        alarm, a late reply) is never repeated.
        """
        for _ in range(self.config.garbled_repeats):
            try:
                return exchange()
            except GarbledLineError:
                continue
        return exchange()

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
        for n in wanted:
            if n not in current:
                raise StageProtocolError(f"board has no setting ${n} (it lists {sorted(current)})")
        for n in _write_order(wanted, current):
            value = wanted[n]
            if not math.isclose(current[n], value, rel_tol=1e-6, abs_tol=5e-4):
                self._write_setting(n, value)
                changed[n] = value
        if changed:
            after = self._read_settings()
            for n, value in changed.items():
                if not math.isclose(after.get(n, math.nan), value, rel_tol=1e-6, abs_tol=5e-4):
                    raise StageProtocolError(f"setting ${n} reads back {after.get(n)} after writing {value}")
            current = after
        self.board_settings = current
        return changed

    def _write_setting(self, n: int, value: float) -> None:
        line = f"${n}={format_number(value)}"
        reply = self.link.send(line, self.config.reply_timeout_s)
        if reply.ok:
            return
        if reply.error_code == 3:
            # GRBL's text for error:3 ("'$' system command not recognised") misleads here: the setting
            # exists (it is in '$$'), so the board refused the value
            raise StageProtocolError(f"board refused {line!r}: error:3 (the value is outside what the board "
                                     f"accepts for ${n}; docs/protocol.md lists each setting's range)")
        check(reply)

    # -- motion ---------------------------------------------------------------------------------------

    def _tolerance_mm(self, axis: int) -> float:
        if self.config.position_tolerance_um is not None:
            return self.config.position_tolerance_um / 1000.0
        steps_per_mm = self.board_settings.get(100 + axis, 0.0)
        half_step = 0.5 / steps_per_mm if steps_per_mm > 0 else 0.001
        return half_step + 0.0005 + 1e-9  # half a step, plus the 3-decimal rounding of the report

    def begin_move_to_um(self, x: float | None = None, y: float | None = None,
                         z: float | None = None) -> MoveTarget:
        """Send a ``G1`` to the target and return without waiting (see :meth:`wait_for_move`).

        ``z`` here is the Z stepper; in servo focus mode use :meth:`move_to_um` or :meth:`focus_to_um`.
        """
        for name, v in (("x", x), ("y", y), ("z", z)):
            check_target_um(f"move target {name}", v)
        if z is not None and self.focus_mode == "servo":
            raise StageError("z is the focus servo on this board: use move_to_um or focus_to_um")
        start = self._machine_mm(self.link.last_status) if self.link.last_status else (0.0, 0.0, 0.0)
        target = [None if v is None else round(v / 1000.0, 3) for v in (x, y, z)]
        offset = self._offset_for("G54")  # the system MODAL_WORDS selects
        words = []
        dist2 = 0.0
        for i, (letter, t) in enumerate(zip("XYZ", target, strict=True)):
            if t is not None:
                words.append(f"{letter}{format_number(t - offset[i])}")
                dist2 += (t - start[i]) ** 2
        if not words:
            raise ValueError("move needs at least one axis target")
        feed = self.config.feed_xy_mm_per_min if (x is not None or y is not None) else self.config.feed_z_mm_per_min
        # the modal words ride on the move line itself: nothing to lose between lines, and a refusal
        # (error:9 in alarm) names the move
        command = f"{MODAL_WORDS} G1 {' '.join(words)} F{format_number(feed)}"

        def send() -> None:
            self._moving = True
            self._widen_span(target)
            self._repeat_if_garbled(lambda: self._cmd(command))
            self.link.last_alarm = None  # accepted, so not in alarm: any ALARM:N from here is this move's
            self._wco = offset  # G54 is the active system now
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
        deadline = target.deadline
        held_since: float | None = None
        while True:
            try:
                report = self.status()
            except StageAlarm as exc:
                code = self.link.last_alarm if self.link.last_alarm is not None else 0
                raise alarm_error(code, f"during {target.command!r}") from exc
            now = self._clock()
            if report.alarm or self.link.last_alarm is not None:
                # any ALARM line since the move was accepted counts, whatever state the reports show
                code = self.link.last_alarm if self.link.last_alarm is not None else 0
                raise alarm_error(code, f"during {target.command!r} (status {report.raw})")
            if report.state in ("Hold", "Door"):
                # a feed hold pauses the move: its deadline waits too
                held_since = held_since if held_since is not None else now
            elif held_since is not None:
                deadline += now - held_since
                held_since = None
            pos = self._machine_mm(report)
            if report.idle and self._at_target(pos, target):
                self._moving = False
                self._widen_span(pos, reset=True)
                return self._to_position(report)
            if report.idle:
                idle_off_since = idle_off_since if idle_off_since is not None else now
                if now - idle_off_since > max(1.0, 20 * self.config.poll_interval_s):
                    raise StageError(f"stage stopped at {pos} mm, not at the target of {target.command!r}")
            else:
                idle_off_since = None
            if held_since is None and now > deadline:
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
            raise StageError("the focus position is unknown (the servo reports no angle, and none was set since "
                             "the board was opened or reset): move focus to an absolute z first")
        return self.move_to_um(p.x_um + dx if dx else None, p.y_um + dy if dy else None,
                               p.z_um + dz if dz else None)

    # -- focus ----------------------------------------------------------------------------------------

    def _servo_angle(self, z_um: float) -> float:
        cfg = self.config
        raw = cfg.servo_min_deg + z_um / cfg.um_per_servo_degree
        # halves away from zero, the one rule SimStage shares (base.round_half_away)
        angle = round_half_away(raw / cfg.servo_resolution_deg) * cfg.servo_resolution_deg
        if not (cfg.servo_min_deg - 1e-9 <= angle <= cfg.servo_max_deg + 1e-9):
            top = (cfg.servo_max_deg - cfg.servo_min_deg) * cfg.um_per_servo_degree
            raise StageLimitError(f"focus z={z_um:g} um needs servo angle {raw:g} deg, outside "
                                  f"[{cfg.servo_min_deg:g}, {cfg.servo_max_deg:g}] deg (z 0..{top:g} um)")
        return angle

    def _servo_to_um(self, z_um: float) -> None:
        check_target_um("focus target", z_um)
        angle = self._servo_angle(z_um)
        self._io(lambda: self._servo_command(angle))
        if self._servo_deg is not None and angle != self._servo_deg:
            self._z_last_up = angle > self._servo_deg
        self._servo_deg = angle
        if self.config.servo_settle_s:
            self._sleep(self.config.servo_settle_s)

    def _servo_command(self, angle: float) -> None:
        line = f"M280 P0 S{format_number(angle)}"
        reply = self._repeat_if_garbled(lambda: self.link.send(line, self.config.reply_timeout_s))
        if not reply.ok and reply.error_code in (20, 23):
            # stock GRBL: error:23, its parser squeezes 280 into a byte; other builds say error:20
            try:
                check(reply)
            except StageProtocolError as exc:
                raise StageProtocolError(f"{exc}; this board has no servo command (M280): it is not tppscan "
                                         "firmware, so focus with the Z stepper (focus='stepper' or 'auto')") from None
        check(reply)

    def focus_to_um(self, z: float) -> Position:
        """Move focus to ``z`` um, always finishing the approach upwards.

        A downward or unknown approach first goes ``backlash_approach_um`` under the target, so the
        knob's backlash is always taken up in the same direction.

        Raises
        ------
        StageLimitError
            If ``z`` (or the approach point) is outside the focus travel.
        """
        check_target_um("focus target", z)
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
            if self.link.critical_alarm is not None:  # ALARM:1/2: stock GRBL answers nothing, $H included,
                # until it is reset (before, the $H waited out homing_timeout_s, three times in a recovery)
                self._reset_and_wait_banner()
            self.link.last_alarm = None
            self._homing, self._span = True, None   # homing may take the carriage anywhere
            check(self.link.send_watched("$H", self.config.homing_timeout_s, self._homing_watch()))
        try:
            self._io(run)
            report = self._await_homed(deadline)
        finally:
            self._homing = False
        self._moving = False
        self._widen_span(self._machine_mm(report), reset=True)
        return self._to_position(report)

    def _homing_watch(self) -> StatusWatch:
        """``?`` during ``$H``: our firmware reports ``Home`` throughout, so its silence ends homing early.

        Stock GRBL 1.1h reports only when the cycle ends; it is waited for up to ``homing_timeout_s`` unless it
        reports earlier (:class:`StatusWatch`).
        """
        cfg = self.config
        ours = self.build_info is not None and _ours(self.build_info)
        return StatusWatch(board=str(self.port), poll_s=cfg.poll_interval_s, silence_s=cfg.reply_timeout_s,
                           expect=ours, running="Home", why="this firmware reports throughout the homing cycle")

    def _await_homed(self, deadline: float) -> StatusReport:
        while True:
            report = self.status()
            if report.idle:
                self._z_last_up = False
                return report
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

        After ALARM:1/2 stock GRBL discards a reset that arrives before it prints ``[MSG:Reset to continue]``
        (about 500 ms after the alarm): the reset then waits for that message, and is sent again if no
        banner follows.

        Raises
        ------
        StageTimeout
            If no banner follows within the reply timeout (plus GRBL's 500 ms alarm pause).
        """
        return self._io(self._reset_and_wait_banner)

    def _reset_and_wait_banner(self) -> list[str]:
        # not wrapped in _io: the handshake calls it too
        link, cfg = self.link, self.config
        seen: list[str] = []
        link.expect_reset = True
        try:
            if link.critical_alarm is not None and not link.reset_to_continue:
                seen += self._await_reset_to_continue()
            link.write_realtime(SOFT_RESET)
            sent_at = self._clock()
            deadline = sent_at + cfg.reply_timeout_s + 0.5
            while True:
                resend = sent_at + _RESET_RESEND_S if link.critical_alarm is not None else deadline
                text = link.read_line(min(deadline, resend), "waiting for the banner after a soft reset")
                now = self._clock()
                if text is None:
                    if now >= deadline:
                        raise StageTimeout(f"no banner within {cfg.reply_timeout_s + 0.5:g} s of a soft reset "
                                           f"(got {excerpt(seen)})")
                    link.write_realtime(SOFT_RESET)  # still in GRBL's alarm loop: the first one was dropped
                    sent_at = now
                    continue
                seen.append(text)
                parsed = classify(text)
                link._note(parsed)
                if parsed.kind is LineKind.BANNER:
                    seen += link.drain(quiet_s=0.1, max_s=0.5)
                    break
        finally:
            link.expect_reset = False
            link.unexpected_reset = None
        self._after_board_reset(asked=True)
        return seen

    def _await_reset_to_continue(self) -> list[str]:
        """After ALARM:1/2, read until stock GRBL says ``[MSG:Reset to continue]`` (it may never: ours does not)."""
        link = self.link
        try:
            link.query_status(self.config.reply_timeout_s)
            return []  # it answers '?': not in stock GRBL's silent loop (our firmware never is)
        except (StageAlarm, StageTimeout, StageProtocolError):
            pass
        seen: list[str] = []
        deadline = self._clock() + 1.0  # GRBL prints it 500 ms after the alarm line
        while not link.reset_to_continue:
            text = link.read_line(deadline, "waiting for [MSG:Reset to continue]")
            if text is None:
                break
            seen.append(text)
            link._note(classify(text))
        return seen

    def stop(self) -> None:
        """Stop now: feed hold (decelerate, keeps steps in sync), then a soft reset to drop the queue.

        What the board says afterwards depends on where the reset finds it. A reset once the hold has
        completed (``Hold:0``) leaves stock GRBL ``Idle`` with its position kept and no alarm; a reset while
        it still moves or decelerates gives ``ALARM:3`` (position lost) and ``Alarm`` until homed or
        unlocked (our firmware answers a reset with motion queued that way too). After ALARM:1/2 stock GRBL
        answers nothing, not even ``?``: the hold is skipped and the reset waits for GRBL to take it.
        """
        def run() -> None:
            if self.link.critical_alarm is None:
                self.link.write_realtime(FEED_HOLD)
                try:
                    self.wait_stopped(self.config.reply_timeout_s)
                except (StageAlarm, StageTimeout, StageProtocolError):
                    pass  # whatever it is doing, the reset below is what stops it
            self._reset_and_wait_banner()
        self._io(run)

    def wait_stopped(self, timeout_s: float) -> StatusReport:
        """Poll until the board stands still: ``Idle``, ``Alarm`` or a completed hold (``Hold:0``).

        Raises
        ------
        StageTimeout
            If it still moves (or decelerates) after ``timeout_s``.
        """
        deadline = self._clock() + timeout_s
        while True:
            report = self.status()
            if report.idle or report.alarm or (report.state == "Hold" and report.substate == 0):
                return report
            if self._clock() > deadline:
                raise StageTimeout(f"the board did not stop within {timeout_s:g} s: {report.raw}")
            self._sleep(self.config.poll_interval_s)
