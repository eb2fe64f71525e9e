"""The ``tppscan scan`` process of the kill test, started from a preloaded fork server.

Importing this module imports the scan's modules and compiles the kernels, so a fork server that preloads it
(``multiprocessing``'s ``forkserver`` context) starts each scan process in milliseconds instead of seconds:
the kill test can then afford fifty real processes. Each process runs ``appliance.cli.main`` exactly as the
``tppscan`` console script does, its output appended to a log file, and exits with its exit code.
"""

from __future__ import annotations

import contextlib
import os
import sys

import kernels
from appliance import cli
from appliance.results import report  # noqa: F401  (preloaded: matplotlib's import is the slow part)
from appliance.scan import cli as scan_cli  # noqa: F401
from appliance.scan import session, testing  # noqa: F401

kernels.warmup()


def ready() -> None:
    """A child that does nothing: starting one starts the fork server (its preload takes seconds)."""


def run_scan_process(argv: list[str], log: str) -> None:
    """The child's body: ``tppscan <argv>``, its output appended to ``log``; exits with its code."""
    with open(log, "a") as out, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        print(f"--- pid {os.getpid()}: tppscan {' '.join(argv)}", flush=True)
        code = cli.main(argv)
    sys.exit(code)
