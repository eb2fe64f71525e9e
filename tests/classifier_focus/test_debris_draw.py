"""Classifier crops draw debris as a scan meets it: gate-sized clumps, bubbles, lines; few small specks."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import numpy as np

from models.data.crops import DEBRIS_DRAW, _debris_kind, _pick_classifier_target


def _obj(kind: str, cls: str, size_um: float, ident: int) -> SimpleNamespace:
    return SimpleNamespace(id=ident, kind=kind, cls=cls, footprint_um=(size_um, size_um))


def _slide() -> list[SimpleNamespace]:
    # A slide like the simulator's: specks outnumber clumps 20 to 1, as DEBRIS_MIX and LARGE_DUST_FRACTION make.
    objs = [_obj("structure", "pentagon", 40.0, 0)]
    objs += [_obj("debris", "dust", 6.0, 1 + k) for k in range(400)]
    objs += [_obj("debris", "dust", 30.0, 500 + k) for k in range(20)]
    objs += [_obj("debris", c, 60.0, 600 + 10 * i + k) for i, c in enumerate(("fibre", "bubble", "scratch"))
             for k in range(10)]
    return objs


def test_debris_kinds_follow_the_draw_not_the_slide():
    rng = np.random.default_rng(0)
    objs = _slide()
    kinds = Counter()
    for _ in range(4000):
        obj, label = _pick_classifier_target(rng, objs)
        if label == "debris":
            kinds[_debris_kind(obj)] += 1
    n = sum(kinds.values())
    assert n > 1000  # debris is one label of the two on this slide
    for kind, weight in DEBRIS_DRAW:
        assert abs(kinds[kind] / n - weight) < 0.04, (kind, kinds[kind] / n)
    # drawn like any dust, the small specks would be 400 of every 450 debris crops
    assert kinds["dust_small"] / n < 0.2


def test_a_slide_without_clumps_draws_from_the_kinds_it_has():
    rng = np.random.default_rng(1)
    objs = [o for o in _slide() if not (o.cls == "dust" and o.footprint_um[0] > 10)]
    kinds = Counter(_debris_kind(o) for o, lab in (_pick_classifier_target(rng, objs) for _ in range(600))
                    if lab == "debris")
    assert "dust_large" not in kinds and set(kinds) == {"dust_small", "fibre", "bubble", "scratch"}


def test_gate_sized_follows_the_gate_limits():
    assert _debris_kind(_obj("debris", "dust", 12.5, 1)) == "dust_large"  # 156 µm², 12.5 µm
    assert _debris_kind(_obj("debris", "dust", 12.0, 1)) == "dust_small"  # 144 µm² < 150
    assert _debris_kind(_obj("debris", "bubble", 5.0, 1)) == "bubble"


def test_a_bubble_share_gives_bubbles_that_share_and_keeps_the_other_proportions():
    from models.data.crops import debris_draw

    assert debris_draw(dict(DEBRIS_DRAW)["bubble"]) == DEBRIS_DRAW  # the default draws exactly as before
    draw = dict(debris_draw(0.6))
    assert abs(sum(draw.values()) - 1.0) < 1e-9 and draw["bubble"] == 0.6
    assert abs(draw["dust_large"] / draw["fibre"] - 0.35 / 0.15) < 1e-9
    rng = np.random.default_rng(2)
    objs = _slide()
    kinds = Counter()
    for _ in range(4000):
        obj, label = _pick_classifier_target(rng, objs, debris_draw(0.6))
        if label == "debris":
            kinds[_debris_kind(obj)] += 1
    assert abs(kinds["bubble"] / sum(kinds.values()) - 0.6) < 0.04


def test_a_zero_share_never_draws_that_kind_and_a_slide_of_only_it_gives_no_item():
    from models.data.crops import debris_draw

    rng = np.random.default_rng(3)
    picks = [_pick_classifier_target(rng, _slide(), debris_draw(0.0)) for _ in range(600)]
    assert all(_debris_kind(o) != "bubble" for o, lab in picks if lab == "debris")
    only = [_obj("debris", "bubble", 60.0, 1)]
    assert _pick_classifier_target(rng, only, debris_draw(0.0)) is None
