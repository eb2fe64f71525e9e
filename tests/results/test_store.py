import sqlite3

import pytest

from appliance.results import store as store_mod
from appliance.results.store import Annotation, FieldRecord, ObjectRecord, ResultStore


def _field(cell, seq=None):
    return FieldRecord(cell, cell if seq is None else seq, 10.0 * cell, 5.0, 90.0, "map", 2, 1, 1, 0.4, 0.02,
                       {"capture": 0.01})


def test_database_is_wal_and_round_trips(tmp_path):
    db = tmp_path / "r" / "tppscan.db"
    with ResultStore(db) as st:
        assert st.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        sid = st.create_scan("s", tmp_path / "out", {"plan": {"a": 1}}, 12)
        obj = ObjectRecord(cell=3, kind="structure", cls="woodpile", confidence=0.9, x_um=1.0, y_um=2.0, z_um=90.5,
                           width_um=40, height_um=41, frame_path="frames/a.png", box=(1, 2, 30, 40),
                           scores={"woodpile": 0.9}, extra={"n": 1})
        ids = st.commit_field(sid, _field(3), [obj], [Annotation("frames/a.png", 640, 480, "woodpile", 1, 2, 30, 40)])
    with ResultStore(db) as st:
        (scan,) = st.scans()
        assert scan.status == "running" and scan.config == {"plan": {"a": 1}} and scan.fields_planned == 12
        assert st.fields(sid) == [_field(3)]
        (back,) = st.objects(sid)
        assert back.id == ids[0] and back.box == (1, 2, 30, 40) and back.scores == {"woodpile": 0.9}
        assert back.cls == "woodpile" and back.extra == {"n": 1}
        assert st.annotations(sid)[0].cls == "woodpile"
        assert st.unfinished_scan(tmp_path / "out").id == sid
        st.finish_scan(sid, "finished", "completed", {"recall": 1.0})
        assert st.unfinished_scan(tmp_path / "out") is None
        assert st.scan(sid).summary == {"recall": 1.0}


def test_files_are_synced_before_the_row_is_committed(tmp_path, monkeypatch):
    st = ResultStore(tmp_path / "t.db").open()
    sid = st.create_scan("s", tmp_path, {}, 1)
    f = tmp_path / "crop.png"
    store_mod.write_durably(f, b"png")
    order = []

    def fsync_file(path):
        rows = sqlite3.connect(tmp_path / "t.db").execute("SELECT COUNT(*) FROM field").fetchone()[0]
        order.append(("file", rows))

    monkeypatch.setattr(store_mod, "fsync_file", fsync_file)
    st.commit_field(sid, _field(0), [], [], [f])
    assert order == [("file", 0)]
    assert len(st.fields(sid)) == 1
    st.close()


def test_a_failed_field_commit_leaves_nothing_behind(tmp_path):
    with ResultStore(tmp_path / "t.db") as st:
        sid = st.create_scan("s", tmp_path, {}, 2)
        st.commit_field(sid, _field(0), [], [])
        with pytest.raises(sqlite3.IntegrityError):  # the same cell twice: the whole field rolls back
            st.commit_field(sid, _field(0, seq=1), [ObjectRecord(0, "debris", "debris", 1, 0, 0, None, 1, 1)], [])
        assert len(st.fields(sid)) == 1 and st.objects(sid) == []


def test_not_a_database_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(OSError, match="not a tppscan results database"):
        ResultStore(bad).open()
