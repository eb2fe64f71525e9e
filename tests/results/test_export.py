"""``tppscan results export``: a self-contained dataset (the frames beside the annotation files), named as the
scan's records name the objects, and saying what is not labelled."""

from __future__ import annotations

import csv
import json
import os

import pytest

from appliance.cli import main
from appliance.results.export import UNLABELLED_NOTE, named_by_records
from appliance.results.store import Annotation, ObjectRecord

#: 0.5 µm a pixel, square to the stage, 640 x 480 px: a frame at stage (x, y) shows x ± 160, y ± 120 µm.
CAL = {"matrix": [[0.5, 0.0], [0.0, 0.5]], "size_px": [640, 480]}


def _record(oid: int, cls: str, xy: tuple[float, float], size_um: float, frame: str | None = None,
            box: tuple[int, int, int, int] | None = None) -> ObjectRecord:
    return ObjectRecord(cell=0, kind="debris" if cls == "debris" else "structure", cls=cls, confidence=0.9,
                        x_um=xy[0], y_um=xy[1], z_um=100.0, width_um=size_um, height_um=size_um,
                        frame_path=frame, box=box, extra={"stage_xy_um": [1000.0, 1000.0]} if frame else {}, id=oid)


def test_boxes_are_named_by_the_records_not_the_frames_stale_class():
    frame = "frames/obj_001_00001.png"
    pentagon = _record(33, "pentagon", (1000.0, 1000.0), 30.0, frame, (290, 210, 350, 270))
    lens = _record(40, "microlens", (1000.0, 1000.0), 30.0)
    ring = _record(34, "split_ring", (1180.0, 990.0), 100.0, "frames/obj_001_00002.png", (1, 2, 3, 4))
    speck = _record(35, "debris", (1000.0, 1000.0), 4.0)
    ann = [Annotation(frame, 640, 480, "debris", 290, 210, 350, 270),  # its own box: renamed by the views
           Annotation(frame, 640, 480, "debris", 603, 125, 640, 325),  # the ring cut by the frame's edge
           Annotation(frame, 640, 480, "debris", 316, 236, 324, 244),  # a speck on the pentagon stays debris
           Annotation(frame, 640, 480, "debris", 20, 20, 30, 30)]  # nothing recorded there
    out = named_by_records(ann, [pentagon, ring, speck, lens], CAL)
    assert [a.cls for a in out] == ["pentagon", "split_ring", "debris", "debris"]
    assert [(a.xmin, a.xmax) for a in out] == [(a.xmin, a.xmax) for a in ann]
    assert [a.cls for a in named_by_records(ann, [pentagon, ring], None)][:2] == ["pentagon", "debris"]


def test_an_export_elsewhere_is_a_dataset_on_its_own(finished_scan, tmp_path, capsys):
    from pycocotools.coco import COCO

    out, _ = finished_scan
    exp = tmp_path / "exp"
    assert main(["results", "export", str(out.out_dir), "--out", str(exp)]) == 0
    assert "frames" in capsys.readouterr().out
    coco = COCO(str(exp / "export_coco.json"))
    images = coco.loadImgs(coco.getImgIds())
    assert images and all((exp / img["file_name"]).is_file() for img in images)
    with (exp / "export.csv").open() as f:
        assert all((exp / row["filename"]).is_file() for row in csv.DictReader(f))
    first = images[0]["file_name"]
    assert os.path.samefile(exp / first, out.out_dir / first)  # one file system here: a hard link
    assert json.loads((exp / "export_coco.json").read_text())["info"]["labels"] == UNLABELLED_NOTE
    assert UNLABELLED_NOTE in (exp / "README.txt").read_text()


def test_frames_are_copied_where_they_cannot_be_linked(finished_scan, tmp_path, monkeypatch, capsys):
    out, _ = finished_scan

    def no_link(src: object, dst: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    exp = tmp_path / "exp"
    assert main(["results", "export", str(out.out_dir), "--out", str(exp), "--format", "csv"]) == 0
    with (exp / "export.csv").open() as f:
        names = {row["filename"] for row in csv.DictReader(f)}
    for name in names:
        assert not os.path.samefile(exp / name, out.out_dir / name)
        assert (exp / name).read_bytes() == (out.out_dir / name).read_bytes()
    assert not list(exp.rglob("*.part"))


def test_a_missing_frame_is_named_and_nothing_is_exported(finished_scan, tmp_path, capsys):
    import shutil

    out, _ = finished_scan
    copy = tmp_path / "copy"
    shutil.copytree(out.out_dir, copy)
    meta = json.loads((copy / "scan.json").read_text())
    (copy / "scan.json").write_text(json.dumps({**meta, "db": str(out.db_path)}))
    gone = sorted((copy / "frames").iterdir())[0]
    gone.unlink()
    exp = tmp_path / "exp"
    assert main(["results", "export", str(copy), "--out", str(exp)]) == 1
    err = capsys.readouterr().err
    assert gone.name in err and "Traceback" not in err
    assert not (exp / "export_coco.json").exists()


@pytest.mark.parametrize("fmt", ["coco"])
def test_the_scans_own_export_names_the_same_classes(finished_scan, fmt):
    from appliance.results.export import scan_annotations
    from appliance.results.store import ResultStore

    out, _ = finished_scan
    with ResultStore(out.db_path, read_only=True) as st:
        ann = scan_annotations(st, st.scan(out.scan_id))
        objs = st.objects(out.scan_id, "structure")
    coco = json.loads((out.out_dir / "export_coco.json").read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    assert [names[a["category_id"]] for a in coco["annotations"]] == [a.cls for a in ann]
    own = {(o.frame_path, *o.box): o.cls for o in objs}
    assert all(own.get((a.filename, a.xmin, a.ymin, a.xmax, a.ymax), a.cls) == a.cls for a in ann)


def test_an_export_elsewhere_holds_each_structures_files(finished_scan, tmp_path, capsys):
    out, _ = finished_scan
    exp = tmp_path / "exp"
    assert main(["results", "export", str(out.out_dir), "--out", str(exp), "--format", "coco"]) == 0
    with (exp / "structures.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows and all((exp / r[c]).is_file() for r in rows for c in ("crop", "stack", "height_map", "plot_3d"))


def test_a_scans_export_is_training_and_test_data_for_the_detector(finished_scan, tmp_path, capsys):
    """The issue's "scans become training data": what the export writes, `models eval detector` reads at scale."""
    pytest.importorskip("pycocotools")
    out, _ = finished_scan
    exp = tmp_path / "exp"
    assert main(["results", "export", str(out.out_dir), "--out", str(exp), "--format", "coco"]) == 0
    coco = json.loads((exp / "export_coco.json").read_text())
    assert coco["images"] and all(0.1 < im["um_per_px"] < 5 for im in coco["images"])
    capsys.readouterr()
    assert main(["models", "eval", "detector", "--data", str(exp), "--at-scale", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert sum(result["objects"].values()) == len(coco["annotations"]) and result["n"] == len(coco["images"])


def test_a_csv_only_exports_readme_names_only_what_it_holds(finished_scan, tmp_path, capsys):
    out, _ = finished_scan
    exp = tmp_path / "exp"
    assert main(["results", "export", str(out.out_dir), "--out", str(exp), "--format", "csv"]) == 0
    text = (exp / "README.txt").read_text()
    assert "export.csv" in text and "export_coco.json" not in text and not (exp / "export_coco.json").exists()
