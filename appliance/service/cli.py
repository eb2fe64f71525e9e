"""``tppscan run`` (the service) and ``tppscan start|stop|pause|status`` (its control socket)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_SOCKET = "/run/tppscan/control.sock"


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``run`` and the control commands."""
    p = sub.add_parser("run", help="run the service: wait for triggers, scan, log (systemd starts this)",
                       description="Run the tppscan service in the foreground: connect the hardware (retrying while "
                                   "a device is missing), then wait for a trigger (button, serial console, "
                                   "control socket) and run one scan at a time. SIGTERM stops it; an interrupted "
                                   "scan resumes on the next start.")
    p.add_argument("--config", default=None, metavar="FILE", help="config file (default /etc/tppscan/config.yaml)")
    p.set_defaults(func=_run)
    for name, text in (("start", "start a scan (or resume an interrupted one)"),
                       ("stop", "stop the running scan after the field in progress (it stays resumable)"),
                       ("pause", "pause the running scan, or resume a paused one"),
                       ("status", "print the service's state and the scan's progress")):
        c = sub.add_parser(name, help=text, description=f"{text[0].upper()}{text[1:]}, through the service's "
                                                         "control socket (members of group tppscan).")
        c.add_argument("--socket", default=None, metavar="PATH",
                       help="the control socket (default: the config's, control.sock in paths.run_dir; "
                            f"{DEFAULT_SOCKET} without a config)")
        c.add_argument("--config", default=None, metavar="FILE",
                       help="the service's config file, for its socket (default /etc/tppscan/config.yaml where it "
                            "exists)")
        c.add_argument("--json", action="store_true", help="print the service's whole reply as JSON")
        c.add_argument("--timeout", type=float, default=10.0, metavar="S", help="seconds to wait (0.1..600)")
        c.set_defaults(func=_control, control_command=name)


def _control(args: argparse.Namespace) -> int:
    from appliance.config.schema import ConfigError, ConfigFileError
    from appliance.service.control import ControlError, send_command

    if not 0.1 <= args.timeout <= 600:  # also false for nan
        print(f"tppscan {args.control_command}: error: --timeout must be 0.1..600 s, got {args.timeout}",
              file=sys.stderr)
        return 2
    try:
        path = _socket_path(args)
    except ConfigError as exc:
        print(f"tppscan {args.control_command}: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, ConfigFileError) else 2
    try:
        reply = send_command(path, args.control_command, timeout_s=args.timeout)
    except ControlError as exc:
        print(f"tppscan {args.control_command}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(reply, indent=2))
    else:
        st = reply.get("status")  # send_command checked its shape; a refused request has none
        print(status_text(st, _results_db(args)) if args.control_command == "status" and st is not None
              else reply["message"])
    return 0 if reply.get("ok") else 1


def _count(n: object, word: str) -> str:
    """``1 structure``, ``20 structures``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def status_text(st: dict[str, Any], db: str | None = None) -> str:
    """The service's status as a person says it: the scan running, or the last one and where its report is.

    ``scanning: scan 3, 59 of 130 fields, 4 structures, ETA 120 s``;
    ``idle; last scan 3 completed 2026-12-06 09:12 UTC: 20 structures, report /var/lib/.../report.html``.
    ``db``: the service's results database, named when it has run no scan since it started (after a reboot the
    user's question is still "where is my last scan").
    """
    state, sid = st.get("state"), st.get("scan_id")
    done = f"{st.get('fields_done')} of {st.get('fields_total')} fields"
    if state in ("scanning", "paused") and sid is not None:
        eta = f", ETA {st['eta_s']:.0f} s" if isinstance(st.get("eta_s"), (int, float)) else ""
        return f"{state}: scan {sid}, {done}, {_count(st.get('structures'), 'structure')}{eta}"
    outcome = st.get("last_outcome")
    if not outcome:
        earlier = f"; earlier scans: tppscan results list --db {db}" if db else ""
        return f"{state}; no scan since the service started{earlier}"
    at = st.get("finished_at")
    when = time.strftime(" %Y-%m-%d %H:%M UTC", time.gmtime(at)) if isinstance(at, (int, float)) else ""
    head = f"{state}; last scan{'' if sid is None else f' {sid}'} {outcome}{when}"
    if outcome == "failed":
        return f"{head}: {st.get('message') or 'no reason given'}"
    then = "; 'tppscan start' resumes it" if outcome == "cancelled" else ""
    report = f", report {st['report']}" if st.get("report") else ""
    return f"{head}: {_count(st.get('structures'), 'structure')}, {done}{report}{then}"


def _results_db(args: argparse.Namespace) -> str | None:
    """The service's results database (``paths.data_dir``/tppscan.db) from ``--config`` or the installed config."""
    from appliance.config.schema import DEFAULT_CONFIG_PATH, ConfigError, load_config

    path = args.config if args.config is not None else DEFAULT_CONFIG_PATH
    try:
        return str(Path(load_config(path).paths.data_dir) / "tppscan.db") if Path(path).exists() else None
    except ConfigError:  # the status itself came back: a config that no longer loads only loses the hint
        return None


def _socket_path(args: argparse.Namespace) -> str:
    """``--socket``; else the socket of ``--config`` or of the installed config, where the service listens."""
    from appliance.config.schema import DEFAULT_CONFIG_PATH, load_config

    if args.socket is not None:
        return str(args.socket)
    if args.config is None and not DEFAULT_CONFIG_PATH.exists():
        return DEFAULT_SOCKET
    return load_config(args.config if args.config is not None else DEFAULT_CONFIG_PATH).control_socket


def _run(args: argparse.Namespace) -> int:
    from appliance.config.schema import DEFAULT_CONFIG_PATH, ConfigError, ConfigFileError, load_config
    from appliance.service.app import run_service
    from appliance.service.inputs import check_inputs

    path = args.config if args.config is not None else str(DEFAULT_CONFIG_PATH)
    try:
        cfg = load_config(path)
        check_inputs(cfg, path)  # as config check does: a missing plan or calibration is refused the same way
    except ConfigError as exc:
        print(f"tppscan run: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, ConfigFileError) else 2
    return run_service(cfg)
