"""``tppscan stage ...``: talk to the stage board (ours or stock GRBL 1.1) from the command line.

``status``, ``home``, ``move``, ``focus``, ``stream FILE`` and ``settings``. The board is named with
``--port`` or ``--usb-id``, or ``--simavr`` starts the real firmware in simavr for a hardware-free try.
Heavy imports (pyserial, the driver) happen inside the handlers so ``tppscan --help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from appliance.hardware.stage.base import Position
    from appliance.hardware.stage.grbl import GrblStage, GrblStageConfig


def _connection_options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("board")
    where = g.add_mutually_exclusive_group()
    where.add_argument("--port", help="serial device or pyserial URL, e.g. /dev/ttyACM0")
    where.add_argument("--usb-id", help="find the port by USB VID:PID, e.g. 2341:0043 (Arduino Uno)")
    where.add_argument("--simavr", action="store_true",
                       help="start the stage firmware in simavr (builds it with make) and use its pty")
    g.add_argument("--baud", type=int, default=115200, help="serial speed (default 115200)")
    g.add_argument("--boot-delay", type=float, default=None, metavar="S",
                   help="seconds to wait after opening (an Arduino resets on open; default 2 on a port, 0 in simavr)")
    g.add_argument("--focus-mode", choices=("auto", "servo", "stepper"), default="auto",
                   help="focus by the M280 servo or the Z stepper (auto: servo on our firmware)")
    g.add_argument("--um-per-degree", type=float, default=1.0, help="focus um per servo degree (default 1)")
    return p


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``stage`` command group."""
    p = sub.add_parser("stage", help="drive the XY stage and focus (GRBL 1.1 board)",
                       description="Drive the stage board over its GRBL 1.1 serial protocol.")
    p.set_defaults(func=lambda a: p.print_help() or 2)
    cmds = p.add_subparsers(dest="stage_command", metavar="ACTION")
    common = _connection_options()

    s = cmds.add_parser("status", parents=[common], help="print state, position and firmware build info")
    s.set_defaults(func=_guarded(_status))

    s = cmds.add_parser("home", parents=[common], help="run the homing cycle ($H)")
    s.set_defaults(func=_guarded(_home))

    s = cmds.add_parser("move", parents=[common], help="move to a position (or by an offset) in um")
    for axis in "xyz":
        s.add_argument(f"--{axis}", type=float, metavar="UM", help=f"{axis} target in um")
    s.add_argument("--relative", action="store_true", help="targets are offsets from the current position")
    _first_options(s)
    s.set_defaults(func=_guarded(_move))

    s = cmds.add_parser("focus", parents=[common], help="move focus to Z um, approaching from below")
    s.add_argument("z", type=float, metavar="Z_UM", help="focus position in um")
    _first_options(s)
    s.set_defaults(func=_guarded(_focus))

    s = cmds.add_parser("stream", parents=[common], help="send a G-code file line by line (send, wait for ok)")
    s.add_argument("file", type=Path, help="G-code file; comments and blank lines are stripped")
    s.add_argument("--keep-going", action="store_true", help="send every line even after an error")
    s.add_argument("--line-timeout", type=float, default=30.0, metavar="S", help="seconds per line (default 30)")
    s.set_defaults(func=_guarded(_stream))

    s = cmds.add_parser("settings", parents=[common], help="list the $ settings, or change them with --set")
    s.add_argument("--set", action="append", default=[], metavar="N=VALUE",
                   help="write $N=VALUE when it differs (repeatable)")
    s.set_defaults(func=_guarded(_settings))


def _first_options(p: argparse.ArgumentParser) -> None:
    first = p.add_mutually_exclusive_group()
    first.add_argument("--home", action="store_true", help="run the homing cycle ($H) first")
    first.add_argument("--unlock", action="store_true",
                       help="unlock ($X) first, trusting the position (a fresh --simavr board starts locked "
                            "and has no switches to home on)")


def _prepare(stage: GrblStage, args: argparse.Namespace) -> None:
    if args.home:
        stage.home()
    elif args.unlock:
        stage.unlock()


def _parse_assignments(items: list[str]) -> dict[int, float]:
    out: dict[int, float] = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            out[int(key.lstrip("$"))] = float(value)
        except ValueError:
            raise ValueError(f"--set takes N=VALUE (e.g. 100=800), got {item!r}") from None
    return out


@contextlib.contextmanager
def _open_stage(args: argparse.Namespace, settings: dict[int, float] | None = None) -> Iterator[GrblStage]:
    from appliance.hardware.stage.grbl import GrblStage

    with _board_port(args) as port:
        config = _config(args, port, settings or {})
        with GrblStage(config) as stage:
            yield stage


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
                           focus=args.focus_mode, um_per_servo_degree=args.um_per_degree, settings=settings)


def _fmt(pos: Position) -> str:
    x, y, z = pos
    return f"x={x:.1f} um  y={y:.1f} um  z={z:.1f} um"


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


def _stream(args: argparse.Namespace) -> int:
    from appliance.hardware.stage.streamer import program_lines, stream

    text = args.file.read_text(encoding="utf-8").splitlines()
    program_lines(text)  # refuse a bad file before opening the board
    with _open_stage(args) as stage:
        transcript = stream(stage.link, text, stop_on_error=not args.keep_going,
                            line_timeout_s=args.line_timeout)
    print(transcript.text())
    if transcript.errors:
        print(f"{len(transcript.errors)} line(s) rejected" + (", stopped" if transcript.stopped_early else ""),
              file=sys.stderr)
        return 1
    return 0


def _settings(args: argparse.Namespace) -> int:
    wanted = _parse_assignments(args.set)
    with _open_stage(args, wanted) as stage:
        for n, value in sorted(stage.board_settings.items()):
            print(f"${n}={value:g}")
    return 0


def _guarded(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Wrap a handler: stage errors exit 1 and bad input exits 2, each with a one-line message."""
    def run(args: argparse.Namespace) -> int:
        from appliance.hardware.stage.base import StageError

        try:
            return handler(args)
        except StageError as exc:
            print(f"stage error: {exc}", file=sys.stderr)
            return 1
        except (ValueError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return run
