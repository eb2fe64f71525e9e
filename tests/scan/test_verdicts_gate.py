"""The gate's dark candidates as evidence about a detector's box (:mod:`appliance.scan.verdicts`)."""

from appliance.scan.verdicts import gate_cut, gate_sees


def test_a_box_whose_gate_candidate_reaches_the_frames_edge_is_cut():
    box = (116, 122, 579, 367)
    assert gate_cut([(138, 0, 555, 377)], box, (640, 480))  # seed 5005's ring: its dark pixels run to the top
    assert gate_sees([(138, 0, 555, 377)], box)
    assert not gate_cut([(138, 40, 555, 377)], box, (640, 480))  # the same, clear of the edge
    assert not gate_cut([(0, 0, 100, 100)], box, (640, 480))  # a candidate at the edge elsewhere
    assert gate_cut([(100, 100, 640, 400)], box, (640, 480))  # the right edge (exclusive max)
    assert not gate_cut([], box, (640, 480)) and not gate_cut([(138, 0, 555, 377)], (5, 5, 5, 9), (640, 480))
