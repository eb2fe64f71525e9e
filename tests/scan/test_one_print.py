"""A print recorded from two of its pieces is one record after the scan (appliance/scan/one_print.py)."""

import pytest

from appliance.results.score import score
from appliance.results.store import FieldRecord, ObjectRecord, ResultStore
from appliance.scan.one_print import PIECE_OVERLAP, box_of, merge_pieces, pieces_to_merge


def _rec(oid, box, cls="scaffold", kind="structure", **kw):
    x0, y0, x1, y1 = box
    return ObjectRecord(cell=oid, kind=kind, cls=cls, confidence=0.9, x_um=(x0 + x1) / 2, y_um=(y0 + y1) / 2,
                        z_um=90.0, width_um=x1 - x0, height_um=y1 - y0, id=oid, **kw)


# seed 1641 at 40x: a 137 µm scaffold stitched once from each of two rows of fields (the records' boxes)
HALF_A = (1027.31, 1748.07, 1150.16, 1808.64)
HALF_B = (1039.62, 1789.15, 1167.43, 1886.50)


def test_two_partial_footprints_of_one_print_become_one_record_of_their_union():
    (m,) = pieces_to_merge([_rec(1, HALF_A), _rec(2, HALF_B)])
    assert m.keep.id == 2 and [p.id for p in m.pieces] == [1]  # the larger box saw more of the print
    assert m.box_um == pytest.approx((1027.31, 1748.07, 1167.43, 1886.50))


def test_a_piece_inside_its_print_is_merged_into_it_whichever_came_first():
    whole, piece = (178.6, 1716.5, 296.2, 1828.4), (262.0, 1729.9, 279.4, 1749.6)  # seed 1781's pentagon
    (m,) = pieces_to_merge([_rec(1, piece, "pentagon"), _rec(2, whole, "pentagon")])
    assert m.keep.id == 2 and m.box_um == pytest.approx(whole) and m.pieces[0].id == 1


def test_neighbours_whose_boxes_touch_by_blur_stay_two_prints():
    a = (0.0, 0.0, 50.0, 50.0)
    b = (48.0, 0.0, 98.0, 50.0)  # 2 µm of 50: 4 % of the smaller box
    assert pieces_to_merge([_rec(1, a), _rec(2, b)]) == []
    c = (50.0 - PIECE_OVERLAP * 50.0 + 0.5, 0.0, 100.0, 50.0)  # just under the bound
    assert pieces_to_merge([_rec(1, a), _rec(2, c)]) == []


def test_debris_is_never_merged_into_a_print():
    assert pieces_to_merge([_rec(1, HALF_A), _rec(2, HALF_B, "debris", kind="debris")]) == []


def test_three_pieces_join_through_the_growing_footprint():
    recs = [_rec(1, (0, 0, 60, 40)), _rec(2, (0, 30, 60, 70)), _rec(3, (0, 62, 60, 100)), _rec(4, (200, 0, 240, 40))]
    (m,) = pieces_to_merge(recs)
    assert m.box_um == pytest.approx((0, 0, 60, 100)) and {p.id for p in m.pieces} | {m.keep.id} == {1, 2, 3}


def _field(cell):
    return FieldRecord(cell, cell, 0.0, 0.0, 90.0, "map", 1, 1, 0, 0.1, 0.01, {})


def _truth():
    return {"objects": [{"id": 7, "kind": "structure", "cls": "scaffold", "center_um": [1097.0, 1817.0],
                         "bbox_um": [1029.0, 1749.0, 1166.0, 1886.0]}]}


def test_the_store_keeps_one_record_with_its_pieces_and_the_score_sees_no_duplicate(tmp_path):
    with ResultStore(tmp_path / "t.db") as st:
        sid = st.create_scan("s", tmp_path, {}, 2)
        for cell, box in ((0, HALF_A), (1, HALF_B)):
            st.commit_field(sid, _field(cell), [_rec(0, box, stack_path=f"stacks/{cell}.ome.tif")], [])
        area = (0.0, 0.0, 2000.0, 2000.0)
        assert score(st.objects(sid), _truth(), area)["duplicates"] == 1
        (m,) = merge_pieces(st, sid)
        (one,) = st.objects(sid, "structure")
        assert one.id == m.keep.id and box_of(one) == pytest.approx((1027.31, 1748.07, 1167.43, 1886.50))
        assert one.extra["box_before_pieces_um"] == [round(v, 2) for v in HALF_B]
        (piece,) = one.extra["pieces"]
        assert piece["stack_path"] == "stacks/0.ome.tif" and piece["width_um"] == pytest.approx(122.85)
        s = score(st.objects(sid), _truth(), area)
        assert s["duplicates"] == 0 and s["recall"] == 1.0 and s["structures_found"] == 1
        assert merge_pieces(st, sid) == []  # idempotent: a resumed scan merges nothing twice


def test_merging_a_record_of_another_scan_changes_nothing(tmp_path):
    with ResultStore(tmp_path / "t.db") as st:
        a, b = st.create_scan("a", tmp_path / "a", {}, 1), st.create_scan("b", tmp_path / "b", {}, 1)
        (ka,) = st.commit_field(a, _field(0), [_rec(0, HALF_A)], [])
        (kb,) = st.commit_field(b, _field(0), [_rec(0, HALF_B)], [])
        with pytest.raises(KeyError, match=f"object {kb} is not a record of scan {a}"):
            st.merge_objects(a, ka, [kb], (0.0, 0.0), (1.0, 1.0), {})
        assert box_of(st.objects(a)[0]) == pytest.approx(HALF_A) and len(st.objects(b)) == 1


def test_the_report_shows_one_row_for_the_print_and_links_its_pieces_crop(tmp_path):
    from appliance.results.report import write_report

    out = tmp_path / "scan"
    (out / "crops").mkdir(parents=True)
    with ResultStore(tmp_path / "t.db") as st:
        sid = st.create_scan("s", out, {}, 2)
        for cell, box in ((0, HALF_A), (1, HALF_B)):
            crop = f"crops/{cell}.png"
            (out / crop).write_bytes(b"png")
            st.commit_field(sid, _field(cell), [_rec(0, box, crop_path=crop, plot_path=crop, stack_path=crop,
                                                     frame_path=crop)], [])
        (m,) = merge_pieces(st, sid)
        page = write_report(out, st.scan(sid), st.fields(sid), st.objects(sid), {"structures_found": 1},
                            (90.0, 67.0), (0.0, 0.0, 2000.0, 2000.0)).read_text()
    assert page.count("alt='3-D view") == 1
    assert f"<a href='crops/0.png'>piece {m.pieces[0].id}</a>" in page
