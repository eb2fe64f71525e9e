"""Reference heights above the glass: the plan's key, where a scan's heights come from, and the scan's focus
adapter focusing structures from the map of the glass (or, for a type without a height, of the foci)."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest

from appliance.focus.bench import scan_order
from appliance.focus.reference import PRINT_JOB_SIGMA_UM, ReferenceHeight, reference_heights, sim_catalogue_reference
from appliance.focus.testing import centre_on
from appliance.results.store import ResultStore
from appliance.scan.adapters import AutofocusFocuser, FocusMapAdapter
from appliance.scan.plan import FocusPlan, ScanPlan
from appliance.sim.microscope import VirtualMicroscope
from appliance.sim.slide import STRUCTURE_TYPES, SlideObject


def test_the_plan_states_reference_heights_per_type_and_round_trips() -> None:
    plan = ScanPlan.from_yaml("focus: {reference_height_um: {pentagon: 10, microlens: 7.5}}")
    assert plan.focus.reference_heights == {"microlens": 7.5, "pentagon": 10.0}
    assert ScanPlan.from_yaml(plan.to_yaml()) == plan
    assert FocusPlan().reference_heights == {}
    assert ScanPlan.from_yaml("focus: {reference_height_um: null}").focus.reference_heights == {}


@pytest.mark.parametrize(("value", "message"), [
    ("5", "focus.reference_height_um: must be a mapping of structure type to um"),
    ("{pentagon: 300}", "focus.reference_height_um.pentagon: must be a number in [-250, 250], got 300"),
    ("{pentagon: .nan}", "focus.reference_height_um.pentagon: must be a number"),
    ("{pentagon: high}", "got 'high'"),
    ("{3: 4}", "a structure type must be a name of 1..40 printable characters, got 3"),
    ("{debris: 2}", "focus.reference_height_um.debris: debris is not a printed structure"),
])
def test_bad_reference_heights_name_the_key_and_the_value(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        ScanPlan.from_yaml(f"focus: {{reference_height_um: {value}}}")


def test_the_plan_says_how_well_its_heights_are_known() -> None:
    # A resin that shrinks, or one design printed in several heights: the stated heights are known less well
    # than a print against its design, and the scan must weigh them so.
    assert FocusPlan().reference_height_sigma_um == PRINT_JOB_SIGMA_UM
    plan = ScanPlan.from_yaml("focus: {reference_height_um: {pentagon: 10}, reference_height_sigma_um: 1.5}")
    assert plan.focus.reference_height_sigma_um == 1.5
    assert ScanPlan.from_yaml(plan.to_yaml()) == plan
    assert reference_heights(plan.focus.reference_heights, virtual=False,
                             sigma_um=plan.focus.reference_height_sigma_um) == {
        "pentagon": ReferenceHeight(10.0, 1.5, "plan")}
    for bad in ("-0.1", "51", ".nan", "wide"):
        with pytest.raises(ValueError, match=re.escape("focus.reference_height_sigma_um: must be a number in [0, 50]")):
            ScanPlan.from_yaml(f"focus: {{reference_height_sigma_um: {bad}}}")


def test_the_plan_says_how_sure_a_map_must_be_to_stand_alone_and_the_focuser_takes_it() -> None:
    from appliance.focus.autofocus import MAP_TRUST_P
    from appliance.scan.adapters import AutofocusFocuser

    assert FocusPlan().map_trust == MAP_TRUST_P
    plan = ScanPlan.from_yaml("focus: {strategy: map, map_trust: 0.95}")
    assert plan.focus.map_trust == 0.95 and ScanPlan.from_yaml(plan.to_yaml()) == plan
    assert AutofocusFocuser("map", (0.0, 200.0), map_trust=plan.focus.map_trust).map_trust == 0.95
    assert AutofocusFocuser("map", (0.0, 200.0)).map_trust == MAP_TRUST_P
    for bad in ("0.4", "1.01", ".nan", "sure"):
        with pytest.raises(ValueError, match=re.escape("focus.map_trust: must be a number in [0.5, 1]")):
            ScanPlan.from_yaml(f"focus: {{map_trust: {bad}}}")


def test_heights_come_from_the_plan_else_the_virtual_catalogue_else_nowhere() -> None:
    stated = reference_heights({"pentagon": 9.0}, virtual=True)
    assert stated == {"pentagon": ReferenceHeight(9.0, PRINT_JOB_SIGMA_UM, "plan")}  # the print job only
    assert reference_heights({}, virtual=False) == {}
    cat = reference_heights({}, virtual=True)
    assert set(cat) == set(STRUCTURE_TYPES) and all(r.source == "sim catalogue" for r in cat.values())
    # The catalogue prints pentagons, scaffolds and split rings 5-30 um tall (uniform): half-height 8.75 um
    # on average, spread 25 / sqrt(12) / 2 = 3.6 um; 1000 draws give the mean to about 0.1 um.
    for cls in ("pentagon", "scaffold", "split_ring"):
        assert cat[cls].height_um == pytest.approx(8.75, abs=0.4)
        assert cat[cls].sigma_um == pytest.approx(3.61, abs=0.3)
    assert all(2.5 <= r.height_um <= 15.0 and r.sigma_um > 1.0 for r in cat.values())
    assert sim_catalogue_reference() is sim_catalogue_reference()  # drawn once


class _Spy:
    """Records the keyword arguments of every ``autofocus`` call the adapter makes."""

    def __init__(self, fn: Any) -> None:
        self.fn, self.calls = fn, []  # type: ignore[var-annotated]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        return self.fn(*args, **kwargs)


def _focus(scope: VirtualMicroscope, focuser: AutofocusFocuser, obj: SlideObject, z_start: float,
           cls: str | None) -> float:
    x, y, w, h = centre_on(scope, obj, z_start)
    out = focuser.focus(scope.stage, scope.camera, z_start, 15.0, (x, y, x + w, y + h), cls=cls)
    return out.z_um


def _half_height(scope: VirtualMicroscope, obj: SlideObject) -> float:
    return obj.focus_z_um - scope.slide.surface_z_um(*obj.center_um)


def test_a_map_of_the_glass_predicts_the_next_structure_from_its_type(servo_scope: VirtualMicroscope) -> None:
    # Four structures of four types, as a print job of four designs would state them. The first three are
    # focused (classical); the map of the glass they make, plus the fourth's height, predicts the fourth.
    objs: list[SlideObject] = []
    for o in scan_order(servo_scope):
        if o.cls not in {p.cls for p in objs}:
            objs.append(o)
    objs = objs[:4]
    refs = reference_heights({o.cls: _half_height(servo_scope, o) for o in objs}, virtual=False)
    fmap = FocusMapAdapter()
    focuser = AutofocusFocuser("classical", servo_scope.stage.params.travel_z_um, fmap,
                               now_s=servo_scope.clock.now_s, reference_heights=refs)
    spy = focuser._autofocus = _Spy(focuser._autofocus)  # type: ignore[method-assign]
    for o in objs[:3]:
        _focus(servo_scope, focuser, o, o.focus_z_um - 6.0, o.cls)
    assert len(fmap.focusing) == 3 and len(fmap.foci) == 3 and len(fmap.inner) == 0  # heights stay measured
    # reading_bias off (a real device's default): the simulator-measured type bias is never applied
    assert all(c["target_type"] is None for c in spy.calls)
    last = objs[3]
    glass_guess = servo_scope.slide.surface_z_um(*last.center_um)  # the field's z: the glass, a structure below
    _focus(servo_scope, focuser, last, glass_guess, last.cls)
    start = spy.calls[-1]["start_um"]
    assert spy.calls[-1]["ref_height_um"] == pytest.approx(_half_height(servo_scope, last))
    # The glass under three classical foci (each within a micrometre or two, whole servo degrees) plus the
    # fourth design's height: the search starts near its focus; the map of the foci of three other designs
    # misses it by their different heights.
    assert abs(start - last.focus_z_um) <= 2.5, (start, last.focus_z_um)
    foci_pred = fmap.foci.predict(*last.center_um)[0]
    assert abs(foci_pred - last.focus_z_um) > abs(start - last.focus_z_um) + 0.5


def test_a_type_without_a_height_is_focused_with_the_map_of_foci_and_the_log_says_so(
        servo_scope: VirtualMicroscope, caplog: pytest.LogCaptureFixture) -> None:
    objs = scan_order(servo_scope)[:3]
    refs = {"pentagon": ReferenceHeight(8.0, PRINT_JOB_SIGMA_UM, "plan")}
    fmap = FocusMapAdapter()
    focuser = AutofocusFocuser("map", servo_scope.stage.params.travel_z_um, fmap,
                               now_s=servo_scope.clock.now_s, reference_heights=refs)
    spy = focuser._autofocus = _Spy(focuser._autofocus)  # type: ignore[method-assign]
    fmap.foci.add(*objs[1].center_um, objs[1].focus_z_um)  # one structure focus already known
    with caplog.at_level(logging.WARNING, logger="appliance.scan.adapters"):
        for _ in range(2):
            _focus(servo_scope, focuser, objs[1], objs[1].focus_z_um + 5.0, "crescent")
    said = [r.getMessage() for r in caplog.records if "crescent" in r.getMessage()]
    assert len(said) == 1, said  # once per type
    assert "no reference height for structure type 'crescent'" in said[0] and "pentagon" in said[0]
    assert all(c["focus_map"] is fmap.foci and c["ref_height_um"] is None for c in spy.calls)
    assert len(fmap.focusing) == 0  # a focus with no height says nothing about the glass


def test_a_scan_hands_each_structures_type_to_the_focus_and_maps_the_glass(tmp_path: Path) -> None:
    # The runner -> adapter -> autofocus path on a small virtual slide (4 structures), named by the
    # ground-truth vision double so the types are right; the focus is the product's (classical, real frames).
    from appliance.scan.plan import ScanPlan
    from appliance.scan.session import run_scan, scan_area, sim_microscope
    from appliance.scan.testing import SMALL_SLIDE, SimTruthVision

    scope = sim_microscope(21, SMALL_SLIDE)
    plan = ScanPlan(name="glass", focus=FocusPlan(stack_range_um=2.0, stack_step_um=2.0))
    refs = reference_heights(plan.focus.reference_heights, virtual=True)
    fmap = FocusMapAdapter()
    p = scope.slide.params
    with scope.stage, scope.camera:
        focuser = AutofocusFocuser("classical", scope.stage.params.travel_z_um, fmap, now_s=scope.clock.now_s,
                                   reference_heights=refs, reading_bias=True)
        spy = focuser._autofocus = _Spy(focuser._autofocus)  # type: ignore[method-assign]
        out = run_scan(scope.stage, scope.camera, SimTruthVision(scope), focuser, fmap, plan, tmp_path / "scan",
                       tmp_path / "t.db", scan_area(plan, (p.width_um, p.height_um)), device_clock=scope.clock.now_s)
    assert out.summary["status"] == "finished"
    with ResultStore(out.db_path) as st:
        recorded = {o.cls for o in st.objects(out.scan_id, "structure")}
    typed = [c for c in spy.calls if c["target_type"] is not None]
    assert recorded and recorded <= {c["target_type"] for c in typed}  # every structure focused with its type
    for c in typed:
        assert c["ref_height_um"] == pytest.approx(refs[c["target_type"]].height_um)
        assert c["ref_sigma_um"] == pytest.approx(refs[c["target_type"]].sigma_um)
    assert all(c["ref_height_um"] is None for c in spy.calls if c["target_type"] is None)  # a field: the glass
    assert 0 < len(fmap.foci) <= len(typed)
    assert len(fmap.focusing) == len(fmap.inner)  # catalogue heights (+-3.5 um) add no point of the glass


def test_the_scan_command_focuses_with_the_plans_heights_and_their_sigma() -> None:
    import argparse

    from appliance.scan.cli import _vision_focus

    scope = VirtualMicroscope(5)
    args = argparse.Namespace(vision="sim-truth", focus="auto", stage="sim", strategy="map",
                              reference_heights={"pentagon": 10.0}, reference_sigma=1.5,
                              map_trust=0.95)
    _, focuser, _, _ = _vision_focus(args, scope, scope.stage, scope.camera.um_per_px)
    assert focuser.reference_heights == {"pentagon": ReferenceHeight(10.0, 1.5, "plan")}
    assert focuser.map_trust == 0.95


def test_the_focuser_gives_a_structures_width_in_um_when_it_knows_the_cameras_scale(
        servo_scope: VirtualMicroscope) -> None:
    # a micro-lens's reading bias follows its height over its width (appliance.focus.typebias.SHAPE_BIAS)
    obj = next(o for o in scan_order(servo_scope) if o.cls == "microlens")
    refs = reference_heights({"microlens": _half_height(servo_scope, obj)}, virtual=False)
    widths = []
    for scale, dof in ((0.5, None), (None, None), (0.5, 22.0)):  # 22 um: another objective, not the fit's
        focuser = AutofocusFocuser("classical", servo_scope.stage.params.travel_z_um, FocusMapAdapter(),
                                   now_s=servo_scope.clock.now_s, reference_heights=refs, reading_bias=True,
                                   um_per_px=scale, depth_of_field_um=dof)
        spy = focuser._autofocus = _Spy(focuser._autofocus)  # type: ignore[method-assign]
        x, y, w, h = centre_on(servo_scope, obj, obj.focus_z_um + 4.0)
        focuser.focus(servo_scope.stage, servo_scope.camera, obj.focus_z_um + 4.0, 15.0, (x, y, x + w, y + h),
                      cls="microlens")
        focuser.focus(servo_scope.stage, servo_scope.camera, obj.focus_z_um + 4.0, 15.0, None)  # a field's own
        widths.append((spy.calls[0]["target_width_um"], max(w, h), spy.calls[-1]["target_width_um"]))
    (given, side, field), (unscaled, _, _), (other_objective, _, _) = widths
    assert given == pytest.approx(0.5 * side) and field is None and unscaled is None and other_objective is None
    for bad in (0.0, -1.0, float("nan"), True):
        with pytest.raises(ValueError, match="um_per_px must be a number in"):
            AutofocusFocuser("classical", (0.0, 100.0), um_per_px=bad)  # type: ignore[arg-type]
