"""Measure the scan's ETA against the time its fields really took (docs/scan.md, "The ETA").

Run: ``.venv/bin/python scripts/eta_table.py run OUT [scan options, e.g. --seed 5]`` scans the virtual slide into
OUT with ``--progress bar`` (one line per field), timestamps each line as it arrives, keeps them in OUT/eta.json
and prints the ETA it said against the time the fields left took, at 3, 5, 10, 25 and 50 % of the fields.
``.venv/bin/python scripts/eta_table.py replay OUT...`` replays the plain rate since the first field (the ETA until
session 49) and ``appliance.scan.runner.eta_s`` on the same recorded field times.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PERCENTS = (3, 5, 10, 25, 50)
_BAR = re.compile(r"(\d+)/(\d+) fields, (\d+) structures(?:, ETA (\d+) s)?")


def run(out: Path, scan_args: list[str]) -> list[dict[str, float | int | None]]:
    """Scan with the progress bar; every field's line with the seconds since the command started."""
    cmd = [sys.executable, "-m", "appliance.cli", "scan", "--sim", "--out", str(out), "--progress", "bar", *scan_args]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert proc.stderr is not None
    rows: list[dict[str, float | int | None]] = []
    buf = b""
    while chunk := os.read(proc.stderr.fileno(), 65536):
        now = time.monotonic() - t0
        *parts, buf = re.split(rb"[\r\n]", buf + chunk)
        if buf.endswith(b"   "):  # a bar line is written whole, with no newline: it ends in three spaces
            parts, buf = [*parts, buf], b""
        for part in parts:
            if m := _BAR.search(part.decode(errors="replace")):
                rows.append({"t": now, "done": int(m[1]), "planned": int(m[2]), "structures": int(m[3]),
                             "eta": None if m[4] is None else int(m[4])})
    if proc.wait() != 0 or not rows:
        raise SystemExit(f"the scan failed (exit {proc.returncode}): {' '.join(cmd)}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "eta.json").write_text(json.dumps({"cmd": cmd, "rows": rows}))
    return rows


def _at(rows: list[dict], pct: int) -> int:
    """The index of the row where ``pct`` % of the fields are done."""
    n = int(rows[-1]["planned"])
    return next(i for i, r in enumerate(rows) if r["done"] >= math.ceil(pct / 100 * n))


def _cell(said: float | None, rows: list[dict], i: int) -> str:
    left = rows[-1]["t"] - rows[i]["t"]
    return "no ETA yet" if said is None else f"{said:.0f} / {left:.0f} ({100 * (said - left) / left:+.0f} %)"


def replay(rows: list[dict]) -> dict[str, list[float | None]]:
    """The old and the new ETA at each of :data:`PERCENTS`, from the same field times."""
    from appliance.scan.runner import eta_s

    t = [float(r["t"]) for r in rows]
    s = [int(r["structures"]) for r in rows]
    n = int(rows[-1]["planned"])
    old: list[float | None] = []
    new: list[float | None] = []
    for pct in PERCENTS:
        k = _at(rows, pct) + 1  # fields done
        old.append((t[k - 1] - t[0]) / (k - 1) * (n - k) if k >= 3 else None)
        new.append(eta_s([(t[i] - t[i - 1], s[i] - s[i - 1]) for i in range(1, k)], s[k - 1], k, n - k))
    return {"old": old, "new": new}


def main(argv: list[str] | None = None) -> int:
    """Run or replay, and print a markdown table: ETA said / time the fields left took (error)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="scan and table the ETA it printed")
    r.add_argument("out", type=Path)
    sub.add_parser("replay", help="the old and the new ETA on recorded runs").add_argument("outs", type=Path, nargs="+")
    args, rest = p.parse_known_args(argv)
    head = "| run | " + " | ".join(f"{pct} %" for pct in PERCENTS) + " |\n|---|" + "---|" * len(PERCENTS)
    if args.cmd == "run":
        rows = run(args.out, rest)
        print(head)
        print(f"| {args.out.name} | " + " | ".join(_cell(rows[i]["eta"], rows, i)
                                                 for i in (_at(rows, pct) for pct in PERCENTS)) + " |")
        return 0
    if rest:
        p.error(f"replay takes no scan options: {' '.join(rest)}")
    print(head)
    for out in args.outs:
        rows = json.loads((out / "eta.json").read_text())["rows"]
        for name, said in replay(rows).items():
            cells = [_cell(e, rows, _at(rows, pct)) for e, pct in zip(said, PERCENTS, strict=True)]
            print(f"| {out.name} {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
