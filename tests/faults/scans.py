"""Small scans for the scan-level fault tests, and the check that a scan folder is whole after a fault.

The scans use the virtual microscope with the ground-truth vision and focus doubles (``--vision sim-truth
--focus sim-truth``): the fault under test is the process, the disk, the files or the camera, not vision, and
the doubles make a scan of a small slide take seconds. :func:`check_scan` is what every fault test asks after
a fault: the database passes ``PRAGMA integrity_check``, and every file a committed row names is on disk and
opens whole (PNG with OpenCV, OME-TIFF with tifffile, height maps with numpy).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import cv2
import tifffile

# a 1 x 1 mm slide (about 15 fields), two structures and a little debris
SLIDE_SETS = ("slide.width_um=1000", "slide.height_um=1000", "slide.n_structures=2", "slide.debris_per_mm2=3")
PLAN_YAML = "name: faults\nfocus: {stack_range_um: 2.0, stack_step_um: 1.0}\n"
POSITION_TOL_UM = 0.5  # a resumed scan measures each object where the uninterrupted one did


def scan_argv(out: Path, plan: Path, seed: int = 5, extra: tuple[str, ...] = ()) -> list[str]:
    """``tppscan scan`` arguments for a small virtual scan into ``out`` (database beside it)."""
    sets = [a for s in SLIDE_SETS for a in ("--sim-set", s)]
    return ["scan", "--sim", "--seed", str(seed), *sets, "--out", str(out), "--plan", str(plan),
            "--vision", "sim-truth", "--focus", "sim-truth", "--progress", "none", *extra]


@dataclass(frozen=True)
class ScanContents:
    """What a scan's committed rows say: its cells (in commit order) and its objects."""

    status: str
    fields_planned: int
    cells: list[int]
    structures: list[tuple[str, float, float]]  # (type, x, y), id order
    debris: list[tuple[float, float]]
    field_errors: list[tuple[int, str]]


def integrity(db: Path) -> str:
    """``PRAGMA integrity_check`` of a database (opened read-write, so a hot WAL is recovered first)."""
    con = sqlite3.connect(db)
    try:
        return ";".join(r[0] for r in con.execute("PRAGMA integrity_check"))
    finally:
        con.close()


def _opens(path: Path) -> str | None:
    """None if ``path`` opens whole, else what is wrong with it."""
    if not path.is_file():
        return "missing"
    try:
        if path.name.endswith((".ome.tif", ".tif")):
            with tifffile.TiffFile(path) as tif:
                data = tif.asarray()
                if tif.ome_metadata is None or data.ndim != 3:
                    return f"not a Z stack (ome={tif.ome_metadata is not None}, shape {data.shape})"
        elif path.suffix == ".png":
            if cv2.imread(str(path), cv2.IMREAD_UNCHANGED) is None:
                return "cv2 cannot read it"
        elif path.suffix in (".npy", ".npz"):
            from appliance.results.files import read_heights

            read_heights(path)
    except Exception as exc:  # noqa: BLE001 - any failure to open is the finding
        return f"{type(exc).__name__}: {exc}"
    return None


def check_scan(out: Path, db: Path) -> tuple[list[str], list[ScanContents]]:
    """Check a scan folder's database and every file its rows name.

    Returns ``(problems, scans)``: one line per problem (empty when whole) and the committed contents of
    every scan into ``out``.
    """
    problems: list[str] = []
    if not db.exists():
        return problems, []
    ok = integrity(db)
    if ok != "ok":
        return [f"integrity_check: {ok}"], []
    con = sqlite3.connect(db)
    scans = []
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:  # killed before the schema's transaction committed: nothing was ever recorded
            return problems, []
        if "scan" not in tables:
            return [f"a half-made database: tables {sorted(tables)} but no scan table"], []
        for sid, status, planned in con.execute("SELECT id, status, fields_planned FROM scan WHERE out_dir=?",
                                                (str(out.resolve()),)).fetchall():
            cells = [r[0] for r in con.execute("SELECT cell FROM field WHERE scan_id=? ORDER BY seq", (sid,))]
            if len(cells) != len(set(cells)):
                problems.append(f"scan {sid}: a cell committed twice: {cells}")
            rows = con.execute("SELECT kind, cls, x_um, y_um, frame_path, crop_path, stack_path, height_map_path, "
                               "plot_path FROM object WHERE scan_id=? ORDER BY id", (sid,)).fetchall()
            for row in rows:
                for rel in row[4:]:
                    if rel is not None and (why := _opens(out / rel)) is not None:
                        problems.append(f"scan {sid}: row names {rel}: {why}")
            for (fname,) in con.execute("SELECT DISTINCT filename FROM annotation WHERE scan_id=?", (sid,)):
                if (why := _opens(out / fname)) is not None:
                    problems.append(f"scan {sid}: annotation names {fname}: {why}")
            errors = []
            if "field_error" in tables:
                errors = [(c, m) for c, m in con.execute(
                    "SELECT cell, message FROM field_error WHERE scan_id=? ORDER BY rowid", (sid,))]
            scans.append(ScanContents(status, planned, cells,
                                      [(r[1], r[2], r[3]) for r in rows if r[0] == "structure"],
                                      [(r[2], r[3]) for r in rows if r[0] == "debris"], errors))
    finally:
        con.close()
    return problems, scans


def differences(a: ScanContents, b: ScanContents) -> list[str]:
    """How a resumed or faulted scan's contents ``a`` differ from the uninterrupted scan's ``b`` (empty: equal).

    Equal: finished, every planned cell committed once, the same structures (type, position within
    ``POSITION_TOL_UM``) and debris.
    """
    out = []
    if a.status != "finished":
        out.append(f"status {a.status}")
    if sorted(a.cells) != list(range(b.fields_planned)) or len(a.cells) != len(set(a.cells)):
        out.append(f"cells {a.cells}, planned {b.fields_planned}")
    if len(a.structures) != len(b.structures) or any(
            s[0] != t[0] or abs(s[1] - t[1]) > POSITION_TOL_UM or abs(s[2] - t[2]) > POSITION_TOL_UM
            for s, t in zip(sorted(a.structures), sorted(b.structures), strict=False)):
        out.append(f"structures {a.structures} != {b.structures}")
    if len(a.debris) != len(b.debris) or any(
            abs(s[0] - t[0]) > POSITION_TOL_UM or abs(s[1] - t[1]) > POSITION_TOL_UM
            for s, t in zip(sorted(a.debris), sorted(b.debris), strict=False)):
        out.append(f"debris {a.debris} != {b.debris}")
    return out
