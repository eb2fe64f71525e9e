"""``tppscan logs [-f] [--scan ID]``: read the service's log from its file, or from journald."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``logs`` command."""
    p = sub.add_parser("logs", help="show the service's log (all, or one scan's lines)",
                       description="Show the service's log: the rotating file under the log folder, or journald "
                                   "when there is no file. Works without a terminal (pipe it, grep it).")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines as they come")
    p.add_argument("--scan", metavar="ID", help="only the lines of this scan")
    p.add_argument("--log-dir", default=None, metavar="DIR",
                   help="the log folder (default: paths.log_dir of the config, /var/log/tppscan)")
    p.add_argument("--config", default=None, metavar="FILE", help="config file (default /etc/tppscan/config.yaml)")
    p.add_argument("--source", choices=("auto", "file", "journal"), default="auto",
                   help="file, journald, or auto: the file when it exists, else journald")
    p.add_argument("--lines", type=int, default=0, metavar="N", help="only the last N lines (0: all; 0..10^6)")
    p.set_defaults(func=_logs)


def _log_dir(args: argparse.Namespace) -> Path:
    if args.log_dir:
        return Path(args.log_dir)
    from appliance.config.schema import DEFAULT_CONFIG_PATH, Config, load_config

    path = args.config or (str(DEFAULT_CONFIG_PATH) if DEFAULT_CONFIG_PATH.exists() else None)
    cfg = load_config(path) if path else Config()
    return Path(cfg.paths.log_dir)


def _logs(args: argparse.Namespace) -> int:
    from appliance.service.logs import log_files, matches

    if not 0 <= args.lines <= 10**6:
        print(f"tppscan logs: error: --lines must be 0..1000000, got {args.lines}", file=sys.stderr)
        return 2
    if args.scan is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", args.scan):
        print(f"tppscan logs: error: --scan must be a scan id (letters, digits, - and _), got {args.scan!r}",
              file=sys.stderr)
        return 2
    log_dir = _log_dir(args)
    if args.log_dir and not log_dir.is_dir():  # a typo must not read as "no log lines" from journald
        what = "is not a folder" if log_dir.exists() else "does not exist"
        print(f"tppscan logs: error: --log-dir {log_dir} {what}", file=sys.stderr)
        return 2
    files = log_files(log_dir) if args.source != "journal" else []
    if not files:
        if args.source == "file":
            print(f"tppscan logs: no log file in {log_dir}", file=sys.stderr)
            return 1
        return _journal(args, log_dir if args.source == "auto" else None)
    shown: list[str] = []
    for f in files:
        with open(f, encoding="utf-8", errors="replace") as fh:
            shown.extend(ln.rstrip("\n") for ln in fh if matches(ln, args.scan))
    for ln in shown[-args.lines:] if args.lines else shown:
        print(ln)
    if args.follow:
        return _follow(files[-1], args.scan)
    if not shown:  # say so: an empty answer and a wrong place look the same
        print(f"tppscan logs: no {_what(args.scan)} in {', '.join(str(f) for f in files)}", file=sys.stderr)
    return 0


def _what(scan: str | None) -> str:
    return f"lines of scan {scan}" if scan else "log lines"


def _follow(path: Path, scan: str | None) -> int:
    from appliance.service.logs import matches

    with open(path, encoding="utf-8", errors="replace") as fh:
        fh.seek(0, 2)
        while True:
            line = fh.readline()
            if not line:
                time.sleep(0.2)
                if path.exists() and path.stat().st_size < fh.tell():  # rotated: start on the new file
                    fh.close()
                    return _follow(path, scan)
                continue
            if matches(line, scan):
                print(line.rstrip("\n"), flush=True)


def _journal(args: argparse.Namespace, log_dir: Path | None) -> int:
    """The unit's lines from journald; ``log_dir``: the folder that had no log file, named when nothing is found."""
    exe = shutil.which("journalctl")
    if exe is None:
        print("tppscan logs: no log file and no journalctl on this machine", file=sys.stderr)
        return 1
    cmd = [exe, "-u", "tppscan", "-o", "cat", "--no-pager"]
    if args.follow:
        cmd.append("-f")
    if args.lines:
        cmd += ["-n", str(args.lines)]
    if args.scan:
        cmd += ["--grep", f"scan={args.scan}( |$)"]
    if args.follow:
        return subprocess.call(cmd)
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, errors="replace") as proc:
        count = 0
        for line in proc.stdout or ():
            sys.stdout.write(line)
            count += 1
    if proc.returncode not in (0, 1):  # 1: --grep matched nothing
        return proc.returncode
    if count == 0:
        where = f"no log file in {log_dir}, and " if log_dir is not None else ""
        print(f"tppscan logs: no {_what(args.scan)}: {where}journald has none (unit tppscan)", file=sys.stderr)
    return 0
