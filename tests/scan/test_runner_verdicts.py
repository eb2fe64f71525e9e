"""How the runner acts on the vision's verdicts: unsure debris is looked at again, and the focused frame has the
last word (appliance/scan/runner.py; the verdicts themselves: appliance/vision/decision.py).

Vision doubles built on the ground-truth double play the product models' known mistakes on purpose."""

from __future__ import annotations

import json
import logging
import math
import sqlite3
from dataclasses import replace

import pytest

import appliance.scan.phase_reading as phase_reading_module
import appliance.scan.runner as runner_module
import appliance.scan.sharp_view as sharp_view_module
import appliance.scan.structure_verdict as structure_verdict_module
from appliance.scan.field_focus import FIELD_VIEW_ABOVE_GLASS_UM
from appliance.scan.plan import FocusPlan, GridPlan, ScanPlan
from appliance.scan.protocols import Detection, VisionResult
from appliance.scan.runner import FinishReason
from appliance.scan.session import run_scan, scan_area, sim_height_truth, sim_microscope
from appliance.scan.testing import PlaneFocusMap, SimTruthFocuser, SimTruthVision
from appliance.vision.phasesign import PhaseSignRule

SLIDE = {"width_um": 1400.0, "height_um": 1400.0, "n_structures": 4}
PLAN = ScanPlan(name="verdicts", focus=FocusPlan(stack_range_um=2.0, stack_step_um=1.0))


def _scan(tmp_path, seed, make_vision, focuser_wrap=None, slide=SLIDE, plan=PLAN, optics=None):
    scope = sim_microscope(seed, {"slide": slide, "optics": optics or {}})
    p = scope.slide.params
    with scope.stage, scope.camera:
        vision = make_vision(scope)
        focuser = SimTruthFocuser(scope)
        if focuser_wrap is not None:
            focuser = focuser_wrap(focuser, vision)
        out = run_scan(scope.stage, scope.camera, vision, focuser, PlaneFocusMap(), plan, tmp_path / "scan",
                       tmp_path / "t.db", scan_area(plan, (p.width_um, p.height_um)),
                       device_clock=scope.clock.now_s, truth=scope.slide.truth(),
                       height_truth=sim_height_truth(scope))
    assert out.status.reason is FinishReason.COMPLETED, out.status.error
    return out.summary


class _DebrisUnlessCentred:
    """Calls every structure ``debris`` unless its box is centred in the frame (a detector that knows a faint
    ring only when it sees it whole); ``recheck`` says whether it admits being unsure. It reports nothing cut
    by the frame's edge, so only ``recheck`` can bring the runner to centre a structure."""

    def __init__(self, scope, recheck):
        self.inner, self.recheck = SimTruthVision(scope), recheck

    def analyse(self, frame):
        r = self.inner.analyse(frame)
        h, w = frame.image.shape
        dets = []
        for d in r.detections:
            if d.touches_edge((w, h)):
                continue
            x0, y0, x1, y1 = d.box_px
            centred = abs((x0 + x1) / 2 - w / 2) <= 20 and abs((y0 + y1) / 2 - h / 2) <= 20
            if d.kind == "structure" and not centred:  # the classifier's word too: a lens at 1.0 would be disputed
                d = replace(d, kind="debris", cls="debris", confidence=0.4, scores={"debris": 1.0},
                            recheck=self.recheck)
            dets.append(d)
        return VisionResult(r.n_candidates, tuple(dets), r.timings_s)


def test_debris_the_vision_is_unsure_of_is_centred_and_looked_at_again(tmp_path):
    # 45 % overlap: every structure lies whole, off the frame's edge, in some field
    slide, plan = {"width_um": 1000.0, "height_um": 1000.0, "n_structures": 3}, replace(PLAN, grid=GridPlan(overlap=45))
    s = _scan(tmp_path / "unsure", 31, lambda scope: _DebrisUnlessCentred(scope, recheck=True), slide=slide, plan=plan)
    assert s["structures_truth"] == 3
    assert s["recall"] == 1.0 and s["type_accuracy"] == 1.0 and s["duplicates"] == 0
    # the same double, sure of its mistake: the structures are recorded as debris from the field frames
    s = _scan(tmp_path / "sure", 31, lambda scope: _DebrisUnlessCentred(scope, recheck=False), slide=slide, plan=plan)
    assert s["recall"] == 0.0


class _SharpPoint:
    """Wraps a focuser; remembers where the stage stood after each focus on a region (the structure's focus)."""

    def __init__(self, inner, vision):
        self.inner, self.vision = inner, vision

    def focus(self, stage, camera, z_guess_um, range_um, roi_px=None, cls=None):
        out = self.inner.focus(stage, camera, z_guess_um, range_um, roi_px, cls=cls)
        if roi_px is not None:
            p = stage.position_um()
            self.vision.sharp = (p.x_um, p.y_um, p.z_um)
        return out


def _taken_at(frame, point):
    """Whether ``frame`` was taken where the stage stood at ``point`` (x, y, z µm; None: nowhere yet)."""
    p = frame.position
    return point is not None and all(abs(a - b) <= 1e-6 for a, b in zip((p.x_um, p.y_um, p.z_um), point, strict=True))


class _FocusOff:
    """Wraps the truth focuser; every focus on a region ends ``OFF_UM`` above it (a search at 5x / NA 0.1 lands
    about that close: 66 µm of depth of field), and it says the objective's depth of field as the product's does."""

    OFF_UM = 8.0

    def __init__(self, inner, vision):
        self.inner = inner
        camera = inner.scope.camera
        self.depth_of_field_um = camera.optics.depth_of_field_um(camera.um_per_px)

    def focus(self, stage, camera, z_guess_um, range_um, roi_px=None, cls=None):
        out = self.inner.focus(stage, camera, z_guess_um, range_um, roi_px, cls=cls)
        if roi_px is None:
            return out
        stage.focus_to_um(out.z_um + self.OFF_UM)
        return replace(out, z_um=stage.position_um().z_um)


class _DirtLooksLikeAPrintUnlessSharp:
    """Names every piece of debris a pentagon, except in the frame taken at a structure focus, where it is seen
    for what it is (a classifier that takes blurred dust for a print)."""

    def __init__(self, scope):
        self.inner, self.sharp = SimTruthVision(scope), None

    def analyse(self, frame):
        r = self.inner.analyse(frame)
        p = frame.position
        sharp = self.sharp is not None and all(abs(a - b) < 1e-6 for a, b in zip((p.x_um, p.y_um, p.z_um),
                                                                                   self.sharp, strict=True))
        dets = [d if d.kind == "structure" or sharp else replace(d, kind="structure", cls="pentagon", confidence=0.9)
                for d in r.detections]
        return VisionResult(r.n_candidates, tuple(dets), r.timings_s)


def test_the_focused_frame_overrules_a_structure_verdict(tmp_path):
    s = _scan(tmp_path, 32, _DirtLooksLikeAPrintUnlessSharp, _SharpPoint)
    assert s["debris_recorded"] > 0  # every one of them was taken for a pentagon in the field frame
    assert s["debris_as_structure"] == 0.0 and s["false_structures"] == 0
    assert s["recall"] == 1.0 and s["duplicates"] == 0


class _AlwaysDisputed:
    """Calls every structure ``debris`` but admits being unsure, centred or not: the runner's last look is a focus."""

    def __init__(self, scope):
        self.inner = SimTruthVision(scope)

    def analyse(self, frame):
        r = self.inner.analyse(frame)
        dets = tuple(replace(d, kind="debris", cls="debris", confidence=0.4, recheck=True) if d.kind == "structure"
                     else d for d in r.detections)
        return VisionResult(r.n_candidates, dets, r.timings_s)


class _TypesSeen:
    """Records the ``cls`` every structure focus is asked with."""

    def __init__(self, inner, _vision):
        self.inner, self.types = inner, []

    def focus(self, stage, camera, z_guess_um, range_um, roi_px=None, cls=None):
        if roi_px is not None:
            self.types.append(cls)
        return self.inner.focus(stage, camera, z_guess_um, range_um, roi_px, cls=cls)


def test_disputed_debris_is_focused_without_a_structure_type(tmp_path):
    # a piece focused for its last look is no structure type: 'debris' has no reference height, and its focus
    # (on the glass) must not join the map of structure foci that types without a height are focused with
    seen = []

    def wrap(inner, vision):
        f = _TypesSeen(inner, vision)
        seen.append(f)
        return f

    s = _scan(tmp_path, 31, _AlwaysDisputed, focuser_wrap=wrap)
    assert s["structures_truth"] == 4 and s["recall"] == 0.0  # the double never gives in
    assert seen[0].types, "no disputed piece was focused for a last look"
    assert "debris" not in seen[0].types


class _DisputedWhenSharp:
    """Sees every structure as one, except in the frame taken at its focus, where the two models disagree on it:
    debris to the vision, unsure (``recheck``), the classifier's scores still naming the type (the README
    slide's 21 µm micro-lens: ``structure`` 0.29 to the detector, 0.85 to the classifier when sharp). With
    ``sure`` the sharp frame's debris verdict is one both models agree on."""

    def __init__(self, scope, sure=False):
        self.inner, self.sharp, self.sure = SimTruthVision(scope), None, sure

    def analyse(self, frame):
        r = self.inner.analyse(frame)
        p = frame.position
        sharp = self.sharp is not None and all(abs(a - b) < 1e-6 for a, b in zip((p.x_um, p.y_um, p.z_um),
                                                                                   self.sharp, strict=True))
        dets = tuple(replace(d, kind="debris", cls="debris", confidence=0.6, recheck=not self.sure,
                             scores={d.cls: 0.55, "woodpile": 0.3, "debris": 0.15, "detector_structure": 0.29})
                     if sharp and d.kind == "structure" else d for d in r.detections)
        return VisionResult(r.n_candidates, dets, r.timings_s)


def test_a_disputed_sharp_frame_does_not_overrule_a_structure(tmp_path):
    s = _scan(tmp_path / "disputed", 32, _DisputedWhenSharp, _SharpPoint)
    assert s["structures_truth"] == 4
    assert s["recall"] == 1.0 and s["type_accuracy"] == 1.0 and s["duplicates"] == 0
    # a sure debris verdict when sharp still has the last word
    s = _scan(tmp_path / "sure", 32, lambda scope: _DisputedWhenSharp(scope, sure=True), _SharpPoint)
    assert s["recall"] == 0.0


class _LostWhenCentredSpeckBeside:
    """Loses every structure once it is centred (a faint print the gate passes over in that view) and sees a
    speck of dust 150 px right of and 100 px below where the first one was centred, wherever that speck is in
    view: the nearest detection to the frame's centre is then another object."""

    def __init__(self, scope):
        self.inner, self.upp, self.specks = SimTruthVision(scope), scope.camera.um_per_px, []

    def analyse(self, frame):
        r = self.inner.analyse(frame)
        h, w = frame.image.shape
        p = frame.position
        dets = []
        for d in r.detections:
            x0, y0, x1, y1 = d.box_px
            cx, cy = (x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2
            if d.kind == "structure" and abs(cx - (w - 1) / 2) <= 10 and abs(cy - (h - 1) / 2) <= 10:
                if not self.specks:
                    self.specks.append((p.x_um + 150 * self.upp, p.y_um + 100 * self.upp))
                continue
            dets.append(d)
        for sx, sy in self.specks:
            u, v = (w - 1) / 2 + (sx - p.x_um) / self.upp, (h - 1) / 2 + (sy - p.y_um) / self.upp
            if 10 <= u < w - 10 and 10 <= v < h - 10:
                box = (int(u) - 5, int(v) - 5, int(u) + 5, int(v) + 5)
                dets.append(Detection(box, "debris", "debris", 0.9, {"debris": 0.9}))
        return VisionResult(r.n_candidates, tuple(dets), r.timings_s)


def test_centring_does_not_follow_another_object(tmp_path):
    vision = []

    def make(scope):
        vision.append(_LostWhenCentredSpeckBeside(scope))
        return vision[-1]

    s = _scan(tmp_path, 32, make)
    assert vision[0].specks, "no structure was centred"
    assert s["structures_truth"] == 4 and s["recall"] == 1.0 and s["duplicates"] == 0


class _DirtIsAPrintWhenBlurred:
    """Takes every piece of debris for a pentagon (both models sure) when the frame is more than 4 µm further
    from the glass under it than the plane a field is viewed at (``FIELD_VIEW_ABOVE_GLASS_UM`` up), and is
    unsure of it (debris, ``recheck``) nearer the glass; structures are structures. Dust and bubbles seen far
    from their focus pass for prints (docs/scan.md, "Structure or debris")."""

    def __init__(self, scope):
        self.inner, self.scope, self.blurred_dirt = SimTruthVision(scope), scope, 0

    def analyse(self, frame):
        r = self.inner.analyse(frame)
        tx, ty, tz = frame.meta["true_position_um"]
        blurred = abs(tz - self.scope.slide.surface_z_um(tx, ty)) > FIELD_VIEW_ABOVE_GLASS_UM + 4.0
        dets = []
        for d in r.detections:
            if d.kind != "structure":
                self.blurred_dirt += blurred
                d = replace(d, kind="structure", cls="pentagon", confidence=0.95, scores={"pentagon": 0.95}) \
                    if blurred else replace(d, recheck=True, scores={"pentagon": 0.5, "debris": 0.5})
            dets.append(d)
        return VisionResult(r.n_candidates, tuple(dets), r.timings_s)


def test_objects_are_centred_at_the_field_focus_not_the_last_structure_focus(tmp_path):
    vision = []

    def make(scope):
        vision.append(_DirtIsAPrintWhenBlurred(scope))
        return vision[-1]

    s = _scan(tmp_path, 32, make, slide={**SLIDE, "debris_per_mm2": 60.0})
    assert s["structures_truth"] == 4 and s["recall"] == 1.0
    assert s["debris_recorded"] > 0 and s["debris_as_structure"] == 0.0


class _DisputedOnceCentred:
    """Sure of every structure in the field frames, unsure once it is centred and in every view after (debris,
    ``recheck``): the classifier that lost a 167 µm scaffold among dense dust once it filled the view."""

    def __init__(self, scope):
        self.inner = SimTruthVision(scope)

    def analyse(self, frame):
        r = self.inner.analyse(frame)
        h, w = frame.image.shape
        dets = []
        for d in r.detections:
            x0, y0, x1, y1 = d.box_px
            centred = abs((x0 + x1) / 2 - w / 2) <= 20 and abs((y0 + y1) / 2 - h / 2) <= 20
            if d.kind == "structure" and centred:
                d = replace(d, kind="debris", cls="debris", confidence=0.6, recheck=True,
                            scores={d.cls: 0.2, "debris": 0.8, "detector_structure": 0.9})
            dets.append(d)
        return VisionResult(r.n_candidates, tuple(dets), r.timings_s)


def test_a_sure_structure_stands_against_a_disputed_centred_view(tmp_path):
    s = _scan(tmp_path, 32, _DisputedOnceCentred)
    assert s["structures_truth"] == 4
    assert s["recall"] == 1.0 and s["type_accuracy"] == 1.0 and s["duplicates"] == 0


class _SureDebrisThenDisputed:
    """Sure of every structure in the field frames until it first comes near the frame's centre; that view is
    sure it is debris and draws its box 12 px to the right (so the runner moves again); every later view of it,
    anywhere, is unsure (debris, ``recheck``). The seed-116 bubble: a micro-lens in its field, sure debris
    centred, disputed after."""

    def __init__(self, scope):
        self.inner, self.upp, self.seen = SimTruthVision(scope), scope.camera.um_per_px, []

    def _known(self, x, y):
        return any(abs(x - a) < 40 and abs(y - b) < 40 for a, b in self.seen)

    def analyse(self, frame):
        r = self.inner.analyse(frame)
        h, w = frame.image.shape
        tx, ty, _ = frame.meta["true_position_um"]
        dets = []
        for d in r.detections:
            x0, y0, x1, y1 = d.box_px
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            sx, sy = tx + (cx - w / 2) * self.upp, ty + (cy - h / 2) * self.upp
            if d.kind == "structure" and self._known(sx, sy):
                d = replace(d, kind="debris", cls="debris", recheck=True, scores={d.cls: 0.5, "debris": 0.5})
            elif d.kind == "structure" and abs(cx - w / 2) <= 30 and abs(cy - h / 2) <= 30:
                self.seen.append((sx, sy))
                d = replace(d, box_px=(x0 + 12, y0, x1 + 12, y1), kind="debris", cls="debris", recheck=False)
            dets.append(d)
        return VisionResult(r.n_candidates, tuple(dets), r.timings_s)


def test_a_sure_debris_view_while_centring_overrules_a_structure(tmp_path):
    vision = []

    def make(scope):
        vision.append(_SureDebrisThenDisputed(scope))
        return vision[-1]

    s = _scan(tmp_path, 32, make)
    assert vision[0].seen, "no structure was centred"
    assert s["structures_truth"] == 4 and s["recall"] == 0.0


def _print_under(scope, box):
    """The true print a box in the frame the stage stands at overlaps, or None."""
    true = scope.stage.true_position_um()
    over = [b for b in scope.boxes_at(true.x_um, true.y_um) if b.box_px[0] < box[2] and box[0] < b.box_px[2]
            and b.box_px[1] < box[3] and box[1] < b.box_px[3]]
    return next((b for b in over if b.kind == "structure"), None)


class _RelabelTruth:
    """The ground truth's vision, except that the true objects :meth:`relabel` picks get the models' mistaken word."""

    def __init__(self, scope):
        self.inner, self.scope, self.seen = SimTruthVision(scope), scope, set()

    def relabel(self, det, truth):
        """The detection as the models would give it for this true object, or None to keep the truth's."""
        raise NotImplementedError

    def analyse(self, frame):
        r = self.inner.analyse(frame)
        truth = {t.box_px: t for t in self.scope.boxes_in_view(frame)}
        dets = []
        for d in r.detections:
            t = truth.get(d.box_px)
            wrong = None if t is None else self.relabel(d, t)
            if wrong is not None:
                self.seen.add((t.id, t.cls))
            dets.append(d if wrong is None else wrong)
        return VisionResult(r.n_candidates, tuple(dets), r.timings_s)


def _scan_relabelled(tmp_path, seed, cls, slide, optics=None, focuser_wrap=None, plan=PLAN):
    vision = []

    def make(scope):
        vision.append(cls(scope))
        return vision[-1]

    return _scan(tmp_path, seed, make, slide=slide, optics=optics, focuser_wrap=focuser_wrap, plan=plan), vision[0]


class _LensOrBubble(_RelabelTruth):
    """Plays the models' lens-or-bubble confusion: every micro-lens and every bubble, whatever the view, is
    debris to both models with the classifier's likeliest type a micro-lens at 0.67 (the README slide's
    20 µm lens, seen once 6.5 µm out of focus). The rest is the ground truth."""

    SCORES = {"debris": 0.321, "microlens": 0.669, "detector_debris": 0.566}

    def relabel(self, det, truth):
        if truth.cls not in ("microlens", "bubble"):
            return None
        return replace(det, kind="debris", cls="debris", confidence=0.566, scores=self.SCORES, recheck=False)


def test_a_lens_both_models_call_debris_is_told_from_a_bubble_by_its_phase(tmp_path):
    # Seed 35: micro-lenses of 22, 39, 39 (collapsed on one side) and 114 µm, bubbles of 35 and 78 µm among 60
    # dirt pieces per mm²
    slide = {**SLIDE, "type_mix": (0, 1, 0, 0, 0), "debris_per_mm2": 60.0}
    s, vision = _scan_relabelled(tmp_path, 35, _LensOrBubble, slide)
    assert {c for _, c in vision.seen} == {"microlens", "bubble"}
    # every round lens up to 60 µm is recorded, as a micro-lens; the flat 114 µm one (focal length ~1 mm) and
    # the collapsed one (its bright core off the box's centre) read unclear and keep the models' debris; no
    # bubble becomes a structure
    missed = {m["id"] for m in s["missed"]}
    lenses = {o["id"]: max(o["footprint_um"]) for o in sim_microscope(35, {"slide": slide}).slide.truth()["objects"]
              if o["cls"] == "microlens" and not o["attrs"].get("collapse")}
    assert len(lenses) == 3 and missed == {0, 2}, (lenses, missed)
    assert s["type_accuracy"] == 1.0 and s["false_structures"] == 0 and s["duplicates"] == 0
    # each record says what the sign read: the lenses kept converging, the bubbles dropped diverging
    with sqlite3.connect(tmp_path / "t.db") as db:
        read = [(kind, json.loads(extra)["phase_sign"]) for kind, extra in
                db.execute("select kind, extra_json from object where extra_json like '%phase_sign%'")]
    assert {k for k, _ in read} == {"structure", "debris"}
    assert all(v >= 0.2 for k, v in read if k == "structure") and any(v <= -0.2 for k, v in read if k == "debris")


class _BubbleIsASureLens(_RelabelTruth):
    """Both models sure that every bubble is a micro-lens (0.96, detector ``structure`` 0.6: a 34 µm bubble on
    dev seed 207); the rest is the ground truth."""

    SCORES = {"debris": 0.014, "microlens": 0.956, "detector_structure": 0.6}

    def relabel(self, det, truth):
        if truth.cls != "bubble":
            return None
        return replace(det, kind="structure", cls="microlens", confidence=0.956, scores=self.SCORES)


def test_a_bubble_both_models_call_a_lens_is_dropped_for_diverging(tmp_path):
    slide = {**SLIDE, "type_mix": (0, 1, 0, 0, 0), "debris_per_mm2": 60.0}
    s, vision = _scan_relabelled(tmp_path, 35, _BubbleIsASureLens, slide)
    assert len(vision.seen) >= 2  # seed 35's bubbles of 35 and 78 µm at least
    assert s["false_structures"] == 0 and s["debris_as_structure"] == 0.0
    assert s["recall"] == 1.0 and s["type_accuracy"] == 1.0  # the real lenses, sure, are all kept


def test_at_5x_a_bubble_both_models_call_a_lens_is_dropped_for_diverging_a_depth_of_field_out(tmp_path):
    # 5x / NA 0.1: at 0.4 depths of field (26 µm) small bubbles read unclear and were recorded as the lenses
    # both models named them; the second pair a depth of field out calls them diverging. Seed 512's slide (the
    # phase-sign test's, not one the step was chosen on)
    slide = {"width_um": 3000.0, "height_um": 3000.0, "n_structures": 8, "type_mix": (0, 1, 0, 0, 0),
             "debris_per_mm2": 40.0}
    optics = {"magnification": 5.0, "na": 0.1}
    near_only = PhaseSignRule(deep_from_dof_um=math.inf)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(phase_reading_module, "PHASE_SIGN", near_only)
        mp.setattr(structure_verdict_module, "PHASE_SIGN", near_only)
        before = _scan(tmp_path / "near", 512, _BubbleIsASureLens, slide=slide, optics=optics,
                       focuser_wrap=_FocusOff)
    after, vision = _scan_relabelled(tmp_path / "far", 512, _BubbleIsASureLens, slide, optics, _FocusOff)
    assert len(vision.seen) >= 3
    assert after["recall"] == before["recall"] and after["type_accuracy"] == 1.0
    assert after["debris_as_structure"] < before["debris_as_structure"], (before["debris_as_structure"],
                                                                          after["debris_as_structure"])


class _LensViewsSayDust(_RelabelTruth):
    """Micro-lenses and bubbles are sure micro-lenses to both models in every frame, while ``read_type`` gives
    every plane of them the types 0.17 together: the cheap colour camera's 55 µm lens, whose views said 0.17 and
    whose phase read converging 0.56 (held-out seed 2375). The rest is the ground truth."""

    SCORES = {"debris": 0.03, "microlens": 0.97, "detector_structure": 0.8}
    VIEWS_LENS = 0.17  # what the views near focus give the types together on a lens or a bubble

    def relabel(self, det, truth):
        if truth.cls not in ("microlens", "bubble"):
            return None
        return replace(det, kind="structure", cls="microlens", confidence=0.97, scores=dict(self.SCORES))

    def read_type(self, images, box):
        print_ = _print_under(self.scope, box)
        if print_ is not None and print_.cls != "microlens":
            return {print_.cls: 0.95, "debris": 0.05}
        return {"microlens": self.VIEWS_LENS, "debris": 1.0 - self.VIEWS_LENS}


def test_a_lens_whose_phase_converges_is_kept_when_its_views_say_dust(tmp_path):
    # seed 35's lenses of 22, 39 and 39 µm read converging and are recorded as micro-lenses; the flat 114 µm one
    # and the collapsed one read unclear, and their views' dust stands; the bubbles diverge
    slide = {**SLIDE, "type_mix": (0, 1, 0, 0, 0), "debris_per_mm2": 60.0}
    s, _ = _scan_relabelled(tmp_path, 35, _LensViewsSayDust, slide)
    assert {m["id"] for m in s["missed"]} == {0, 2}
    assert s["type_accuracy"] == 1.0 and s["false_structures"] == 0 and s["duplicates"] == 0
    with sqlite3.connect(tmp_path / "t.db") as db:
        kept = [json.loads(e) for (e,) in db.execute("select extra_json from object where kind = 'structure'")]
    assert kept and all(e["phase_sign"] >= 0.2 and sum(e["type_views"].values()) < 0.25 for e in kept)


class _BlemishOfTheOptics:
    """The truth, plus a blotch fixed in the frame (out-of-focus dust on a lens) that both models call a
    scaffold wherever the stage stands: seed 441's cheap colour camera showed one at the frame's centre, and 92
    fields recorded it as a structure. With ``flicker`` it is boxed in every other frame only, as the real
    detector boxes a faint blotch."""

    def __init__(self, scope, box, flicker=False):
        self.inner, self.box, self.flicker, self.n = SimTruthVision(scope), box, flicker, 0

    def analyse(self, frame):
        r = self.inner.analyse(frame)
        self.n += 1
        if self.flicker and self.n % 2 == 0:
            return r
        blotch = Detection(self.box, "structure", "scaffold", 0.93, {"scaffold": 0.93, "detector_structure": 0.4})
        return VisionResult(max(r.n_candidates, 1), (*r.detections, blotch), r.timings_s)


class _BubbleDisputedWhenSharp(_RelabelTruth):
    """A bubble is a sure micro-lens to both models out of focus and, in the frame its focus search ends on,
    disputed with the classifier's micro-lens under the phase check's bound (seed 1411 at 320 x 240: detector
    ``structure`` 0.79, classifier ``debris`` 0.77, ``microlens`` 0.19); the views near focus give it the types
    0.27 together, above the views' bound. The rest is the ground truth."""

    TARGET = "bubble"  # the true class played so
    SURE = {"microlens": 0.95, "debris": 0.05, "detector_structure": 0.8}
    SHARP = {"debris": 0.77, "microlens": 0.19, "scaffold": 0.04, "detector_structure": 0.79}
    sharp = None

    def analyse(self, frame):
        p = frame.position
        self.at_sharp = self.sharp is not None and all(
            abs(a - b) < 1e-6 for a, b in zip((p.x_um, p.y_um, p.z_um), self.sharp, strict=True))
        return super().analyse(frame)

    def relabel(self, det, truth):
        if truth.cls != self.TARGET:
            return None
        if self.at_sharp:
            return replace(det, kind="debris", cls="debris", confidence=self.SHARP["debris"], scores=dict(self.SHARP),
                           recheck=True)
        return replace(det, kind="structure", cls="microlens", confidence=0.95, scores=dict(self.SURE), recheck=False)

    def read_type(self, images, box):
        print_ = _print_under(self.scope, box)
        return {print_.cls: 0.95, "debris": 0.05} if print_ is not None else {"microlens": 0.27, "debris": 0.73}


def test_no_micro_lens_is_recorded_without_its_phase_read(tmp_path):
    # a structure verdict that stands against a disputed sharp view names the sharp view's likeliest type; a
    # bubble's there is a lens under the check's bound, so nothing read its phase before it was recorded
    slide = {**SLIDE, "type_mix": (0, 1, 0, 0, 0), "debris_per_mm2": 60.0}
    s = _scan(tmp_path, 35, _BubbleDisputedWhenSharp, focuser_wrap=_SharpPoint, slide=slide)
    assert s["false_structures"] == 0 and s["debris_as_structure"] == 0.0
    assert s["recall"] == 1.0 and s["type_accuracy"] == 1.0
    with sqlite3.connect(tmp_path / "t.db") as db:
        read = [json.loads(e)["phase_sign"] for k, e in db.execute("select kind, extra_json from object")
                if k == "debris" and "phase_sign" in json.loads(e or "{}")]
    assert read and all(v <= -0.2 for v in read), read  # the bubbles, read and dropped for diverging


class _LensDoubtedWhenSharp(_BubbleDisputedWhenSharp):
    """A micro-lens is a sure one to both models out of focus and, sharp, the detector's ``structure`` against
    the classifier's ``debris`` 0.80 with ``microlens`` 0.18, under the phase check's bound; its views near focus
    give the types 0.19 together, under theirs (the cheap colour camera's 48 µm lens at 20x, held-out seed
    2906). Bubbles and the rest are the ground truth."""

    TARGET = "microlens"
    SHARP = {"debris": 0.80, "microlens": 0.18, "detector_structure": 0.71}
    VIEWS_LENS = 0.19
    read_type = _LensViewsSayDust.read_type


def test_a_lens_whose_views_say_dust_has_its_phase_read_before_it_is_called_dirt(tmp_path):
    # seed 35's lenses of 22 and 39 µm read converging and are kept; the flat 114 µm one and the collapsed one
    # read unclear, so their views' dust stands. Before the read, every lens here was recorded as dirt unread
    slide = {**SLIDE, "type_mix": (0, 1, 0, 0, 0), "debris_per_mm2": 60.0}
    s = _scan(tmp_path, 35, _LensDoubtedWhenSharp, focuser_wrap=_SharpPoint, slide=slide)
    assert {m["id"] for m in s["missed"]} == {0, 2}
    assert s["type_accuracy"] == 1.0 and s["false_structures"] == 0 and s["debris_as_structure"] == 0.0
    with sqlite3.connect(tmp_path / "t.db") as db:
        kept = [json.loads(e) for (e,) in db.execute("select extra_json from object where kind = 'structure'")]
    assert kept and all(e["phase_sign"] >= 0.2 and sum(e["type_views"].values()) < 0.25 for e in kept)


@pytest.mark.parametrize("flicker", [False, True])
def test_an_object_that_does_not_move_with_the_slide_is_not_recorded(tmp_path, flicker):
    # at the frame's centre (the centring does not move: a look with it shifted tells) and off it (the centring
    # moves tell); a 1 x 1 mm slide at 10x is 20 fields. Flickering, a blotch the centred view does not show
    # is looked at once more (6 records at the centre, 11 off it, without that look)
    slide = {"width_um": 1000.0, "height_um": 1000.0, "n_structures": 3}
    for name, box in (("centre", (274, 196, 366, 284)), ("off", (100, 300, 180, 380))):
        s = _scan(tmp_path / name, 31, lambda scope, b=box: _BlemishOfTheOptics(scope, b, flicker), slide=slide)
        # flickering, a blotch the double does not box in the extra look either is kept (off the centre: 2, and
        # 4 since the field focus looks where its map is unsure: which frames the every-other-frame flicker
        # falls on moves with every extra frame; 11 without the extra look)
        assert s["false_structures"] <= (4 if flicker and name == "off" else 0), name
        assert s["recall"] == 1.0 and s["type_accuracy"] == 1.0, name
        # with the flicker a print first seen as a sliver at a field's edge and not found in its centred view is
        # recorded from that sliver, and again whole from the next field (the fallback for faint prints, not
        # this check)
        assert s["duplicates"] <= int(flicker), name


class _LooseBoxOfALargePrint:
    """The truth, with every whole structure's box drawn 7 % of its width to one side and then the other in
    turn, as the real detector draws a large, faint print's loose box from view to view (a 135 µm scaffold's
    centre moved 6.7 µm over a 9 µm centring move, seed 602, and the slide-or-optics check called it a
    blemish)."""

    def __init__(self, scope):
        self.inner, self.n = SimTruthVision(scope), 0

    def analyse(self, frame):
        r = self.inner.analyse(frame)
        self.n += 1
        h, w = frame.image.shape
        dets = []
        for d in r.detections:
            x0, y0, x1, y1 = d.box_px
            dx = (1 if self.n % 2 else -1) * round(0.07 * (x1 - x0))
            if d.kind == "structure" and not d.touches_edge((w, h)) and 0 <= x0 + dx and x1 + dx <= w:
                d = replace(d, box_px=(x0 + dx, y0, x1 + dx, y1))
            dets.append(d)
        return VisionResult(r.n_candidates, tuple(dets), r.timings_s)


def test_a_large_print_whose_box_jitters_is_not_taken_for_the_optics(tmp_path, caplog):
    # three scaffolds of 89-138 µm on a 1 x 1 mm slide: each is centred in two moves, the second one short, over
    # which its loose box moves as far as the stage does. Before, the 138 µm one, first seen cut by a field's
    # edge, was dropped as the optics' there (and found again from the next field, which seed 602's was not)
    slide = {"width_um": 1000.0, "height_um": 1000.0, "n_structures": 3, "type_mix": (0, 0, 1, 0, 0)}
    with caplog.at_level(logging.DEBUG, logger="appliance.scan.runner"):
        s = _scan(tmp_path, 31, _LooseBoxOfALargePrint, slide=slide)
    assert not [r for r in caplog.records if "does not move with the slide" in r.getMessage()]
    assert s["structures_truth"] == 3
    assert s["recall"] == 1.0 and s["duplicates"] == 0


def test_a_sliver_cut_by_the_frame_is_found_again_whole_not_as_a_blemish_at_the_centre():
    # seed 31's scaffold (160 px) seen as a 10 px sliver at a field's bottom edge, centred on the sliver: the
    # centred view holds the whole scaffold below the middle and a blemish of the optics at the middle. Matched
    # with the sliver's box alone, the blemish overlapped it more (IoU 0.10 against 0.02) and the sliver was
    # recorded from the field frame, then the scaffold again from the next field (a duplicate)
    from appliance.scan.boxes import beyond_the_cut, in_place, recentred

    size = (640, 480)
    sliver = Detection((83, 470, 244, 480), "structure", "scaffold", 0.9, {})
    blemish = Detection((274, 196, 366, 284), "structure", "scaffold", 0.93, {})
    scaffold = Detection((241, 241, 401, 402), "structure", "scaffold", 0.9, {})
    centred = recentred(sliver, size).box_px
    assert in_place([blemish, scaffold], centred) is blemish  # what the runner followed before
    expected = beyond_the_cut(sliver, centred, size)
    assert expected == (239, 235, 400, 396)
    assert in_place([blemish, scaffold], expected) is scaffold
    # an object whole in the field frame keeps its box; one cut at the left goes on to the left
    whole = Detection((100, 100, 150, 140), "structure", "pentagon", 0.9, {})
    assert beyond_the_cut(whole, (295, 220, 345, 260), size) == (295, 220, 345, 260)
    left = Detection((0, 200, 12, 260), "structure", "pentagon", 0.9, {})
    assert beyond_the_cut(left, (314, 210, 326, 270), size) == (266, 210, 326, 270)


class _CornerGhost:
    """The truth, plus a disputed 'woodpile' the classifier alone names in the bottom-right corner of every
    field's first frame and in no other view: the dark corner of a strongly vignetted frame
    (``sensor.vignetting=0.7``, seed 456), which no later look shows."""

    def __init__(self, scope):
        self.inner, self.last, self.field = SimTruthVision(scope), None, None
        self.field_w = scope.camera.um_per_px * scope.camera.size_px[0]

    def analyse(self, frame):
        r = self.inner.analyse(frame)
        p = (frame.position.x_um, frame.position.y_um)
        if self.last is None or max(abs(p[0] - self.last[0]), abs(p[1] - self.last[1])) > self.field_w / 2:
            self.field = p  # a field's place: every frame there (its autofocus's too) shows the ghost
        self.last = p
        if p != self.field:
            return r
        ghost = Detection((606, 440, 640, 480), "structure", "woodpile", 0.46, {"woodpile": 0.46, "scaffold": 0.27},
                          recheck=True)
        return VisionResult(max(r.n_candidates, 1), (*r.detections, ghost), r.timings_s)


def test_a_disputed_sliver_at_the_edge_that_no_later_look_shows_is_no_structure(tmp_path):
    slide = {"width_um": 1000.0, "height_um": 1000.0, "n_structures": 3}
    s = _scan(tmp_path, 31, _CornerGhost, slide=slide)
    assert s["recall"] == 1.0 and s["type_accuracy"] == 1.0 and s["duplicates"] == 0
    assert s["false_structures"] == 0  # before: one per field, the ghost centred and recorded from its field view


class _UnboxedWhole:
    """Prints the models box only cut by the frame's edge (disputed there) or sharp at their focus: seen whole out
    of focus, neither model boxes them, while the gate's dark candidates still cover them (``candidate_boxes``)
    unless ``gate_blind``. So an 82 µm split ring at 20x (300 px of a 480 px frame) was boxed cut by a field's
    edge and, centred, by nothing (the detector 0.17, under its threshold; held-out seed 2513). As the product's
    gate does, the candidates also hold every other object the gate found (dust, boxed prints), which must not
    count for the print that is not boxed."""

    def __init__(self, scope, gate_blind=False):
        self.inner, self.scope, self.gate_blind = SimTruthVision(scope), scope, gate_blind
        self.focus = {o.id: o.focus_z_um for o in scope.slide.objects}

    def analyse(self, frame):
        r = self.inner.analyse(frame)
        size = self.scope.camera.size_px
        ids = {t.box_px: t.id for t in self.scope.boxes_in_view(frame)}
        z = frame.meta["true_position_um"][2]
        dets, seen = [], []
        for d in r.detections:
            if d.kind != "structure":
                dets.append(d)
            elif d.touches_edge(size):
                dets.append(replace(d, kind="debris", cls="debris", confidence=0.48,
                                    scores={d.cls: 0.52, "debris": 0.48}, recheck=True))
            elif abs(z - self.focus[ids[d.box_px]]) <= 0.5:
                dets.append(d)
            else:
                seen.append(d.box_px)
        others = tuple(d.box_px for d in r.detections if d.box_px not in seen)
        return VisionResult(r.n_candidates, tuple(dets), r.timings_s, others if self.gate_blind else (*others, *seen))


@pytest.mark.parametrize("gate_blind", [False, True])
def test_a_print_seen_cut_and_unboxed_whole_is_decided_by_its_sharp_frame_where_the_gate_sees_it(tmp_path,
                                                                                              gate_blind):
    s = _scan(tmp_path, 31, lambda scope: _UnboxedWhole(scope, gate_blind))
    assert s["false_structures"] == 0 and s["duplicates"] == 0
    if gate_blind:  # nothing dark where the print should be: the sliver rule drops what was seen only cut
        assert s["recall"] < 1.0
    else:
        assert s["recall"] == 1.0 and s["type_accuracy"] == 1.0


class _WrongTypeWhenSharp:
    """Names every print its look-alike in the frame taken at its focus (a woodpile a scaffold, as the classifier
    named 26-47 µm woodpiles on dev seeds 604 and 608) and the true type in every other frame. ``read_type`` is
    the classifier with flipped copies: on the focus plane alone it names the true type (608's woodpile: its
    flips said woodpile), while every other stack plane reads the look-alike, surely (a woodpile above its focus
    read scaffold at 0.95: held-out seeds 2311, 2325), so the planes pooled name the look-alike. Micro-lenses keep
    their type (a lens's verdict has its own checks). Without ``read_type`` (``plain``) the sharp frame's type
    stands."""

    TWIN = {"woodpile": "scaffold", "scaffold": "woodpile", "pentagon": "split_ring", "split_ring": "pentagon"}

    def __init__(self, scope):
        self.inner, self.scope, self.sharp, self.sharp_image = SimTruthVision(scope), scope, None, None

    def analyse(self, frame):
        r = self.inner.analyse(frame)
        if not _taken_at(frame, self.sharp):
            return r
        self.sharp_image = frame.image
        dets = tuple(replace(d, cls=self.TWIN[d.cls], confidence=0.8, scores=self._scores(d.cls, True))
                     if d.kind == "structure" and d.cls in self.TWIN else d for d in r.detections)
        return VisionResult(r.n_candidates, dets, r.timings_s)

    def _scores(self, cls, sharp):
        wrong = self.TWIN.get(cls, cls)
        return {wrong: 0.8, cls: 0.15, "debris": 0.05} if sharp and wrong != cls else {cls: 0.95, "debris": 0.05}

    def _read(self, cls, at_focus):
        wrong = self.TWIN.get(cls, cls)
        if wrong == cls:
            return {cls: 0.95, "debris": 0.05}
        return {cls: 0.9, wrong: 0.05, "debris": 0.05} if at_focus else {wrong: 0.95, cls: 0.03, "debris": 0.02}

    def read_type(self, images, box):
        from appliance.vision.classifier import pool_views

        true = self.scope.stage.true_position_um()
        cls = next(b.cls for b in self.scope.boxes_at(true.x_um, true.y_um)
                   if b.kind == "structure" and b.box_px[0] < box[2] and box[0] < b.box_px[2]
                   and b.box_px[1] < box[3] and box[1] < b.box_px[3])
        labels = sorted({*self._read(cls, True), *self._read(cls, False)})
        rows = [[self._read(cls, im is self.sharp_image).get(c, 0.0) for c in labels] for im in images]
        assert any(im is self.sharp_image for im in images)  # the sharp frame is one of the views
        return dict(zip(labels, pool_views(rows).tolist(), strict=True))


class _WrongTypeWhenSharpPlain:
    """:class:`_WrongTypeWhenSharp` without ``read_type``: a vision that types from one frame only."""

    def __init__(self, scope):
        self.double = _WrongTypeWhenSharp(scope)

    @property
    def sharp(self):
        return self.double.sharp

    @sharp.setter
    def sharp(self, value):
        self.double.sharp = value

    def analyse(self, frame):
        return self.double.analyse(frame)


def test_the_type_is_what_the_plane_at_focus_reads_with_its_flips(tmp_path):
    # seed 32's four prints: the sharp frame names each a wrong type, its flipped copies the right one, the
    # stack's planes off focus the wrong one again
    s = _scan(tmp_path / "plain", 32, _WrongTypeWhenSharpPlain, _SharpPoint)
    assert s["recall"] == 1.0 and s["type_accuracy"] < 1.0  # one frame: its wrong type is recorded
    s = _scan(tmp_path / "views", 32, _WrongTypeWhenSharp, _SharpPoint)
    assert s["recall"] == 1.0 and s["type_accuracy"] == 1.0 and s["duplicates"] == 0
    with sqlite3.connect(tmp_path / "views" / "t.db") as db:
        extras = [json.loads(e) for (e,) in db.execute("SELECT extra_json FROM object WHERE kind = 'structure'")]
    twins = [e for e in extras if e["type_sharp"] in _WrongTypeWhenSharp.TWIN]
    assert twins  # prints the sharp frame named wrong; the planes ±2 µm pooled name them wrong too, their
    for e in twins:  # focus plane right, and the record keeps all three readings
        pooled, focus = e["type_views"], e["type_focus"]
        assert max(pooled, key=pooled.get) == e["type_sharp"] != max(focus, key=focus.get)


class _FirstWholePrint(SimTruthVision):
    """The ground truth; remembers the frame box of the first whole structure seen after the first frame."""

    def __init__(self, scope):
        super().__init__(scope)
        self.n, self.box = 0, None

    def analyse(self, frame):
        r = super().analyse(frame)
        self.n += 1
        h, w = frame.image.shape
        for d in r.detections:
            if self.box is None and self.n > 3 and d.kind == "structure" and not d.touches_edge((w, h)):
                self.box = d.box_px
        return r


class _DebrisBlotchAt:
    """The truth, plus a blotch fixed in the frame at ``box`` in every frame, which the vision calls debris it is
    unsure of (so the runner centres it, finds that it stays with the optics, and remembers its place)."""

    SCORES = {"debris": 0.45, "pentagon": 0.55, "detector_debris": 0.5}

    def __init__(self, scope, box):
        self.inner, self.box = SimTruthVision(scope), box

    def analyse(self, frame):
        r = self.inner.analyse(frame)
        blotch = Detection(self.box, "debris", "debris", 0.5, dict(self.SCORES), recheck=True)
        return VisionResult(max(r.n_candidates, 1), (*r.detections, blotch), r.timings_s)


def test_a_sure_print_where_a_debris_blemish_was_proved_is_not_skipped(tmp_path):
    # seed 832 (slide tilted 4 um/mm): a blotch the vision called debris was proved the optics' in one field, and
    # a 90 um pentagon both models were sure of (0.99 / 0.88), in the same place of a later field's frame
    # (IoU 0.61), was skipped as that blemish: never centred, never recorded
    slide = {"width_um": 1000.0, "height_um": 1000.0, "n_structures": 3}
    plain = {}
    s0 = _scan(tmp_path / "plain", 33, lambda scope: plain.setdefault("v", _FirstWholePrint(scope)), slide=slide)
    assert s0["recall"] == 1.0 and plain["v"].box is not None
    s = _scan(tmp_path / "blotch", 33, lambda scope: _DebrisBlotchAt(scope, plain["v"].box), slide=slide)
    assert s["recall"] == 1.0 and s["false_structures"] == 0 and s["duplicates"] == 0


class _DirtNamedPrintWhenSharp(_RelabelTruth):
    """Plays a sharp frame's mistake on dirt: every piece of dirt 12 µm or larger is a sure scaffold in each frame
    (as the cheap colour camera's blotch of the optics was to both models, 0.9 and 0.26 with the rescue, seed
    856), while ``read_type`` pools the planes near focus as the classifier did there: dirt (types 0.11)."""

    SURE = {"scaffold": 0.92, "debris": 0.08, "detector_structure": 0.9}

    def relabel(self, det, truth):
        x0, y0, x1, y1 = det.box_px
        if truth.kind != "debris" or max(x1 - x0, y1 - y0) * 0.56 < 12.0:
            return None
        return replace(det, kind="structure", cls="scaffold", confidence=0.92, scores=dict(self.SURE), recheck=False)

    def read_type(self, images, box):
        print_ = _print_under(self.scope, box)
        if print_ is not None:
            return {print_.cls: 0.95, "debris": 0.05}
        return {"debris": 0.89, "scaffold": 0.11}


class _DirtNamedPrintWhenSharpPlain:
    """:class:`_DirtNamedPrintWhenSharp` without ``read_type``: one frame decides."""

    def __init__(self, scope):
        self.double = _DirtNamedPrintWhenSharp(scope)

    def analyse(self, frame):
        return self.double.analyse(frame)


def test_dirt_the_views_near_focus_call_dirt_is_no_structure(tmp_path):
    # seed 856 (cheap colour camera): the optics' blotch recorded as a structure in 7 fields, the sharp frame's
    # scaffold at 0.69-0.95 while its views near focus gave the structure types 0.07-0.17 together
    slide = {"width_um": 1000.0, "height_um": 1000.0, "n_structures": 3, "debris_per_mm2": 40.0}
    s = _scan(tmp_path / "plain", 34, _DirtNamedPrintWhenSharpPlain, slide=slide)
    assert s["debris_as_structure"] > 0  # one frame: the dirt it names a print is recorded as one
    s = _scan(tmp_path / "views", 34, _DirtNamedPrintWhenSharp, slide=slide)
    assert s["recall"] == 1.0 and s["type_accuracy"] == 1.0 and s["duplicates"] == 0
    assert s["debris_as_structure"] == 0 and s["false_structures"] == 0 and s["structures_found"] == 3


class _LampBand(_DebrisBlotchAt):
    """The truth, plus an uneven lamp's dark band: a box fixed in the frame and cut by its bottom edge in every
    frame, debris to the classifier and ``structure`` to the detector (0.98 against 0.45, seed 858), so disputed."""

    SCORES = {"debris": 0.98, "detector_structure": 0.45}


def test_a_band_of_the_lamp_cut_by_the_frame_is_the_optics_and_no_print(tmp_path):
    # seed 858 (lamp +-25 %, vignetting 0.5): the band was centred and stitched as a print larger than the field in
    # every field, recorded as a structure whose footprint swallowed two prints beside it (recall 0.85)
    slide = {"width_um": 1000.0, "height_um": 1000.0, "n_structures": 3}
    s = _scan(tmp_path, 33, lambda scope: _LampBand(scope, (250, 210, 555, 480)), slide=slide)
    assert s["recall"] == 1.0 and s["false_structures"] == 0 and s["duplicates"] == 0
    assert s["debris_as_structure"] == 0


class _FibresNamedRings:
    """The truth, but every fibre whole in view is a split ring to both models (0.9; the classifier named two
    curved fibres rings at 0.83-0.87, held-out seeds 933 and 938). ``offered`` counts the frames it said so in."""

    def __init__(self, scope):
        self.inner, self.scope, self.offered = SimTruthVision(scope), scope, 0

    def analyse(self, frame):
        r = self.inner.analyse(frame)
        h, w = frame.image.shape
        fibres = {t.box_px for t in self.scope.boxes_in_view(frame) if t.kind == "debris" and t.cls == "fibre"}
        dets = []
        for d in r.detections:
            if d.box_px in fibres and not d.touches_edge((w, h)):
                self.offered += 1
                d = replace(d, kind="structure", cls="split_ring", confidence=0.9,
                            scores={"split_ring": 0.9, "debris": 0.1, "detector_structure": 0.6})
            dets.append(d)
        return VisionResult(r.n_candidates, tuple(dets), r.timings_s)


def test_a_fibre_named_a_split_ring_is_no_ring_and_true_rings_stay(tmp_path):
    # seed 44: five fibres of 46-188 um beside five prints, one a split ring (appliance/vision/typeshape.py)
    slide = {"width_um": 1400.0, "height_um": 1400.0, "n_structures": 5, "debris_per_mm2": 40.0}
    made = []

    def vision(scope):
        made.append(_FibresNamedRings(scope))
        return made[-1]

    s = _scan(tmp_path, 44, vision, slide=slide)
    assert made[0].offered > 0
    assert s["recall"] == 1.0 and s["type_accuracy"] == 1.0 and s["duplicates"] == 0
    assert s["debris_as_structure"] == 0 and s["false_structures"] == 0


def test_an_object_centred_outside_the_scanned_area_is_not_recorded(tmp_path):
    # The fields of an area from x = 300 um reach x = 187 um: seed 31's pentagon (175-241 um) and micro-lens
    # (203-305 um) lie there, centred outside the area (a neighbouring area's, or off the slide: the cheap colour
    # camera's blotch, stitched beyond the slide's top edge, seed 856)
    plan = replace(PLAN, grid=GridPlan(left=300.0, top=0.0, right=1400.0, bottom=1400.0))
    s = _scan(tmp_path, 31, SimTruthVision, plan=plan)
    assert s["structures_truth"] == 2 and s["recall"] == 1.0 and s["false_structures"] == 0
    with sqlite3.connect(tmp_path / "t.db") as db:
        xs = [x for (x,) in db.execute("select x_um from object where kind = 'structure'")]
    assert len(xs) == 2 and min(xs) > 300.0, xs


class _PrintJustShortOfSure(_RelabelTruth):
    """Plays a view both models lean to a print without the classifier being sure, in every frame: each print but a
    lens, and each piece of dirt 12 µm or larger, is disputed debris to the rule with the detector's ``structure``
    0.31 and the classifier's types 0.89 together (held-out seed 3507's 27 µm split ring: 0.88-0.90 in the field,
    centred and sharp, against the rule's 0.9). Dirt is named a pentagon, which its shape does not refute, so only
    the views near focus tell it: ``read_type`` gives a print's type 0.95 and dirt's pentagon 0.8 (two bubbles
    named rings there read 0.87 and 0.71)."""

    def relabel(self, det, truth):
        x0, y0, x1, y1 = det.box_px
        if truth.kind == "structure" and truth.cls != "microlens":
            cls = truth.cls
        elif truth.kind == "debris" and max(x1 - x0, y1 - y0) * 0.56 >= 12.0:
            cls = "pentagon"
        else:
            return None
        scores = {cls: 0.85, "woodpile" if cls != "woodpile" else "scaffold": 0.04, "debris": 0.11,
                  "detector_structure": 0.31}
        return replace(det, kind="debris", cls="debris", confidence=0.11, scores=scores, recheck=True)

    def read_type(self, images, box):
        print_ = _print_under(self.scope, box)
        if print_ is not None:
            return {print_.cls: 0.95, "debris": 0.05}
        return {"pentagon": 0.8, "debris": 0.2}


def test_a_sharp_view_both_models_lean_to_a_print_is_one_where_its_views_are_sure(tmp_path, monkeypatch):
    slide = {"width_um": 1000.0, "height_um": 1000.0, "n_structures": 3, "debris_per_mm2": 40.0}
    s, vision = _scan_relabelled(tmp_path / "views", 35, _PrintJustShortOfSure, slide)
    played = {cls for _, cls in vision.seen}
    assert played & {"woodpile", "scaffold", "pentagon", "split_ring"} and played & {"dust", "bubble", "fibre"}
    assert s["recall"] == 1.0 and s["type_accuracy"] == 1.0 and s["duplicates"] == 0
    assert s["debris_as_structure"] == 0 and s["false_structures"] == 0
    # views as unsure as the sharp frame (0.89): every such print is dirt, as all were before
    monkeypatch.setattr(structure_verdict_module, "views_sure_of_a_print", lambda views: False)
    s, _ = _scan_relabelled(tmp_path / "unsure", 35, _PrintJustShortOfSure, slide)
    assert s["recall"] < 1.0 and s["debris_as_structure"] == 0


class _OnlyItsMiddleWhenSharp:
    """Plays a print whose rim fades at its focus (held-out seed 3709: a shallow 99 µm lens at 20x, boxed whole
    and named a lens at 0.997 in its centred view; at its focus only the dark middle of its collapsed top was
    boxed, 42 µm, an unsure woodpile). In the frame taken at a print's focus each print is boxed as its middle
    ninth, named a type it is not; every other frame is the ground truth's."""

    def __init__(self, scope):
        self.inner, self.sharp, self.parts = SimTruthVision(scope), None, 0

    def analyse(self, frame):
        r = self.inner.analyse(frame)
        if not _taken_at(frame, self.sharp):
            return r
        dets = []
        for d in r.detections:
            x0, y0, x1, y1 = d.box_px
            if d.kind == "structure" and min(x1 - x0, y1 - y0) >= 9:
                d = self.part(d)
                self.parts += 1
            dets.append(d)
        return VisionResult(r.n_candidates, tuple(dets), r.timings_s)

    def part(self, d):
        """What the sharp frame boxes of print ``d``: its middle ninth, named a type it is not."""
        x0, y0, x1, y1 = d.box_px
        w, h = (x1 - x0) // 3, (y1 - y0) // 3
        wrong = "woodpile" if d.cls != "woodpile" else "pentagon"
        return replace(d, box_px=(x0 + w, y0 + h, x1 - w, y1 - h), cls=wrong, confidence=0.41,
                       scores={wrong: 0.41, d.cls: 0.2, "debris": 0.07, "detector_structure": 0.78})


def test_a_print_seen_whole_is_not_named_from_the_part_of_it_its_sharp_frame_boxes(tmp_path, monkeypatch):
    doubles = []

    def make(scope):
        doubles.append(_OnlyItsMiddleWhenSharp(scope))
        return doubles[-1]

    s = _scan(tmp_path / "whole", 36, make, _SharpPoint)
    assert doubles[-1].parts > 0
    assert s["recall"] == 1.0 and s["type_accuracy"] == 1.0 and s["duplicates"] == 0 and s["false_structures"] == 0
    # named from the middle its sharp frame boxed, as before: every such print's type is wrong
    monkeypatch.setattr(sharp_view_module, "a_small_part_of", lambda box, whole: False)
    s = _scan(tmp_path / "part", 36, make, _SharpPoint)
    assert s["recall"] == 1.0 and s["type_accuracy"] < 0.5


class _AWideBandWhenSharp(_OnlyItsMiddleWhenSharp):
    """Plays a print larger than the field whose sharp frame boxes a part of it clear of the frame's edges (held-out
    seed 3845: at 60x on 1280 x 720, a 96 µm pentagon boxed 77 x 47 µm in its sharp frame, aspect 0.62, no type's).
    In the frame taken at a print's focus each print is boxed as the middle third of its rows, its type kept;
    every other frame is the ground truth's. It reads pasted images, so the runner may look at a print whole;
    the test's look stands in for the pasted image's reading (``appliance.scan.whole_look`` has its own tests)."""

    def part(self, d):
        """The middle third of print ``d``'s rows, its type kept."""
        x0, y0, x1, y1 = d.box_px
        h = (y1 - y0) // 3
        return replace(d, box_px=(x0, y0 + h, x1, y1 - h))

    def analyse_image(self, image):
        return VisionResult(0, (), {})


def _truth_look(scope, looks):
    """A whole look that finds the true print under a piece boxed like no type (aspect under 0.7), else nothing."""
    from appliance.scan.stitch import Footprint, stitch_tolerance_um

    prints = [o for o in scope.slide.truth()["objects"] if o["kind"] == "structure"]

    def look(self, det, frame):
        x0, y0, x1, y1 = det.box_px
        if min(x1 - x0, y1 - y0) >= 0.7 * max(x1 - x0, y1 - y0):
            return None
        x, y = self._stage_xy(det, frame)
        for o in prints:
            b = o["bbox_um"]
            if b[0] <= x <= b[2] and b[1] <= y <= b[3]:
                looks.append(o["cls"])
                found = replace(det, kind="structure", cls=o["cls"], confidence=0.98, scores={o["cls"]: 0.98})
                return found, Footprint.start(tuple(b), (False,) * 4, stitch_tolerance_um(self.cal))
        return None
    return look


def test_a_print_its_shape_refuses_is_looked_at_whole_where_prints_may_be_larger_than_the_field(
        tmp_path, monkeypatch):
    plan = replace(PLAN, imaging=replace(PLAN.imaging, largest_print_um=2000.0))  # every print may be larger
    doubles, looks = [], []

    def make(scope):
        doubles.append(_AWideBandWhenSharp(scope))
        monkeypatch.setattr(runner_module.ScanRunner, "_whole_look", _truth_look(scope, looks))
        return doubles[-1]

    s = _scan(tmp_path / "looked", 36, make, _SharpPoint, plan=plan)
    assert doubles[-1].parts > 0 and looks
    assert s["recall"] == 1.0 and s["type_accuracy"] == 1.0 and s["duplicates"] == 0 and s["false_structures"] == 0
    # the shape's verdict alone, as before: every print boxed so in its sharp frame is recorded as dirt
    monkeypatch.setattr(runner_module.ScanRunner, "_looked_whole_instead", lambda self, w, det, frame: False)
    s = _scan(tmp_path / "shape", 36, make, _SharpPoint, plan=plan)
    assert s["recall"] < 0.5


class _AWideBandGatedToTheEdge(_AWideBandWhenSharp):
    """Plays a print the detector boxes short of its dark pixels where these reach the frame's edge (held-out
    seed 5005: at 40x a 61 µm split ring, centred on the box of its lower two thirds, reached the top of its
    sharp frame; the detector boxed the lower part, 65 x 34 µm, clear of the edges, and the gate's candidate ran
    from the top edge down). In the frame taken at a print's focus each print is boxed as the middle third of its
    rows and, with ``to_edge``, the gate's candidate over it runs up to the frame's top edge; without, it is the
    print's true box. Every other frame is the ground truth's."""

    def __init__(self, scope, to_edge):
        super().__init__(scope)
        self.to_edge = to_edge

    def analyse(self, frame):
        truth = self.inner.analyse(frame)
        r = super().analyse(frame)
        if not _taken_at(frame, self.sharp):
            return r
        boxes = tuple((x0, 0 if self.to_edge else y0, x1, y1) for (x0, y0, x1, y1) in
                      (d.box_px for d in truth.detections if d.kind == "structure"))
        return VisionResult(r.n_candidates, r.detections, r.timings_s, boxes)


def test_a_print_whose_dark_pixels_reach_the_frames_edge_is_not_refused_for_its_boxs_shape(tmp_path, monkeypatch):
    monkeypatch.setattr(runner_module.ScanRunner, "_looked_whole_instead", lambda self, w, det, frame: False)
    doubles = []

    def make(to_edge):
        def made(scope):
            doubles.append(_AWideBandGatedToTheEdge(scope, to_edge))
            return doubles[-1]
        return made

    s = _scan(tmp_path / "cut", 36, make(True), _SharpPoint)
    assert doubles[-1].parts > 0
    assert s["recall"] == 1.0 and s["duplicates"] == 0 and s["false_structures"] == 0
    # the same boxes with the gate's candidate inside the frame: a whole object that shape is no print's
    s = _scan(tmp_path / "whole", 36, make(False), _SharpPoint)
    assert s["recall"] < 0.5


def _dust_under(scope, box):
    """The true dust speck a box in the frame the stage stands at overlaps, or None."""
    true = scope.stage.true_position_um()
    for b in scope.boxes_at(true.x_um, true.y_um):
        if b.cls == "dust" and b.box_px[0] < box[2] and box[0] < b.box_px[2] and b.box_px[1] < box[3] \
                and box[1] < b.box_px[3]:
            return b
    return None


class _SpeckIsASureLens(_RelabelTruth):
    """Plays a 40x lens search that ends above a speck: every dust speck of 4-10 µm with nothing else within 5 µm
    of it is a sure micro-lens to both models in every frame, boxed 20 µm wide about its centre whether the gate
    sees it or not (its blur 12 µm above it, held-out seed 5309: specks of 5-9 µm boxed 13-31 µm, the
    classifier's lens 0.26-0.93). The rest is the ground truth. (A neighbour reaching into the box makes one
    blob of the two: the check says nothing.)"""

    SCORES = {"debris": 0.05, "microlens": 0.95, "detector_structure": 0.7}

    def analyse(self, frame):
        self.in_view = self.scope.boxes_in_view(frame)
        r = super().analyse(frame)
        boxed = {d.box_px for d in r.detections}
        dets = list(r.detections)
        for t in self.in_view:
            lens = self.relabel(Detection(t.box_px, "debris", "debris", 1.0, {"debris": 1.0}), t)
            if lens is not None and lens.box_px not in boxed:
                self.seen.add((t.id, t.cls))
                dets.append(lens)
        return VisionResult(r.n_candidates, tuple(dets), r.timings_s)

    def relabel(self, det, truth):
        upp = self.scope.camera.um_per_px
        x0, y0, x1, y1 = truth.box_px
        if truth.cls != "dust" or not 4.0 <= upp * max(x1 - x0, y1 - y0) <= 10.0 or min(x0, y0) < 0 \
                or x1 > self.scope.camera.size_px[0] or y1 > self.scope.camera.size_px[1]:
            return None
        half, clear = 10.0 / upp, 5.0 / upp
        if any(t.id != truth.id and t.box_px[0] < x1 + clear and x0 - clear < t.box_px[2]
               and t.box_px[1] < y1 + clear and y0 - clear < t.box_px[3] for t in self.in_view):
            return None
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        box = (int(cx - half), int(cy - half), int(cx + half), int(cy + half))
        return replace(det, box_px=box, kind="structure", cls="microlens", confidence=0.95, scores=dict(self.SCORES))


class _LensSearchAboveSpecks:
    """Wraps the truth focuser: a lens search over a speck ends ``OFF_UM`` above it, on a peak of noise (held-out
    seed 5208; in 5309 the search failed and so did the second); every other search finds its truth. Says the
    objective's depth of field as the product's focuser does."""

    OFF_UM = 12.0

    def __init__(self, inner, vision):
        self.inner, self.vision = inner, vision
        camera = inner.scope.camera
        self.depth_of_field_um = camera.optics.depth_of_field_um(camera.um_per_px)

    def focus(self, stage, camera, z_guess_um, range_um, roi_px=None, cls=None):
        out = self.inner.focus(stage, camera, z_guess_um, range_um, roi_px, cls=cls)
        if roi_px is None or cls != "microlens" or _dust_under(self.inner.scope, roi_px) is None:
            return out
        stage.focus_to_um(out.z_um + self.OFF_UM)
        return replace(out, z_um=stage.position_um().z_um)


def test_a_speck_a_lens_search_ended_above_is_dirt_by_its_own_stack(tmp_path, monkeypatch):
    # 20x / NA 0.4 (0.28 µm per pixel, 4 µm deep), a 16 µm stack either side: the specks' own focus lies in it,
    # sharp and small. Without the stack's word the same specks are recorded as lenses: their phase reads +0.14 to
    # +0.24 about the z 12 µm above them, and both models are sure
    slide = {"width_um": 1000.0, "height_um": 1000.0, "n_structures": 1, "type_mix": (0, 1, 0, 0, 0),
             "debris_per_mm2": 200.0}
    plan = ScanPlan(name="specks", grid=GridPlan(left=300.0, top=300.0, right=500.0, bottom=450.0),
                    focus=FocusPlan(stack_range_um=16.0, stack_step_um=2.0))
    optics = {"magnification": 20.0, "na": 0.4}

    def records(name):
        with sqlite3.connect(tmp_path / name / "t.db") as db:
            return [(kind, round(x), round(y), json.loads(e or "{}"))
                    for kind, x, y, e in db.execute("select kind, x_um, y_um, extra_json from object")]

    s, _ = _scan_relabelled(tmp_path / "stack", 45, _SpeckIsASureLens, slide, optics, _LensSearchAboveSpecks, plan)
    assert s["false_structures"] == 0 and s["debris_as_structure"] == 0.0
    specks = [(x, y) for kind, x, y, e in records("stack") if "speck_at_um" in e]
    assert len(specks) >= 2 and all(kind == "debris" for kind, _, _, e in records("stack") if "speck_at_um" in e)
    assert all(e["speck_at_um"] <= -8.8 and max(e["speck_w_um"], e["speck_h_um"]) < 12.0
               for _, _, _, e in records("stack") if "speck_at_um" in e)
    monkeypatch.setattr(runner_module.ScanRunner, "_speck_instead", lambda self, det, stack, z: None)
    s, _ = _scan_relabelled(tmp_path / "unread", 45, _SpeckIsASureLens, slide, optics, _LensSearchAboveSpecks, plan)
    assert s["debris_as_structure"] > 0.0
    assert sorted((x, y) for kind, x, y, _ in records("unread") if kind == "structure") == sorted(specks)


class _DirtOnceALens(_RelabelTruth):
    """Plays dirt the classifier takes for a lens once: every dust clump or fibre of 15 µm or more is a disputed
    micro-lens in the first frames of a field (the classifier's lens 0.83, the detector's debris 0.27) and sure
    dirt to both models in every later look, its types near nothing with the lens the likeliest by a hair (held-out
    seed 5406's 70 µm scratch: the classifier's debris 0.998, its lens 0.0008, the detector's debris 0.79)."""

    FIELD = {"debris": 0.15, "microlens": 0.83, "scaffold": 0.01, "woodpile": 0.01, "detector_debris": 0.27}
    SURE = {"debris": 0.998, "microlens": 0.0008, "pentagon": 0.0001, "scaffold": 0.0004, "split_ring": 0.0002,
            "woodpile": 0.0005, "detector_debris": 0.79}

    def __init__(self, scope):
        super().__init__(scope)
        self.last, self.field = None, None
        self.field_w = scope.camera.um_per_px * scope.camera.size_px[0]

    def analyse(self, frame):
        p = (frame.position.x_um, frame.position.y_um)
        if self.last is None or max(abs(p[0] - self.last[0]), abs(p[1] - self.last[1])) > self.field_w / 2:
            self.field = p
        self.last = p
        self.in_field = p == self.field
        return super().analyse(frame)

    def relabel(self, det, truth):
        upp = self.scope.camera.um_per_px
        if truth.cls not in ("dust", "fibre") or upp * max(truth.box_px[2] - truth.box_px[0],
                                                            truth.box_px[3] - truth.box_px[1]) < 15.0:
            return None
        if self.in_field:
            return replace(det, kind="debris", cls="debris", confidence=0.27, scores=dict(self.FIELD), recheck=True)
        return replace(det, kind="debris", cls="debris", confidence=0.79, scores=dict(self.SURE), recheck=False)


def test_dirt_a_field_took_for_a_lens_and_every_later_look_for_dirt_has_no_phase_read(tmp_path, monkeypatch):
    read = []
    phase_verdict = runner_module.ScanRunner._phase_verdict

    def spy(self, w, det, frame, focus_z_um):
        read.append(dict(det.scores))
        return phase_verdict(self, w, det, frame, focus_z_um)

    monkeypatch.setattr(runner_module.ScanRunner, "_phase_verdict", spy)
    slide = {**SLIDE, "debris_per_mm2": 60.0}
    s, vision = _scan_relabelled(tmp_path, 35, _DirtOnceALens, slide)
    assert vision.seen and s["false_structures"] == 0 and s["debris_as_structure"] == 0.0
    assert s["recall"] == 1.0 and s["type_accuracy"] == 1.0
    # a phase is read of lenses and of views that still name one, never of a view sure of dirt
    assert all(scores.get("microlens", 0.0) >= 0.01 for scores in read), read
