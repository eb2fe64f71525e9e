"""``tppscan run`` (the service) and ``tppscan start|stop|pause|status`` (its control socket)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from appliance.config.schema import Config

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
        if name == "start":
            c.add_argument("--new", action="store_true",
                           help="start a new scan even where one is interrupted: the interrupted scan is abandoned "
                                "(marked cancelled, its fields and records kept) and not resumed again; for a "
                                "different slide, where a resume stops because the scan's first print is not there")
        c.set_defaults(func=_control, control_command=name)


def _control(args: argparse.Namespace) -> int:
    from appliance.config.schema import ConfigError, ConfigFileError
    from appliance.service.control import ControlError, send_command

    if not 0.1 <= args.timeout <= 600:  # also false for nan
        print(f"tppscan {args.control_command}: error: --timeout must be 0.1..600 s, got {args.timeout}",
              file=sys.stderr)
        return 2
    try:
        # read once, for the socket and the results database; --socket needs no config, so a broken one
        # costs it only the database (read in _results_db, its errors ignored), as before
        cfg = None if args.socket is not None else _service_config(args)
    except ConfigError as exc:
        print(f"tppscan {args.control_command}: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, ConfigFileError) else 2
    path = str(args.socket) if args.socket is not None else cfg.control_socket if cfg is not None else DEFAULT_SOCKET
    try:
        reply = send_command(path, args.control_command, timeout_s=args.timeout,
                             args={"new": "yes"} if getattr(args, "new", False) else None)
    except ControlError as exc:
        print(f"tppscan {args.control_command}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        st = reply.get("status")
        if args.control_command == "status" and isinstance(st, dict):  # what the plain status says, as fields
            reply = {**reply, "status": with_database_last_scan(st, _results_db(args, cfg))}
        print(json.dumps(reply, indent=2))
    else:
        st = reply.get("status")  # send_command checked its shape; a refused request has none
        print(status_text(st, _results_db(args, cfg)) if args.control_command == "status" and st is not None
              else reply["message"])
    return 0 if reply.get("ok") else 1


def _count(n: object, word: str) -> str:
    """``1 structure``, ``20 structures``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def _utc(at: object) -> str:
    """`` 2026-12-06 09:12 UTC``; empty for no time."""
    return time.strftime(" %Y-%m-%d %H:%M UTC", time.gmtime(at)) if isinstance(at, (int, float)) else ""


def status_text(st: dict[str, Any], db: Path | None = None) -> str:
    """The service's status as a person says it: the scan running, or the last one and where its report is.

    ``scanning: scan 3, 59 of 130 fields, 4 structures, ETA 120 s``;
    ``idle; last scan 3 completed 2026-12-06 09:12 UTC: 20 structures, report /var/lib/.../report.html``.
    ``db``: the service's results database, read when it has run no scan since it started: after a reboot the
    user's question is still "what was my last scan", answered from the database in the same words.
    """
    text = _state_text(st, db)
    problems = [p for p in st.get("problems") or () if p]
    return "; ".join([text, *problems])


def _state_text(st: dict[str, Any], db: Path | None) -> str:
    state, sid = st.get("state"), st.get("scan_id")
    done = f"{st.get('fields_done')} of {st.get('fields_total')} fields"
    if state in ("scanning", "paused") and sid is not None and str(st.get("message", "")).startswith("preparing: "):
        return f"{state}: scan {sid}, {st['message']}"  # before its fields: 0 of 0 said nothing for minutes
    if state in ("scanning", "paused") and sid is not None:
        eta = f", ETA {st['eta_s']:.0f} s" if isinstance(st.get("eta_s"), (int, float)) else ""
        return f"{state}: scan {sid}, {done}, {_count(st.get('structures'), 'structure')}{eta}"
    if state in ("starting", "needs attention") and st.get("connect_error"):
        return f"{state}; {_connect_text(st)}"
    if st.get("last_outcome"):
        return f"{state}; {_last_scan(st)}"
    since = f"{state}; no scan since the service started"
    return since if db is None else f"{since}; {database_last_scan(db)}"


def _connect_text(st: dict[str, Any]) -> str:
    """``cannot connect the hardware: WHY; next try 09:12:30 UTC (in 40 s)``, or what to do when none is planned."""
    err = " ".join(str(st["connect_error"]).split())
    at = st.get("retry_at")
    if st.get("state") == "needs attention":
        return (f"cannot connect the hardware: {err}; not retried on its own: fix it, then 'tppscan start' tries "
                "once more (or restart the service)")
    if isinstance(at, (int, float)):
        when = time.strftime("%H:%M:%S UTC", time.gmtime(at))
        return f"cannot connect the hardware: {err}; next try {when} (in {max(0, round(at - time.time()))} s)"
    return f"cannot connect the hardware: {err}; trying again now"


def _last_scan(st: dict[str, Any]) -> str:
    """``last scan 3 completed 2026-12-06 09:12 UTC: 20 structures, 130 of 130 fields, report PATH``.

    ``last_outcome`` is the report's word (``completed``, ``cancelled``, ``failed``) or ``interrupted`` (a scan
    the database holds as running: the service stopped in it, so no end time; ``started_at`` says when it began).
    """
    outcome, sid = st["last_outcome"], st.get("scan_id")
    when = _utc(st.get("finished_at")) or (f", started{_utc(st.get('started_at'))}" if st.get("started_at") else "")
    head = f"last scan{'' if sid is None else f' {sid}'} {outcome}{when}"
    if outcome == "failed":
        return f"{head}: {st.get('message') or 'no reason given'}"
    then = "; 'tppscan start' resumes it" if st.get("resumable", outcome == "cancelled") else ""
    if st.get("outputs_missing") and st.get("resumable"):
        then = "; its report was not written (stopped while writing it): 'tppscan start' writes it"
    report = f", report {st['report']}" if st.get("report") else ""
    done = f"{st.get('fields_done')} of {st.get('fields_total')} fields"
    return f"{head}: {_count(st.get('structures'), 'structure')}, {done}{report}{then}"


def database_last_scan(db: Path) -> str:
    """The results database's newest scan in :func:`status_text`'s words, or why there is none; never raises.

    For a service that has run no scan since it started. A missing, empty or unreadable database is one clause
    (the status itself came back: the database only adds to it).
    """
    last = database_last_scan_fields(db)
    return last if isinstance(last, str) else _last_scan(last)


def database_last_scan_fields(db: Path) -> dict[str, Any] | str:
    """The newest scan of the results database as the status's fields (``last_outcome``, ``scan_id``, ...).

    Or, where there is none to read, the clause that says why (as :func:`database_last_scan` gives it).
    """
    import sqlite3

    from appliance.results.store import ResultStore

    try:
        if not db.exists():
            return f"no scans yet (no results database at {db})"
        with ResultStore(db, read_only=True) as store:
            rec = store.last_scan()
            if rec is None:
                return f"no scans yet in {db}"
            fields, structures = store.progress(rec.id)
    except OSError as exc:  # ResultStore's errors name the file; a PermissionError from exists() names it too
        return f"cannot read the results database: {exc}"
    except sqlite3.Error as exc:  # a damaged file found past the open
        return f"cannot read the results database {db}: {exc}"
    outcome = {"finished": "completed", "running": "interrupted"}.get(rec.status, rec.status)
    report = Path(rec.out_dir) / "report.html"
    reason = (rec.finish_reason or "").removeprefix("failed").removeprefix(": ")
    return {"last_outcome": outcome, "scan_id": rec.id, "fields_done": fields, "fields_total": rec.fields_planned,
            "structures": structures, "finished_at": rec.finished_at, "started_at": rec.started_at,
            "message": reason, "resumable": rec.resumable, "outputs_missing": rec.outputs_missing,
            "report": str(report) if report.is_file() else None}


def with_database_last_scan(st: dict[str, Any], db: Path | None) -> dict[str, Any]:
    """``st`` (the service's status) with ``database_last_scan``, where plain ``status`` reads the database.

    That is a service that has run no scan since it started (after a restart): ``database_last_scan`` holds
    ``text``, the clause plain ``status`` ends with, and the newest scan's fields where there is one.
    """
    if db is None or not _reads_database(st):
        return st
    last = database_last_scan_fields(db)
    fields = {"text": last} if isinstance(last, str) else {"text": _last_scan(last), **last}
    return {**st, "database_last_scan": fields}


def _reads_database(st: dict[str, Any]) -> bool:
    """Whether :func:`status_text` says the database's last scan: no scan of its own to say, nor a connect error."""
    state = st.get("state")
    if state in ("scanning", "paused") and st.get("scan_id") is not None:
        return False
    if state in ("starting", "needs attention") and st.get("connect_error"):
        return False
    return not st.get("last_outcome")


def _service_config(args: argparse.Namespace) -> Config | None:
    """The config of ``--config``, else the installed one where it exists (None without). Raises ConfigError."""
    from appliance.config.schema import DEFAULT_CONFIG_PATH, load_config

    if args.config is None and not DEFAULT_CONFIG_PATH.exists():
        return None
    return load_config(args.config if args.config is not None else DEFAULT_CONFIG_PATH)


def _results_db(args: argparse.Namespace, cfg: Config | None) -> Path | None:
    """The service's results database (``paths.data_dir``/tppscan.db) of ``cfg``, the config already read.

    With ``--socket`` none was read: the config of ``--config`` or the installed one, where it loads.
    """
    from appliance.config.schema import ConfigError

    if cfg is None and args.socket is not None:
        try:
            cfg = _service_config(args)
        except ConfigError:  # the status itself came back: a config that no longer loads only loses the hint
            return None
    return None if cfg is None else Path(cfg.paths.data_dir) / "tppscan.db"


def _run(args: argparse.Namespace) -> int:
    from appliance.config.schema import DEFAULT_CONFIG_PATH, ConfigError, ConfigFileError, load_config
    from appliance.service.app import run_service
    from appliance.service.inputs import check_inputs

    path = args.config if args.config is not None else str(DEFAULT_CONFIG_PATH)
    try:
        cfg = load_config(path)
        # as config check does: a missing plan or calibration is refused the same way; the models are loaded once,
        # by the service's start (ScanBackend.warm, the same loader: a bad one is exit 2 there too)
        check_inputs(cfg, path, models=False)
    except ConfigError as exc:
        print(f"tppscan run: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, ConfigFileError) else 2
    return run_service(cfg)
