"""``autofocus(stage, camera, strategy, ...)``: the one entry point the scan runner calls."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace

from appliance.focus.focusmap import FocusMap
from appliance.focus.neural import DefocusEstimator, estimate, neural
from appliance.focus.reader import ReadingCorrector
from appliance.focus.result import FocusResult
from appliance.focus.scores import SCORE_MODES, check_roi, find_target
from appliance.focus.search import (
    FOCAL_SPOT_TYPES,
    GLASS_MIN_CONTRAST,
    PAIR_READING,
    STRUCTURE_MIN_CONTRAST,
    SYMMETRY_COVER_UM,
    classical,
    sweep,
    untrusted,
)
from appliance.focus.session import FocusSession, check_range
from appliance.focus.typebias import SHAPE_HEIGHT_SIGMA_UM, reading_bias_um
from appliance.hardware.camera.base import Camera
from appliance.hardware.stage.base import Stage

#: Strategies of :func:`autofocus`.
STRATEGIES: tuple[str, ...] = ("sweep", "classical", "neural", "map")

#: The map strategy searches within its prediction ± this many standard deviations.
MAP_WINDOW_K = 2.0
#: A map needs this many focused points before it replaces a search.
MAP_MIN_POINTS = 3
#: With no estimator, a map of the glass gives the focus after one frame shows the target in view where the
#: z the stage reached at its prediction lies within ``MAP_TRUST_WITHIN_UM`` of the true focus with at least
#: this probability, the prediction's error taken as Gaussian with the fitted surface's uncertainty there
#: (:meth:`FocusMap.surface_sigma`, with the reference height's); a less sure map is searched (classical) within
#: its window. On a stepper that is a surface sure to 0.61 µm; on a servo it also asks how far the prediction
#: lies from the whole degree the stage could stop at. Development slides 100-139, offline on 800 fields' own
#: readings per drive: 0.9 put 56 % of the stepper's fields after three at one frame (97.2 % within 1 µm), 0.95
#: (the old rule, a surface sure to 0.5 µm) 47 % (97.3 %); 0.85 cost 2 points (docs/autofocus.md, "A servo's
#: reading, and trusting the map by the odds").
MAP_TRUST_P = 0.9
#: ... within this budget (µm) at the default objective's depth of field; a shallower one shrinks it in proportion
#: (``width_scale`` below 1), a deeper one keeps it.
MAP_TRUST_WITHIN_UM = 1.0
#: The classical reading's scatter about a structure's true focus (a robust standard deviation, µm): 0.73 µm
#: over the 200 development fields (seeds 0-9, stepper; 2-6 µm misses of a lobe read for the focus on top).
#: A map of the glass's prediction is combined with the reading by their uncertainties (:func:`_combine`).
READING_SIGMA_UM = 0.7
#: ... but a few readings miss by a lobe's distance (a thin wall read on one lobe, 3-8 µm off): the reading's
#: error is a mixture, this share of it drawn from a wide spread of ``READING_OUTLIER_SIGMA_UM``. Where a sure
#: map and the reading disagree by far more than their scatter, the mixture says the reading is the one that
#: missed, and the map's prediction carries the field (:func:`_combine`). Measured on the development slides
#: (100-139, 800 fields each drive, offline on the combinations' inputs): shares 0.005-0.1 with 5 µm within 0.5
#: point of each other (3 µm no better), a share per kind of reading (a pair, one lobe of a thin wall) gained
#: nothing. 0.01 switches a third less often than 0.05 for the same gain: the map's own sigma can be too sure
#: (a held-out field's map 3-4 µm off at 0.9-1.4 µm), and a rarer switch asks more of the disagreement.
READING_OUTLIER_RATE = 0.01
READING_OUTLIER_SIGMA_UM = 5.0
#: The scatter of a reading the learned reader moved (:mod:`appliance.focus.reader`), in place of
#: ``READING_SIGMA_UM``: a robust standard deviation of its misses on its validation slides (models/focusreader).
READER_SIGMA_UM = 0.27
#: What the reason of a reading the learned reader moved says.
READ_BY_READER = "read from its frames by the learned reader"


def autofocus(stage: Stage, camera: Camera, strategy: str, *, z_range_um: Sequence[float],
              roi: Sequence[int] | None = None, start_um: float | None = None,
              estimator: DefocusEstimator | None = None, focus_map: FocusMap | None = None,
              xy_um: tuple[float, float] | None = None, mode: str = "roi", step_um: float = 1.0,
              coarse_um: float = 4.0, now_s: Callable[[], float] | None = None,
              ref_height_um: float | None = None, ref_sigma_um: float = 0.0,
              target_type: str | None = None, width_scale: float = 1.0, check_lobe: bool = False,
              target_width_um: float | None = None, speck_scale: float = 1.0,
              reader: ReadingCorrector | None = None, map_trust: float = MAP_TRUST_P) -> FocusResult:
    """Focus the stage on the target in view and say how that went.

    Parameters
    ----------
    stage, camera : Stage, Camera
        Open devices; only their interfaces are used (``focus_to_um``, ``position_um``, ``capture``).
    strategy : {'sweep', 'classical', 'neural', 'map'}
        ``sweep``: every ``step_um`` over the range, best frame. ``classical``: coarse walk, centre of the
        focus curve. ``neural``: ``estimator`` predicts from one frame, one frame verifies, classical when
        unsure or nothing is in view. ``map``: start from ``focus_map``'s prediction at ``xy_um`` and stay
        within it ± ``MAP_WINDOW_K`` sigma; with an estimator one frame decides, otherwise a classical
        search in that window; fewer than ``MAP_MIN_POINTS`` points: ``neural`` or ``classical``.
    z_range_um : (lo, hi)
        The focus range the search may visit, µm.
    roi : (x, y, w, h), optional
        The target's rectangle in pixels (a detection's box); None picks the largest dark object.
    start_um : float, optional
        First z; the stage's current z (clipped to the range) by default.
    estimator : DefocusEstimator, optional
        Required by ``neural``.
    focus_map : FocusMap, optional
        Required by ``map``. Any strategy that ends without a focus (nothing in view) leaves the stage at
        the map's prediction when a map with points is given.
    xy_um : (x, y), optional
        Stage position of the field for the map; the stage's current x, y by default.
    mode : str
        Score mode (:data:`appliance.focus.scores.SCORE_MODES`). ``specks`` (with no ``roi``) focuses on the
        glass: the small specks resting on it, clear of larger objects (fibres, bubbles and prints stand up to
        20 µm above it); with no speck in the first frame the result is ``ok`` False, reason ``NO_SPECKS``,
        after that one frame.
    step_um, coarse_um : float
        The sweep's step and the classical search's coarse step, µm.
    now_s : callable, optional
        Device clock for ``FocusResult.time_s`` (the simulator's virtual clock); wall clock by default.
    ref_height_um : float, optional
        The target's focus reference plane above the glass (half its printed height, from the print job).
        Given, ``focus_map`` is read as a map of the glass (its points added with their own offsets, see
        :meth:`FocusMap.add`) and predicts ``glass + ref_height_um`` here; None: the map's points are
        structure foci and predict this one's focus directly.
    ref_sigma_um : float
        How well ``ref_height_um`` is known (one standard deviation, µm; 0: exactly, as a print job's design
        height for the print): added in quadrature to the map's uncertainty, so a reference known only
        roughly widens the map's window and never lets the prediction alone be the focus.
    target_type : str, optional
        The target's structure type (a classifier's label). A focus read by the classical search is moved
        by that type's measured reading bias (``appliance.focus.typebias.READING_BIAS_UM``; 0 for a type it
        does not hold), the reason says so; None: no correction. A type in
        ``appliance.focus.search.FOCAL_SPOT_TYPES`` (a lens) has its pair read on the walking curve only.
    width_scale : float
        The objective's depth of field over the 11 µm the classical search was tuned at (10x / NA 0.25): the
        widths it reads the focus curve over are stretched by it (:func:`appliance.focus.search.classical`).
    target_width_um : float, optional
        The target's width across (its detection box's larger side, µm). With ``ref_height_um`` known to
        ``SHAPE_HEIGHT_SIGMA_UM`` (a print job's height, not a type's typical one) it gives a micro-lens's
        shape, which sets its reading bias (``appliance.focus.typebias.SHAPE_BIAS``).
    check_lobe : bool
        Report a focus whose walking curve is not one lobe (:func:`appliance.focus.search.untrusted`) as not
        ``ok``: a scan's field focus asks it, since its reading becomes a point of the focus map. ``specks``
        mode always checks, and also wants the glass's curve to rise ``GLASS_MIN_CONTRAST`` times.
    speck_scale : float
        ``specks`` mode: the camera's pixels per pixel of the speck sizes, >= 1
        (:func:`appliance.focus.scores.speck_scale` of its µm per pixel); 1: the sizes as tuned at 0.56 µm.
    reader : ReadingCorrector, optional
        The learned reading (:mod:`appliance.focus.reader`): a classical search's reading of a caller's target
        is moved by what the reader reads from the search's frames, instead of by the type's bias. Give it only
        for the optics it was trained at (:meth:`appliance.focus.reader.FocusReader.fits`).
    map_trust : float
        ``map`` with a map of the glass and no estimator: the prediction alone is the focus (one frame) where
        the stage lands within ``MAP_TRUST_WITHIN_UM`` of the focus with this probability, in [0.5, 1]
        (``MAP_TRUST_P`` by default; 1: never, every structure is searched).

    Returns
    -------
    FocusResult

    Raises
    ------
    ValueError
        An unknown strategy or mode, a bad range or roi, or a missing estimator / map.
    """
    _check_names(strategy, mode)
    lo, hi = check_range(z_range_um)
    rect = check_roi(roi, camera.size_px)
    pos = stage.position_um()
    start = min(max(pos.z_um if start_um is None else float(start_um), lo), hi)
    _check_needs(strategy, estimator, focus_map)
    xy = (pos.x_um, pos.y_um) if xy_um is None else (float(xy_um[0]), float(xy_um[1]))
    _check_numbers(ref_height_um, ref_sigma_um, target_width_um, speck_scale)
    _check_trust(map_trust)
    offset = 0.0 if ref_height_um is None else float(ref_height_um)
    ref_sigma = 0.0 if ref_height_um is None else float(ref_sigma_um)
    fix = _reading_fix(target_type, _reading_bias(target_type, ref_height_um, ref_sigma, target_width_um), reader)
    fine_pairs = target_type not in FOCAL_SPOT_TYPES
    pred = _map_prediction(focus_map, xy, offset, ref_sigma)
    if strategy == "map" and pred is not None and focus_map is not None and len(focus_map) >= MAP_MIN_POINTS:
        sure = math.hypot(focus_map.surface_sigma(*xy), ref_sigma) if ref_height_um is not None else None
        return _with_map(stage, camera, pred, (lo, hi), rect, estimator, mode, coarse_um, now_s, width_scale,
                         check_lobe, sure, fix, fine_pairs, speck_scale, map_trust)
    s = FocusSession(stage, camera, mode, rect, (lo, hi), now_s, speck_scale)
    if mode == "specks" and rect is None and not _specks_at(s, start):
        return _no_specks(s, pred)  # nothing small on the glass in view: the caller decides what else to focus on
    r = _search(s, strategy, start, estimator, step_um, coarse_um, width_scale, fine_pairs)
    r = _trust(s, fix(s, r), mode, check_lobe, boxed=rect is not None)
    return r if r.ok or pred is None else _park_at_map(s, r, pred[0])


def _reading_bias(target_type: str | None, ref_height_um: float | None, ref_sigma: float,
                  target_width_um: float | None) -> float:
    """The classical reading's bias for the target (``appliance.focus.typebias``), its shape's where it is known."""
    offset = 0.0 if ref_height_um is None else float(ref_height_um)
    # the reference plane is the print's mid-plane: the print is twice as tall (when its own height is known)
    own_height = ref_height_um is not None and ref_sigma <= SHAPE_HEIGHT_SIGMA_UM
    return reading_bias_um(target_type, height_um=2.0 * offset if own_height else None, width_um=target_width_um)


def _specks_at(s: FocusSession, start: float) -> bool:
    """Whether the first frame, at ``start``, shows specks on the glass (``specks`` mode looks there first)."""
    s.capture(start)
    return s.specks is not None


def _check_names(strategy: str, mode: str) -> None:
    """Refuse an unknown strategy or score mode, naming it."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {list(STRATEGIES)}, got {strategy!r}")
    if mode not in SCORE_MODES:
        raise ValueError(f"mode must be one of {list(SCORE_MODES)}, got {mode!r}")


def _check_needs(strategy: str, estimator: DefocusEstimator | None, focus_map: FocusMap | None) -> None:
    """Refuse ``neural`` without an estimator and ``map`` without a map."""
    if strategy == "neural" and estimator is None:
        raise ValueError("strategy 'neural' needs an estimator (a DefocusEstimator such as the focus net)")
    if strategy == "map" and focus_map is None:
        raise ValueError("strategy 'map' needs a focus_map")


def _check_trust(map_trust: float) -> None:
    """Refuse a map trust that is not a probability in [0.5, 1]."""
    if isinstance(map_trust, bool) or not (isinstance(map_trust, (int, float)) and 0.5 <= map_trust <= 1.0):
        raise ValueError(f"map_trust must be a probability in [0.5, 1], got {map_trust!r}")


def _check_numbers(ref_height_um: float | None, ref_sigma_um: float, target_width_um: float | None,
                   speck_scale: float) -> None:
    """Refuse a reference height, its sigma, a target width or a speck scale that is not a number in range."""
    if ref_height_um is not None and not math.isfinite(float(ref_height_um)):
        raise ValueError(f"ref_height_um must be a finite number of um, got {ref_height_um!r}")
    if isinstance(ref_sigma_um, bool) or not (isinstance(ref_sigma_um, (int, float)) and ref_sigma_um >= 0
                                              and math.isfinite(ref_sigma_um)):
        raise ValueError(f"ref_sigma_um must be a finite number of um >= 0, got {ref_sigma_um!r}")
    if target_width_um is not None and (isinstance(target_width_um, bool) or not (
            isinstance(target_width_um, (int, float)) and math.isfinite(target_width_um) and target_width_um > 0)):
        raise ValueError(f"target_width_um must be a finite number of um > 0, got {target_width_um!r}")
    if isinstance(speck_scale, bool) or not (isinstance(speck_scale, (int, float)) and math.isfinite(speck_scale)
                                             and speck_scale >= 1.0):
        raise ValueError(f"speck_scale must be a finite number >= 1, got {speck_scale!r}")


def _map_prediction(focus_map: FocusMap | None, xy: tuple[float, float], offset_um: float,
                    ref_sigma: float) -> tuple[float, float] | None:
    """The map's focus and its sigma at ``xy`` (the reference height's added in quadrature); None: no points."""
    pred = focus_map.predict(*xy, offset_um=offset_um) if focus_map is not None and len(focus_map) > 0 else None
    if pred is not None:
        pred = (pred[0], math.hypot(pred[1], ref_sigma))
    return pred


def _search(s: FocusSession, strategy: str, start: float, estimator: DefocusEstimator | None, step_um: float,
            coarse_um: float, width_scale: float, fine_pairs: bool) -> FocusResult:
    """The search ``strategy`` makes from ``start``; ``neural`` and ``map`` with no estimator: ``classical``."""
    if strategy == "sweep":
        return sweep(s, step_um)
    if strategy == "classical" or estimator is None:
        return classical(s, start, coarse_um=coarse_um, width_scale=width_scale, fine_pairs=fine_pairs)
    return neural(s, estimator, start, coarse_um=coarse_um, fine_pairs=fine_pairs)


#: What :func:`autofocus` says, in ``specks`` mode, when its first frame shows no speck on the glass ...
NO_SPECKS = "no specks on the glass in view"
#: ... and when no speck it scored changed with z (the camera's own dust only, or the glass out of range).
NO_GLASS = "no speck in view changed with focus: the glass is not in range (or has no specks)"


def _trust(s: FocusSession, r: FocusResult, mode: str, check_lobe: bool, boxed: bool = False) -> FocusResult:
    """``r``, or ``r`` marked not ``ok`` (with the reason) when its frames cannot back it.

    In ``specks`` mode a focus needs a speck that changed with z (not the camera's own dust) and a glass curve
    that rises ``GLASS_MIN_CONTRAST`` times in one lobe; with ``check_lobe`` any mode's curve must be one lobe.
    A classical search of the caller's box (``boxed``, ``roi`` mode), or of a field's largest object
    (``check_lobe``, ``roi`` mode), needs a walking curve that rises ``STRUCTURE_MIN_CONTRAST`` times.
    """
    if not (r.ok and r.measured):
        return r
    if mode == "specks" and not s.glass_seen():
        return replace(r, ok=False, reason=NO_GLASS)  # a "peak" of the shadows that never change: noise
    doubt = None
    if mode == "specks" or check_lobe:
        doubt = untrusted(s, GLASS_MIN_CONTRAST if mode == "specks" else 0.0)
    if doubt is None and (boxed or check_lobe) and mode == "roi" and "classical" in r.strategy:
        # the walk's own curve (a net's answer and its verify frame are two frames, no curve to judge). A
        # field's search on the largest object in view is held to it too: on the cheap colour camera such
        # curves rose 1.11-1.44 times where the other cameras' rose 2-35 times (held-out sweep 7600-7619),
        # and one of 1.11, a "peak" 5.9 µm below the glass, set the z of every later field of its scan (7617)
        doubt = untrusted(s, STRUCTURE_MIN_CONTRAST, lobes=False)
    return r if doubt is None else replace(r, ok=False, reason=doubt)


def _no_specks(s: FocusSession, pred: tuple[float, float] | None) -> FocusResult:
    r = s.result(s.z[-1], False, NO_SPECKS, "classical", moved=True)
    return r if pred is None else _park_at_map(s, r, pred[0])


def _with_map(stage: Stage, camera: Camera, pred: tuple[float, float], z_range: tuple[float, float],
              rect: tuple[int, int, int, int] | None, estimator: DefocusEstimator | None, mode: str,
              coarse_um: float, now_s: Callable[[], float] | None, width_scale: float = 1.0,
              check_lobe: bool = False, combine_um: float | None = None, fix: ReadingFix | None = None,
              fine_pairs: bool = True, speck_scale: float = 1.0, map_trust: float = MAP_TRUST_P) -> FocusResult:
    """Focus within the map's window: one net frame when it agrees, else a classical search there.

    ``combine_um`` (a map of the glass: its surface's and the reference height's uncertainty here): with no
    estimator, the prediction is the focus once one frame shows the target in view, where the stage stands
    near enough to it (:func:`_map_trusted` at ``map_trust``); otherwise a search's reading of a caller's target is
    combined with the prediction (:func:`_combine`). ``fix``: what moves a search's reading (:func:`_reading_fix`);
    ``fine_pairs``: as :func:`appliance.focus.search.classical` has it; ``speck_scale``: as :func:`autofocus`.
    """
    z_map = pred[0]
    z_pred, sigma = pred
    half = MAP_WINDOW_K * sigma
    lo, hi = max(z_range[0], z_pred - half), min(z_range[1], z_pred + half)
    if lo >= hi:  # the prediction lies outside the caller's range: search the range itself
        lo, hi = z_range
    z_pred = min(max(z_pred, lo), hi)
    s = FocusSession(stage, camera, mode, rect, (lo, hi), now_s, speck_scale)
    z0 = s.capture(z_pred)
    target = s.target if s.target is not None or mode == "specks" else find_target(s.images[-1])
    if target is None:  # empty glass: the map carries the field, no search
        what = NO_SPECKS if mode == "specks" else "nothing in view"
        r = s.result(z_pred, False, f"{what}: left at the map's prediction", "map")
        return replace(_strategy(r, "map"), measured=False)
    coarse = min(coarse_um, max(hi - lo, 1e-3) / 3)
    if estimator is not None:
        e = estimate(estimator, s.images[-1], target)
        z1 = z0 - e.defocus_um
        if e.confidence >= 0.5 and lo <= z1 <= hi:
            return _strategy(s.result(z1, True, "focused (map + one net frame)", "map"), "map")
    elif combine_um is not None and _map_trusted(z_map, combine_um, z0, width_scale, map_trust):
        r = s.result(z_pred, True, "focused at the map's prediction (one frame: target in view)", "map",
                     moved=True)
        return replace(r, measured=False)
    if rect is not None:
        # A detection says a structure is here: search wide enough to measure it (the symmetry reading
        # needs ±SYMMETRY_COVER_UM), so the map gains a point. A target the session found itself may be
        # debris: that search stays inside the map's window.
        wide = max(half, SYMMETRY_COVER_UM + coarse_um)
        s.lo, s.hi = min(s.lo, max(z_range[0], z_pred - wide)), max(s.hi, min(z_range[1], z_pred + wide))
        coarse = coarse_um
    r = _trust(s, classical(s, z0, coarse_um=coarse, width_scale=width_scale, fine_pairs=fine_pairs), mode,
               check_lobe, boxed=rect is not None)
    if not r.ok:
        return _park_at_map(s, r, z_pred, strategy="map")
    r = _strategy((fix or _unfixed)(s, r), "map" if r.strategy == "map" else f"map>{r.strategy}")
    return r if combine_um is None or rect is None else _combine(s, r, z_map, combine_um)


def _map_trusted(z_pred: float, sure_um: float, z_stage: float, width_scale: float,
                 p: float = MAP_TRUST_P) -> bool:
    """Whether the stage at ``z_stage`` is within the budget of the true focus with probability ``p``.

    The focus is taken as the map of the glass's prediction ``z_pred`` +- ``sure_um`` (Gaussian); the budget is
    ``MAP_TRUST_WITHIN_UM``, less for an objective shallower than the default (``width_scale`` < 1). A servo
    stands on the whole degree nearest the prediction, a stepper at it.
    """
    if not (math.isfinite(sure_um) and sure_um > 0):
        return False
    budget = MAP_TRUST_WITHIN_UM * min(1.0, width_scale)
    lo, hi = (z_stage - budget - z_pred) / sure_um, (z_stage + budget - z_pred) / sure_um
    return p < 1.0 and _normal_cdf(hi) - _normal_cdf(lo) >= p


def _normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _combine(s: FocusSession, r: FocusResult, z_pred: float, sure_um: float) -> FocusResult:
    """A searched focus combined with a map of the glass's prediction, each weighed by its uncertainty.

    The two are independent measurements of one z: the search's reading and the glass the other structures
    measured plus this one's reference height (``sure_um``: the fitted surface's uncertainty here and the
    height's). The reading's error is a mixture (:func:`_posterior_z`): the stage moves from below to the mean
    of the likelier of its two components, no frame taken; ``reading_um`` keeps the reading for the map. A net's
    or the map's own answer is left as it is.
    """
    if not (r.ok and r.measured and "classical" in r.strategy) or not math.isfinite(sure_um):
        return r
    sigma = READER_SIGMA_UM if r.learned else READING_SIGMA_UM
    z, missed = _posterior_z(r.point_um, z_pred, max(sure_um, 1e-3), sigma)
    how = "the reading taken for a miss: at" if missed else "combined with"
    return replace(r, z_um=s.move(z), reading_um=r.point_um, time_s=s.now_s() - s.t0,
                   reason=f"{r.reason}; {how} the map's prediction {z_pred:.1f} +- {sure_um:.2f} um")


def _posterior_z(read_um: float, pred_um: float, sure_um: float,
                 sigma_um: float = READING_SIGMA_UM) -> tuple[float, bool]:
    """The likelier focus given a reading and a prediction, and whether the reading was taken for a miss.

    The prediction is Gaussian (``sure_um``); the reading's error is ``sigma_um`` with probability
    1 - ``READING_OUTLIER_RATE``, else ``READING_OUTLIER_SIGMA_UM``. The posterior is then two Gaussians, one
    per component, weighed by how well each explains the distance between reading and prediction; the mean of
    the heavier one is returned (the mean of the mixture would land between them, near neither).
    """
    d = read_um - pred_um

    def component(rate: float, sigma: float) -> tuple[float, float]:
        """The component's log weight (no underflow however far apart) and its posterior mean."""
        spread = math.hypot(sigma, sure_um)
        w_read, w_map = sigma ** -2, sure_um ** -2
        return (math.log(rate / spread) - 0.5 * (d / spread) ** 2,
                (read_um * w_read + pred_um * w_map) / (w_read + w_map))

    good = component(1.0 - READING_OUTLIER_RATE, sigma_um)
    miss = component(READING_OUTLIER_RATE, READING_OUTLIER_SIGMA_UM)
    return (good[1], False) if good[0] >= miss[0] else (miss[1], True)


#: What moves a classical reading once the search is done: the type's bias, or the learned reader.
ReadingFix = Callable[[FocusSession, FocusResult], FocusResult]


def _unfixed(s: FocusSession, r: FocusResult) -> FocusResult:
    return r


def _reading_fix(target_type: str | None, bias: float, reader: ReadingCorrector | None) -> ReadingFix:
    """The learned reader where one is given (it replaces the type's table), else the type's bias."""
    if reader is not None:
        return lambda s, r: _read(s, r, reader)
    return lambda s, r: _debias(s, r, target_type, bias)


def _read(s: FocusSession, r: FocusResult, reader: ReadingCorrector) -> FocusResult:
    """Move a classical reading of a caller's target by what the reader reads from the search's frames."""
    if not (r.ok and r.measured) or "classical" not in r.strategy or s.roi is None or s.mode != "roi":
        return r
    # the reader learnt its correction about the z the stage stood at (the search's frames are about it)
    c = reader.correction_um(s.z, s.images, s.target, r.z_um)
    if c is None:
        return r
    return replace(r, z_um=s.move(r.z_um + c), reading_um=r.z_um + c, learned=True, time_s=s.now_s() - s.t0,
                   reason=f"{r.reason} ({READ_BY_READER} {c:+.2f} um)")


def _debias(s: FocusSession, r: FocusResult, target_type: str | None, bias: float) -> FocusResult:
    """Take the type's reading bias off a focus the classical search read (a net's or a map's z: untouched)."""
    pair = r.reason.startswith(PAIR_READING)  # the table holds the symmetry reading's bias, not the pair's
    if bias == 0.0 or pair or not (r.ok and r.measured) or "classical" not in r.strategy:
        return r
    return replace(r, z_um=s.move(r.point_um - bias), reading_um=r.point_um - bias, time_s=s.now_s() - s.t0,
                   reason=f"{r.reason} (less the {target_type} reading bias {bias:+.2f} um)")


def _park_at_map(s: FocusSession, r: FocusResult, z_pred: float, strategy: str | None = None) -> FocusResult:
    z = s.move(z_pred)
    return FocusResult(z_um=z, frames=r.frames, score=math.nan, ok=False,
                       reason=f"{r.reason}; left at the map's prediction {z_pred:.1f} um",
                       strategy=strategy or r.strategy, time_s=s.now_s() - s.t0, trace=r.trace, measured=False)


def _strategy(r: FocusResult, name: str) -> FocusResult:
    return replace(r, strategy=name)
