"""``tppscan results list|show|export``: look at scans in the results database and export them.

``list`` prints every scan in a database; ``show DIR`` one scan's summary (the folder's ``scan.json`` names its
database and id; a folder copied away from it is read from its own ``scan.db``); ``export DIR`` writes the seed's
CSV and/or COCO JSON of a scan's annotated frames.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

#: ``results list``'s database where no ``--db`` is given: the default scan's (``tppscan scan --out out/scan``).
DEFAULT_DB = Path("out/tppscan.db")


def register(sub: Any) -> None:
    """Add the ``results`` command group."""
    p = sub.add_parser("results", help="list, show and export scans in the results database",
                       description="Look at recorded scans and export them as training data.")
    p.set_defaults(func=lambda a: p.print_help() or 2)
    ss = p.add_subparsers(dest="results_command", metavar="ACTION")
    s = ss.add_parser("list", help="every scan in a results database",
                      description="Print one line per scan: id, name, status, fields, structures, folder.")
    s.add_argument("--db", type=Path, default=DEFAULT_DB, help=f"database (default {DEFAULT_DB}, from where you are)")
    s.set_defaults(func=_cmd_list)
    s = ss.add_parser("show", help="one scan's summary", description="Print a scan's summary and structures.")
    s.add_argument("dir", type=Path, metavar="DIR", help="the scan folder")
    s.set_defaults(func=_cmd_show)
    s = ss.add_parser("export", help="a scan's annotations as CSV and/or COCO JSON",
                      description="Write the seed's CSV (filename,width,height,class,xmin,ymin,xmax,ymax) "
                                  "and/or COCO JSON of a scan, and structures.csv; with --out another folder, "
                                  "with the frames and structure files they name (a dataset on its own).")
    s.add_argument("dir", type=Path, metavar="DIR", help="the scan folder")
    s.add_argument("--format", choices=("csv", "coco", "both"), default="both", help="default both")
    s.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="where to write export.csv / export_coco.json (default: the scan folder)")
    s.set_defaults(func=_cmd_export)


def _fail(msg: str, code: int) -> int:
    print(f"tppscan results: error: {msg}", file=sys.stderr)
    return code


#: SQLite's integer range: a larger id in a damaged scan.json cannot be looked up at all.
_MAX_SCAN_ID = 2**63 - 1


def _locate(folder: Path) -> tuple[Path, int]:
    """The database and scan id a scan folder's ``scan.json`` names (a relative database beside it)."""
    meta = folder / "scan.json"
    try:
        data = json.loads(meta.read_text())
    except FileNotFoundError:
        raise OSError(f"{folder} is not a scan folder (no scan.json)") from None
    except IsADirectoryError:
        raise OSError(f"{meta} is a folder, not a scan's scan.json") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise OSError(f"{meta} is damaged ({exc})") from None
    if not isinstance(data, dict):
        raise OSError(f"{meta} is damaged: not a JSON object")
    db, sid = data.get("db"), data.get("scan_id")
    if not isinstance(db, str) or not db or "\0" in db:
        raise OSError(f"{meta} is damaged: 'db' must name the results database, got {db!r}")
    if not isinstance(sid, int) or isinstance(sid, bool) or not 1 <= sid <= _MAX_SCAN_ID:
        raise OSError(f"{meta} is damaged: 'scan_id' must be a whole number >= 1, got {sid!r}")
    return folder / db, sid  # an absolute db stays itself


def _records(folder: Path) -> tuple[Path, int]:
    """The database to read a scan folder from, and the scan's id.

    The shared database its ``scan.json`` names, where that holds the scan as scanned into this folder; else the
    folder's own copy of its records (``scan.db``, written as the scan ended), which a folder copied to another
    machine or moved away from its database still has. Without a copy the shared database is read as before (a
    moved folder of an older scan), and a missing one is an error saying where it was looked for.
    """
    from appliance.results.store import SCAN_COPY

    db, sid = _locate(folder)
    own = folder / SCAN_COPY
    if own.is_file() and not _holds(db, sid, folder):
        return own, sid
    if not db.is_file() and not db.is_dir():
        raise OSError(f"{db}: no such results database ({folder / 'scan.json'} names it, and the folder holds no "
                      f"{SCAN_COPY} of its own, which scans since tppscan session 48 leave): copy the database "
                      f"beside the folder and set scan.json's db to it")
    return db, sid


def _holds(db: Path, sid: int, folder: Path) -> bool:
    """Whether ``db`` is a readable results database holding scan ``sid`` as scanned into ``folder`` itself."""
    from appliance.results.store import ResultStore

    try:
        with ResultStore(db, read_only=True) as st:
            return Path(st.scan(sid).out_dir) == folder.resolve()
    except (OSError, KeyError):
        return False


def _scan(st: Any, sid: int, folder: Path) -> Any:
    """The scan's record, or an error naming the folder and the database that lacks it."""
    try:
        return st.scan(sid)
    except KeyError:
        raise OSError(f"{folder / 'scan.json'} names scan {sid} of {st.path}, which holds no such scan "
                      f"(a database replaced or another scan's folder?)") from None


def _cmd_list(args: argparse.Namespace) -> int:
    from appliance.results.store import ResultStore

    if args.db == DEFAULT_DB and not args.db.exists():
        return _fail(f"no results database at {args.db} (looked for the default in {Path.cwd()}): give one with "
                     f"--db PATH (a scan's database is tppscan.db beside its folder unless scan --db said otherwise; "
                     f"the folder's scan.json names it)", 1)
    with ResultStore(args.db, read_only=True) as st:
        scans = st.scans()
        if not scans:  # said, not an empty output that reads like a command that did nothing
            print(f"no scans yet in {args.db}")
        for s in scans:
            print(list_line(s, None if s.summary else st.progress(s.id)))
    return 0


def list_line(s: Any, progress: tuple[int, int] | None = None) -> str:
    """One scan's line of ``results list``: id, start, name with what tells it apart, status, counts, folder.

    Every scan without a plan is named ``scan`` (the plan's default); the start time, the virtual slide's seed
    and the folder's name tell them apart. ``progress`` (fields, structures from its rows) counts a scan without
    a summary (interrupted, or cut off in its preparation: ``preparing``).
    """
    import time

    summ = s.summary or ({} if progress is None else {"fields_done": progress[0],
                                                        "structures_recorded": progress[1]})
    started = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.started_at))
    seed = (s.config or {}).get("seed")
    label = " ".join([s.name, *([f"seed {seed}"] if isinstance(seed, int) else []), f"({Path(s.out_dir).name})"])
    return (f"{s.id:4d}  {started}  {label:32s} {s.status:10s} {summ.get('fields_done', '?')}/{s.fields_planned} "
            f"fields  {summ.get('structures_recorded', '?')} structures  {s.out_dir}")


def _cmd_show(args: argparse.Namespace) -> int:
    from appliance.results.store import ResultStore

    db, sid = _records(args.dir)
    with ResultStore(db, read_only=True) as st:
        s = _scan(st, sid, args.dir)
        moved = "" if Path(s.out_dir) == args.dir.resolve() else f" (scanned into {s.out_dir})"
        print(f"scan {s.id} {s.name}: {s.status} ({s.finish_reason}), folder {args.dir}{moved}, records {db}")
        for k, v in (s.summary or {}).items():
            if k not in ("missed", "per_type", "height_rmse_um_by_structure", "wall_time_s_by_step", "warnings",
                         "structures"):
                print(f"  {k}: {v}")
        for w in (s.summary or {}).get("warnings") or ():
            print(f"  warning: {w}")
        for o in st.objects(sid, "structure"):
            unsure = " (focus unsure)" if o.focus_unsure else ""
            print(f"  structure {o.id}: {o.cls} ({o.confidence:.2f}) at x={o.x_um:.1f} y={o.y_um:.1f} "
                  f"z={o.z_um or 0:.1f} um{unsure}  {o.stack_path}  {o.height_map_path}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from appliance.results.export import scan_annotations, scan_um_per_px, write_export
    from appliance.results.store import ResultStore

    db, sid = _records(args.dir)
    with ResultStore(db, read_only=True) as st:
        scan = _scan(st, sid, args.dir)
        ann = scan_annotations(st, scan)
        objects = st.objects(sid)
    formats = ("csv", "coco") if args.format == "both" else (args.format,)
    out = args.out or args.dir
    written = write_export(out, args.dir, ann, f"tppscan scan {sid}", formats, objects, scan_um_per_px(scan))
    frames = len({a.filename for a in ann})
    copied = " and the files they name" if out.resolve() != args.dir.resolve() else ""
    print(f"{len(ann)} boxes in {frames} frames; wrote " + ", ".join(str(p) for p in written) + copied)
    return 0
