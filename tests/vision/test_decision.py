"""Structure or debris from the detector's call and the classifier's distribution (appliance/vision/decision.py)."""

from __future__ import annotations

import math

import pytest

from appliance.vision.decision import (
    DecisionRule,
    Evidence,
    decide,
    group_overlapping,
    iou,
    judge,
    lens_disputed,
    likeliest_type,
    too_small,
)

RING = {"split_ring": 0.962, "debris": 0.029, "scaffold": 0.009}  # seed 7's ring, which the detector calls debris
DUST = {"pentagon": 0.05, "debris": 0.95}
BOX = (10.0, 10.0, 50.0, 50.0)


def ev(detector, probs, box=BOX):
    return Evidence(box, detector, probs)


def test_both_models_saying_structure_give_the_classifiers_type():
    v = decide(ev({"structure": 0.8}, {"pentagon": 0.75, "woodpile": 0.2, "debris": 0.05}))
    assert (v.kind, v.cls, v.agree, v.rescued) == ("structure", "pentagon", True, False)
    assert v.confidence == pytest.approx(0.75) and v.structure_prob == pytest.approx(0.95)


def test_structure_mass_not_the_top_label_decides():
    # no single type reaches 0.9, but the types together do: a structure of the likeliest type
    v = decide(ev({"structure": 0.6}, {"woodpile": 0.47, "scaffold": 0.45, "debris": 0.08}))
    assert (v.kind, v.cls) == ("structure", "woodpile")


def test_a_structure_box_the_classifier_is_unsure_of_is_debris_worth_a_second_look():
    # the bubbles recorded as micro-lenses: detector 'structure' 0.6-0.76, classifier's types 0.62-0.83
    v = decide(ev({"structure": 0.7}, {"microlens": 0.62, "debris": 0.38}))
    assert (v.kind, v.agree) == ("debris", False)
    assert decide(ev({"structure": 0.7}, {"microlens": 0.62, "debris": 0.38}),
                  DecisionRule(min_structure=0.5)).kind == "structure"


def test_an_unsure_debris_call_is_overruled_by_a_sure_classifier():
    v = decide(ev({"debris": 0.29}, RING))
    assert (v.kind, v.cls, v.rescued, v.agree) == ("structure", "split_ring", True, False)


def test_a_sure_debris_call_or_an_unsure_classifier_stays_debris():
    sure_detector = decide(ev({"debris": 0.7}, RING))
    assert sure_detector.kind == "debris" and not sure_detector.agree  # models disagree: worth a second look
    assert sure_detector.confidence == pytest.approx(0.7)
    unsure_classifier = decide(ev({"debris": 0.3}, {"microlens": 0.8, "debris": 0.2}))
    assert unsure_classifier.kind == "debris" and not unsure_classifier.rescued
    agreed = decide(ev({"debris": 0.3}, DUST))
    assert agreed.kind == "debris" and agreed.agree


def test_a_debris_call_the_classifier_leans_against_is_disputed_not_final():
    # seed 831's 31 um split ring, sharp: the detector's debris 0.37-0.42 against the ring at 0.50 (debris 0.48);
    # seed 811's 113 um ring in its only field view: debris 0.53 against the ring at 0.61 (debris 0.30)
    for det, probs in [({"debris": 0.42}, {"split_ring": 0.5, "debris": 0.47, "woodpile": 0.03}),
                       ({"debris": 0.53}, {"split_ring": 0.61, "debris": 0.3, "scaffold": 0.09})]:
        v = decide(ev(det, probs))
        assert (v.kind, v.cls, v.agree, v.rescued) == ("debris", "debris", False, False)
    leaning_to_debris = decide(ev({"debris": 0.42}, {"split_ring": 0.45, "debris": 0.55}))
    assert leaning_to_debris.agree  # both say debris: final
    assert decide(ev({"debris": 0.42}, {"split_ring": 0.6, "debris": 0.4}),
                  DecisionRule(dispute_min_structure=0.7)).agree
    with pytest.raises(ValueError, match="dispute_min_structure"):
        DecisionRule(dispute_min_structure=1.5)


def test_classifier_saying_debris_overrules_a_structure_box_and_flags_it():
    v = decide(ev({"structure": 0.9}, DUST))
    assert (v.kind, v.cls, v.agree) == ("debris", "debris", False)
    assert v.confidence == pytest.approx(0.95)


def test_the_rule_can_turn_the_rescue_off_and_is_checked():
    assert decide(ev({"debris": 0.29}, RING), DecisionRule(rescue_max_debris_score=0.0)).kind == "debris"
    assert decide(ev({"debris": 0.29}, RING), DecisionRule(rescue_min_structure=0.99)).kind == "debris"
    with pytest.raises(ValueError, match="rescue_min_structure must be a number in \\[0, 1\\], got 1.5"):
        DecisionRule(rescue_min_structure=1.5)


def test_without_a_classifier_the_detector_call_stands():
    v = decide(ev({"structure": 0.5}, {}))
    assert (v.kind, v.cls) == ("structure", "") and math.isnan(v.structure_prob)
    assert decide(ev({"debris": 0.5}, {})).cls == "debris"


@pytest.mark.parametrize("detector, probs, match", [
    ({"dust": 0.5}, RING, "class must be 'structure' or 'debris', got 'dust'"),
    ({"debris": 1.5}, RING, "debris.*must be a number in \\[0, 1\\], got 1.5"),
    ({"debris": 0.5}, {"pentagon": float("nan")}, "probs\\['pentagon'\\] must be a probability"),
])
def test_bad_evidence_is_refused_with_its_value(detector, probs, match):
    with pytest.raises(ValueError, match=match):
        decide(ev(detector, probs))


def test_boxes_of_both_classes_on_one_object_join_into_one_evidence():
    # detectNet suppresses per class: one micro-lens came out as structure 0.61 and debris 0.39 (seed 7)
    a = ev({"debris": 0.39}, {"microlens": 0.836, "debris": 0.164}, (281, 199, 364, 280))
    b = ev({"structure": 0.61}, {"microlens": 0.832, "debris": 0.168}, (283, 198, 364, 279))
    far = ev({"debris": 0.8}, DUST, (500, 400, 520, 420))
    out = [e for _, e, _ in judge([a, b, far])]
    assert len(out) == 2
    one, other = out if out[0].box == b.box else out[::-1]  # the stronger box leads its group
    assert one.box == b.box and one.detector == {"structure": 0.61, "debris": 0.39}
    assert one.probs["microlens"] == pytest.approx(0.834)
    v = decide(one)  # the detector's stronger class is structure; the classifier, at 0.83, is not sure
    assert (v.kind, v.detector_label, v.agree) == ("debris", "structure", False)
    assert decide(other).kind == "debris"


def test_a_speck_inside_a_large_box_stays_its_own_object():
    big = ev({"structure": 0.9}, {"woodpile": 0.99, "debris": 0.01}, (0, 0, 100, 100))
    speck = ev({"debris": 0.8}, DUST, (40, 40, 50, 50))
    assert len(judge([big, speck])) == 2
    with pytest.raises(ValueError, match="min_iou"):
        group_overlapping([big], min_iou=0.0)


def test_iou_by_hand():
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0


def test_a_box_below_the_gates_size_limits_is_debris_whatever_the_models_say():
    speck = ev({"structure": 0.9}, {"pentagon": 0.99, "debris": 0.01}, (100, 100, 115, 114))  # 8.4 x 7.8 µm
    assert decide(speck).kind == "structure"  # no pixel size: no size limit
    v = decide(speck, um_per_px=0.56)
    assert (v.kind, v.agree) == ("debris", True)
    assert decide(ev({"structure": 0.9}, {"pentagon": 0.99, "debris": 0.01}, (100, 100, 140, 140)),
                  um_per_px=0.56).kind == "structure"  # 22 µm
    with pytest.raises(ValueError, match="um_per_px must be > 0, got 0"):
        decide(speck, um_per_px=0)
    with pytest.raises(ValueError, match="min_size_um must be a number >= 0, got -1"):
        DecisionRule(min_size_um=-1)


def test_a_candidate_the_detector_drew_no_box_on_is_an_unsure_debris_call():
    # seed 5's split ring: the gate found it, the detector scored it 0.22 (below its 0.25), the classifier 0.95
    v = decide(ev({}, {"split_ring": 0.95, "debris": 0.05}))
    assert (v.kind, v.cls, v.rescued, v.detector_label) == ("structure", "split_ring", True, "debris")
    assert decide(ev({}, {"pentagon": 0.8, "debris": 0.2})).kind == "debris"


# The README slide's 20 µm micro-lens, seen once 6.5 µm out of focus: debris to both models
README_LENS = {"debris": 0.321, "microlens": 0.669, "detector_debris": 0.566}


def test_a_round_object_the_classifier_takes_for_a_lens_is_disputed_unless_both_call_it_a_structure():
    v = decide(ev({"debris": README_LENS["detector_debris"]}, {"debris": 0.321, "microlens": 0.669}))
    assert (v.kind, v.agree) == ("debris", False)  # the classifier leans to a lens: disputed
    assert lens_disputed(README_LENS, v.kind, v.agree)
    assert lens_disputed(README_LENS, v.kind, agree=True)  # a lens is looked at even where both say debris
    assert lens_disputed({"microlens": 0.6, "debris": 0.4, "detector_structure": 0.5}, "debris", agree=False)
    assert lens_disputed({"microlens": 0.85, "debris": 0.15}, "structure", agree=False)  # a disputed structure
    assert not lens_disputed({"microlens": 0.95, "debris": 0.05}, "structure", agree=True)
    # seed 93's lens centred: the classifier's debris 0.52, its likeliest type a lens at 0.44
    assert lens_disputed({"debris": 0.523, "microlens": 0.437, "scaffold": 0.015}, "debris", agree=True)


def test_a_box_under_the_size_limits_is_never_a_disputed_lens():
    # 5-8 µm dust specks were micro-lenses to the classifier at 0.36-0.59 (seed 87); debris whatever it says
    speck = {"microlens": 0.59, "debris": 0.41, "detector_debris": 0.5}
    assert lens_disputed(speck, "debris", agree=True)
    assert not lens_disputed(speck, "debris", agree=True, size_um=(7.8, 7.5))
    assert lens_disputed(speck, "debris", agree=True, size_um=(22.0, 22.0))
    assert too_small((7.8, 7.5)) and too_small((20.0, 5.0)) and not too_small((13.0, 12.0))


def test_only_a_lens_above_the_bound_is_disputed():
    assert not lens_disputed({"microlens": 0.2, "debris": 0.8}, "debris", agree=True)
    assert not lens_disputed({"pentagon": 0.6, "microlens": 0.35, "debris": 0.05}, "debris", agree=True)
    assert not lens_disputed({"debris": 1.0}, "debris", agree=True)
    assert not lens_disputed({}, "debris", agree=True)
    assert not lens_disputed(README_LENS, "debris", agree=True, rule=DecisionRule(lens_check_min=0.7))
    with pytest.raises(ValueError, match="lens_check_min must be a number in \\[0, 1\\], got 1.5"):
        DecisionRule(lens_check_min=1.5)


def test_the_likeliest_type_ignores_debris_and_the_detectors_scores():
    assert likeliest_type({"debris": 0.9, "detector_structure": 0.99, "woodpile": 0.06, "scaffold": 0.04}) == "woodpile"
    assert likeliest_type({"debris": 1.0, "detector_debris": 0.7}) == ""


def test_a_large_box_is_rescued_from_a_hedging_debris_call():
    # seed 837's 79 um split ring, sharp: the detector's debris 0.42 against the ring at 0.95; seed 834's 49 um
    # pentagon 0.354 against 0.90. Boxes of 6-22 um with the same scores were dust, 120 times in 13 slides
    ring = {"split_ring": 0.949, "debris": 0.036, "woodpile": 0.015}
    large = (100, 100, 241, 257)  # 79 x 88 um at 0.56 um/px
    v = decide(ev({"debris": 0.417}, ring, large), um_per_px=0.56)
    assert (v.kind, v.cls, v.rescued) == ("structure", "split_ring", True)
    speck = (100, 100, 120, 120)  # 11 um
    assert decide(ev({"debris": 0.417}, ring, speck), um_per_px=0.56).kind == "debris"
    assert decide(ev({"debris": 0.417}, ring, large)).kind == "debris"  # no pixel size: no size to trust
    assert decide(ev({"debris": 0.55}, ring, large), um_per_px=0.56).kind == "debris"  # a surer debris call
    # held-out seed 2364's 25 um pentagon (1280 x 960 sensor): pentagon 0.857, types 0.998, debris 0.47; a
    # 15 um box with the same scores stays dust (the catalogue's smallest print is 20 um)
    pentagon = {"pentagon": 0.857, "woodpile": 0.04, "microlens": 0.045, "scaffold": 0.024, "split_ring": 0.031,
                "debris": 0.002}
    small_print = (100, 100, 145, 143)  # 25 x 24 um
    v = decide(ev({"debris": 0.47}, pentagon, small_print), um_per_px=0.56)
    assert (v.kind, v.cls, v.rescued) == ("structure", "pentagon", True)
    assert decide(ev({"debris": 0.47}, pentagon, (100, 100, 127, 127)), um_per_px=0.56).kind == "debris"
    off = DecisionRule(large_min_size_um=math.inf)
    assert decide(ev({"debris": 0.417}, ring, large), off, um_per_px=0.56).kind == "debris"
    with pytest.raises(ValueError, match="large_min_size_um"):
        DecisionRule(large_min_size_um=-1)
    with pytest.raises(ValueError, match="large_rescue_max_debris_score"):
        DecisionRule(large_rescue_max_debris_score=2)
