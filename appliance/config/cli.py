"""``tppscan config check|show``: validate a configuration file, print the effective or default one."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from appliance.config.schema import Config


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``config`` command group."""
    p = sub.add_parser("config", help="check or print the YAML configuration",
                       description="Check or print the appliance's YAML configuration (/etc/tppscan/config.yaml).")
    p.set_defaults(func=lambda a: p.print_help() or 2)
    cmds = p.add_subparsers(dest="config_command", metavar="ACTION")

    s = cmds.add_parser("check", help="validate a config file and the files it names (plan, calibration, "
                                      "models); exit 2 naming the first bad key")
    s.add_argument("--config", default=None, metavar="FILE",
                   help="the file to check (default /etc/tppscan/config.yaml)")
    s.set_defaults(func=_check)

    s = cmds.add_parser("show", help="print the effective configuration (or the commented defaults)")
    s.add_argument("--config", default=None, metavar="FILE", help="the file to read (default /etc/tppscan/config.yaml)")
    s.add_argument("--defaults", action="store_true", help="print every key with its default and what it means")
    s.set_defaults(func=_show)


def _path(args: argparse.Namespace) -> str:
    from appliance.config.schema import DEFAULT_CONFIG_PATH

    return args.config if args.config is not None else str(DEFAULT_CONFIG_PATH)


def _report(exc: Exception) -> int:
    """One line on stderr; exit 1 for a file that cannot be read, 2 for a bad value in it."""
    from appliance.config.schema import ConfigFileError

    print(f"tppscan config: {exc}", file=sys.stderr)
    return 1 if isinstance(exc, ConfigFileError) else 2


def _check(args: argparse.Namespace) -> int:
    from appliance.config.schema import ConfigError, load_config
    from appliance.service.devices import camera_warning
    from appliance.service.inputs import check_inputs

    try:  # the files it names too: the service refuses a missing plan or calibration at start
        cfg = load_config(_path(args))
        folder_warnings = check_inputs(cfg, _path(args), as_service=False)  # the service may be another user
    except ConfigError as exc:
        return _report(exc)
    # each works, but not as meant: the service says (or meets) it too
    for warning in (*folder_warnings, camera_warning(cfg), _disk_warning(cfg)):
        if warning:
            print(f"{_path(args)}: WARNING {warning}")
    print(f"{_path(args)}: ok")
    return 0


def _disk_warning(cfg: Config) -> str | None:
    """Less free space at ``paths.data_dir`` than the plan's ``faults.min_free_mb``: every start would be refused."""
    from pathlib import Path

    from appliance.service.inputs import free_space_problem, load_plan

    problem = free_space_problem(Path(cfg.paths.data_dir), float(load_plan(cfg).faults.min_free_mb))
    return None if problem is None else f"paths.data_dir: {problem}; until then every start is refused"


def _show(args: argparse.Namespace) -> int:
    import yaml

    from appliance.config.schema import ConfigError, default_yaml, load_config

    if args.defaults:
        sys.stdout.write(default_yaml())
        return 0
    try:
        cfg = load_config(_path(args))
    except ConfigError as exc:
        return _report(exc)
    sys.stdout.write(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    return 0
