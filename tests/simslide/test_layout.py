"""Placement: structures keep their margin, debris stays off structures, queries match brute force."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from appliance.sim.slide import (
    DEBRIS_CLEARANCE_UM,
    EDGE_MARGIN_UM,
    STRUCTURE_MARGIN_UM,
    STRUCTURE_TYPES,
    SlideParams,
    make_slide,
)


def _overlap(a, b, margin=0.0) -> bool:
    return a[0] - margin < b[2] and b[0] - margin < a[2] and a[1] - margin < b[3] and b[1] - margin < a[3]


def test_structures_do_not_overlap_and_keep_the_margin(slide):
    st = [o for o in slide.objects if o.kind == "structure"]
    assert len(st) == 20
    for i, a in enumerate(st):
        x0, y0, x1, y1 = a.bbox_um
        assert x0 >= EDGE_MARGIN_UM and y0 >= EDGE_MARGIN_UM
        assert x1 <= slide.params.width_um - EDGE_MARGIN_UM and y1 <= slide.params.height_um - EDGE_MARGIN_UM
        for b in st[i + 1:]:
            assert not _overlap(a.bbox_um, b.bbox_um, STRUCTURE_MARGIN_UM)


def test_debris_is_never_on_a_structure(slide):
    st = [o for o in slide.objects if o.kind == "structure"]
    debris = [o for o in slide.objects if o.kind == "debris"]
    assert len(debris) > 500
    for d in debris:
        x0, y0, x1, y1 = d.bbox_um
        assert 0 <= x0 and 0 <= y0 and x1 <= slide.params.width_um and y1 <= slide.params.height_um
        assert not any(_overlap(d.bbox_um, s.bbox_um, DEBRIS_CLEARANCE_UM) for s in st)


def test_debris_count_follows_density(slide):
    n = sum(o.kind == "debris" for o in slide.objects) + slide.debris_dropped
    expected = slide.params.debris_per_mm2 * slide.params.width_um * slide.params.height_um / 1e6
    assert abs(n - expected) < 4 * np.sqrt(expected)  # Poisson, 4 sigma
    assert slide.debris_dropped < 5


def test_every_debris_type_and_some_the_size_of_structures(slide):
    debris = [o for o in slide.objects if o.kind == "debris"]
    assert set(Counter(o.cls for o in debris)) == {"dust", "fibre", "bubble", "scratch"}
    sized = [o for o in debris if 20.0 <= max(o.footprint_um) <= 120.0]
    assert Counter(o.cls for o in sized).keys() >= {"dust", "fibre", "bubble"}
    assert len(sized) >= 30


def test_even_mix_gives_equal_counts_and_mix_is_obeyed(slide):
    counts = Counter(o.cls for o in slide.objects if o.kind == "structure")
    assert counts == dict.fromkeys(STRUCTURE_TYPES, 4)
    s = make_slide(1, SlideParams(n_structures=10, type_mix=(0, 3, 0, 1, 0), debris_per_mm2=0))
    assert Counter(o.cls for o in s.objects) == {"microlens": 8, "pentagon": 2}


def test_ids_are_positions_structures_first(slide):
    assert [o.id for o in slide.objects] == list(range(len(slide.objects)))
    kinds = [o.kind for o in slide.objects]
    assert kinds == sorted(kinds, key=lambda k: k != "structure")


def test_objects_in_rect_matches_brute_force(slide):
    rng = np.random.default_rng(0)
    for _ in range(200):
        x0, y0 = rng.uniform(-200, 10000, size=2)
        w, h = rng.uniform(10, 1500, size=2)
        got = [o.id for o in slide.objects_in_rect(x0, y0, x0 + w, y0 + h)]
        want = [o.id for o in slide.objects if _overlap(o.bbox_um, (x0, y0, x0 + w, y0 + h))
                or (o.bbox_um[2] == x0 or o.bbox_um[0] == x0 + w)]
        assert got == want
    # A rectangle around a structure finds it, given its corners in either order.
    s = slide.objects[0]
    x0, y0, x1, y1 = s.bbox_um
    assert s in slide.objects_in_rect(x1, y1, x0, y0)


def test_truth_round_trips_through_json(slide):
    t = slide.truth()
    back = json.loads(json.dumps(t))
    assert back == t
    assert back["seed"] == 7 and len(back["objects"]) == len(slide.objects)
    o = back["objects"][0]
    assert {"id", "kind", "cls", "center_um", "footprint_um", "max_height_um", "focus_z_um",
            "rotation_deg"} <= o.keys()
    s = slide.objects[0]
    assert o["center_um"] == list(s.center_um) and o["focus_z_um"] == s.focus_z_um


@pytest.mark.parametrize("mix", [None, (1.0, 2.0, 0.0, 0.5, 1.0)])
def test_truth_params_round_trip(mix):
    s = make_slide(0, SlideParams(n_structures=4, type_mix=mix, debris_per_mm2=0.5, width_um=3000,
                                  height_um=3000))
    p = json.loads(json.dumps(s.truth()))["params"]
    if p["type_mix"] is not None:
        p["type_mix"] = tuple(p["type_mix"])
    assert SlideParams(**p) == s.params


def test_truth_in_rect_clips_boxes_to_the_view(slide):
    s = slide.objects[0]
    x0, y0, x1, y1 = s.bbox_um
    mx, my = (x0 + x1) / 2, (y0 + y1) / 2
    # A view that covers the left half of the structure sees it half.
    view = slide.truth_in_rect(x0 - 50, y0 - 50, mx, y1 + 50)
    mine = [v for v in view if v["id"] == s.id]
    assert len(mine) == 1
    v = mine[0]
    assert v["cls"] == s.cls and v["bbox_um"] == list(s.bbox_um)
    assert v["visible_bbox_um"] == [x0, y0, mx, y1]
    assert v["visible_fraction"] == pytest.approx(0.5)
    assert [v["id"] for v in view] == [o.id for o in slide.objects_in_rect(x0 - 50, y0 - 50, mx, y1 + 50)]
    whole = [v for v in slide.truth_in_rect(x0 - 1, y0 - 1, x1 + 1, y1 + 1) if v["id"] == s.id][0]
    assert whole["visible_fraction"] == pytest.approx(1.0)
    assert slide.truth_in_rect(mx, my, mx + 0.001, my + 0.001)[0]["id"] == s.id


def test_write_truth(slide, tmp_path):
    path = tmp_path / "truth.json"
    slide.write_truth(path)
    assert json.loads(path.read_text(encoding="utf-8")) == slide.truth()


def test_with_structure_adds_one_print_and_clears_debris_from_its_box():
    from appliance.sim.structures import pentagon

    base = make_slide(9, SlideParams(width_um=2000, height_um=2000, n_structures=0, debris_per_mm2=200.0))
    shape = pentagon(np.random.default_rng(1), circumradius_um=30.0)
    slide = base.with_structure("pentagon", shape, (1000.0, 1000.0), np.random.default_rng(2))
    new = slide.objects[-1]
    assert new.kind == "structure" and new.cls == "pentagon" and new.loss_exponent >= 2.0
    assert new.id == max(o.id for o in base.objects) + 1
    x0, y0, x1, y1 = new.bbox_um
    assert not [o for o in slide.objects_in_rect(x0, y0, x1, y1) if o.kind == "debris"]
    assert len(base.objects) > len(slide.objects) - 1  # some debris was there and was left out
    with pytest.raises(ValueError, match="cls"):
        base.with_structure("cube", shape, (1000.0, 1000.0), np.random.default_rng(2))
