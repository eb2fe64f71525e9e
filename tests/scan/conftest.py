import json
from pathlib import Path
from typing import Any

import pytest

from appliance.scan.plan import FocusPlan, GridPlan, ScanPlan
from appliance.scan.testing import SMALL_SLIDE, scan_small_slide

SMALL = SMALL_SLIDE
QUICK_FOCUS = FocusPlan(stack_range_um=3.0, stack_step_um=1.0)


def small_plan(**grid):
    return ScanPlan(name="small", grid=GridPlan(**grid), focus=QUICK_FOCUS)


scan_small = scan_small_slide


@pytest.fixture(scope="module")
def small_scan(tmp_path_factory):
    return scan_small_slide(tmp_path_factory.mktemp("small"))


def sim_scan_cli(out: Path, seed: int, sets: list[str], *extra: str) -> tuple[int, dict[str, Any]]:
    """``tppscan scan --sim --seed SEED --sim-set S ... --out OUT`` as a user runs it: its exit code and summary.

    The database lies beside ``out`` (``OUT.db``), so scans in one folder do not resume each other.
    """
    from appliance.cli import main

    argv = ["scan", "--sim", "--seed", str(seed), *[a for s in sets for a in ("--sim-set", s)], "--out", str(out),
            "--db", str(out.parent / f"{out.name}.db"), "--progress", "none", *extra]
    code = main(argv)
    summary = out / "summary.json"
    return code, (json.loads(summary.read_text()) if code == 0 and summary.exists() else {})
