"""SIGKILL a real ``tppscan scan`` process at random moments, restart it, and check nothing was lost or doubled.

Each *chain* scans a small virtual slide into a fresh folder: start ``tppscan scan --out DIR``, SIGKILL it
after ``u * T`` seconds (``u`` from a seeded RNG, ``T`` the length of an uninterrupted run, measured first and
again whenever a chain's first run ends unkilled, so the kills fall over startup, fields, commits and the
report on a slow or a fast machine alike, and as a shared machine's load changes), check the
folder, start again, until a run ends by itself. After every kill the database passes ``PRAGMA
integrity_check`` and every file a row names opens whole; at the end the chain's one scan holds every planned
field exactly once and the same structures and debris as the uninterrupted scan.

The processes are forked from a fork server that has the scan's modules imported and the kernels compiled
(``tests/faults/scan_child.py``): each is a real process running ``tppscan scan``'s ``main``, killed by the
kernel with SIGKILL, without paying the imports fifty times. Two chains run side by side (two cores).

``TPPSCAN_FAULT_RUNS=N`` multiplies the kills (50 per N); ``TPPSCAN_FAULT_SEED`` picks the RNG's seed.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.faults.conftest import scale
from tests.faults.scans import PLAN_YAML, ScanContents, check_scan, differences, scan_argv

KILLS = 50


@dataclass
class Chain:
    """One folder scanned through kills until a run finished."""

    index: int
    kills: list[float] = field(default_factory=list)  # seconds after start
    runs: int = 0
    problems: list[str] = field(default_factory=list)
    final: ScanContents | None = None


def _context() -> multiprocessing.context.BaseContext:
    """The fork server, started (so its preload is not timed as part of the first scan)."""
    from tests.faults.scan_child import ready

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["tests.faults.scan_child"])
    p = ctx.Process(target=ready)  # type: ignore[attr-defined]
    p.start()
    p.join(600.0)
    assert p.exitcode == 0, "the fork server did not start"
    return ctx


def _run(ctx: multiprocessing.context.BaseContext, argv: list[str], log: Path,
         kill_after_s: float | None) -> tuple[int | None, float]:
    """Start a scan process; SIGKILL it after ``kill_after_s`` unless it ends first. Returns (exit code, s)."""
    from tests.faults.scan_child import run_scan_process

    p = ctx.Process(target=run_scan_process, args=(argv, str(log)))  # type: ignore[attr-defined]
    t0 = time.monotonic()
    p.start()
    p.join(kill_after_s if kill_after_s is not None else 300.0)
    if p.is_alive():
        p.kill()  # SIGKILL
        p.join(30.0)
        return (None if kill_after_s is not None else -1), time.monotonic() - t0
    return p.exitcode, time.monotonic() - t0


def _complete(db: Path) -> bool:
    """Whether the folder's one scan has its summary row (the last thing a scan writes)."""
    if not db.is_file():
        return False
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT summary_json IS NOT NULL FROM scan").fetchall()
    except sqlite3.OperationalError:  # killed before the schema was made
        return False
    finally:
        con.close()
    return len(rows) == 1 and bool(rows[0][0])


@pytest.mark.slow
@pytest.mark.timeout(3600)  # 50 kills take 2-3 min on an idle 2-core machine; a loaded one is far slower
def test_sigkill_at_random_moments_loses_and_doubles_nothing(tmp_path):
    ctx = _context()
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN_YAML)
    ref_dir = tmp_path / "reference"
    ref_dir.mkdir()
    code, t_ref = _run(ctx, scan_argv(ref_dir / "scan", plan), ref_dir / "log.txt", None)
    assert code == 0, (ref_dir / "log.txt").read_text()[-3000:]
    problems, scans = check_scan(ref_dir / "scan", ref_dir / "tppscan.db")
    assert not problems and len(scans) == 1 and scans[0].status == "finished"
    reference = scans[0]
    assert reference.structures, "the reference scan found no structure: the test would prove nothing"

    seed = int(os.environ.get("TPPSCAN_FAULT_SEED", "12"))
    target = KILLS * scale()
    lock = threading.Lock()
    total = {"kills": 0}
    t_full = {"s": t_ref}  # how long an uninterrupted scan takes, updated as whole scans run

    def chain(index: int) -> Chain | None:
        with lock:
            if total["kills"] >= target:
                return None
        rng = random.Random(seed * 10_000 + index)
        c = Chain(index)
        d = tmp_path / f"chain{index:03d}"
        d.mkdir()
        argv = scan_argv(d / "scan", plan)
        while c.runs < 40:
            with lock:
                budget_left = total["kills"] < target
            after = rng.uniform(0.0, 1.0) * t_full["s"] if budget_left else None
            code, took = _run(ctx, argv, d / "log.txt", after)
            c.runs += 1
            if code == 0 and c.runs == 1:  # a whole scan ran: the machine's pace now (its load changes)
                with lock:
                    t_full["s"] = took
            problems, scans = check_scan(d / "scan", d / "tppscan.db")
            c.problems += [f"after run {c.runs}: {p}" for p in problems]
            if code is None:
                c.kills.append(after or 0.0)
                with lock:
                    total["kills"] += 1
                if len(scans) > 1:
                    c.problems.append(f"after run {c.runs}: {len(scans)} scans in one folder")
                if not _complete(d / "tppscan.db"):
                    continue
                # The kill came after the scan had completed (its summary row, written last, is in): the same
                # command run again would start a new scan, as it should, so the chain ends here.
            elif code != 0:
                c.problems.append(f"run {c.runs} exited {code}: {(d / 'log.txt').read_text()[-2000:]}")
                return c
            if len(scans) != 1:
                c.problems.append(f"{len(scans)} scans in one folder, not one resumed scan")
            else:
                c.final = scans[0]
                c.problems += differences(scans[0], reference)
            summary = json.loads((d / "scan" / "summary.json").read_text())
            if summary["fields_done"] != reference.fields_planned or summary["status"] != "finished":
                c.problems.append(f"summary.json: {summary['fields_done']} fields, {summary['status']}")
            if not (d / "scan" / "report.html").is_file():
                c.problems.append("no report.html")
            return c
        c.problems.append("did not finish in 40 runs")
        return c

    chains: list[Chain] = []
    index = 0
    with ThreadPoolExecutor(2) as pool:
        while True:
            batch = [pool.submit(chain, index + k) for k in range(2)]
            index += 2
            done = [f.result() for f in batch]
            chains += [c for c in done if c is not None]
            for c in done:
                if c is not None:
                    print(f"chain {c.index}: {c.runs} runs, kills at {[round(k, 1) for k in c.kills]} s, "
                          f"{len(c.problems)} problems", flush=True)
            if any(c is None for c in done) or total["kills"] >= target:
                break
    kills = [k for c in chains for k in c.kills]
    lines = [f"chain {c.index}: {c.runs} runs, killed at {[round(k, 2) for k in c.kills]} s: {p}"
             for c in chains for p in c.problems]
    print(f"\nSIGKILL: {len(kills)} kills in {len(chains)} chains ({sum(c.runs for c in chains)} runs), "
          f"uninterrupted run {t_ref:.1f} s, {len(lines)} problems")
    assert not lines, "\n".join(lines)
    assert len(kills) >= target
    assert all(c.final is not None for c in chains)
