"""The classical reading's per-type bias: the table, and autofocus taking it off a searched focus only."""

from __future__ import annotations

import pytest

from appliance.focus import autofocus
from appliance.focus.testing import GroundTruthDefocus, centre_on, structures
from appliance.focus.typebias import READING_BIAS_UM, SHAPE_BIAS, reading_bias_um
from appliance.sim.microscope import VirtualMicroscope
from appliance.sim.stage import SimStageParams


def test_the_table_holds_the_types_measured_consistent_on_the_development_slides() -> None:
    assert dict(READING_BIAS_UM) == {"pentagon": 1.0, "microlens": -0.55}
    assert reading_bias_um("pentagon") == 1.0
    assert reading_bias_um("scaffold") == 0.0 and reading_bias_um(None) == 0.0
    with pytest.raises(ValueError, match="reading bias for 'pentagon' must be a finite number of um, got nan"):
        reading_bias_um("pentagon", {"pentagon": float("nan")})


def test_a_lens_bias_follows_its_shape_when_height_and_width_are_known() -> None:
    a, b, c = SHAPE_BIAS["microlens"]
    flat = reading_bias_um("microlens", height_um=5.0, width_um=100.0)  # height / width 0.05
    steep = reading_bias_um("microlens", height_um=20.0, width_um=50.0)  # 0.4
    assert flat == pytest.approx(a + b * 0.05 + c * 5.0) and steep == pytest.approx(a + b * 0.4 + c * 20.0)
    assert flat < -3.0 < 0.0 < steep  # a flat lens reads far below its mid-plane, a steep one a little above
    # beyond the fitted shapes the ratio is held at the nearer end; without both sizes, the type's constant
    assert reading_bias_um("microlens", height_um=2.0, width_um=200.0) == pytest.approx(a + b * 0.05 + c * 2.0)
    assert reading_bias_um("microlens", height_um=30.0, width_um=30.0) == pytest.approx(a + b * 0.5 + c * 30.0)
    assert reading_bias_um("microlens", height_um=10.0) == reading_bias_um("microlens") == -0.55
    assert reading_bias_um("microlens", height_um=10.0, width_um=float("nan")) == -0.55
    assert reading_bias_um("pentagon", height_um=10.0, width_um=50.0) == 1.0  # a constant type stays constant


def _scene(cls: str) -> tuple[VirtualMicroscope, float, tuple[int, int, int, int]]:
    """A fresh, identical microscope, 6 µm above a structure of ``cls``: the start z and the structure's roi."""
    scope = VirtualMicroscope(seed=3, stage=SimStageParams(z_mode="stepper"))
    scope.stage.open()
    scope.camera.open()
    obj = next(o for o in structures(scope) if o.cls == cls)
    start = obj.focus_z_um + 6.0
    return scope, start, centre_on(scope, obj, start)


def _focus(strategy: str, target_type: str | None, **kw: object) -> tuple[float, object, float]:
    # a fresh, identical microscope each time: the same frames, so only the correction differs
    scope, start, roi = _scene("pentagon")
    if kw.pop("net", False):
        kw["estimator"] = GroundTruthDefocus(scope, noise_um=0.1)
    r = autofocus(scope.stage, scope.camera, strategy, z_range_um=(start - 15, start + 15), roi=roi,
                  now_s=scope.clock.now_s, target_type=target_type, **kw)  # type: ignore[arg-type]
    return r.z_um, r, scope.stage.true_position_um().z_um  # type: ignore[attr-defined]


def test_a_searched_focus_is_moved_by_its_types_bias_and_says_so() -> None:
    z0, r0, _ = _focus("classical", None)
    z1, r1, true1 = _focus("classical", "pentagon")
    assert r0.ok and r1.ok and r1.frames == r0.frames  # type: ignore[attr-defined]
    assert z1 == pytest.approx(z0 - 1.0, abs=1 / 32)  # the stepper's step
    assert true1 == pytest.approx(z1, abs=1e-6)  # reached from below: no backlash left
    assert "less the pentagon reading bias +1.00 um" in r1.reason  # type: ignore[attr-defined]
    z2, r2, _ = _focus("classical", "woodpile")  # a type without a measured bias: untouched
    assert z2 == pytest.approx(z0) and "bias" not in r2.reason  # type: ignore[attr-defined]


def test_a_lens_shape_moves_its_searched_focus_and_a_bad_width_is_an_error() -> None:
    scope, start, roi = _scene("microlens")
    kw = dict(z_range_um=(start - 15, start + 15), roi=roi, target_type="microlens", ref_height_um=5.0)
    r = autofocus(scope.stage, scope.camera, "classical", target_width_um=100.0, **kw)  # type: ignore[arg-type]
    want = reading_bias_um("microlens", height_um=10.0, width_um=100.0)
    assert f"less the microlens reading bias {want:+.2f} um" in r.reason
    # a type's typical height (a catalogue's, +-3.5 um) is not the print's own: the type's constant then
    scope, start, roi = _scene("microlens")
    r = autofocus(scope.stage, scope.camera, "classical", target_width_um=100.0, ref_sigma_um=3.5,
                  **kw)  # type: ignore[arg-type]
    assert "less the microlens reading bias -0.55 um" in r.reason
    for bad in (0.0, -3.0, float("nan"), True):
        with pytest.raises(ValueError, match="target_width_um must be a finite number of um > 0"):
            autofocus(scope.stage, scope.camera, "classical", target_width_um=bad, **kw)  # type: ignore[arg-type]


def test_a_nets_answer_is_not_corrected() -> None:
    z0, r0, _ = _focus("neural", None, net=True)
    z1, r1, _ = _focus("neural", "pentagon", net=True)
    assert r1.strategy == "neural" and r1.frames == 2  # type: ignore[attr-defined]
    assert z1 == pytest.approx(z0) and "bias" not in r1.reason  # type: ignore[attr-defined]
