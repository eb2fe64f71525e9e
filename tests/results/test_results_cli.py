"""``tppscan results``: reading a database changes nothing, and a folder or database that does not hold the
scan is a one-line error, never a traceback or an empty export."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.results.store import Annotation, ResultStore


def _foreign(path: Path) -> Path:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE foo (a, b)")
    db.commit()
    db.close()
    return path


def _tables(path: Path) -> set[str]:
    db = sqlite3.connect(path)
    try:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        db.close()


def _scan_folder(tmp_path: Path, scan_json: dict[str, object]) -> Path:
    folder = tmp_path / "scan"
    folder.mkdir(exist_ok=True)
    (folder / "scan.json").write_text(json.dumps(scan_json))
    return folder


@pytest.fixture()
def one_scan(tmp_path: Path) -> Path:
    """A database beside a scan folder, holding scan 1 with one box."""
    db = tmp_path / "tppscan.db"
    with ResultStore(db) as st:
        sid = st.create_scan("s", tmp_path / "scan", {}, 1)
        st.commit_field(sid, _field(), [], [Annotation("frames/a.png", 64, 48, "woodpile", 1, 2, 30, 40)])
        st.finish_scan(sid, "finished", "completed", {"recall": 1.0})
    return db


def _field():
    from appliance.results.store import FieldRecord

    return FieldRecord(0, 0, 0.0, 0.0, 90.0, "map", 1, 1, 0, 0.4, 0.02, {})


def test_another_programs_database_is_refused_unchanged(tmp_path):
    db = _foreign(tmp_path / "other.db")
    before = db.read_bytes()
    for read_only in (False, True):
        with pytest.raises(OSError, match="not a tppscan results database.*foo"):
            ResultStore(db, read_only=read_only).open()
    assert db.read_bytes() == before and _tables(db) == {"foo"}


def test_reading_makes_no_database(tmp_path):
    with pytest.raises(OSError, match="no such results database"):
        ResultStore(tmp_path / "none.db", read_only=True).open()
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    with pytest.raises(OSError, match="an empty file"):
        ResultStore(empty, read_only=True).open()
    assert not (tmp_path / "none.db").exists() and empty.read_bytes() == b""
    with pytest.raises(OSError, match="is a folder"):
        ResultStore(tmp_path, read_only=True).open()


def test_a_reader_sees_what_a_running_scan_committed(one_scan, tmp_path):
    with ResultStore(one_scan) as writer:
        sid = writer.create_scan("running", tmp_path / "scan2", {}, 3)
        with ResultStore(one_scan, read_only=True) as reader:
            assert [s.status for s in reader.scans()] == ["finished", "running"]
            assert reader.scan(sid).name == "running"


def test_a_reader_who_may_not_write_the_folder_reads_the_database(tmp_path):
    """The service's data folder is 0750: group tppscan may read it, not write it. A WAL database no program holds
    open has no -shm file, which SQLite's reader had to create there, so ``results list`` and ``status`` said
    ``not a tppscan results database (attempt to write a readonly database)`` to every lab user."""
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="tppscan-ro-"))  # not under pytest's 0700 folder: another user reads it
    try:
        with ResultStore(folder / "tppscan.db") as st:
            st.finish_scan(st.create_scan("s", folder / "scan", {}, 9), "finished", "completed")
        assert not (folder / "tppscan.db-shm").exists()  # closed: SQLite removed its -wal and -shm
        os.chmod(folder / "tppscan.db", 0o644)
        os.chmod(folder, 0o555)
        read = ("import sys; from pathlib import Path; from appliance.results.store import ResultStore\n"
                "with ResultStore(Path(sys.argv[1]), read_only=True) as st: print([s.status for s in st.scans()])")
        cmd = [sys.executable, "-c", read, str(folder / "tppscan.db")]
        if os.geteuid() == 0:  # root writes any folder: read as nobody
            if shutil.which("setpriv") is None:
                pytest.skip("needs setpriv to read as another user")
            cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=root,
                             env={**os.environ, "PYTHONPATH": str(root)})
        assert (out.returncode, out.stdout, out.stderr) == (0, "['finished']\n", "")
        assert sorted(p.name for p in folder.iterdir()) == ["tppscan.db"]
    finally:
        os.chmod(folder, 0o755)
        shutil.rmtree(folder)


def test_results_list_refuses_a_foreign_file_and_a_folder(tmp_path, capsys):
    db = _foreign(tmp_path / "other.db")
    assert main(["results", "list", "--db", str(db)]) == 1
    assert "not a tppscan results database" in capsys.readouterr().err and _tables(db) == {"foo"}
    assert main(["results", "list", "--db", str(tmp_path)]) == 1
    assert "is a folder" in capsys.readouterr().err


def test_a_scan_the_database_does_not_hold_is_an_error_and_no_export(one_scan, tmp_path, capsys):
    folder = _scan_folder(tmp_path, {"scan_id": 7, "db": str(one_scan)})
    assert main(["results", "show", str(folder)]) == 1
    assert "names scan 7" in capsys.readouterr().err
    assert main(["results", "export", str(folder), "--out", str(tmp_path / "exp")]) == 1
    assert "names scan 7" in capsys.readouterr().err and not (tmp_path / "exp").exists()


def test_a_scan_folder_whose_database_is_gone_is_an_error_and_makes_none(tmp_path, capsys):
    folder = _scan_folder(tmp_path, {"scan_id": 1, "db": str(tmp_path / "moved.db")})
    assert main(["results", "show", str(folder)]) == 1
    assert "no such results database" in capsys.readouterr().err and not (tmp_path / "moved.db").exists()


def test_a_relative_database_is_the_one_beside_the_folder(one_scan, tmp_path, capsys, monkeypatch):
    folder = _scan_folder(tmp_path, {"scan_id": 1, "db": "../tppscan.db"})
    monkeypatch.chdir(folder)  # not the folder's parent: a path read from the working folder would miss it
    assert main(["results", "export", str(folder), "--format", "csv"]) == 0
    assert "1 boxes" in capsys.readouterr().out and (folder / "export.csv").is_file()
    assert not (folder / "tppscan.db").exists()


@pytest.mark.parametrize("scan_id", [10**26, 0, -1, 1.5, "1", True, None])
def test_a_damaged_scan_id_is_named(one_scan, tmp_path, capsys, scan_id):
    folder = _scan_folder(tmp_path, {"scan_id": scan_id, "db": str(one_scan)})
    assert main(["results", "show", str(folder)]) == 1
    assert "'scan_id' must be a whole number" in capsys.readouterr().err


@pytest.mark.parametrize("db", ["", 3, None, "a\0b"])
def test_a_damaged_db_entry_is_named(tmp_path, capsys, db):
    folder = _scan_folder(tmp_path, {"scan_id": 1, "db": db})
    assert main(["results", "show", str(folder)]) == 1
    assert "'db' must name the results database" in capsys.readouterr().err


def test_a_scan_into_another_programs_database_is_refused_before_it_starts(tmp_path, capsys):
    db = _foreign(tmp_path / "other.db")
    assert main(["scan", "--sim", "--out", str(tmp_path / "out"), "--db", str(db), "--progress", "none"]) == 1
    assert "--db: " in capsys.readouterr().err
    assert _tables(db) == {"foo"} and not (tmp_path / "out").exists()


def test_results_list_tells_scans_of_one_name_apart(one_scan, tmp_path, capsys):
    with ResultStore(one_scan) as st:
        st.create_scan("scan", tmp_path / "s7", {"seed": 7}, 4)
        st.create_scan("scan", tmp_path / "s8", {"seed": 8}, 4)
    assert main(["results", "list", "--db", str(one_scan)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "scan seed 7 (s7)" in lines[1] and "scan seed 8 (s8)" in lines[2]
    assert all(re.search(r"^\s+\d+  \d{4}-\d\d-\d\d \d\d:\d\d  ", line) for line in lines)


def test_results_list_without_a_database_says_where_it_looked(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["results", "list"]) == 1
    err = capsys.readouterr().err
    assert "no results database at out/tppscan.db" in err and str(tmp_path) in err and "--db PATH" in err
    assert "Traceback" not in err and "OSError" not in err and not (tmp_path / "out").exists()


def test_a_scan_folder_keeps_its_own_records(one_scan, tmp_path):
    with ResultStore(one_scan) as st:
        other = st.create_scan("other", tmp_path / "other", {}, 2)
        st.commit_field(other, _field(), [], [Annotation("frames/b.png", 64, 48, "debris", 1, 2, 3, 4)])
        copy = st.copy_scan(1, tmp_path / "scan.db")
    assert not list(tmp_path.glob("scan.db-*")) and not (tmp_path / "scan.db.part").exists()
    with ResultStore(copy, read_only=True) as st:
        assert [s.id for s in st.scans()] == [1] and st.scan(1).summary == {"recall": 1.0}
        assert [a.filename for a in st.annotations(1)] == ["frames/a.png"] and st.fields(1)


@pytest.mark.parametrize("db_there", [True, False])
def test_a_copied_scan_folder_is_read_from_its_own_records(finished_scan, tmp_path, capsys, db_there):
    import shutil

    out, _ = finished_scan
    copy = tmp_path / "copied"
    shutil.copytree(out.out_dir, copy)
    if not db_there:  # another machine: the database scan.json names is not there
        meta = json.loads((copy / "scan.json").read_text())
        (copy / "scan.json").write_text(json.dumps({**meta, "db": str(tmp_path / "elsewhere" / "tppscan.db")}))
    assert main(["results", "show", str(copy)]) == 0
    shown = capsys.readouterr().out
    assert f"folder {copy} (scanned into {out.out_dir.resolve()})" in shown and str(copy / "scan.db") in shown
    assert main(["results", "export", str(copy), "--out", str(tmp_path / "exp")]) == 0
    assert (tmp_path / "exp" / "export_coco.json").is_file()
    capsys.readouterr()
    assert main(["results", "show", str(out.out_dir)]) == 0  # the folder itself: the shared database
    assert f"records {out.db_path}" in capsys.readouterr().out


def test_an_older_folder_without_its_records_names_the_missing_database(tmp_path, capsys):
    folder = _scan_folder(tmp_path, {"scan_id": 1, "db": str(tmp_path / "gone.db")})
    assert main(["results", "export", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "gone.db: no such results database" in err and "scan.db" in err and "set scan.json's db" in err


def test_list_says_an_empty_database_has_no_scans_and_counts_an_unfinished_one(tmp_path, capsys):
    """``results list`` printed nothing on a database without scans, and ``?`` for a scan cut off."""
    from appliance.cli import main

    db = tmp_path / "tppscan.db"
    with ResultStore(db):
        pass
    assert main(["results", "list", "--db", str(db)]) == 0
    assert capsys.readouterr().out == f"no scans yet in {db}\n"
    assert main(["results", "list", "--db", str(tmp_path / "missing.db")]) == 1
    assert capsys.readouterr().err.count("\n") == 1
    with ResultStore(db) as st:
        sid = st.create_scan("s", tmp_path / "scan", {}, 0, status="preparing")
        st.commit_field(sid, _field(), [], [])
    assert main(["results", "list", "--db", str(db)]) == 0
    line = capsys.readouterr().out
    assert "preparing" in line and " 1/0 fields  0 structures" in line
