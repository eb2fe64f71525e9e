"""``tppscan stage ...``: talk to the stage board (ours or stock GRBL 1.1) from the command line.

``status``, ``home``, ``move``, ``focus``, ``stream FILE`` and ``settings``. The board is named with
``--port`` or ``--usb-id``, or ``--simavr`` starts the real firmware in simavr for a hardware-free try.
Every value option is bounded: a bad value exits 2 with one line naming the option, the value and the
range; a device or file error exits 1 with one line. Ctrl-C while the stage moves sends a feed hold (and,
with ``--on-interrupt reset``, a soft reset) before exiting 130, so the stage stops with the command.
Heavy imports (pyserial, the driver) happen inside the handlers so ``tppscan --help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from appliance.hardware.stage.base import Position
    from appliance.hardware.stage.grbl import GrblStage, GrblStageConfig

# Bounds of the value options (the driver's own limits where it has them: grbl.MAX_TARGET_UM, _BAUDS).
BAUDS = (9600, 19200, 38400, 57600, 115200, 230400, 250000, 500000, 1000000)
TARGET_UM = (-1e6, 1e6)
BOOT_DELAY_S = (0.0, 30.0)
UM_PER_DEGREE = (0.001, 1000.0)
LINE_TIMEOUT_S = (0.01, 3600.0)
SETTING_NUMBERS = (0, 255)
SETTING_VALUE = (-1e6, 1e6)
#: A G-code program larger than this is refused before reading (``/dev/zero`` would never end).
MAX_PROGRAM_BYTES = 16 * 1024 * 1024


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (``tppscan stage move: error: ...``), exit 2."""

    def error(self, message: str) -> NoReturn:
        """Print ``prog: error: message`` and exit 2, without the usage block."""
        self.exit(2, f"{self.prog}: error: {message}\n")


def bounded(lo: float, hi: float, *, low_open: bool = False) -> Callable[[str], float]:
    """An argparse ``type``: a finite float in ``[lo, hi]`` (``(lo, hi]`` with ``low_open``)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        inside = (lo < value if low_open else lo <= value) and value <= hi
        if not inside:  # NaN fails both comparisons
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a number in {'(' if low_open else '['}{lo:g}, {hi:g}]")
        return value
    parse.__name__ = "number"
    return parse


def baud(text: str) -> int:
    """An argparse ``type``: one of the standard serial rates."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value not in BAUDS:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(map(str, BAUDS))}")
    return value


def usb_id(text: str) -> str:
    """An argparse ``type``: ``VID:PID``, 4 hex digits each."""
    from appliance.hardware.stage.ports import parse_usb_id

    try:
        parse_usb_id(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not VID:PID with 4 hex digits each (e.g. 2341:0043)") from None
    return text


def _connection_options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("board")
    where = g.add_mutually_exclusive_group()
    where.add_argument("--port", help="serial device or pyserial URL, e.g. /dev/ttyACM0")
    where.add_argument("--usb-id", type=usb_id, help="find the port by USB VID:PID, e.g. 2341:0043 (Arduino Uno)")
    where.add_argument("--simavr", action="store_true",
                       help="start the stage firmware in simavr (builds it with make) and use its pty")
    g.add_argument("--baud", type=baud, default=115200, help=f"serial speed, one of {BAUDS} (default 115200)")
    g.add_argument("--boot-delay", type=bounded(*BOOT_DELAY_S), default=None, metavar="S",
                   help="seconds to wait after opening, 0..30 (an Arduino resets on open; default 2 on a port, "
                        "0 in simavr)")
    g.add_argument("--focus-mode", choices=("auto", "servo", "stepper"), default="auto",
                   help="focus by the M280 servo or the Z stepper (auto: servo on our firmware)")
    g.add_argument("--um-per-degree", type=bounded(*UM_PER_DEGREE), default=1.0, metavar="UM",
                   help="focus um per servo degree, 0.001..1000 (default 1)")
    g.add_argument("--reset", action="store_true",
                   help="soft-reset the board (0x18) before anything else: drops motion an interrupted command "
                        "left queued or held")
    return p


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``stage`` command group."""
    p = sub.add_parser("stage", help="drive the XY stage and focus (GRBL 1.1 board)",
                       description="Drive the stage board over its GRBL 1.1 serial protocol.")
    p.set_defaults(func=lambda a: p.print_help() or 2)
    cmds = p.add_subparsers(dest="stage_command", metavar="ACTION", parser_class=OneLineParser)
    common = _connection_options()
    target = bounded(*TARGET_UM)

    s = cmds.add_parser("status", parents=[common], help="print state, position and firmware build info")
    s.set_defaults(func=_guarded(_status))

    s = cmds.add_parser("home", parents=[common], help="run the homing cycle ($H)")
    _interrupt_option(s, default="reset")  # GRBL's homing cycle ignores a feed hold: only a reset stops it
    s.set_defaults(func=_guarded(_home))

    s = cmds.add_parser("move", parents=[common], help="move to a position (or by an offset) in um")
    for axis in "xyz":
        s.add_argument(f"--{axis}", type=target, metavar="UM", help=f"{axis} target in um, -1e6..1e6")
    s.add_argument("--relative", action="store_true", help="targets are offsets from the current position")
    _first_options(s)
    _interrupt_option(s)
    s.set_defaults(func=_guarded(_move))

    s = cmds.add_parser("focus", parents=[common], help="move focus to Z um, approaching from below")
    s.add_argument("z", type=target, metavar="Z_UM", help="focus position in um, -1e6..1e6")
    _first_options(s)
    _interrupt_option(s)
    s.set_defaults(func=_guarded(_focus))

    s = cmds.add_parser("stream", parents=[common], help="send a G-code file line by line (send, wait for ok), "
                                                         "then wait until the motion has ended")
    s.add_argument("file", type=Path, help="G-code file; comments and blank lines are stripped")
    s.add_argument("--keep-going", action="store_true", help="send every line even after an error")
    s.add_argument("--line-timeout", type=bounded(*LINE_TIMEOUT_S), default=30.0, metavar="S",
                   help="seconds one line may wait for its reply, and the motion may go without progress "
                        "at the end, 0.01..3600 (default 30)")
    _first_options(s)
    _interrupt_option(s)
    s.set_defaults(func=_guarded(_stream))

    s = cmds.add_parser("settings", parents=[common], help="list the $ settings, or change them with --set")
    s.add_argument("--set", action="append", type=_assignment, default=[], metavar="N=VALUE",
                   help="write $N=VALUE when it differs (repeatable; N 0..255, VALUE -1e6..1e6)")
    s.set_defaults(func=_guarded(_settings))


def _first_options(p: argparse.ArgumentParser) -> None:
    first = p.add_mutually_exclusive_group()
    first.add_argument("--home", action="store_true", help="run the homing cycle ($H) first")
    first.add_argument("--unlock", action="store_true",
                       help="unlock ($X) first, trusting the position (a fresh board with homing enabled starts "
                            "locked; --simavr has virtual limit switches, so --home works there too)")


def _interrupt_option(p: argparse.ArgumentParser, default: str = "hold") -> None:
    p.add_argument("--on-interrupt", choices=("hold", "reset"), default=default,
                   help="what Ctrl-C sends before exiting: a feed hold (the stage decelerates and stops, the rest "
                        f"of the motion stays queued) or a hold then a soft reset (drops it); default {default}")


def _assignment(item: str) -> tuple[int, float]:
    """An argparse ``type`` for ``--set``: ``N=VALUE`` (``$N=VALUE`` too) with bounded N and VALUE."""
    key, sep, value = item.partition("=")
    try:
        if not sep:
            raise ValueError
        n, v = int(key.strip().lstrip("$")), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{item!r} is not N=VALUE (e.g. 100=800)") from None
    if not SETTING_NUMBERS[0] <= n <= SETTING_NUMBERS[1]:
        raise argparse.ArgumentTypeError(f"{item!r}: N must be in {SETTING_NUMBERS[0]}..{SETTING_NUMBERS[1]}")
    if not SETTING_VALUE[0] <= v <= SETTING_VALUE[1]:
        raise argparse.ArgumentTypeError(f"{item!r}: VALUE must be a number in [{SETTING_VALUE[0]:g}, "
                                         f"{SETTING_VALUE[1]:g}]")
    return n, v


def _prepare(stage: GrblStage, args: argparse.Namespace) -> None:
    if args.home:
        stage.home()
    elif args.unlock:
        stage.unlock()


@contextlib.contextmanager
def _open_stage(args: argparse.Namespace, settings: dict[int, float] | None = None) -> Iterator[GrblStage]:
    """The open stage; Ctrl-C inside the block stops the stage (see :func:`_halt`) before it propagates."""
    from appliance.hardware.stage.grbl import GrblStage

    with _board_port(args) as port:
        config = _config(args, port, settings or {})
        with GrblStage(config) as stage:
            try:
                yield stage
            except KeyboardInterrupt:
                _halt(stage, getattr(args, "on_interrupt", "hold"))
                raise


def _halt(stage: GrblStage, how: str) -> None:
    """Stop the stage after Ctrl-C: feed hold (and a soft reset for ``how == "reset"``), one line on stderr.

    A second Ctrl-C meanwhile is ignored: leaving half-way would leave the stage moving.
    """
    from appliance.hardware.stage.base import StageError
    from appliance.hardware.stage.grbl_protocol import FEED_HOLD

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        link = stage.link
        link.write_realtime(FEED_HOLD)   # first, before anything can fail: this is what stops the motors
        link._dirty = True               # the interrupted exchange may have left half a reply behind
        where = ""
        try:
            report = stage.wait_stopped(2.0)
            where = f" at {_fmt(stage._to_position(report))} ({report.state})"
        except StageError as exc:
            where = f" (stop not confirmed: {_one_line(exc, 120)})"
        if how == "reset":
            try:
                stage.soft_reset()  # also when the hold was not confirmed: the reset stops whatever runs
                where += ", then reset (queued motion dropped)"
            except StageError as exc:
                where += f", reset failed: {_one_line(exc, 120)}"
        else:
            where += "; the rest of the motion stays queued: resume it, or drop it with --reset"
        print(f"stage: feed hold sent{where}", file=sys.stderr)
    finally:
        signal.signal(signal.SIGINT, previous)


#: Net steps below the power-up position where the --simavr board's virtual limit switches close.
SIMAVR_SWITCH_STEPS = 400


@contextlib.contextmanager
def _board_port(args: argparse.Namespace) -> Iterator[tuple[str | None, str | None]]:
    """(port, usb_id) to use; starts and stops the simavr board for ``--simavr``."""
    if not args.simavr:
        if not args.port and not args.usb_id:
            raise ValueError("name the board: --port DEVICE, --usb-id VID:PID or --simavr")
        yield args.port, args.usb_id
        return
    from appliance.hardware.stage.simavr_board import SimavrBoard, build_firmware

    elf, runner = build_firmware()
    with SimavrBoard(elf, runner) as board:
        # Virtual limit switches a little below each axis's start, as on a bench rig, so that `--home` works
        # without hardware (homing runs toward minus by default; docs/firmware.md).
        for axis in "xyz":
            board.place_limit_switch(axis, -SIMAVR_SWITCH_STEPS, "-")
        yield board.pty_path, None


def _config(args: argparse.Namespace, where: tuple[str | None, str | None],
            settings: dict[int, float]) -> GrblStageConfig:
    from appliance.hardware.stage.grbl import GrblStageConfig

    boot = args.boot_delay if args.boot_delay is not None else (0.0 if args.simavr else 2.0)
    return GrblStageConfig(port=where[0], usb_id=where[1], baud=args.baud, boot_delay_s=boot,
                           focus=args.focus_mode, um_per_servo_degree=args.um_per_degree, settings=settings,
                           reset_on_open=args.reset)


def _fmt(pos: Position) -> str:
    x, y, z = pos
    z_text = "unknown (servo angle not set since the board was opened)" if math.isnan(z) else f"{z:.1f} um"
    return f"x={x:.1f} um  y={y:.1f} um  z={z_text}"


def _status(args: argparse.Namespace) -> int:
    with _open_stage(args) as stage:
        report = stage.status()
        info = stage.build_info
        print(f"port     {stage.port}")
        if info is not None:
            print(f"firmware GRBL {info.version} {info.build_name}".rstrip())
        print(f"focus    {stage.focus_mode}")
        print(f"state    {report.state}" + (f":{report.substate}" if report.substate is not None else ""))
        print(f"position {_fmt(stage.position_um())}")
        print(f"report   {report.raw}")
        if report.state == "Alarm":  # a fresh board with homing on starts locked: say how on, in this CLI's words
            print(f"next     locked in alarm: {_ALARM_NEXT['status']}")
    return 0


def _home(args: argparse.Namespace) -> int:
    with _open_stage(args) as stage:
        print(f"homed at {_fmt(stage.home())}")
    return 0


def _move(args: argparse.Namespace) -> int:
    if args.x is None and args.y is None and args.z is None:
        raise ValueError("move needs at least one of --x, --y, --z (um)")
    with _open_stage(args) as stage:
        _prepare(stage, args)
        if args.relative:
            if args.z and stage.focus_mode == "servo" and math.isnan(stage.position_um().z_um):
                raise ValueError("--relative --z needs a known focus position, and the servo reports none: "
                                 "run 'tppscan stage focus Z_UM' (absolute) first")
            pos = stage.move_by_um(args.x or 0.0, args.y or 0.0, args.z or 0.0)
        else:
            pos = stage.move_to_um(args.x, args.y, args.z)
        print(f"at {_fmt(pos)}")
    return 0


def _focus(args: argparse.Namespace) -> int:
    with _open_stage(args) as stage:
        _prepare(stage, args)
        print(f"at {_fmt(stage.focus_to_um(args.z))} ({stage.focus_mode} focus)")
    return 0


class ProgramFileError(OSError):
    """The G-code file cannot be streamed: missing, not a regular file, too large, not text, a bad line."""


def _read_program(path: Path) -> list[str]:
    """The file's lines, checked before the board is opened.

    Raises
    ------
    ProgramFileError
        Naming the file and what is wrong with it.
    """
    from appliance.hardware.stage.streamer import program_lines

    try:
        if not path.is_file():
            raise ProgramFileError(f"{path}: not a regular file" if path.exists() else f"{path}: no such file")
        with open(path, "rb") as fh:
            data = fh.read(MAX_PROGRAM_BYTES + 1)
        if len(data) > MAX_PROGRAM_BYTES:
            raise ProgramFileError(f"{path}: larger than {MAX_PROGRAM_BYTES // (1024 * 1024)} MiB, "
                                   "not a G-code program for this stage")
        text = data.decode("utf-8").splitlines()
        if not program_lines(text):  # refuse a bad line, or nothing to send, before opening the board
            raise ProgramFileError(f"{path}: no G-code commands in it (only blank lines or comments); nothing to "
                                   "stream")
    except UnicodeDecodeError as exc:
        raise ProgramFileError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except ValueError as exc:
        raise ProgramFileError(f"{path}: {exc}") from None
    except ProgramFileError:
        raise
    except OSError as exc:
        raise ProgramFileError(f"{path}: {exc.strerror or exc}") from None
    return text


def _stream(args: argparse.Namespace) -> int:
    from appliance.hardware.stage.streamer import stream, wait_idle

    text = _read_program(args.file)
    with _open_stage(args) as stage:
        _prepare(stage, args)
        stage.link.last_alarm = None  # from here, an ALARM:N line is this program's
        transcript = stream(stage.link, text, stop_on_error=not args.keep_going,
                            line_timeout_s=args.line_timeout)
        # 'ok' means queued: the command is over when the motion is
        final = wait_idle(stage.link, args.line_timeout)
    print(transcript.text())
    print(f"board {final.split('|')[0].lstrip('<')}: " + ("motion finished" if "<Idle" in final else "nothing moving"))
    if transcript.errors:
        hint = ""
        if any(e.result == "error:9" for e in transcript.errors):
            hint = " (error:9: the board is locked in alarm: add --unlock or --home)"
        print(f"{len(transcript.errors)} line(s) rejected" + (", stopped" if transcript.stopped_early else "")
              + hint, file=sys.stderr)
        return 1
    return 0


def _settings(args: argparse.Namespace) -> int:
    given: dict[int, list[float]] = {}
    for n, value in args.set:
        given.setdefault(n, []).append(value)
    twice = {n: vs for n, vs in given.items() if len(vs) > 1}
    if twice:  # the last would win silently: which one the user meant is not known
        raise ValueError("--set " + ", ".join(f"${n} given {len(vs)} times ({', '.join(f'{v:g}' for v in vs)})"
                                              for n, vs in sorted(twice.items())) + "; give each setting once")
    wanted = dict(args.set)
    with _open_stage(args, wanted) as stage:
        for n, value in sorted(stage.board_settings.items()):
            print(f"${n}={value:g}")
    return 0


def _guarded(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Wrap a handler: stage, device and file errors exit 1, bad input exits 2, each with a one-line message."""
    def run(args: argparse.Namespace) -> int:
        from appliance.hardware.stage.base import StageError
        from appliance.hardware.stage.simavr_board import SimavrBoardError

        try:
            return handler(args)
        except (StageError, SimavrBoardError) as exc:
            print(f"stage error: {_one_line(_in_cli_words(exc, args))}", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"error: {_one_line(exc)}", file=sys.stderr)
            return 1
        except ValueError as exc:
            print(f"error: {_one_line(exc)}", file=sys.stderr)
            return 2
    return run


#: What to do about a board locked in alarm, in each action's own options (the driver says '$H' / '$X').
_ALARM_NEXT = {
    "status": "run 'tppscan stage home', or add --home or --unlock to move, focus or stream (--unlock trusts "
              "the position)",
    "home": "check the limit switches and run 'tppscan stage home' again, or give move, focus or stream --unlock "
            "to trust the position",
    "settings": "run 'tppscan stage home', or add --home or --unlock to move, focus or stream",
}
_DRIVER_WORDS = ("home ($H) or unlock ($X) first", "home ($H) or unlock ($X)")


def _in_cli_words(exc: BaseException, args: argparse.Namespace) -> str:
    """The driver's message, its alarm advice ('home ($H) or unlock ($X)') told as this CLI's options."""
    from appliance.hardware.stage.base import StageAlarm

    text = str(exc)
    if not isinstance(exc, StageAlarm):
        return text
    action = getattr(args, "stage_command", None)
    advice = _ALARM_NEXT.get(action or "", "add --home (homing cycle) or --unlock (trust the position)")
    for words in _DRIVER_WORDS:
        if words in text:
            return text.replace(words, advice)
    return f"{text}; {advice}"


def _one_line(exc: BaseException | str, limit: int = 400) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "..."
