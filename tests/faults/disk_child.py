"""Scans onto small tmpfs mounts, run inside a private mount namespace by ``test_disk_full.py``.

``python -m tests.faults.disk_child LOW FULL`` expects two fresh tmpfs mounts of 2 MiB and 384 KiB and runs:

- ``low``: a scan on LOW whose plan wants ``faults.min_free_mb`` 0.25 MB under the empty mount's size, so
  the free-space check stops it after a few fields;
- ``full``: a scan on FULL with no minimum, which runs out of space mid-write (ENOSPC);

then, for each, grows the mount (``mount -o remount,size=...``: freeing space) and runs the same command
again, which must resume and finish. After every run it prints one JSON line: the exit code, the output,
any exception that escaped ``main`` (a traceback is a failure) and :func:`tests.faults.scans.check_scan`'s
findings, read while the mount still exists.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

from appliance import cli
from tests.faults.scans import PLAN_YAML, check_scan, scan_argv


def _run(root: Path, plan: Path, label: str) -> dict[str, object]:
    out, err = io.StringIO(), io.StringIO()
    escaped = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(scan_argv(root / "scan", plan))
        except BaseException:  # noqa: BLE001 - whatever escapes main is the finding
            code, escaped = -1, traceback.format_exc()
    problems, scans = check_scan(root / "scan", root / "tppscan.db")
    return {"label": label, "code": code, "stdout": out.getvalue(), "stderr": err.getvalue(), "escaped": escaped,
            "problems": problems, "free_mb": shutil.disk_usage(root).free / 1e6,
            "scans": [{"status": s.status, "planned": s.fields_planned, "cells": s.cells,
                       "structures": len(s.structures)} for s in scans]}


def main(low: Path, full: Path) -> None:
    """Run the four scans and print their results, one JSON line each."""
    for root, min_free in ((low, shutil.disk_usage(low).total / 1e6 - 0.25), (full, 0.0)):
        plan = root.parent / f"plan-{root.name}.yaml"  # beside the mount, not on the small disk
        plan.write_text(PLAN_YAML + f"faults: {{min_free_mb: {min_free:.3f}}}\n")
        print(json.dumps(_run(root, plan, f"{root.name} first")), flush=True)
        subprocess.run(["mount", "-o", "remount,size=16m", str(root)], check=True)
        print(json.dumps(_run(root, plan, f"{root.name} after freeing space")), flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
