"""A full disk: the scan stops with one clear error, the database stays whole, nothing named is missing.

The scan runs on real small tmpfs mounts, made in a private mount namespace (``unshare -rm``, or ``unshare
-m`` as root) so nothing outside the test sees them; the scans and their checks run inside it
(``tests/faults/disk_child.py``), because the mounts vanish with it. Two cases:

- the free-space check: the plan's ``faults.min_free_mb`` is just under the empty disk's size, so the
  check before a field stops the scan once the flat field, the database and the first files have taken
  0.25 MB;
- no minimum: the disk fills mid-write (ENOSPC) while a structure's files are written.

Each must end with exit code 1 and an error naming the problem (no traceback), ``PRAGMA integrity_check`` ok,
every file a row names on disk and whole; then, with the disk grown (``remount``), the same command resumes
the scan and finishes every field.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

MOUNT = "mount -t tmpfs -o size={size} tmpfs {dir}"


def _namespace(tmp_path) -> list[str] | None:
    """An ``unshare`` command line in which this user can mount a tmpfs, or None."""
    if shutil.which("unshare") is None:
        return None
    probe = tmp_path / "probe"
    probe.mkdir()
    for cmd in (["unshare", "-rm"], ["unshare", "-m"]):
        r = subprocess.run([*cmd, "sh", "-c", MOUNT.format(size="1m", dir=probe)], capture_output=True, timeout=30)
        if r.returncode == 0:
            return cmd
    return None


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_full_disk_stops_the_scan_cleanly_and_it_resumes(tmp_path):
    ns = _namespace(tmp_path)
    if ns is None:
        pytest.skip("cannot mount a tmpfs here: neither `unshare -rm` nor (as root) `unshare -m` may mount")
    low, full = tmp_path / "low", tmp_path / "full"
    low.mkdir()
    full.mkdir()
    script = (f"{MOUNT.format(size='2m', dir=low)} && {MOUNT.format(size='384k', dir=full)} && "
              f"exec {sys.executable} -m tests.faults.disk_child {low} {full}")
    r = subprocess.run([*ns, "sh", "-c", script], capture_output=True, text=True, timeout=880)
    assert r.returncode == 0, r.stderr[-3000:]
    runs = {d["label"]: d for d in map(json.loads, r.stdout.strip().splitlines()[-4:])}
    for label, d in runs.items():
        print(f"\n{label}: exit {d['code']}, {d['free_mb']:.2f} MB free, scans {d['scans']}, "
              f"stdout {d['stdout'].strip()!r}, stderr {d['stderr'].strip()[-300:]!r}")
        assert d["escaped"] is None, f"{label}: {d['escaped']}"
        assert "Traceback" not in d["stdout"] + d["stderr"], label
        assert not d["problems"], f"{label}: {d['problems']}"
        assert len(d["scans"]) == 1, label  # one scan, resumed, not a second one

    low1 = runs["low first"]
    assert low1["code"] == 1
    assert "below the plan's faults.min_free_mb" in low1["stdout"] + low1["stderr"]
    s = low1["scans"][0]
    assert s["status"] == "failed" and 1 <= len(s["cells"]) < s["planned"]

    full1 = runs["full first"]
    assert full1["code"] == 1
    out = full1["stdout"] + full1["stderr"]
    assert "No space left on device" in out or "database or disk is full" in out, out
    assert "run the same command again to resume" in out
    assert len(full1["scans"][0]["cells"]) < full1["scans"][0]["planned"]

    for label in ("low after freeing space", "full after freeing space"):
        d = runs[label]
        s = d["scans"][0]
        assert d["code"] == 0, d["stdout"] + d["stderr"]
        assert s["status"] == "finished" and sorted(s["cells"]) == list(range(s["planned"])) and s["structures"] >= 2


def test_the_start_and_each_field_say_a_low_disk_in_one_wording(tmp_path: Path) -> None:
    """The service's start check said ``only 3.1 MB free at DIR, below ... (200 MB): free some space ...``, the
    runner's check before each field ``disk: 3.1 MB free at DIR, below ... 200; free space, then run ...``."""
    from types import SimpleNamespace

    from appliance.scan.runner import DiskSpaceError, ScanRunner
    from appliance.service.inputs import free_space_problem

    need = 1e12  # MB: more than any disk
    at_start = free_space_problem(tmp_path, need)
    runner = SimpleNamespace(plan=SimpleNamespace(faults=SimpleNamespace(min_free_mb=need)),
                             folder=SimpleNamespace(root=tmp_path), store=SimpleNamespace(path=tmp_path / "x.db"))
    with pytest.raises(DiskSpaceError) as per_field:
        ScanRunner._check_disk(runner)  # type: ignore[arg-type]
    said = str(per_field.value)
    assert at_start is not None and at_start.startswith("only ") and said.startswith("only ")
    # the same place, need and hint (the free space itself read twice, a moment apart)
    assert said.split(" MB free")[1] == at_start.split(" MB free")[1]
    assert "(1e+12 MB): free some space" in said
