"""Prints larger than the field of view: one record per print, at its centre (appliance/scan/stitch.py and the
runner's ``_whole_or_stitched``).

The geometry is tested on its own against a rectangle print seen through a moving window; the runner with the
ground-truth vision double on a microscope whose field (160 x 120 px at 0.56 µm/px: 90 x 67 µm, the 40x
objective's) is smaller than a 166 µm scaffold, so no view ever holds it whole.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from appliance.results.score import _match
from appliance.results.store import ResultStore
from appliance.scan.calibration import Calibration
from appliance.scan.plan import FocusPlan, GridPlan, ScanPlan
from appliance.scan.protocols import Detection
from appliance.scan.runner import FinishReason
from appliance.scan.session import run_scan, scan_area, sim_microscope
from appliance.scan.stitch import MAX_VIEWS, Footprint, cut_sides, intersect, join_pieces, same_print
from appliance.scan.testing import PlaneFocusMap, SimTruthFocuser, SimTruthVision

FOV = (90.0, 67.0)
SIZE = (160, 120)
TOL = 2.6


def _view(x: float, y: float) -> tuple[float, float, float, float]:
    return (x - FOV[0] / 2, y - FOV[1] / 2, x + FOV[0] / 2, y + FOV[1] / 2)


def _seen(print_um, x, y):
    """The print's box as a view centred at (x, y) shows it, and the sides the view cuts it on."""
    v = _view(x, y)
    b = intersect(print_um, v)
    if b[2] <= b[0] or b[3] <= b[1]:
        return None
    cut = (b[0] <= v[0], b[1] <= v[1], b[2] >= v[2], b[3] >= v[3])
    return b, cut


def _explore(print_um, x, y, lose_after: int | None = None):
    b, cut = _seen(print_um, x, y)
    fp = Footprint.start(b, cut, TOL)
    n = 1
    while (step := fp.next_view()) is not None:
        (vx, vy), sides = step
        before = fp.box_um
        seen = _seen(print_um, vx, vy) if lose_after is None or n < lose_after else None
        n += 1
        if seen is None:
            fp.views += 1
        else:
            fp.add(*seen)
        fp.looked_past(sides, before)
    return fp


@pytest.mark.parametrize("size", [(166.0, 166.0), (111.0, 70.0), (95.0, 200.0), (240.0, 60.0)])
@pytest.mark.parametrize("start", [(0.3, 0.2), (0.8, 0.9), (0.5, 0.5)])
def test_a_print_larger_than_the_field_is_stitched_to_its_whole_box(size, start):
    print_um = (1000.0, 2000.0, 1000.0 + size[0], 2000.0 + size[1])
    x, y = 1000.0 + start[0] * size[0], 2000.0 + start[1] * size[1]
    fp = _explore(print_um, x, y)
    assert fp.box_um == pytest.approx(print_um, abs=1e-6)
    assert not any(fp.open) and fp.views <= MAX_VIEWS
    assert fp.centre_um == pytest.approx((1000 + size[0] / 2, 2000 + size[1] / 2))


def test_a_print_lost_from_view_is_not_chased():
    # the views past the first find nothing of it: every side it was sent to look past is closed, and the
    # footprint is what was seen
    print_um = (0.0, 0.0, 300.0, 300.0)
    fp = _explore(print_um, 150.0, 150.0, lose_after=1)
    assert not any(fp.open) and fp.views == 5  # one look past each side
    assert fp.box_um == pytest.approx(_view(150.0, 150.0))


def test_views_stop_at_the_limit_for_a_print_far_larger_than_the_field():
    fp = _explore((0.0, 0.0, 5000.0, 5000.0), 2500.0, 2500.0)
    assert fp.views == MAX_VIEWS


def test_a_neighbour_is_not_a_piece_of_the_print():
    footprint = (0.0, 0.0, 150.0, 100.0)
    view = _view(150.0, 50.0)
    assert same_print((105.0, 16.5, 195.0, 83.5), footprint, view, TOL)  # the print, going on past the edge
    assert not same_print((180.0, 20.0, 194.0, 60.0), footprint, view, TOL)  # prints lie >= 30 µm apart
    assert not same_print((148.0, 20.0, 170.0, 60.0), footprint, view, TOL)  # touches only its edge
    assert same_print((120.0, 20.0, 140.0, 60.0), footprint, view, TOL)  # a piece inside it


def test_cut_sides_and_joined_pieces():
    assert cut_sides((0, 10, 100, 119), SIZE) == (True, False, False, True)
    assert cut_sides((10, 10, 150, 100), SIZE) == (False, False, False, False)
    a = Detection((0, 0, 60, 120), "debris", "debris", 0.4, recheck=True)
    b = Detection((50, 10, 158, 110), "structure", "split_ring", 0.9)
    j = join_pieces([a, b])
    assert j.box_px == (0, 0, 158, 120) and j.kind == "structure" and j.cls == "split_ring"
    with pytest.raises(ValueError):
        join_pieces([])


def _small_field_scan(tmp_path: Path, seed: int, overlap: float, vision=SimTruthVision):
    sets = {"slide": {"width_um": 1000.0, "height_um": 1000.0, "n_structures": 3, "debris_per_mm2": 10.0},
            "sensor": {"width_px": SIZE[0], "height_px": SIZE[1]}}
    scope = sim_microscope(seed, sets)
    plan = ScanPlan(name="big", grid=GridPlan(overlap=overlap), focus=FocusPlan(stack_range_um=1.0, stack_step_um=1.0))
    p = scope.slide.params
    with scope.stage, scope.camera:
        out = run_scan(scope.stage, scope.camera, vision(scope), SimTruthFocuser(scope), PlaneFocusMap(),
                       plan, tmp_path / "scan", tmp_path / "t.db", scan_area(plan, (p.width_um, p.height_um)),
                       calibration=Calibration.nominal(scope.camera.um_per_px, scope.camera.size_px),
                       device_clock=scope.clock.now_s, truth=scope.slide.truth())
    assert out.status.reason is FinishReason.COMPLETED, out.status.error
    return out, scope


def test_prints_larger_than_the_field_are_recorded_once_at_their_centre(tmp_path):
    # seed 44: a 166 µm scaffold (2 x 3 fields of 90 x 67 µm), a 51 µm micro-lens and a 37 µm woodpile that
    # fit a field but are cut by the edges of the fields around them. Before: the scaffold was recorded from
    # the partial views the centring ended on, 20-40 µm from its centre, and again by the fields that saw
    # its other parts.
    out, scope = _small_field_scan(tmp_path, 44, overlap=10)
    s = out.summary
    truth = scope.slide.truth()["objects"]
    big = [t for t in truth if t["kind"] == "structure" and t["bbox_um"][2] - t["bbox_um"][0] > 2 * FOV[1]]
    assert big, "the slide must hold a print larger than the field"
    assert s["recall"] == 1.0 and s["duplicates"] == 0 and s["type_accuracy"] == 1.0, s
    assert s["structures_found"] == s["structures_truth"] == 3
    with ResultStore(out.db_path) as st:
        objs = st.objects(out.scan_id, "structure")
    for o in objs:
        t = _match(o, truth)
        assert t is not None
        err = math.hypot(o.x_um - t["center_um"][0], o.y_um - t["center_um"][1])
        # the issue's bar is 5 µm (median); session 8's runner autofocuses fields where the map is unsure, so
        # the big scaffold's views come from more than one z and its stitched centre moved from within 3 µm to
        # 4.2 µm (measured on this seed; the tilted-slide fix that caused it is worth more than the 1.2 µm)
        assert err <= 5.0, (t["cls"], err)
        if t in big:
            assert (o.extra or {}).get("footprint_views", 0) >= 3
            assert o.width_um == pytest.approx(t["bbox_um"][2] - t["bbox_um"][0], abs=3.0)


class _SplitsLargeBoxes:
    """Draws every structure box at least ``min_px`` wide as two overlapping boxes: the left half the true
    type, the right half disputed debris that the classifier thinks a woodpile at 0.3 (the detector splitting
    a print too large for the scale it was trained at, as at 40x)."""

    def __init__(self, scope, min_px=100):
        self.inner, self.min_px = SimTruthVision(scope), min_px

    def analyse(self, frame):
        from dataclasses import replace

        from appliance.scan.protocols import VisionResult

        r = self.inner.analyse(frame)
        dets = []
        for d in r.detections:
            x0, y0, x1, y1 = d.box_px
            if d.kind != "structure" or x1 - x0 < self.min_px:
                dets.append(d)
                continue
            mid = (x0 + x1) // 2
            dets.append(replace(d, box_px=(x0, y0, mid + 2, y1), scores={d.cls: 0.9, "woodpile": 0.1}))
            dets.append(Detection((mid - 2, y0, x1, y1), "debris", "debris", 0.6,
                                  {"debris": 0.7, "woodpile": 0.3}, recheck=True))
        return VisionResult(r.n_candidates, tuple(dets), r.timings_s)


def test_a_print_the_detector_splits_is_one_record_of_the_voted_type(tmp_path):
    out, scope = _small_field_scan(tmp_path, 44, overlap=10, vision=_SplitsLargeBoxes)
    s = out.summary
    assert s["recall"] == 1.0 and s["duplicates"] == 0 and s["type_accuracy"] == 1.0, s
    assert s["position_error_um_median"] <= 3.0
    with ResultStore(out.db_path) as st:
        big = [o for o in st.objects(out.scan_id, "structure") if o.width_um > 2 * FOV[1]]
    assert len(big) == 1 and big[0].cls == "scaffold"
    assert abs(big[0].x_um - _match(big[0], scope.slide.truth()["objects"])["center_um"][0]) <= 3.0
