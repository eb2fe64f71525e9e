"""The ``tppscan`` command.

Each command group lives beside the code it drives and exposes ``register(subparsers)``; this module
only assembles them, so ``tppscan --help`` stays fast (groups import their heavy modules lazily,
inside the handler).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from appliance import __version__

# (module, what it adds). A module here must define ``register(subparsers) -> None`` and set
# ``func`` on its parsers; the handler returns the process exit code.
COMMAND_MODULES: tuple[str, ...] = (
    "appliance.scan.cli",
    "appliance.results.cli",
    "appliance.sim.cli",
    "appliance.hardware.stage.cli",
    "appliance.config.cli",
    "appliance.service.cli",
    "appliance.service.logs_cli",
    "appliance.focus.cli",
    "models.data.cli",
    "models.train_cli",
    "appliance.vision.detect_cli",
    "appliance.vision.eval_cli",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command group registered."""
    parser = argparse.ArgumentParser(
        prog="tppscan",
        description="Autonomous slide scanner for two-photon-polymerised microstructures.",
    )
    parser.add_argument("--version", action="version", version=f"tppscan {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


#: The folders the installed service keeps its results, logs and sockets in (systemd/tppscan.service): a lab
#: user reads them as a member of the service's group.
SERVICE_FOLDERS = ("/var/lib/tppscan", "/var/log/tppscan", "/run/tppscan")


def _group_hint(exc: BaseException) -> str:
    """For a permission refused on the service's own folders, the group a lab user needs; else nothing."""
    path = str(getattr(exc, "filename", None) or exc)
    if isinstance(exc, PermissionError) and any(f in path for f in SERVICE_FOLDERS):
        return " (the service's files are readable by group tppscan: sudo usermod -aG tppscan $USER, then log in again)"
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (also used by the console script)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    from appliance.hardware.camera.base import CameraError
    from appliance.hardware.stage.base import StageError

    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`tppscan results show DIR | head`): nothing is wrong here
        _drop_stdout()
        return 141  # as a shell reports a command ended by SIGPIPE
    except ValueError as exc:  # a bad value that reached a device or model: the user's to fix
        print(f"tppscan {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (StageError, CameraError, OSError) as exc:  # the device or the file system refused
        print(f"tppscan {args.command}: {type(exc).__name__}: {exc}{_group_hint(exc)}", file=sys.stderr)
        return 1


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's flush at exit does not hit the closed pipe again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is no file (captured, replaced): no flush to fail
        pass


if __name__ == "__main__":
    sys.exit(main())
