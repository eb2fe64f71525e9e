"""The autofocus bench on the virtual microscope: K fields, each centred on a structure, one strategy.

Fields are the structures of the slide ``seed`` (then ``seed + 1``, ... when more are needed), visited in
a serpentine scan order (rows of 1 mm in y, alternate directions in x), so the focus map sees them as a
scan would. Each autofocus starts at the structure's true focus plus an offset drawn uniformly from
±``offset_um`` (seeded by the slide seed and the field), searches ``start ± range_um``, and is given the
structure's box (grown by the score margin) as its roi, as a detection would give it. The error is the
stage's *true* z afterwards (backlash included) minus the structure's true focus z (the slide's ground
truth); success is ``|dz| <= 1 µm``. Time is the virtual stage + exposure time of the autofocus.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np

from appliance.focus.autofocus import MAP_TRUST_P, autofocus
from appliance.focus.focusmap import GLASS_PRIOR_SIGMA_UM, FocusMap
from appliance.focus.neural import DefocusEstimator
from appliance.focus.reader import ReadingCorrector, default_chain
from appliance.focus.scores import TARGET_MARGIN_PX, grow_rect
from appliance.results.focuscurve import depth_of_field_scale
from appliance.sim.microscope import VirtualMicroscope
from appliance.sim.overrides import sim_microscope
from appliance.sim.slide import SlideObject
from appliance.sim.stage import SimStageParams

#: This many slides in a row without a structure end the bench with an error (a slide of the default 20 is never
#: empty, so only settings such as slide.n_structures=0 reach it).
EMPTY_SLIDES = 3
SUCCESS_UM = 1.0


@dataclass(frozen=True)
class FieldRun:
    """One field of the bench."""

    seed: int
    object_id: int
    cls: str
    frames: int
    dz_um: float
    ok: bool
    time_s: float
    map_points: int
    strategy: str
    reason: str
    map_pred_dz_um: float = math.nan
    map_surface_sigma_um: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (NaN as None)."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in vars(self).items()}


def scan_order(scope: VirtualMicroscope) -> list[SlideObject]:
    """The slide's structures in a serpentine order: 1 mm rows in y, x alternating direction per row."""
    objs = [o for o in scope.slide.objects if o.kind == "structure"]
    rows: dict[int, list[SlideObject]] = {}
    for o in objs:
        rows.setdefault(int(o.center_um[1] // 1000), []).append(o)
    out: list[SlideObject] = []
    for k, r in enumerate(sorted(rows)):
        out.extend(sorted(rows[r], key=lambda o: o.center_um[0], reverse=bool(k % 2)))
    return out


def bench_sets(focus: str, sim_sets: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """The bench's simulator overrides: ``sim_sets`` (as ``--sim-set`` gives them) with the focus drive's kind.

    Raises
    ------
    ValueError
        ``stage.z_mode`` among the overrides (the bench's ``focus`` sets it).
    """
    sets = {k: dict(v) for k, v in (sim_sets or {}).items()}
    if "z_mode" in sets.get("stage", {}):
        raise ValueError("--sim-set stage.z_mode: set the focus drive with --focus servo|stepper instead")
    sets.setdefault("stage", {})["z_mode"] = focus
    return sets


def _fields(seed: int, focus: str, sim_sets: Mapping[str, Mapping[str, Any]] | None = None
            ) -> Iterator[tuple[VirtualMicroscope, SlideObject, int]]:
    """Each structure of slide ``seed``, then of slide ``seed + 1``, ... (``ValueError`` after empty slides)."""
    sets = bench_sets(focus, sim_sets)
    empty = 0
    for s in itertools.count(seed):
        scope = sim_microscope(s, sets)
        order = scan_order(scope)
        # Settings that leave every slide without a structure (slide.n_structures=0) would try slides forever.
        empty = 0 if order else empty + 1
        if empty >= EMPTY_SLIDES:
            raise ValueError(f"slides {s - empty + 1}-{s} hold no structure to focus on (slide settings: "
                             f"{dict(sets.get('slide', {}))}); the bench focuses on structures, so the slides "
                             f"need some (slide.n_structures >= 1)")
        for k, o in enumerate(order):
            yield scope, o, k


def run_bench(seed: int, fields: int, strategy: str, focus: str = "servo",
              estimator: DefocusEstimator | None = None, offset_um: float = 10.0,
              range_um: float = 15.0, glass_map: bool = True, type_bias: bool = True,
              sim_sets: Mapping[str, Mapping[str, Any]] | None = None, reader: ReadingCorrector | None = None,
              on_field: Callable[[FieldRun], None] | None = None, map_trust: float = MAP_TRUST_P) -> list[FieldRun]:
    """Autofocus on ``fields`` structures; one :class:`FieldRun` each (see the module doc).

    ``sim_sets``: simulator overrides by section (``appliance.sim.overrides``), e.g. a 20x objective as
    ``{"optics": {"magnification": 20, "na": 0.4}}``; the slides are otherwise the default ones.

    ``glass_map`` (the default): each structure's reference height above the glass (half its printed
    height, which a user knows from the print job) is given to the autofocus, so the focus map holds the
    glass; False: the map is fitted to the structures' foci themselves. ``type_bias`` (the default): the
    structure's type is given too, as a classifier would give it, so the classical reading's per-type bias is
    taken off (``appliance.focus.typebias``), and its width across (its box's larger side, µm), as a detection
    and the camera's calibration give it, for the types whose bias follows their shape. ``reader``: the
    learned reading (:mod:`appliance.focus.reader`) replaces the type's bias, on slides whose optics it fits
    (elsewhere the type's bias stays). ``map_trust``: the ``map`` strategy's odds for one frame
    (:func:`appliance.focus.autofocus.autofocus`). ``on_field`` is called with each field's run as it is done.

    Raises
    ------
    ValueError
        A bad count, focus kind, offset or range.
    """
    if not (isinstance(fields, int) and fields >= 1):
        raise ValueError(f"fields must be an integer >= 1, got {fields!r}")
    if focus not in ("servo", "stepper"):
        raise ValueError(f"focus must be 'servo' or 'stepper', got {focus!r}")
    if not (0 <= offset_um < range_um):
        raise ValueError(f"offset_um must be in [0, range_um), got {offset_um!r} with range_um {range_um!r}")
    runs: list[FieldRun] = []
    current: VirtualMicroscope | None = None
    fmap = FocusMap()
    fits: ReadingCorrector | None = None
    bench_sets(focus, sim_sets)  # a bad override fails here, before any field
    for scope, obj, k in _fields(seed, focus, sim_sets):
        if len(runs) >= fields:
            break
        if scope is not current:
            current = scope
            fmap = FocusMap(prior_sigma_um=GLASS_PRIOR_SIGMA_UM) if glass_map else FocusMap()
            scope.stage.open()
            scope.camera.open()
            fits = reader if reader is not None and reader_fits(reader, scope) else None
        runs.append(_one_field(scope, obj, k, strategy, estimator, fmap, offset_um, range_um, glass_map,
                               type_bias, fits, map_trust))
        if on_field is not None:
            on_field(runs[-1])
    return runs


def reader_fits(reader: ReadingCorrector, scope: VirtualMicroscope) -> bool:
    """Whether the learned reading was trained at this virtual microscope's scale, depth of field and camera chain."""
    um = float(scope.camera.um_per_px)
    return reader.fits(um, scope.camera.optics.depth_of_field_um(um)) and default_chain(scope)


def _one_field(scope: VirtualMicroscope, obj: SlideObject, k: int, strategy: str,
               estimator: DefocusEstimator | None, fmap: FocusMap, offset_um: float,
               range_um: float, glass_map: bool = True, type_bias: bool = True,
               reader: ReadingCorrector | None = None, map_trust: float = MAP_TRUST_P) -> FieldRun:
    rng = np.random.default_rng([scope.seed, k, 0xF0C])
    cx, cy = obj.center_um
    start = obj.focus_z_um + float(rng.uniform(-offset_um, offset_um))
    scope.stage.move_to_um(x=cx, y=cy)
    scope.stage.focus_to_um(start)
    box = next(b for b in scope.boxes_at(cx, cy) if b.id == obj.id)
    w, h = scope.camera.size_px
    x0, y0, x1, y1 = box.box_px
    roi = grow_rect((x0, y0, x1 - x0, y1 - y0), TARGET_MARGIN_PX, (h, w))
    n_map = len(fmap)
    ref = obj.focus_z_um - scope.slide.surface_z_um(cx, cy) if glass_map else None
    pred_dz, surf_sigma = math.nan, math.nan
    if n_map:
        pred_dz = fmap.predict(cx, cy, offset_um=ref or 0.0)[0] - obj.focus_z_um
        surf_sigma = fmap.surface_sigma(cx, cy)
    r = autofocus(scope.stage, scope.camera, strategy, z_range_um=(start - range_um, start + range_um),
                  roi=roi, estimator=estimator, focus_map=fmap, xy_um=(cx, cy), now_s=scope.clock.now_s,
                  ref_height_um=ref, target_type=obj.cls if type_bias else None,
                  target_width_um=_width_um(scope, box.box_px), reader=reader, map_trust=map_trust)
    if r.ok and r.measured:
        fmap.add(cx, cy, r.point_um, offset_um=ref or 0.0)
    dz = scope.stage.true_position_um().z_um - obj.focus_z_um
    return FieldRun(scope.seed, obj.id, obj.cls, r.frames, float(dz), r.ok, float(r.time_s), n_map,
                    r.strategy, r.reason, float(pred_dz), float(surf_sigma))


def _width_um(scope: VirtualMicroscope, box_px: tuple[int, int, int, int]) -> float | None:
    """A box's larger side in µm, at the objective the lens's shape bias was fitted at (else None, as a scan)."""
    um_per_px = float(scope.camera.um_per_px)
    if depth_of_field_scale(scope.camera.optics.depth_of_field_um(um_per_px)) != 1.0:
        return None
    x0, y0, x1, y1 = box_px
    return max(x1 - x0, y1 - y0) * um_per_px


def summarise(runs: list[FieldRun]) -> dict[str, Any]:
    """The bench's figures: frames, |dz|, success rate, virtual time (medians and 95th percentiles)."""
    f = np.array([r.frames for r in runs], dtype=np.float64)
    d = np.abs(np.array([r.dz_um for r in runs], dtype=np.float64))
    t = np.array([r.time_s for r in runs], dtype=np.float64)
    return {"fields": len(runs), "frames_median": float(np.median(f)), "frames_p95": float(np.percentile(f, 95)),
            "abs_dz_median_um": float(np.median(d)), "abs_dz_p95_um": float(np.percentile(d, 95)),
            "success_rate": float(np.mean(d <= SUCCESS_UM)), "time_s_median": float(np.median(t)),
            "ok_rate": float(np.mean([r.ok for r in runs])),
            "false_ok_rate": float(np.mean([r.ok and abs(r.dz_um) > SUCCESS_UM for r in runs]))}


@dataclass(frozen=True)
class BlankRun:
    """One field with nothing in view, or only debris, focused by the map strategy."""

    seed: int
    kind: str
    frames: int
    z_pred_um: float
    sigma_um: float
    max_excursion_sigma: float
    final_offset_sigma: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(vars(self))


def blank_positions(scope: VirtualMicroscope, kind: str, n: int) -> list[tuple[float, float]]:
    """Up to ``n`` stage positions whose frame shows nothing (``empty``) or debris only (``debris``)."""
    out: list[tuple[float, float]] = []
    for y in range(700, 9300, 293):
        for x in range(700, 9300, 311):
            boxes = scope.boxes_at(float(x), float(y))
            if (kind == "empty" and not boxes) or (kind == "debris" and boxes
                                                    and all(b.kind == "debris" for b in boxes)):
                out.append((float(x), float(y)))
                if len(out) >= n:
                    return out
    return out


def run_blank_fields(seed: int, n: int, focus: str = "servo",
                     estimator: DefocusEstimator | None = None) -> list[BlankRun]:
    """Map strategy on ``n`` empty and ``n`` debris-only fields, after classical focus on three structures.

    Each blank field is visited right after the three map points, from the map's prediction; the run
    records how far any frame went from the prediction, in the map's standard deviations.
    """
    scope = VirtualMicroscope(seed, stage=SimStageParams(z_mode=cast(Literal["servo", "stepper"], focus)))
    scope.stage.open()
    scope.camera.open()
    fmap = FocusMap(prior_sigma_um=GLASS_PRIOR_SIGMA_UM)  # the glass: _one_field adds each point's offset
    for k, obj in enumerate(scan_order(scope)):
        if len(fmap) >= 3:
            break
        _one_field(scope, obj, k, "classical", None, fmap, 10.0, 15.0)
    runs: list[BlankRun] = []
    for kind in ("empty", "debris"):
        for x, y in blank_positions(scope, kind, n):
            z_pred, sigma = fmap.predict(x, y)
            scope.stage.move_to_um(x=x, y=y)
            res = autofocus(scope.stage, scope.camera, "map", z_range_um=(z_pred - 40, z_pred + 40),
                            focus_map=fmap, xy_um=(x, y), estimator=estimator, now_s=scope.clock.now_s)
            exc = max((abs(z - z_pred) for z, _ in res.trace), default=0.0) / sigma
            runs.append(BlankRun(seed, kind, res.frames, z_pred, sigma, exc, abs(res.z_um - z_pred) / sigma,
                                 res.reason))
    return runs
