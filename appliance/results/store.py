"""The results database: one SQLite file in WAL mode for every scan (docs/design.md §6).

Tables: ``scan`` (plan and settings snapshot, times, status), ``field`` (one row per scanned field: position,
focus, timings), ``field_error`` (a field the camera failed on, and why: the field itself stays uncommitted),
``object`` (one row per structure or piece of debris recorded once, with its files) and
``annotation`` (every box in every frame image the scan saved: the CSV and COCO exports come from here).

Durability: a field is committed as soon as it is done, in one transaction with its objects and annotations.
The files it refers to are written and ``fsync``-ed first (:func:`write_durably`, then :func:`sync_dir`), and
only then is the row committed with ``synchronous=FULL``: after a crash or power cut a row never points at a
file that is not on disk, and at most the field in flight is lost. A scan left ``running`` is resumed from its
committed fields (:meth:`ResultStore.unfinished_scan`).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

SCHEMA_VERSION = 1
#: A scan folder's own copy of its rows (:meth:`ResultStore.copy_scan`), written as the scan ends: the shared
#: database stays the store of record; the copy lets ``tppscan results`` read a folder copied to another machine.
SCAN_COPY = "scan.db"
#: A cancelled scan's ``finish_reason`` when it was given up for a new one (``tppscan start --new``): the service
#: resumes it no more.
ABANDONED = "abandoned: a new scan was started in its place (tppscan start --new)"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scan (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    out_dir TEXT NOT NULL,
    config_json TEXT NOT NULL,
    fields_planned INTEGER NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    status TEXT NOT NULL,
    finish_reason TEXT,
    summary_json TEXT
);
CREATE TABLE IF NOT EXISTS field (
    scan_id INTEGER NOT NULL REFERENCES scan(id),
    cell INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    x_um REAL NOT NULL, y_um REAL NOT NULL, z_um REAL NOT NULL,
    focus_source TEXT NOT NULL,
    n_candidates INTEGER NOT NULL,
    n_structures INTEGER NOT NULL,
    n_debris INTEGER NOT NULL,
    stage_time_s REAL NOT NULL,
    wall_time_s REAL NOT NULL,
    timings_json TEXT NOT NULL,
    PRIMARY KEY (scan_id, cell)
);
CREATE TABLE IF NOT EXISTS object (
    id INTEGER PRIMARY KEY,
    scan_id INTEGER NOT NULL REFERENCES scan(id),
    cell INTEGER NOT NULL,
    kind TEXT NOT NULL,
    cls TEXT NOT NULL,
    confidence REAL NOT NULL,
    scores_json TEXT NOT NULL,
    x_um REAL NOT NULL, y_um REAL NOT NULL, z_um REAL,
    width_um REAL NOT NULL, height_um REAL NOT NULL,
    frame_path TEXT, xmin INTEGER, ymin INTEGER, xmax INTEGER, ymax INTEGER,
    crop_path TEXT, stack_path TEXT, height_map_path TEXT, plot_path TEXT,
    extra_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS annotation (
    scan_id INTEGER NOT NULL REFERENCES scan(id),
    filename TEXT NOT NULL,
    width INTEGER NOT NULL, height INTEGER NOT NULL,
    cls TEXT NOT NULL,
    xmin INTEGER NOT NULL, ymin INTEGER NOT NULL, xmax INTEGER NOT NULL, ymax INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS field_error (
    scan_id INTEGER NOT NULL REFERENCES scan(id),
    cell INTEGER NOT NULL,
    at REAL NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS object_scan ON object(scan_id);
CREATE INDEX IF NOT EXISTS annotation_scan ON annotation(scan_id);
"""


@dataclass(frozen=True)
class ScanRecord:
    """One row of ``scan``."""

    id: int
    name: str
    out_dir: str
    config: dict[str, Any]
    fields_planned: int
    started_at: float
    finished_at: float | None
    status: str
    finish_reason: str | None
    summary: dict[str, Any] | None

    @property
    def resumable(self) -> bool:
        """Not complete, its folder still there, and not given up by ``tppscan start --new``: the service resumes it.

        Complete is ``finished`` with its summary: one finished without (stopped while its outputs were written) is
        resumed too, as :meth:`ResultStore.unfinished_scan` finds it, or its report is never written.
        """
        complete = self.status == "finished" and self.summary is not None
        return not complete and self.finish_reason != ABANDONED and Path(self.out_dir).is_dir()

    @property
    def outputs_missing(self) -> bool:
        """Every field done (``finished``), no summary: stopped while its summary, exports and report were written."""
        return self.status == "finished" and self.summary is None


@dataclass(frozen=True)
class FieldRecord:
    """One scanned field (``field`` row). Times: ``stage_time_s`` on the device clock, ``wall_time_s`` real."""

    cell: int
    seq: int
    x_um: float
    y_um: float
    z_um: float
    focus_source: str
    n_candidates: int
    n_structures: int
    n_debris: int
    stage_time_s: float
    wall_time_s: float
    timings: dict[str, float]


@dataclass(frozen=True)
class ObjectRecord:
    """One recorded structure or piece of debris (``object`` row; ``id`` is 0 until stored).

    Paths are relative to the scan's folder. ``box`` is ``xmin, ymin, xmax, ymax`` (exclusive max) in
    ``frame_path``'s pixels.
    """

    cell: int
    kind: str
    cls: str
    confidence: float
    x_um: float
    y_um: float
    z_um: float | None
    width_um: float
    height_um: float
    frame_path: str | None = None
    box: tuple[int, int, int, int] | None = None
    crop_path: str | None = None
    stack_path: str | None = None
    height_map_path: str | None = None
    plot_path: str | None = None
    scores: dict[str, float] | None = None
    extra: dict[str, Any] | None = None
    id: int = 0

    @property
    def focus_unsure(self) -> bool:
        """Whether this structure's focus search could not be trusted (``extra.focus_ok`` recorded False).

        Its z, stack and height are then estimates.
        """
        return (self.extra or {}).get("focus_ok") is False


@dataclass(frozen=True)
class Annotation:
    """One box in a saved frame image: a row of the seed's CSV (``filename,width,height,class,xmin,...``)."""

    filename: str
    width: int
    height: int
    cls: str
    xmin: int
    ymin: int
    xmax: int
    ymax: int


def write_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, ``fsync`` it, rename it into place, sync the folder.

    After a power cut the file is there whole, with the new or the old content, never a part.
    """
    tmp = path.with_name(path.name + ".part")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:  # a full disk raises from write() without a file name: name it
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    os.replace(tmp, path)
    sync_dir(path.parent)  # the new name, or a power cut may leave the old file (or none)


def fsync_file(path: Path) -> None:
    """``fsync`` a file written by a library that does not (tifffile, matplotlib)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_dir(path: Path) -> None:
    """``fsync`` a directory so the names of files created in it survive a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: Every table this version's schema makes: a database holding any other was made by another program.
_TABLES = frozenset({"meta", "scan", "field", "object", "annotation", "field_error", "sqlite_sequence",
                     "sqlite_stat1"})


class ResultStore:
    """The SQLite results database. Open with ``open()`` or ``with``; one connection per store.

    Parameters
    ----------
    path : Path
        The database file (created with its parent folder if missing, unless ``read_only``).
    read_only : bool
        Open an existing database to read it, changing nothing (``tppscan results``): a file that is not a
        tppscan database is an error, not a database to make there.
    """

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._db: sqlite3.Connection | None = None

    def open(self) -> ResultStore:
        """Open (and create or check) the database.

        Raises
        ------
        OSError
            The file cannot be created (or, read-only, does not exist), or is not a tppscan database of a known
            version: another program's SQLite file is refused before anything is written to it.
        """
        if self._db is not None:
            return self
        if self.path.is_dir():
            raise OSError(f"{self.path} is a folder, not a results database")
        try:
            self._db = self._open_reader() if self.read_only else self._open_writer()
        except sqlite3.DatabaseError as exc:
            raise OSError(f"{self.path}: not a tppscan results database ({exc})") from None
        return self

    def _open_reader(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise OSError(f"{self.path}: no such results database")
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        db = sqlite3.connect(uri, uri=True, timeout=10.0)
        try:
            try:
                tables = _table_names(db)
            except sqlite3.OperationalError:
                # A WAL database that no program holds open has no -shm file, and a reader must create one: a lab
                # user in group tppscan, who may read the service's folder (0750) but not write it, could not read
                # the database at all. With no -wal file no writer is connected and the file itself holds every
                # commit, so it is read as it stands (``immutable``: no -shm, no locks).
                if Path(f"{self.path}-wal").exists():
                    raise
                db.close()
                db = sqlite3.connect(f"{uri}&immutable=1", uri=True, timeout=10.0)
                tables = _table_names(db)
            if not tables:
                raise OSError(f"{self.path}: an empty file, not a tppscan results database")
            self._check_ours(db, tables)
        except BaseException:
            db.close()
            raise
        return db

    def _open_writer(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
        try:
            tables = _table_names(db)
            if tables:  # checked before the pragmas below, which would already change another program's file
                self._check_ours(db, tables)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            # One transaction for the schema and its version: a process killed here leaves no tables or all of
            # them, never a half-made database.
            db.executescript("BEGIN IMMEDIATE;" + _SCHEMA)
            try:
                if db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() is None:
                    db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except BaseException:
            db.close()
            raise
        return db

    def _check_ours(self, db: sqlite3.Connection, tables: set[str]) -> None:
        """Refuse a database another program made, or another version of tppscan."""
        foreign = sorted(tables - _TABLES)
        row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() if "meta" in tables else None
        if foreign or row is None:
            held = ", ".join(foreign[:5] or sorted(tables)[:5])
            raise OSError(f"{self.path}: not a tppscan results database (it holds the tables {held}, and no "
                          f"tppscan schema version); give a new file or a tppscan database")
        if row[0] != str(SCHEMA_VERSION):
            raise OSError(f"{self.path}: results schema version {row[0]}, this tppscan reads {SCHEMA_VERSION}")

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> ResultStore:
        return self.open()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def db(self) -> sqlite3.Connection:
        """The open connection (raises ``OSError`` when closed)."""
        if self._db is None:
            raise OSError(f"{self.path}: results store is not open")
        return self._db

    # -- scans ---------------------------------------------------------------------------------------------------
    def create_scan(self, name: str, out_dir: Path, config: dict[str, Any], fields_planned: int,
                    status: str = "running") -> int:
        """Insert a ``running`` scan (or ``preparing``: :meth:`set_prepared` follows) and return its id."""
        cur = self.db.execute(
            "INSERT INTO scan (name, out_dir, config_json, fields_planned, started_at, status) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (name, str(Path(out_dir).resolve()), json.dumps(config, sort_keys=True), fields_planned, time.time(),
             status))
        return int(cur.lastrowid or 0)

    def set_prepared(self, scan_id: int, config: dict[str, Any], fields_planned: int) -> None:
        """A ``preparing`` scan's snapshot (now with its calibration and grid) and fields; it is ``running``."""
        self.db.execute("UPDATE scan SET config_json=?, fields_planned=?, status='running', finished_at=NULL, "
                        "finish_reason=NULL WHERE id=?", (json.dumps(config, sort_keys=True), fields_planned, scan_id))

    def set_preparing(self, scan_id: int) -> None:
        """Mark a scan cut off in its preparation ``preparing`` again: it is prepared anew in its row and folder."""
        self.db.execute("UPDATE scan SET status='preparing', finished_at=NULL, finish_reason=NULL WHERE id=?",
                        (scan_id,))

    def finish_scan(self, scan_id: int, status: str, reason: str, summary: dict[str, Any] | None = None) -> None:
        """Record how a scan ended (``status`` ``finished``, ``cancelled`` or ``failed``)."""
        self.db.execute("UPDATE scan SET finished_at=?, status=?, finish_reason=?, summary_json=? WHERE id=?",
                        (time.time(), status, reason, None if summary is None else json.dumps(summary), scan_id))

    def reopen_scan(self, scan_id: int) -> None:
        """Mark a scan ``running`` again (resume)."""
        self.db.execute("UPDATE scan SET status='running', finished_at=NULL, finish_reason=NULL WHERE id=?",
                        (scan_id,))

    def set_summary(self, scan_id: int, summary: dict[str, Any]) -> None:
        """Store the scan's summary (scores, counts, timings)."""
        self.db.execute("UPDATE scan SET summary_json=? WHERE id=?", (json.dumps(summary), scan_id))

    def scan(self, scan_id: int) -> ScanRecord:
        """The scan with this id (``KeyError`` if none)."""
        row = self.db.execute("SELECT * FROM scan WHERE id=?", (scan_id,)).fetchone()
        if row is None:
            raise KeyError(f"no scan {scan_id} in {self.path}")
        return _scan_record(row)

    def scans(self) -> list[ScanRecord]:
        """Every scan, oldest first."""
        return [_scan_record(r) for r in self.db.execute("SELECT * FROM scan ORDER BY id")]

    def last_scan(self) -> ScanRecord | None:
        """The newest scan (the largest id, as ``results list`` ends), or None in a database without scans."""
        row = self.db.execute("SELECT * FROM scan ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else _scan_record(row)

    def progress(self, scan_id: int) -> tuple[int, int]:
        """``(fields committed, structures recorded)`` of a scan, from its rows: a scan cut off has no summary."""
        fields = self.db.execute("SELECT COUNT(*) FROM field WHERE scan_id=?", (scan_id,)).fetchone()[0]
        structures = self.db.execute("SELECT COUNT(*) FROM object WHERE scan_id=? AND kind='structure'",
                                     (scan_id,)).fetchone()[0]
        return int(fields), int(structures)

    def unfinished_scan(self, out_dir: Path) -> ScanRecord | None:
        """The latest scan into ``out_dir`` still to complete.

        That is one ``running``, ``cancelled`` or ``failed``, or ``finished`` without its summary (stopped
        while its outputs were written: the summary row is written last).
        """
        row = self.db.execute("SELECT * FROM scan WHERE out_dir=? AND (status!='finished' OR summary_json IS NULL) "
                              "ORDER BY id DESC LIMIT 1", (str(Path(out_dir).resolve()),)).fetchone()
        return None if row is None else _scan_record(row)

    # -- fields and objects -------------------------------------------------------------------------------------
    def commit_field(self, scan_id: int, fld: FieldRecord, objects: Sequence[ObjectRecord],
                     annotations: Iterable[Annotation], files: Iterable[Path] = ()) -> list[int]:
        """Make a field durable: ``fsync`` its files and their folders, then commit its rows in one transaction.

        Returns the new objects' ids.
        """
        dirs = set()
        for f in files:
            fsync_file(f)
            dirs.add(f.parent)
        for d in dirs:
            sync_dir(d)
        db = self.db
        ids = []
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("INSERT INTO field VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (scan_id, fld.cell, fld.seq, fld.x_um, fld.y_um, fld.z_um, fld.focus_source, fld.n_candidates,
                        fld.n_structures, fld.n_debris, fld.stage_time_s, fld.wall_time_s, json.dumps(fld.timings)))
            for o in objects:
                box = o.box or (None, None, None, None)
                cur = db.execute(
                    "INSERT INTO object (scan_id, cell, kind, cls, confidence, scores_json, x_um, y_um, z_um, "
                    "width_um, height_um, frame_path, xmin, ymin, xmax, ymax, crop_path, stack_path, "
                    "height_map_path, plot_path, extra_json) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (scan_id, o.cell, o.kind, o.cls, o.confidence, json.dumps(o.scores or {}), o.x_um, o.y_um, o.z_um,
                     o.width_um, o.height_um, o.frame_path, *box, o.crop_path, o.stack_path, o.height_map_path,
                     o.plot_path, json.dumps(o.extra or {})))
                ids.append(int(cur.lastrowid or 0))
            db.executemany("INSERT INTO annotation VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           [(scan_id, *asdict(a).values()) for a in annotations])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return ids

    def merge_objects(self, scan_id: int, keep_id: int, drop_ids: Sequence[int], xy_um: tuple[float, float],
                      size_um: tuple[float, float], extra: dict[str, Any]) -> None:
        """Make ``keep_id`` the one record of objects recorded more than once, in one transaction.

        Its centre and size become ``xy_um`` and ``size_um`` and its ``extra`` is replaced (the caller puts the
        dropped records there); the ``drop_ids`` rows are deleted. Their files stay on disk. ``KeyError`` when a
        row is not one of the scan's.
        """
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            for oid in (keep_id, *drop_ids):
                if db.execute("SELECT 1 FROM object WHERE id=? AND scan_id=?", (oid, scan_id)).fetchone() is None:
                    raise KeyError(f"object {oid} is not a record of scan {scan_id}")
            db.execute("UPDATE object SET x_um=?, y_um=?, width_um=?, height_um=?, extra_json=? WHERE id=?",
                       (*xy_um, *size_um, json.dumps(extra), keep_id))
            db.executemany("DELETE FROM object WHERE id=?", [(oid,) for oid in drop_ids])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def record_field_error(self, scan_id: int, cell: int, message: str) -> None:
        """Record that a field could not be imaged (it stays uncommitted; a resumed scan tries it again)."""
        self.db.execute("INSERT INTO field_error VALUES (?, ?, ?, ?)", (scan_id, cell, time.time(), message))

    def field_errors(self, scan_id: int) -> list[tuple[int, str]]:
        """``(cell, message)`` of every field error of the scan, oldest first (a retried field keeps its)."""
        return [(int(c), str(m)) for c, m in self.db.execute(
            "SELECT cell, message FROM field_error WHERE scan_id=? ORDER BY rowid", (scan_id,))]

    def fields(self, scan_id: int) -> list[FieldRecord]:
        """The scan's committed fields in scan order."""
        rows = self.db.execute("SELECT cell, seq, x_um, y_um, z_um, focus_source, n_candidates, n_structures, "
                               "n_debris, stage_time_s, wall_time_s, timings_json FROM field WHERE scan_id=? "
                               "ORDER BY seq", (scan_id,))
        return [FieldRecord(cell=r[0], seq=r[1], x_um=r[2], y_um=r[3], z_um=r[4], focus_source=r[5], n_candidates=r[6],
                            n_structures=r[7], n_debris=r[8], stage_time_s=r[9], wall_time_s=r[10],
                            timings=json.loads(r[11])) for r in rows]

    def objects(self, scan_id: int, kind: str | None = None) -> list[ObjectRecord]:
        """The scan's recorded objects (optionally one kind), in id order."""
        q = "SELECT * FROM object WHERE scan_id=?" + (" AND kind=?" if kind else "") + " ORDER BY id"
        rows = self.db.execute(q, (scan_id, kind) if kind else (scan_id,))
        return [_object_record(r) for r in rows]

    def copy_scan(self, scan_id: int, path: Path) -> Path:
        """Write the scan's rows alone into a new database at ``path`` (replacing one there); return ``path``.

        The scan folder's own copy of its records (:data:`SCAN_COPY`): ``tppscan results`` reads it where the
        folder was copied away from its database. Same schema and ids; one file (no WAL beside it), written under
        a temporary name, ``fsync``-ed and renamed into place.
        """
        path = Path(path)
        tmp = path.with_name(path.name + ".part")
        tmp.unlink(missing_ok=True)
        db = sqlite3.connect(tmp.resolve().as_uri(), uri=True, isolation_level=None)
        try:
            db.executescript("BEGIN;" + _SCHEMA)
            db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            db.execute("ATTACH DATABASE ? AS src", (f"{self.path.resolve().as_uri()}?mode=ro",))
            db.execute("INSERT INTO scan SELECT * FROM src.scan WHERE id=?", (scan_id,))
            for table in ("field", "object", "annotation", "field_error"):
                db.execute(f"INSERT INTO {table} SELECT * FROM src.{table} WHERE scan_id=? ORDER BY rowid",
                           (scan_id,))
            db.execute("COMMIT")
            db.execute("DETACH DATABASE src")
        finally:
            db.close()
        fsync_file(tmp)
        os.replace(tmp, path)
        sync_dir(path.parent)
        return path

    def annotations(self, scan_id: int) -> list[Annotation]:
        """Every box of every saved frame, in insertion order."""
        rows = self.db.execute("SELECT filename, width, height, cls, xmin, ymin, xmax, ymax FROM annotation "
                               "WHERE scan_id=? ORDER BY rowid", (scan_id,))
        return [Annotation(*r) for r in rows]


def _table_names(db: sqlite3.Connection) -> set[str]:
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _scan_record(row: Sequence[Any]) -> ScanRecord:
    return ScanRecord(id=row[0], name=row[1], out_dir=row[2], config=json.loads(row[3]), fields_planned=row[4],
                      started_at=row[5], finished_at=row[6], status=row[7], finish_reason=row[8],
                      summary=None if row[9] is None else json.loads(row[9]))


def _object_record(row: Sequence[Any]) -> ObjectRecord:
    (oid, _scan, cell, kind, cls, conf, scores, x, y, z, w, h, frame, x0, y0, x1, y1, crop, stack, hmap, plot,
     extra) = row
    box = None if x0 is None else (x0, y0, x1, y1)
    return ObjectRecord(cell=cell, kind=kind, cls=cls, confidence=conf, x_um=x, y_um=y, z_um=z, width_um=w,
                        height_um=h, frame_path=frame, box=box, crop_path=crop, stack_path=stack,
                        height_map_path=hmap, plot_path=plot, scores=json.loads(scores), extra=json.loads(extra),
                        id=oid)
