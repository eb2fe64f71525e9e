"""Power cuts at the file level: the write order (files, fsync, then the row), and recovery from a torn disk.

A scan runs in this process with ``os.fsync`` and ``os.replace`` watched (the calls the scan folder and the
results store make; SQLite's own syncs, with ``synchronous=FULL`` in WAL mode, happen inside SQLite):

- **order**: every file a committed row names was renamed to its name, its data ``fsync``-ed and its folder
  ``fsync``-ed, all before the transaction with that row began;
- **cut**: the power is cut at a random moment (the N-th file event, N from a seeded RNG): the disk is copied
  as it is, and every file not yet durable (data not synced, or its new name not synced into its folder) is
  deleted, truncated or left, at random, as a power cut may leave it; the scan then stops;
- **torn commit**: the power is cut while a field's transaction is written: the WAL loses a random part of
  that transaction's frames (the ones a commit writes before its fsync returns).

After each cut the database passes ``PRAGMA integrity_check``, every file a row names is whole, and the same
scan resumed on the damaged copy finishes with the uninterrupted scan's fields and structures.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from appliance.results.store import ResultStore
from appliance.scan.calibration import Calibration
from appliance.scan.plan import FaultsPlan, FocusPlan, ScanPlan
from appliance.scan.runner import FinishReason
from appliance.scan.session import run_scan, scan_area, sim_microscope
from appliance.scan.testing import PlaneFocusMap, SimTruthFocuser, SimTruthVision
from tests.faults.conftest import scale
from tests.faults.scans import check_scan

SEED = 9
SLIDE = {"width_um": 1000.0, "height_um": 1000.0, "n_structures": 2, "debris_per_mm2": 3.0}
PLAN = ScanPlan(name="power", focus=FocusPlan(stack_range_um=2.0, stack_step_um=1.0),
                faults=FaultsPlan(min_free_mb=0.0))
FILE_CUTS = 5
TORN_COMMITS = 3


class PowerCut(BaseException):
    """The power went: nothing after this runs (a BaseException, so the runner's handlers let it through)."""


@dataclass
class Disk:
    """What the watched calls made durable: per path, whether its data and its name are synced."""

    events: list[tuple[str, str]] = field(default_factory=list)
    data: dict[str, bool] = field(default_factory=dict)
    name: dict[str, bool] = field(default_factory=dict)

    def fsync(self, path: str) -> None:
        self.events.append(("fsync", path))
        if os.path.isdir(path):
            for p in self.name:
                if os.path.dirname(p) == path:
                    self.name[p] = True
        else:
            self.data[path] = True

    def replace(self, src: str, dst: str) -> None:
        self.events.append(("rename", dst))
        self.data[dst] = self.data.pop(src, False)
        self.name[dst] = False

    def durable(self, path: str) -> bool:
        return self.data.get(path, False) and self.name.get(path, False)


def _watch(monkeypatch, disk: Disk, on_event=None) -> None:
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        real_fsync(fd)
        disk.fsync(os.readlink(f"/proc/self/fd/{fd}"))
        if on_event:
            on_event()

    def replace(src, dst, **kw):
        real_replace(src, dst, **kw)
        disk.replace(os.path.abspath(src), os.path.abspath(dst))
        if on_event:
            on_event()

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)


def _scan(root: Path, calibration=None, hook=None):
    scope = sim_microscope(SEED, {"slide": SLIDE})
    p = scope.slide.params
    with scope.stage, scope.camera:
        return run_scan(scope.stage, scope.camera, SimTruthVision(scope), SimTruthFocuser(scope), PlaneFocusMap(),
                        PLAN, root / "scan", root / "tppscan.db", scan_area(PLAN, (p.width_um, p.height_um)),
                        calibration=calibration, device_clock=scope.clock.now_s, runner_hook=hook)


def _contents(root: Path):
    problems, scans = check_scan(root / "scan", root / "tppscan.db")
    assert not problems, problems
    assert len(scans) <= 1
    return scans[0] if scans else None


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """An uninterrupted scan, watched: (root, disk, commits, calibration, contents)."""
    root = tmp_path_factory.mktemp("clean")
    disk = Disk()
    commits: list[tuple[int, list[str]]] = []  # (events before the transaction, files its rows name)
    mp = pytest.MonkeyPatch()
    _watch(mp, disk)
    real = ResultStore.commit_field

    def commit_field(self, scan_id, fld, objects, annotations, files=()):
        ids = real(self, scan_id, fld, objects, annotations, files)
        # files were synced inside commit_field before BEGIN: the events so far are all before the transaction
        named = [str((root / "scan" / rel).resolve()) for o in objects
                 for rel in (o.frame_path, o.crop_path, o.stack_path, o.height_map_path, o.plot_path) if rel]
        commits.append((len(disk.events), named))
        return ids

    mp.setattr(ResultStore, "commit_field", commit_field)
    try:
        out = _scan(root)
    finally:
        mp.undo()
    assert out.status.reason is FinishReason.COMPLETED, out.status.error
    with ResultStore(out.db_path) as st:
        cal = Calibration.from_mapping(st.scan(out.scan_id).config["calibration"])
        mode = st.db.execute("PRAGMA journal_mode").fetchone()[0]
        sync = st.db.execute("PRAGMA synchronous").fetchone()[0]
    assert (mode, sync) == ("wal", 2)  # WAL, synchronous=FULL: a returned commit is on disk
    contents = _contents(root)
    assert contents.structures and contents.status == "finished"
    return root, disk, commits, cal, contents


def test_files_are_synced_before_the_row_that_names_them(clean):
    root, disk, commits, _, _ = clean
    named = [p for _, files in commits for p in files]
    assert len(named) >= 10, "too few files to prove an order"
    for n_before, files in commits:
        before = disk.events[:n_before]
        for p in files:
            renamed = max(i for i, e in enumerate(before) if e == ("rename", p))
            assert ("fsync", p) in before[renamed:] or any(
                e == ("fsync", p + ".part") for e in before[:renamed]), f"{p}: data not synced before its row"
            assert ("fsync", os.path.dirname(p)) in before[renamed:], f"{p}: its folder not synced before its row"


def _damage(snap: Path, run: Path, disk: Disk, rng: random.Random) -> list[str]:
    """Apply to ``snap``, the copy of ``run``, what a power cut may do to every file not yet durable."""
    done = []
    for p in sorted(snap.rglob("*")):
        if not p.is_file() or p.name.startswith("tppscan.db"):
            continue
        if disk.durable(str(p).replace(str(snap), str(run))):
            continue
        how = rng.choice(("delete", "truncate", "keep"))
        if how == "delete":
            p.unlink()
        elif how == "truncate":
            with open(p, "r+b") as f:
                f.truncate(rng.randrange(0, max(1, p.stat().st_size)))
        done.append(f"{how} {p.name}")
    return done


def _resume_and_compare(run: Path, cal, reference) -> None:
    got = _contents(run)  # the damaged disk: integrity ok, every named file whole
    assert got is None or got.cells == reference.cells[:len(got.cells)]
    out = _scan(run, calibration=cal)
    assert out.status.reason is FinishReason.COMPLETED, out.status.error
    final = _contents(run)
    assert sorted(final.cells) == list(range(reference.fields_planned))
    assert [s[0] for s in final.structures] == [s[0] for s in reference.structures]
    assert all(abs(a[1] - b[1]) < 0.5 and abs(a[2] - b[2]) < 0.5
               for a, b in zip(final.structures, reference.structures, strict=True))
    assert len(final.debris) == len(reference.debris)
    meta = json.loads((run / "scan" / "scan.json").read_text())  # `tppscan results show` finds the scan by it
    assert meta["scan_id"] == out.scan_id


@pytest.fixture(scope="module")
def calibrated_events(tmp_path_factory, clean) -> int:
    """How many file events an uninterrupted scan given the clean run's calibration makes (the cut runs are given
    it too; the clean run calibrated itself, and on a drive that keeps a carriage journal every move of that
    calibration is one more event)."""
    _, _, _, cal, _ = clean
    disk, mp = Disk(), pytest.MonkeyPatch()
    _watch(mp, disk)
    try:
        out = _scan(tmp_path_factory.mktemp("calibrated"), calibration=cal)
    finally:
        mp.undo()
    assert out.status.reason is FinishReason.COMPLETED, out.status.error
    return len(disk.events)


def test_a_power_cut_at_random_file_events_recovers(tmp_path, monkeypatch, clean, calibrated_events):
    _, _, _, cal, reference = clean
    rng = random.Random(4100 + scale())
    n_events = calibrated_events
    for case in range(FILE_CUTS * scale()):
        run, snap = tmp_path / f"c{case}" / "run", tmp_path / f"c{case}" / "snap"
        run.mkdir(parents=True)
        cut_at = rng.randrange(1, n_events)
        disk = Disk()

        def on_event(disk=disk, cut_at=cut_at, run=run, snap=snap):
            if len(disk.events) == cut_at:
                shutil.copytree(run, snap, ignore=shutil.ignore_patterns("*-shm"))
                raise PowerCut

        with monkeypatch.context() as mp:
            _watch(mp, disk, on_event)
            with pytest.raises(PowerCut):
                _scan(run, calibration=cal)
        damage = _damage(snap, run, disk, rng)
        shutil.rmtree(run)
        snap.rename(run)
        print(f"\ncut {case}: at file event {cut_at}/{n_events} ({disk.events[-1]}), damage {damage}")
        _resume_and_compare(run, cal, reference)


def test_a_power_cut_mid_commit_loses_only_that_field(tmp_path, monkeypatch, clean):
    _, _, commits, cal, reference = clean
    rng = random.Random(4200 + scale())
    for case in range(TORN_COMMITS * scale()):
        run, snap = tmp_path / f"t{case}" / "run", tmp_path / f"t{case}" / "snap"
        run.mkdir(parents=True)
        tear_at = rng.randrange(1, len(commits))
        real = ResultStore.commit_field
        calls = {"n": 0, "torn": None}

        def commit_field(self, *a, real=real, calls=calls, tear_at=tear_at, run=run, snap=snap, **kw):
            wal = Path(str(self.path) + "-wal")
            before = wal.stat().st_size if wal.exists() else 0
            ids = real(self, *a, **kw)
            calls["n"] += 1
            if calls["n"] == tear_at:
                after = wal.stat().st_size
                shutil.copytree(run, snap, ignore=shutil.ignore_patterns("*-shm"))
                if after > before:  # the transaction's frames: keep a random part of them
                    keep = rng.randrange(before, after)
                    os.truncate(snap / wal.name, keep)
                    calls["torn"] = (before, keep, after)
                raise PowerCut
            return ids

        with monkeypatch.context() as mp:
            mp.setattr(ResultStore, "commit_field", commit_field)
            with pytest.raises(PowerCut):
                _scan(run, calibration=cal)
        assert calls["torn"] is not None, "the commit wrote no WAL frames: nothing was torn"
        shutil.rmtree(run)
        snap.rename(run)
        got = _contents(run)
        # the torn transaction is gone whole: the fields before it are there, it is not
        assert got is not None and len(got.cells) == tear_at - 1, (got.cells if got else None, calls["torn"])
        print(f"\ntorn commit {case}: field {tear_at}, WAL {calls['torn']}, {len(got.cells)} fields kept")
        _resume_and_compare(run, cal, reference)
