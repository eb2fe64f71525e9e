"""Autofocus strategies on the virtual microscope: a handful of fields each (the 200-field runs are
``tppscan focus bench``, docs/autofocus.md)."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.focus import FocusMap, autofocus
from appliance.focus.autofocus import MAP_WINDOW_K, _map_trusted
from appliance.focus.focusmap import GLASS_PRIOR_SIGMA_UM
from appliance.focus.neural import DefocusEstimate
from appliance.focus.search import SYMMETRY_COVER_UM
from appliance.focus.testing import GroundTruthDefocus, centre_on, find_field, structures
from appliance.sim.microscope import VirtualMicroscope

OFFSETS = (-8.0, 5.0, 9.0, -3.0)


def _run(scope: VirtualMicroscope, k: int, strategy: str, offset: float, span: float = 15.0,
         **kw: object) -> tuple[float, object]:
    obj = structures(scope)[k]
    start = obj.focus_z_um + offset
    roi = centre_on(scope, obj, start)
    r = autofocus(scope.stage, scope.camera, strategy, z_range_um=(start - span, start + span), roi=roi,
                  now_s=scope.clock.now_s, **kw)  # type: ignore[arg-type]
    return scope.stage.true_position_um().z_um - obj.focus_z_um, r


@pytest.mark.parametrize("which", ["servo", "stepper"])
def test_classical_focuses_a_few_fields(which: str, request: pytest.FixtureRequest) -> None:
    scope = request.getfixturevalue(f"{which}_scope")
    dzs, frames, oks = [], [], []
    for k, off in enumerate(OFFSETS + (6.0,)):
        dz, r = _run(scope, k, "classical", off)
        oks.append(r.ok)  # type: ignore[attr-defined]
        dzs.append(abs(dz))
        frames.append(r.frames)  # type: ignore[attr-defined]
        if r.ok:  # type: ignore[attr-defined]
            assert abs(dz) <= 5.0  # an ok focus is never a wrong z (half the depth of field)
        else:
            assert "no focus peak" in r.reason  # type: ignore[attr-defined]
        # Backlash taken up: the slide is where the stage says (focus_to_um approached from below).
        assert scope.stage.true_position_um().z_um == pytest.approx(scope.stage.position_um().z_um)
    # Held out, the median |dz| is about 1 um and only half the fields are within 1 um (docs/autofocus.md):
    # the bar here guards against a search that has lost the lobe, not the 1 um goal it does not meet.
    assert sum(oks) >= 4 and np.median(dzs) <= 2.0, dzs
    assert np.median(frames) <= 8, frames
    if which == "servo":
        assert scope.stage.position_um().z_um == round(scope.stage.position_um().z_um)


def test_sweep_takes_every_step_and_returns_its_best_frame(stepper_scope: VirtualMicroscope) -> None:
    dz, r = _run(stepper_scope, 1, "sweep", 4.0, span=10.0, step_um=2.0)
    assert r.frames == 11  # type: ignore[attr-defined]
    best = max(r.trace, key=lambda t: t[1])[0]  # type: ignore[attr-defined]
    assert r.z_um == pytest.approx(best)  # type: ignore[attr-defined]
    assert abs(dz) <= 6.0


@pytest.mark.parametrize("offset", [-30.0, 30.0])
def test_classical_recovers_from_30_um_out_of_focus(stepper_scope: VirtualMicroscope, offset: float) -> None:
    dz, r = _run(stepper_scope, 0, "classical", offset, span=40.0)
    assert r.ok, r.reason  # type: ignore[attr-defined]
    assert abs(dz) <= 2.0
    assert r.frames <= 20  # type: ignore[attr-defined]


def test_focus_outside_the_range_is_an_error_not_a_wrong_z(stepper_scope: VirtualMicroscope) -> None:
    obj = structures(stepper_scope)[0]
    roi = centre_on(stepper_scope, obj, obj.focus_z_um - 20)
    lo, hi = obj.focus_z_um - 30, obj.focus_z_um - 14  # the focus is 14 um above the range
    r = autofocus(stepper_scope.stage, stepper_scope.camera, "classical", z_range_um=(lo, hi), roi=roi)
    assert not r.ok
    assert "outside the range" in r.reason and "no focus peak" in r.reason
    assert lo - 0.05 <= r.z_um <= hi + 0.05  # the stage rounds to its 1/32 um step


def test_nothing_in_view_is_reported_and_bounded(stepper_scope: VirtualMicroscope) -> None:
    x, y = find_field(stepper_scope, "empty")
    stepper_scope.stage.move_to_um(x=x, y=y)
    stepper_scope.stage.focus_to_um(90.0)
    r = autofocus(stepper_scope.stage, stepper_scope.camera, "classical", z_range_um=(75.0, 105.0))
    assert not r.ok and "nothing in view" in r.reason
    assert r.frames <= 10  # the range at 4 um steps, no runaway
    assert all(75.0 <= z <= 105.0 for z, _ in r.trace)


def _three_point_map(scope: VirtualMicroscope) -> FocusMap:
    # Structure 2 of this slide is a faint split ring the classical search cannot always bracket (a known
    # failure, reported by it as such): the map is built on three others.
    fmap = FocusMap()
    for k, off in zip((0, 1, 3), OFFSETS, strict=False):
        obj = structures(scope)[k]
        _, r = _run(scope, k, "classical", off)
        assert r.ok  # type: ignore[attr-defined]
        fmap.add(*obj.center_um, r.z_um)  # type: ignore[attr-defined]
    return fmap


@pytest.mark.parametrize("want", ["empty", "debris"])
def test_map_carries_fields_with_nothing_or_only_debris(stepper_scope: VirtualMicroscope, want: str) -> None:
    fmap = _three_point_map(stepper_scope)
    x, y = find_field(stepper_scope, want)
    z_pred, sigma = fmap.predict(x, y)
    stepper_scope.stage.move_to_um(x=x, y=y)
    for est in (None, GroundTruthDefocus(stepper_scope)):
        r = autofocus(stepper_scope.stage, stepper_scope.camera, "map", z_range_um=(z_pred - 40, z_pred + 40),
                      focus_map=fmap, xy_um=(x, y), estimator=est)
        window = MAP_WINDOW_K * sigma + 1.0  # + one servo degree / rounding
        assert all(abs(z - z_pred) <= window for z, _ in r.trace), (r.trace, z_pred, sigma)
        assert abs(r.z_um - z_pred) <= window
        assert r.frames <= (1 if want == "empty" else 2 * window / 4 + 2)  # empty: the map alone; else bounded


# ----- neural strategy, driven by a TEST DOUBLE that reads the simulator's truth (not the focus net) ------

def test_neural_with_a_good_estimator_takes_two_frames(servo_scope: VirtualMicroscope) -> None:
    for k, off in enumerate(OFFSETS[:3]):
        dz, r = _run(servo_scope, k, "neural", off, estimator=GroundTruthDefocus(servo_scope, seed=k))
        assert r.strategy == "neural" and r.ok and r.frames == 2, r  # type: ignore[attr-defined]
        assert abs(dz) <= 1.0


def test_neural_falls_back_when_unsure(stepper_scope: VirtualMicroscope) -> None:
    dz, r = _run(stepper_scope, 0, "neural", 6.0, estimator=GroundTruthDefocus(stepper_scope, confidence=0.2))
    assert r.strategy == "neural>classical" and "unsure" in r.reason  # type: ignore[attr-defined]
    assert r.ok and abs(dz) <= 5.0  # type: ignore[attr-defined]


def test_verify_frame_catches_a_confident_wrong_answer(stepper_scope: VirtualMicroscope) -> None:
    wrong = GroundTruthDefocus(stepper_scope, override=lambda k: DefocusEstimate(-9.0, 0.95) if k == 0 else None)
    dz, r = _run(stepper_scope, 1, "neural", 3.0, estimator=wrong)
    assert r.strategy == "neural>classical" and "verify frame disagrees" in r.reason  # type: ignore[attr-defined]
    assert r.ok and abs(dz) <= 5.0  # type: ignore[attr-defined]


def test_neural_with_nothing_in_view_falls_back_and_says_so(stepper_scope: VirtualMicroscope) -> None:
    x, y = find_field(stepper_scope, "empty")
    stepper_scope.stage.move_to_um(x=x, y=y)
    r = autofocus(stepper_scope.stage, stepper_scope.camera, "neural", z_range_um=(75.0, 105.0),
                  estimator=GroundTruthDefocus(stepper_scope))
    assert r.strategy == "neural>classical" and r.reason.startswith("nothing in view")
    assert not r.ok


def test_map_with_an_estimator_takes_one_frame(stepper_scope: VirtualMicroscope) -> None:
    fmap = _three_point_map(stepper_scope)
    obj = structures(stepper_scope)[4]
    roi = centre_on(stepper_scope, obj, 90.0)
    r = autofocus(stepper_scope.stage, stepper_scope.camera, "map", z_range_um=(50.0, 130.0), roi=roi,
                  focus_map=fmap, xy_um=obj.center_um, estimator=GroundTruthDefocus(stepper_scope))
    assert r.frames == 1 and r.ok, r
    assert abs(stepper_scope.stage.true_position_um().z_um - obj.focus_z_um) <= 1.5


@pytest.mark.parametrize("kwargs, match", [
    ({"strategy": "fast"}, "strategy must be one of"),
    ({"z_range_um": (100.0, 90.0)}, "lo < hi"),
    ({"roi": (600, 0, 100, 100)}, "roi must lie inside"),
    ({"strategy": "neural"}, "needs an estimator"),
    ({"strategy": "map"}, "needs a focus_map"),
    ({"mode": "sharpest"}, "mode must be one of"),
    ({"map_trust": 0.4}, "map_trust must be a probability in"),
    ({"map_trust": True}, "map_trust must be a probability in"),
])
def test_bad_arguments_are_value_errors(servo_scope: VirtualMicroscope, kwargs: dict[str, object],
                                        match: str) -> None:
    args: dict[str, object] = {"strategy": "classical", "z_range_um": (80.0, 100.0)}
    args.update(kwargs)
    strategy = args.pop("strategy")
    with pytest.raises(ValueError, match=match):
        autofocus(servo_scope.stage, servo_scope.camera, strategy, **args)  # type: ignore[arg-type]


# ----- the map of the glass: each structure's reference height above the glass is known (print job) -------

def _glass_map(scope: VirtualMicroscope, xy: list[tuple[float, float]]) -> FocusMap:
    # Points on the glass itself, from the slide's truth: a map that is right, to test what the strategy does
    # with it (how good a map the classical search builds is the bench's job).
    fmap = FocusMap(prior_sigma_um=GLASS_PRIOR_SIGMA_UM)
    for x, y in xy:
        fmap.add(x, y, scope.slide.surface_z_um(x, y) + 5.0, offset_um=5.0)
    return fmap


def test_a_sure_map_of_the_glass_focuses_a_new_structure_with_one_frame(stepper_scope: VirtualMicroscope) -> None:
    grid = [(float(x), float(y)) for x in (1500, 5000, 8500) for y in (1500, 5000, 8500)]
    fmap = _glass_map(stepper_scope, grid * 3)
    obj = structures(stepper_scope)[1]
    ref = obj.focus_z_um - stepper_scope.slide.surface_z_um(*obj.center_um)
    assert _map_trusted(100.0, fmap.surface_sigma(*obj.center_um), 100.0, 1.0)
    dz, r = _run(stepper_scope, 1, "map", 7.0, focus_map=fmap, xy_um=obj.center_um, ref_height_um=ref)
    assert r.ok and r.frames == 1 and not r.measured, r  # type: ignore[attr-defined]
    assert abs(dz) <= 1.0
    # Without the structure's reference height the same map predicts the glass: not trusted, a search runs.
    dz, r = _run(stepper_scope, 1, "map", 7.0, focus_map=fmap, xy_um=obj.center_um)
    assert r.frames > 1 and r.measured  # type: ignore[attr-defined]
    # Nor when the caller asks for certainty (a plan's focus.map_trust: 1): every structure is searched.
    dz, r = _run(stepper_scope, 1, "map", 7.0, focus_map=fmap, xy_um=obj.center_um, ref_height_um=ref, map_trust=1.0)
    assert r.frames > 1 and r.measured  # type: ignore[attr-defined]


def test_an_unsure_map_searches_wide_enough_to_measure_a_detected_structure(stepper_scope: VirtualMicroscope) -> None:
    fmap = _glass_map(stepper_scope, [(1000.0, 1000.0), (1500.0, 1020.0), (2000.0, 990.0)])
    obj = structures(stepper_scope)[0]
    ref = obj.focus_z_um - stepper_scope.slide.surface_z_um(*obj.center_um)
    assert not _map_trusted(100.0, fmap.surface_sigma(*obj.center_um), 100.0, 1.0)
    _, r = _run(stepper_scope, 0, "map", -8.0, focus_map=fmap, xy_um=obj.center_um, ref_height_um=ref)
    assert r.measured and r.frames > 1  # type: ignore[attr-defined]
    zs = [z for z, _ in r.trace]  # type: ignore[attr-defined]
    assert max(zs) - min(zs) >= 2 * SYMMETRY_COVER_UM - 4.0 or not r.ok  # type: ignore[attr-defined]
