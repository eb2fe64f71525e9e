import csv
import html
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import tifffile

from appliance.results.export import CSV_COLUMNS
from appliance.results.store import ResultStore


def test_csv_export_has_the_seeds_columns_and_boxes_inside_frames(finished_scan):
    out, _ = finished_scan
    with (out.out_dir / "export.csv").open() as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == CSV_COLUMNS == ("filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax")
    assert len(rows) > 1
    for r in rows[1:]:
        w, h, x0, y0, x1, y1 = map(int, (r[1], r[2], r[4], r[5], r[6], r[7]))
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        assert (out.out_dir / r[0]).is_file()


def test_coco_export_loads_in_pycocotools(finished_scan, capsys):
    from pycocotools.coco import COCO

    out, _ = finished_scan
    coco = COCO(str(out.out_dir / "export_coco.json"))
    n_csv = len((out.out_dir / "export.csv").read_text().splitlines()) - 1
    assert len(coco.getAnnIds()) == n_csv
    names = {c["name"] for c in coco.loadCats(coco.getCatIds())}
    with ResultStore(out.db_path) as st:
        types = {o.cls for o in st.objects(out.scan_id, "structure")}
    assert types <= names
    for img in coco.loadImgs(coco.getImgIds()):
        assert (out.out_dir / img["file_name"]).is_file()


def test_focus_stacks_are_ome_tiff_with_their_z_positions(finished_scan):
    out, _ = finished_scan
    with ResultStore(out.db_path) as st:
        objs = st.objects(out.scan_id, "structure")
    for o in objs:
        with tifffile.TiffFile(out.out_dir / o.stack_path) as tf:
            assert tf.is_ome
            data = tf.asarray()
            root = ET.fromstring(tf.ome_metadata)
        ns = {"ome": root.tag.split("}")[0].strip("{")}
        pixels = root.find(".//ome:Pixels", ns)
        assert pixels.get("DimensionOrder").startswith("XY") and int(pixels.get("SizeZ")) == data.shape[0]
        zs = [float(p.get("PositionZ")) for p in sorted(pixels.findall("ome:Plane", ns),
                                                        key=lambda p: int(p.get("TheZ")))]
        assert len(zs) == data.shape[0] >= 3
        assert np.all(np.diff(zs) > 0)  # planes climb through focus
        assert min(zs) <= o.z_um <= max(zs)


def test_report_links_resolve_and_every_plot_is_there(finished_scan):
    out, _ = finished_scan
    page = (out.out_dir / "report.html").read_text()
    refs = re.findall(r"(?:src|href)='([^']+)'|(?:src|href)=\"([^\"]+)\"", page)
    targets = [a or b for a, b in refs]
    assert {"slide_map.png", "focus_map.png", "timings.png", "export.csv", "export_coco.json"} <= set(targets)
    for t in targets:
        assert (out.out_dir / t).is_file(), t
    s = json.loads((out.out_dir / "summary.json").read_text())
    for key in ("recall", "type_accuracy", "debris_as_structure", "position_error_um_median", "duplicates"):
        assert key in page
    assert s["structures_found"] == page.count("alt='3-D view")


def test_height_maps_are_scored_per_type(finished_scan):
    out, _ = finished_scan
    s = out.summary
    assert set(s["height_rmse_um_by_type"]) <= {"woodpile", "microlens", "scaffold", "pentagon", "split_ring"}
    assert s["height_rmse_um_by_type"]
    for v in s["height_rmse_um_by_type"].values():
        assert v >= 0 and np.isfinite(v)


def test_stacks_are_named_after_their_structure_with_the_stage_xy(finished_scan):
    """Named by type and file name when first written: the scan never rewrites a stack once its row has an id
    (a power cut in that window tore files rows named); structures.csv maps each id to its files."""
    out, _ = finished_scan
    with ResultStore(out.db_path) as st:
        objs = st.objects(out.scan_id, "structure")
    assert objs
    for o in objs:
        with tifffile.TiffFile(out.out_dir / o.stack_path) as tf:
            root = ET.fromstring(tf.ome_metadata)
        ns = {"ome": root.tag.split("}")[0].strip("{")}
        stem = Path(o.stack_path).name.removesuffix(".ome.tif")
        assert root.find("ome:Image", ns).get("Name") == f"{o.cls} {stem}"
        planes = root.findall(".//ome:Plane", ns)
        assert {(float(p.get("PositionX")), float(p.get("PositionY"))) for p in planes} == {
            tuple(o.extra["stage_xy_um"])}
        assert {p.get("PositionXUnit") for p in planes} == {"µm"}


def test_height_maps_carry_their_pixel_size_and_old_ones_stay_readable(finished_scan, tmp_path):
    from appliance.results.files import ScanFolder, read_heights

    out, _ = finished_scan
    with ResultStore(out.db_path) as st:
        scan, objs = st.scan(out.scan_id), st.objects(out.scan_id, "structure")
    scale = np.sqrt(abs(np.linalg.det(np.asarray(scan.config["calibration"]["matrix"]))))
    for o in objs:
        assert o.height_map_path.endswith(".npz")
        heights, um_per_px = read_heights(out.out_dir / o.height_map_path)
        assert heights.ndim == 2 and um_per_px == pytest.approx(scale, rel=1e-3)
    old = ScanFolder(tmp_path).create().heights("obj_001_00001", np.ones((4, 5)))  # a scan before session 48
    heights, um_per_px = read_heights(old)
    assert old.suffix == ".npy" and heights.shape == (4, 5) and um_per_px is None


def test_structures_csv_and_summary_map_each_id_to_its_files(finished_scan):
    from appliance.results.structures import COLUMNS

    out, _ = finished_scan
    with ResultStore(out.db_path) as st:
        objs = st.objects(out.scan_id, "structure")
    with (out.out_dir / "structures.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == COLUMNS and [int(r["id"]) for r in rows] == [o.id for o in objs]
    for r, o in zip(rows, objs, strict=True):
        assert r["type"] == o.cls and r["stack"] == o.stack_path and r["height_map"] == o.height_map_path
        assert float(r["height_um"]) == pytest.approx(o.extra["max_height_um"], abs=0.01)
        assert r["focus_ok"] == str(not o.focus_unsure)
        for col in ("crop", "stack", "height_map", "plot_3d", "frame"):
            assert (out.out_dir / r[col]).is_file()
    listed = json.loads((out.out_dir / "summary.json").read_text())["structures"]
    assert [{k: str(v) for k, v in s.items()} for s in listed] == rows


def test_report_says_how_far_heights_can_be_off_and_links_every_file(finished_scan):
    from appliance.results.report import HEIGHT_CAVEAT, SCORE_LABELS

    out, _ = finished_scan
    page = (out.out_dir / "report.html").read_text()
    with ResultStore(out.db_path) as st:
        objs = st.objects(out.scan_id, "structure")
    assert "Height maps" in HEIGHT_CAVEAT and html.escape(HEIGHT_CAVEAT) in page
    assert page.index("1.5-7.8 µm") < page.index("<th>id</th>")
    assert "height RMSE µm (virtual slide only)" in page and 'href="structures.csv"' in page
    for o in objs:
        assert f"<td>{o.id}</td>" in page and f"href='{o.height_map_path}'>height map</a>" in page
    assert "<th>type_accuracy</th>" not in page and f">{SCORE_LABELS['type_accuracy']}</th>" in page


def test_scores_on_a_slide_without_structures_say_so():
    from appliance.results.report import _score

    empty = {"structures_truth": 0, "recall": 1.0, "position_error_um_median": None, "duplicates": 0}
    assert _score("recall", empty) == "no structures on the slide"
    assert _score("position_error_um_median", empty) == "no structures on the slide"
    assert _score("duplicates", empty) == "0"
    some = {"structures_truth": 4, "recall": 0.75, "position_error_um_median": None}
    assert _score("recall", some) == "75 %" and _score("position_error_um_median", some) == "—"
