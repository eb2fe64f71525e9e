"""The per-frame chain: gate -> detector -> classifier."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.vision.detector import Detector
from appliance.vision.pipeline import Pipeline, gate_candidates, uncovered


class _Typer:
    """Stands in for the LiteRT classifier: names every box by its width, and records the call."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def classify_boxes(self, image, boxes):
        from types import SimpleNamespace

        self.calls.append(len(boxes))
        labels = ["pentagon" if b[2] - b[0] > 20 else "debris" for b in boxes]
        classes = ("pentagon", "debris")
        probs = np.array([[0.9, 0.1] if lab == "pentagon" else [0.1, 0.9] for lab in labels], np.float32)
        return SimpleNamespace(labels=labels, scores=np.full(len(boxes), 0.9, np.float32),
                               probs=probs.reshape(-1, 2), classes=classes)


def test_chain_types_every_detection(tiny_detector, sim_frame):
    typer = _Typer()
    res = Pipeline(Detector(tiny_detector, threshold=0.2), typer, um_per_px=0.56).run(sim_frame)
    assert res.detector_ran and res.gate_candidates > 0 and res.objects
    assert typer.calls == [len(res.objects)]
    assert all(o.type in ("pentagon", "debris") and o.type_score == pytest.approx(0.9) for o in res.objects)
    assert all(o.type_probs[o.type] == pytest.approx(0.9) and set(o.type_probs) == {"pentagon", "debris"}
               for o in res.objects)
    assert (res.width, res.height) == (640, 480)


def test_skip_empty_leaves_bare_glass_alone(tiny_detector):
    typer = _Typer()
    glass = np.random.default_rng(0).normal(150, 2, (480, 640)).clip(0, 255).astype(np.uint8)
    res = Pipeline(Detector(tiny_detector), typer, um_per_px=0.56, skip_empty=True).run(glass)
    assert not res.detector_ran and res.objects == [] and typer.calls == []


def test_gate_finds_a_dark_blob_and_checks_its_scale():
    frame = np.full((100, 120), 180, np.uint8)
    frame[30:60, 40:80] = 60
    assert gate_candidates(frame, 1.0) == [(40, 30, 40, 30)]
    with pytest.raises(ValueError, match="um_per_px"):
        gate_candidates(frame, 0.0)


def test_candidates_no_detector_box_covers_are_classified_when_asked(tiny_detector):
    typer = _Typer()
    frame = np.full((480, 640), 180, np.uint8)
    frame[200:260, 300:360] = 90  # a dark square the gate finds; whatever the tiny detector makes of it
    det = Detector(tiny_detector, threshold=0.99)  # draws no box at this threshold
    plain = Pipeline(det, typer, um_per_px=0.56).run(frame)
    assert plain.gate_candidates == 1 and plain.objects == []
    res = Pipeline(det, typer, um_per_px=0.56, type_uncovered=True).run(frame)
    assert [(o.cls, o.score, o.type) for o in res.objects] == [("", 0.0, "pentagon")]
    x0, y0, x1, y1 = res.objects[0].box
    assert x0 <= 300 and y0 <= 200 and x1 >= 360 and y1 >= 260


def test_a_candidate_reaching_every_edge_wakes_the_detector_but_is_not_typed(tiny_detector):
    """Held-out seed 6719: uneven glass joined with a large print into one dark region the size of the frame."""
    typer = _Typer()
    frame = np.full((480, 640), 180, np.uint8)
    frame[230:250, :] = 90  # a dark cross from edge to edge: one candidate reaching all four edges
    frame[:, 310:330] = 90
    det = Detector(tiny_detector, threshold=0.99)  # draws no box
    pipe = Pipeline(det, typer, um_per_px=0.56, skip_empty=True, type_uncovered=True)
    res = pipe.run(frame)
    assert res.gate_candidates == 1 and res.detector_ran  # the detector looked
    assert res.dark_boxes == [(0, 0, 640, 480)]  # the gate still reports it
    assert res.objects == [] and typer.calls == []  # but a crop of the whole frame is not typed
    frame[:, 310:330] = 180
    frame[230:250, :] = 90  # the bar alone has its top and bottom in view: typed as before
    res = pipe.run(frame)
    assert [o.box for o in res.objects] == [(0.0, 230.0, 640.0, 250.0)] and typer.calls == [1]


def test_spans_frame_by_hand():
    from appliance.vision.pipeline import spans_frame

    assert spans_frame((0, 0, 640, 480), (640, 480)) and spans_frame((-2.0, -1.0, 641.5, 480.0), (640, 480))
    assert not spans_frame((1, 0, 640, 480), (640, 480))  # clear of the left edge
    assert not spans_frame((0, 0, 640, 479), (640, 480))  # clear of the bottom
    assert not spans_frame((0, 0, 640, 100), (640, 480))  # a band across the frame has edges in view


def test_uncovered_by_hand():
    cands = [(0, 0, 10, 10), (50, 50, 10, 10)]
    assert uncovered(cands, [(0, 0, 10, 6)]) == [(50.0, 50.0, 60.0, 60.0)]  # 60 % of the first is covered
    assert uncovered(cands, [(0, 0, 10, 4)]) == [(0.0, 0.0, 10.0, 10.0), (50.0, 50.0, 60.0, 60.0)]


def test_a_texture_candidate_wakes_the_detector_but_is_not_typed_alone(tiny_detector, draw_lattice):
    """Seed 412: a compressing camera's bare glass made texture candidates the classifier named scaffolds."""
    typer = _Typer()
    glass = np.random.default_rng(1).normal(205, 1.0, (480, 640))
    frame = draw_lattice(glass, 200, 120, 240, 4, 0.02)
    from appliance.vision.gate import find_candidates

    cands = find_candidates(frame, 0.56)
    assert len(cands) == 1 and cands[0].rows == ()  # a texture candidate only
    det = Detector(tiny_detector, threshold=0.99)  # draws no box
    res = Pipeline(det, typer, um_per_px=0.56, skip_empty=True, type_uncovered=True).run(frame)
    assert res.gate_candidates == 1 and res.detector_ran  # the detector looked
    assert res.objects == [] and typer.calls == []  # and nothing was typed from the texture alone
    frame[30:90, 40:100] = 100  # a dark candidate beside it is typed as before
    res = Pipeline(det, typer, um_per_px=0.56, skip_empty=True, type_uncovered=True).run(frame)
    assert [(o.cls, o.type) for o in res.objects] == [("", "pentagon")] and typer.calls == [1]


def _obj(box, cls, score, probs):
    from appliance.vision.pipeline import FoundObject

    return FoundObject(box, cls, score, max(probs, key=probs.get) if probs else "", 0.0, probs)


def test_verdicts_weigh_both_models_and_boxes_of_one_object_share_one():
    from appliance.vision.pipeline import verdicts

    sure = {"pentagon": 0.95, "debris": 0.05}
    dust = {"pentagon": 0.3, "debris": 0.7}
    objs = [_obj((11, 10, 50, 51), "debris", 0.3, sure),       # the object below, boxed as debris too
            _obj((10, 10, 50, 50), "structure", 0.8, sure),
            _obj((100, 100, 120, 120), "structure", 0.28, dust),  # dust the detector alone calls structure
            _obj((200, 10, 240, 40), "debris", 0.9, {})]          # no classifier output: the detector's call
    c = verdicts(objs)
    assert [x.object for x in c] == [2, 2, 3, 1]                # numbered strongest detection first
    assert [x.lead for x in c] == [False, True, True, True]     # the object counts once, by its strongest box
    assert c[0].verdict is c[1].verdict
    assert (c[1].verdict.kind, c[1].verdict.cls, c[1].verdict.agree) == ("structure", "pentagon", True)
    assert (c[2].verdict.kind, c[2].verdict.agree) == ("debris", False)
    assert (c[3].verdict.kind, c[3].verdict.agree) == ("debris", True)
    # with the pixel size, a box under the gate's size limits is debris whatever the models say
    assert verdicts([_obj((0, 0, 4, 4), "structure", 0.9, sure)], um_per_px=1.0)[0].verdict.kind == "debris"
    assert verdicts([]) == []
