"""A converging micro-lens or a diverging bubble from two frames about focus (appliance/vision/phasesign.py)."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.sim.overrides import sim_microscope
from appliance.vision.phasesign import CONVERGING, DIVERGING, UNCLEAR, PhaseSignRule, phase_sign

BOX = (10, 10, 30, 30)


def _planes(inside_above: float, inside_below: float, glass: float = 200.0) -> tuple[np.ndarray, np.ndarray]:
    above, below = np.full((40, 40), glass), np.full((40, 40), glass)
    above[15:25, 15:25], below[15:25, 15:25] = inside_above, inside_below
    return above, below


def test_a_centre_bright_above_focus_and_dark_below_converges_and_the_reverse_diverges():
    above, below = _planes(240.0, 160.0)
    assert phase_sign(above, below, BOX) == pytest.approx(1.0)
    assert phase_sign(below, above, BOX) == pytest.approx(-1.0)
    # a camera's gamma changes how far, not which way
    assert phase_sign(above ** 0.45, below ** 0.45, BOX) == pytest.approx(1.0)


def test_an_absorber_dark_on_both_sides_is_unclear():
    above, below = _planes(61.0, 60.0)  # a dust clump: 30 % of the glass either side, a hair lighter above
    s = phase_sign(above, below, BOX)
    assert 0.0 < s < 0.01 and PhaseSignRule().call(s) == UNCLEAR
    assert phase_sign(*_planes(200.0, 200.0), BOX) == 0.0


def test_the_glass_is_read_around_the_object_not_across_the_frame():
    above, below = _planes(240.0, 160.0)
    above[:, :5] = below[:, :5] = 0.0  # a dark neighbour at the frame's edge, outside the ring
    above[:, 35:] = 255.0
    assert phase_sign(above, below, BOX) == pytest.approx(1.0)


def test_bad_input_is_named():
    above, below = _planes(240.0, 160.0)
    with pytest.raises(ValueError, match="one shape"):
        phase_sign(above, below[:30], BOX)
    with pytest.raises(ValueError, match=r"inside the 40 x 40 frame and not be empty, got \(30, 10, 30, 20\)"):
        phase_sign(above, below, (30, 10, 30, 20))
    with pytest.raises(ValueError, match="centre_fraction"):
        phase_sign(above, below, BOX, centre_fraction=0.0)
    with pytest.raises(ValueError, match=r"step_dof must be a number in \(0, 2\], got 3"):
        PhaseSignRule(step_dof=3)
    with pytest.raises(ValueError, match="max_diverging"):
        PhaseSignRule(max_diverging=0.1)
    with pytest.raises(ValueError, match="depth_of_field_um must be a number > 0, got 0"):
        PhaseSignRule().step_um(0)
    with pytest.raises(ValueError, match="sign must be a number in"):
        PhaseSignRule().call(float("nan"))
    with pytest.raises(ValueError, match="min_step_um must be a number > 0, got 0"):
        PhaseSignRule(min_step_um=0)


def test_the_planes_lie_at_least_the_tuned_step_from_focus():
    rule = PhaseSignRule()
    assert rule.step_um(11.04) == pytest.approx(4.416)   # 10x / NA 0.25: 0.4 depths of field
    assert rule.step_um(4.1) == 4.4                      # 20x / NA 0.4: not 1.6 µm
    assert rule.step_um(66.0) == pytest.approx(26.4)     # 5x / NA 0.1
    assert rule.far_step_um(11.04) is None and rule.far_step_um(4.1) is None
    assert rule.far_step_um(66.0) == pytest.approx(66.0)  # 5x: a second pair a depth of field out


def test_bad_deep_focus_settings_are_named():
    with pytest.raises(ValueError, match=r"deep_step_dof must be a number in \(0, 2\], got 0"):
        PhaseSignRule(deep_step_dof=0)
    with pytest.raises(ValueError, match=r"deep_from_dof_um must be a number > 0 \(inf: no far pair\), got -1"):
        PhaseSignRule(deep_from_dof_um=-1)
    assert PhaseSignRule(deep_from_dof_um=float("inf")).far_step_um(66.0) is None


def _at(scope, obj, z_um):
    scope.stage.focus_to_um(z_um)
    return scope.camera.capture()


def _box(frame, obj, um_per_px):
    """The object's true box in a frame (its footprint around where it lies in the frame)."""
    h, w = frame.image.shape
    tx, ty = frame.meta["true_position_um"][:2]
    u = (w - 1) / 2 + (obj.center_um[0] - tx) / um_per_px
    v = (h - 1) / 2 + (obj.center_um[1] - ty) / um_per_px
    hw, hh = obj.footprint_um[0] / 2 / um_per_px, obj.footprint_um[1] / 2 / um_per_px
    return (int(u - hw), int(v - hh), int(u + hw) + 1, int(v + hh) + 1)


def _calls_per_kind(sets: dict, errors: tuple[float, ...], n: int = 3, seed: int = 511,
                    step_dof: float | None = None) -> dict[str, list[str]]:
    scope = sim_microscope(seed, sets)
    rule = PhaseSignRule()
    upp = scope.camera.um_per_px
    dof = scope.camera.optics.depth_of_field_um(upp)
    step = rule.step_um(dof) if step_dof is None else step_dof * dof
    by_kind: dict[str, list] = {"microlens": [], "bubble": [], "dust": []}
    for o in scope.slide.objects:
        if o.cls in by_kind and len(by_kind[o.cls]) < n and (
                min(o.footprint_um) >= 16 and (o.cls != "microlens" or max(o.footprint_um) <= 60)):
            by_kind[o.cls].append(o)
    assert all(len(v) == n for v in by_kind.values()), {k: len(v) for k, v in by_kind.items()}
    calls: dict[str, list[str]] = {k: [] for k in by_kind}
    with scope.stage, scope.camera:
        for cls, objs in by_kind.items():
            for o in objs:
                scope.stage.move_to_um(*o.center_um)
                for err in errors:
                    below = _at(scope, o, o.focus_z_um + err - step)
                    above = _at(scope, o, o.focus_z_um + err + step)
                    calls[cls].append(rule.call(phase_sign(above.image, below.image, _box(above, o, upp))))
    return calls


def test_at_20x_the_sign_holds_with_the_focus_5_um_off():
    # 20x / NA 0.4 (4 µm deep): planes 0.4 depths of field out (1.6 µm) called lenses unclear where the focus
    # was found a few µm off; at the tuned 4.4 µm each kind keeps its call within ±5 µm of focus errors
    calls = _calls_per_kind({"slide": {"width_um": 2500.0, "height_um": 2500.0, "n_structures": 6,
                                       "type_mix": (0, 1, 0, 0, 0), "debris_per_mm2": 60.0},
                             "optics": {"magnification": 20.0, "na": 0.4}}, (-5.0, 0.0, 5.0))
    assert calls["microlens"] == [CONVERGING] * 9
    assert calls["bubble"] == [DIVERGING] * 9
    assert CONVERGING not in calls["dust"] and DIVERGING not in calls["dust"]


def test_at_5x_the_far_planes_call_the_bubbles_the_near_ones_leave_unclear():
    # 5x / NA 0.1 (66 µm deep): a slide seed the deep step was not chosen on, the focus found 10 µm off either
    # way (the scan's search at 5x lands about that close). At 0.4 depths of field the bubbles mostly read
    # unclear and were recorded as the micro-lenses the classifier named them; a depth of field out they
    # diverge, and no lens or dust clump does
    sets = {"slide": {"width_um": 3000.0, "height_um": 3000.0, "n_structures": 8, "type_mix": (0, 1, 0, 0, 0),
                      "debris_per_mm2": 40.0}, "optics": {"magnification": 5.0, "na": 0.1}}
    far = _calls_per_kind(sets, (-10.0, 0.0, 10.0), seed=512, step_dof=PhaseSignRule().deep_step_dof)
    near = _calls_per_kind(sets, (-10.0, 0.0, 10.0), seed=512, step_dof=0.4)
    assert DIVERGING not in far["microlens"] and DIVERGING not in far["dust"]
    assert far["bubble"].count(DIVERGING) >= near["bubble"].count(DIVERGING) + 2, (far, near)


def test_the_virtual_microscopes_lenses_converge_its_bubbles_diverge_and_its_dust_is_unclear():
    # A slide seed none of the bounds were chosen on; 3 of each kind large enough for the gate, each read with
    # its focus found 3 µm off either way (the scan's untyped search lands within about that). Lenses up to
    # 60 µm, the sizes the classifier disputes with bubbles: a flat 100 µm lens (focal length ~0.5 mm) reads
    # 0.11-0.15, unclear, and its verdict is the models' as before
    scope = sim_microscope(511, {"slide": {"width_um": 2500.0, "height_um": 2500.0, "n_structures": 6,
                                           "type_mix": (0, 1, 0, 0, 0), "debris_per_mm2": 60.0}})
    rule = PhaseSignRule()
    upp = scope.camera.um_per_px
    step = rule.step_um(scope.camera.optics.depth_of_field_um(upp))
    by_kind: dict[str, list] = {"microlens": [], "bubble": [], "dust": []}
    for o in scope.slide.objects:
        if o.cls in by_kind and len(by_kind[o.cls]) < 3 and (
                min(o.footprint_um) >= 16 and (o.cls != "microlens" or max(o.footprint_um) <= 60)):
            by_kind[o.cls].append(o)
    assert all(len(v) == 3 for v in by_kind.values()), {k: len(v) for k, v in by_kind.items()}
    calls: dict[str, list[str]] = {k: [] for k in by_kind}
    with scope.stage, scope.camera:
        for cls, objs in by_kind.items():
            for o in objs:
                scope.stage.move_to_um(*o.center_um)
                for err in (-3.0, 0.0, 3.0):
                    below = _at(scope, o, o.focus_z_um + err - step)
                    above = _at(scope, o, o.focus_z_um + err + step)
                    calls[cls].append(rule.call(phase_sign(above.image, below.image, _box(above, o, upp))))
    assert calls["microlens"] == [CONVERGING] * 9
    assert calls["bubble"] == [DIVERGING] * 9
    assert CONVERGING not in calls["dust"] and DIVERGING not in calls["dust"]
