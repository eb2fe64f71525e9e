"""The two image-only strategies: the full sweep (the baseline) and the classical coarse-to-fine search."""

from __future__ import annotations

import math

import numpy as np

from appliance.focus.curve import (
    SYMMETRY_HALF_WIDTH_UM,
    SYMMETRY_MIN_HALF_WIDTH_UM,
    estimate_focus,
    parabola_peak,
    second_lobes,
    symmetry_centre,
)
from appliance.focus.result import FocusResult
from appliance.focus.session import FocusSession

#: A curve whose best score is less than this times its worst has no focus peak (empty glass, noise).
MIN_PEAK_CONTRAST = 1.1


def sweep(s: FocusSession, step_um: float = 1.0, estimator: str = "max") -> FocusResult:
    """Frames over the whole range at a fixed step, upwards; focus on the best one.

    Parameters
    ----------
    s : FocusSession
    step_um : float
        Spacing of the frames, µm (> 0).
    estimator : str
        How the curve is read (:func:`appliance.focus.curve.estimate_focus`); ``max``, the best frame, is
        what users of a sweep expect.
    """
    if not step_um > 0:
        raise ValueError(f"step_um must be > 0, got {step_um!r}")
    n = int(math.floor((s.hi - s.lo) / step_um + 1e-9)) + 1
    for k in range(n):
        s.capture(s.lo + k * step_um)
    z, v = s.curve()
    if not _has_peak(v):
        return s.result(float(z[int(np.argmax(v))]), False, "no focus peak in the range (nothing in view?)",
                        "sweep", float(v.max()))
    best = estimate_focus(z, v, estimator)
    return s.result(best, True, "focused", "sweep", float(v.max()))


def _has_peak(v: np.ndarray) -> bool:
    return bool(v.size >= 3 and _stands_clear(v, MIN_PEAK_CONTRAST))


def _stands_clear(v: np.ndarray, ratio: float) -> bool:
    """Whether the curve's best score is at least ``ratio`` times its worst."""
    return bool(float(v.max()) >= ratio * max(float(v.min()), 1e-9))


#: A field's reading of its glass (score mode ``specks``) is trusted only when the glass's walking curve rises to
#: at least this many times its lowest frame. A speck resting on the glass, a few micrometres across, is sharp
#: at the objective's resolution in focus and a blur over the glass's noise a depth of field away: its
#: Laplacian's variance in its small box grows several-fold (3.5-10 times on the virtual 10x camera, 12-24 times
#: at 20x). Noise alone moves that variance by tens of percent from frame to frame, and on a camera that smooths
#: and compresses its frames (Bayer demosaicing, denoising, JPEG at quality 40) the specks' scores wandered
#: 1.2-1.96 times over a search with no lobe at all (docs/autofocus.md, "A reading that cannot be trusted").
GLASS_MIN_CONTRAST = 2.0
#: A field's reading is trusted only when its walking curve has one lobe: walking out from its maximum it never
#: rises again by more than this fraction of its range (:func:`appliance.focus.curve.second_lobes`). One object
#: sampled every 4 µm through an 11 µm depth of field falls away on both sides; noise zigzags.
LOBE_RISE = 0.1
#: A structure's search (the caller's box around a detection) is trusted only when its walking curve rises to
#: at least this many times its lowest frame. A print in view sharpens several-fold through focus on a camera
#: that resolves it (over 200 held-out fields at 10x the curves rose 1.3-40 times, 1 in 200 under 1.25); on a
#: camera whose own optics blur its frames as much as the objective's depth of field does (the virtual cheap
#: colour camera: 2 µm at the slide), 63 of 120 curves rose under 1.25 times and their "peaks" were noise:
#: 18 of those searches said ``ok`` while 2-20 µm off (docs/autofocus.md, "A camera that cannot see focus").
STRUCTURE_MIN_CONTRAST = 1.25
#: What the reason of a reading that fails those tests starts with.
UNTRUSTED = "the focus curve cannot be trusted"


def untrusted(s: FocusSession, min_contrast: float = 0.0, lobes: bool = True) -> str | None:
    """Why the session's walking curve is no reading to trust, or None when it is one lobe standing clear.

    Parameters
    ----------
    s : FocusSession
    min_contrast : float
        The curve's maximum must reach this many times its minimum (0: no contrast test).
    lobes : bool
        Test that the curve is one lobe (False: a thin wall's two lobes are a reading too).
    """
    z, v = s.curve()
    if v.size == 0:
        return f"{UNTRUSTED}: no frame"
    c = float(v.max()) / max(float(v.min()), 1e-9)
    if min_contrast > 0 and c < min_contrast:
        return f"{UNTRUSTED}: its best frame is {c:.2f} times its worst, below {min_contrast:g} (a flat curve's noise)"
    n = second_lobes(v, LOBE_RISE) if lobes else 0
    if n:
        return (f"{UNTRUSTED}: it rises again {n} time(s) by more than {LOBE_RISE:.0%} of its range away from its "
                "maximum (noise, or more than one object)")
    return None


#: A curve whose maximum is below this times its minimum is faint: its lobe is measured from the glass's
#: noise floor (:func:`appliance.focus.scores.noise_floor`), not from its lowest sample.
FAINT_CONTRAST = 1.25


def _base(s: FocusSession, v: np.ndarray) -> float:
    """Where the walking curve's level is measured from: its minimum, or the glass floor for a faint lobe."""
    vmin = float(v.min())
    if float(v.max()) < FAINT_CONTRAST * vmin:
        return min(vmin, s.floor())
    return vmin


def classical(s: FocusSession, start_um: float, coarse_um: float = 4.0, level: float = 0.3,
              estimator: str = "symmetry", max_frames: int = 40, width_scale: float = 1.0,
              fine_pairs: bool = True) -> FocusResult:
    """Walk the focus curve in coarse steps until its main lobe is bracketed, then read its centre.

    The walk starts at ``start_um`` and extends the sampled interval one coarse step at a time, on the side
    where the curve has not yet fallen below ``min + level * (max - min)`` (uphill first); it stops as soon
    as both sides have (the early stop), or at the ends of the range. With the ``symmetry`` estimator (the
    default) the walk then widens the sampled interval to ``SYMMETRY_COVER_UM`` either side of the lobe's
    centre, and the focus is the curve's centre of mirror symmetry there; otherwise it is the lobe's centre
    (or a peak fit, ``estimator``). On a caller's target box (``roi`` mode with a box), a curve (the walking
    one, else the fine one) that rises into a second lobe past a dip is a thin wall's pair: the second lobe is
    sampled past its maximum and the focus is midway between the two maxima (``_pair_focus``). The stage goes
    there from below. ``fine_pairs`` False looks for the pair on the walking curve only (a lens: see
    :data:`FOCAL_SPOT_TYPES`).

    ``width_scale`` stretches the widths the curve is read over (``SYMMETRY_HALF_WIDTH_UM``,
    ``SYMMETRY_COVER_UM``, ``LOBE_HALF_WIDTH_UM``, tuned at a depth of field of 11 µm) for an objective whose
    depth of field is that many times deeper; below 1 it is taken as 1.

    Returns
    -------
    FocusResult
        ``ok`` False, with the reason, when the curve has no peak (nothing in view) or its maximum is at an
        end of the range (the structure's focus lies outside it): the stage is then left at the best frame
        seen, never at an extrapolated z.
    """
    if not coarse_um > 0:
        raise ValueError(f"coarse_um must be > 0, got {coarse_um!r}")
    if not (isinstance(width_scale, (int, float)) and math.isfinite(width_scale) and width_scale > 0):
        raise ValueError(f"width_scale must be a finite number > 0, got {width_scale!r}")
    k = max(1.0, float(width_scale))
    if not s.has_frame_at(start_um, tol_um=0.5):  # a strategy falling back here may have one already
        s.capture(start_um)
    while s.frames < max_frames:
        nxt = _next_coarse(s, coarse_um, level)
        if nxt is None:
            break
        s.capture(nxt)
    z, v = s.curve()
    i = int(np.argmax(v))
    best = float(z[i])
    if not _has_peak(v):
        return s.result(best, False, f"no focus peak in [{s.lo:g}, {s.hi:g}] um (nothing in view?)",
                        "classical", float(v.max()))
    left_done, right_done = _sides_done(v, level, _base(s, v))
    # A lobe cut by an end of the range (not below its level there) counts as a peak only if it has fallen
    # clearly, by MIN_CUT_DROP of its maximum, by that end: a tail still rising into the range (with a
    # percent of noise on it) is not a peak.
    vmax = float(v.max())
    cut_left = not left_done and z[0] <= s.lo + 0.5 and float(v[0]) > (1 - MIN_CUT_DROP) * vmax
    cut_right = not right_done and z[-1] >= s.hi - 0.5 and float(v[-1]) > (1 - MIN_CUT_DROP) * vmax
    pairs = estimator == "symmetry" and s.roi is not None and s.mode == "roi"
    if i in (0, len(v) - 1) or cut_left or cut_right:
        # a thin wall's lobe cut by the range, with the dip and the other lobe inside: its focus is inside
        pair = _pair_focus(s, coarse_um, max_frames, fine_pairs) if pairs else None
        if pair is not None:
            return s.result(pair[0], True, PAIR_CUT_READING, "classical", float(v.max()))
        return s.result(best, False, f"no focus peak inside [{s.lo:g}, {s.hi:g}] um: the best frame ({best:g} um) "
                        "is at an end, so the structure's focus is outside the range (or too faint to bracket)",
                        "classical", float(v.max()))
    if s.frames >= max_frames:
        return s.result(best, False, f"no bracketed focus peak after {max_frames} frames", "classical",
                        float(v.max()))
    if estimator == "symmetry":
        _widen(s, _centre(s, z, v, "centre", level, k), coarse_um, max_frames, k)
        pair = _pair_focus(s, coarse_um, max_frames, fine_pairs) if pairs else None
        if pair is not None:
            return s.result(pair[0], True, PAIR_CUT_READING if pair[1] else PAIR_READING, "classical",
                            float(v.max()))
        return s.result(_symmetry(s, z, v, level, k), True, "focused", "classical", float(v.max()))
    return s.result(_centre(s, z, v, estimator, level, k), True, "focused", "classical", float(v.max()))


#: The symmetry reading wants the curve sampled this far either side of the lobe's centre, µm (the range
#: and ``max_frames`` permitting).
SYMMETRY_COVER_UM = SYMMETRY_HALF_WIDTH_UM - 2.0


def _widen(s: FocusSession, c_um: float, step: float, max_frames: int, k: float = 1.0) -> None:
    """Extend the sampled interval in coarse steps until it spans ``c_um ± k SYMMETRY_COVER_UM``."""
    lo, hi = max(s.lo, c_um - k * SYMMETRY_COVER_UM), min(s.hi, c_um + k * SYMMETRY_COVER_UM)
    while s.frames < max_frames:
        z, _ = s.curve()
        if z[0] > lo + 0.5:
            s.capture(max(float(z[0]) - step, lo))
        elif z[-1] < hi - 0.5:
            s.capture(min(float(z[-1]) + step, hi))
        else:
            return


def _symmetry(s: FocusSession, z: np.ndarray, v: np.ndarray, level: float, k: float = 1.0) -> float:
    """The centre of symmetry of the fine curve (the walking one when the fine one is lost in the noise).

    Falls back to the lobe's centre when too little of the curve is sampled (the range cuts it).
    """
    zf, vf = s.curve(fine=True)
    if not _stands_clear(vf, MIN_FINE_CONTRAST):
        zf, vf = s.curve()
    c0 = _centre(s, z, v, "centre", level, k)
    keep = np.abs(zf - c0) <= k * SYMMETRY_HALF_WIDTH_UM + 2.0
    c = symmetry_centre(zf[keep], vf[keep], k * SYMMETRY_HALF_WIDTH_UM, k * SYMMETRY_MIN_HALF_WIDTH_UM)
    return c0 if c is None else c


#: See :func:`classical`: how far a lobe cut by the range must have fallen at the cut, as a fraction of its peak.
MIN_CUT_DROP = 0.1

#: The fine curve is used when its best score is at least this times its worst (above the sensor noise).
MIN_FINE_CONTRAST = 1.03


def _centre(s: FocusSession, z: np.ndarray, v: np.ndarray, estimator: str, level: float, k: float = 1.0) -> float:
    """The focus from the fine curve when it stands above the noise and peaks inside, else the walking one."""
    zf, vf = _near_peak(*s.curve(fine=True), k)
    i = int(np.argmax(vf))
    if _stands_clear(vf, MIN_FINE_CONTRAST) and 0 < i < len(vf) - 1:
        return estimate_focus(zf, vf, estimator, level)
    zn, vn = _near_peak(z, v, k)
    return estimate_focus(zn, vn, estimator, level, floor=_base(s, v))


#: The centre is read from the samples within this distance of the curve's maximum: far samples (a walk
#: that started 30 µm away) would set the level by a tail that has nothing to do with the lobe.
LOBE_HALF_WIDTH_UM = 12.0


def _near_peak(z: np.ndarray, v: np.ndarray, k: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    keep = np.abs(z - z[int(np.argmax(v))]) <= k * LOBE_HALF_WIDTH_UM
    return z[keep], v[keep]


def _sides_done(v: np.ndarray, level: float, floor: float = np.inf) -> tuple[bool, bool]:
    """Whether the curve has fallen below its level (from ``floor`` if lower than its minimum) both sides."""
    i = int(np.argmax(v))
    base = min(float(v.min()), floor)
    thr = base + level * (float(v.max()) - base)
    return bool(np.any(v[:i] < thr)), bool(np.any(v[i + 1:] < thr))


def _next_coarse(s: FocusSession, step: float, level: float) -> float | None:
    """The next z to sample, or None when the lobe is bracketed (or the range is used up).

    The walking curve (variance of Laplacian) must be bracketed; so must the fine curve once it stands
    above the noise, since the focus is read from it.
    """
    z, v = s.curve()
    lo, hi = s.lo, s.hi
    i = int(np.argmax(v))
    peaked = _stands_clear(v, MIN_PEAK_CONTRAST)  # a peak, or (under three frames) a rise so far
    left_done, right_done = _sides_done(v, level, _base(s, v)) if peaked else (False, False)
    _, vf = s.curve(fine=True)
    if peaked and _stands_clear(vf, MIN_FINE_CONTRAST):
        fl, fr = _sides_done(vf, level)
        left_done, right_done = left_done and fl, right_done and fr
    # A side is used up when the next frame would land within half a micrometre of the last one there
    # (the stage rounds to its step: a servo's whole degree may not reach the range's end exactly).
    up: float | None = min(float(z[-1]) + step, hi)
    down: float | None = max(float(z[0]) - step, lo)
    if up is not None and up - z[-1] < 0.5:
        up = None
    if down is not None and z[0] - down < 0.5:
        down = None
    if left_done and right_done:
        return None
    if not peaked:
        # Flat so far: follow the tail that is higher (uphill), upwards when it is a tie.
        prefer_up = len(v) == 1 or v[-1] >= v[0]
        order = (up, down) if prefer_up else (down, up)
        return next((c for c in order if c is not None), None)
    if not right_done and up is not None and (i == len(v) - 1 or left_done or down is None):
        return up
    if not left_done and down is not None:
        return down
    if not right_done and up is not None:
        return up
    return None


#: A thin wall, bar or rim of a phase object fades at its own plane (its contrast inverts through focus): its
#: focus curve has two lobes a few micrometres either side, with the dip between them at the focus. A walk
#: that brackets one lobe has found a lobe, not the focus. A second lobe counts when the walking curve, past
#: a dip, climbs again by this fraction of its range (a one-lobe curve's ripple and noise stay below it) ...
PAIR_RISE = 0.2
#: ... within this many coarse steps of the first lobe's maximum. The lobes' distance follows the depth of field,
#: and so does the coarse step (a scan sets it from the objective): at 10x / NA 0.25 the two maxima lie 9-15 µm
#: apart and the step is 4 µm.
PAIR_REACH_STEPS = 4.0
#: A side whose last frame fell by less than this fraction of the range from the one before is probed one
#: coarse step further, unless it already reaches ``PAIR_REACH_STEPS``: a tail that has stopped falling may be
#: the dip before a second lobe.
PAIR_FLAT = 0.1
#: The reason a pair's reading gives.
PAIR_READING = "focused (midway between the two lobes of a thin wall's curve)"
#: ... and when one lobe's maximum lay at or beyond an end of the range (read at that end: the focus, between the
#: lobes, is inside the range, but the reading leans towards the range by up to half the cut).
PAIR_CUT_READING = PAIR_READING + ", one of them cut by the range's end"


def _pair_focus(s: FocusSession, step: float, max_frames: int, fine_pairs: bool = True) -> tuple[float, bool] | None:
    """A thin wall's pair read on the walking curve, else on the fine curve when that stands clear of the noise.

    The contrast inversion that makes the pair lives in the finest detail a wall shows: the walking measure
    (variance of the Laplacian) also weights the coarser detail of the whole print, whose one lobe can fill the
    dip, where the fine measure (the biharmonic) still shows both lobes. On the development slides
    (100-139, 800 fields each drive) 16-20 % more thin-walled prints were read as pairs this way, most of them
    scaffolds the walking curve had read on one lobe 5-9 µm off (docs/autofocus.md, "Two lobes on the fine
    curve"). ``fine_pairs`` False: the walking curve only. Returns what :func:`_pair_on` returns.
    """
    pair = _pair_on(s, step, max_frames, fine=False)
    if pair is not None or not fine_pairs:
        return pair
    if not _stands_clear(s.curve(fine=True)[1], PAIR_FINE_CONTRAST):
        return None
    return _pair_on(s, step, max_frames, fine=True)


#: The fine curve is searched for a pair only when its best frame scores this many times its worst: the
#: biharmonic weights the sensor's noise most, and a curve a few percent above it zigzags into false "lobes".
PAIR_FINE_CONTRAST = 1.3
#: ... and a second lobe there counts when it climbs by this fraction of the fine curve's range past the dip
#: (the walking curve's ``PAIR_RISE`` is 0.2; the fine curve zigzags more).
PAIR_FINE_RISE = 0.25
#: Types whose fine curve has a second peak of their own: a micro-lens's focal spot, a lens's focal length
#: above it, is sharp too, and read as a pair it put the focus midway to the spot, 6-7 µm off (three of the
#: four micro-lenses the fine curve read as pairs on the development slides). The autofocus, told the target's
#: type, reads their pairs on the walking curve only.
FOCAL_SPOT_TYPES: frozenset[str] = frozenset({"microlens"})


def _pair_on(s: FocusSession, step: float, max_frames: int, fine: bool) -> tuple[float, bool] | None:
    """The focus midway between the maxima of a two-lobed curve, and whether a lobe was cut by the range.

    ``fine`` selects the curve: the fine one (biharmonic) or the walking one (Laplacian); frames taken to
    bracket the second lobe join both.

    The second value is True when a maximum was read at an end of the range. None for a one-lobe curve, and
    when the frame budget ends before the second lobe's maximum. A lobe still rising at an end of the range is
    read there: the reading then leans towards the range by half the cut, where reading one lobe would miss the
    focus by the lobe's whole distance from it.
    """
    reach = PAIR_REACH_STEPS * step
    _probe_flat_sides(s, step, max_frames, reach, fine)
    z, v = s.curve(fine=fine)
    rise = PAIR_FINE_RISE if fine else PAIR_RISE
    side = _pair_side(z, v, reach, rise)
    if side == 0:
        return None
    tol = rise * float(v.max() - v.min())
    zm = float(z[int(np.argmax(v))])
    while True:
        z, v = s.curve(fine=fine)
        i = int(np.argmin(np.abs(z - zm)))
        seg_z, seg_v = (z[i:], v[i:]) if side > 0 else (z[i::-1], v[i::-1])
        d = _dip(seg_v, tol)
        j = d + int(np.argmax(seg_v[d:]))  # the second lobe's best frame
        if j < len(seg_v) - 1 and float(seg_v[j]) - float(seg_v[-1]) >= tol:
            break  # fallen again past its maximum: bracketed
        nxt = min(max(float(seg_z[-1]) + side * step, s.lo), s.hi)
        if abs(nxt - float(seg_z[-1])) < 0.5:
            break  # the range ends here: the lobe's maximum is read as far as the range lets it be seen
        if s.frames >= max_frames or abs(nxt - zm) > 2 * reach:
            if j == len(seg_v) - 1:
                return None  # still rising where the frames run out: no maximum to read
            break
        s.capture(nxt)
    z, v = s.curve(fine=fine)
    i = int(np.argmin(np.abs(z - zm)))
    second = int(np.argmin(np.abs(z - float(seg_z[j]))))
    ends = (0, len(z) - 1)
    return 0.5 * (_vertex(z, v, i) + _vertex(z, v, second)), i in ends or second in ends


def _probe_flat_sides(s: FocusSession, step: float, max_frames: int, reach: float, fine: bool = False) -> None:
    """One more coarse frame each side whose tail (the fine curve's, ``fine``) stopped falling short of ``reach``."""
    for side in (-1, 1):
        z, v = s.curve(fine=fine)
        if s.frames >= max_frames or len(v) < 3:
            return
        zm, rng = float(z[int(np.argmax(v))]), float(v.max() - v.min())
        end = -1 if side > 0 else 0
        # the frame a coarse step in from the end (a servo's whole degrees may have put two frames 1 µm apart)
        inner = np.flatnonzero(np.abs(z - z[end]) >= 0.75 * step)
        if abs(float(z[end]) - zm) >= reach or inner.size == 0:
            continue
        before = int(inner[-1] if side > 0 else inner[0])
        if float(v[before]) - float(v[end]) >= PAIR_FLAT * rng:
            continue
        nxt = min(max(float(z[end]) + side * step, s.lo), s.hi)
        if abs(nxt - float(z[end])) >= 0.5:  # not at the range's end already
            s.capture(nxt)


def _pair_side(z: np.ndarray, v: np.ndarray, reach_um: float, rise: float = PAIR_RISE) -> int:
    """-1 / +1 when the curve rises into a second lobe left / right of its maximum within ``reach_um``, else 0."""
    i = int(np.argmax(v))
    tol = rise * float(v.max() - v.min())
    near = np.abs(z - z[i]) <= reach_um
    for sign, seg in ((-1, v[:i + 1][near[:i + 1]][::-1]), (1, v[i:][near[i:]])):
        if _walk_out(seg, tol)[1]:
            return sign
    return 0


def _dip(seg: np.ndarray, tol: float) -> int:
    """Index of the lowest frame before the curve ``seg`` (walking out from a maximum) first climbs by ``tol``."""
    return _walk_out(seg, tol)[0]


def _walk_out(seg: np.ndarray, tol: float) -> tuple[int, bool]:
    """The lowest frame of ``seg`` before it first climbs by ``tol`` above it, and whether it does.

    ``seg`` is a curve walked out from a maximum (``seg[0]``).
    """
    low = 0
    for j in range(1, len(seg)):
        if float(seg[j]) > float(seg[low]) + tol:
            return low, True
        if seg[j] < seg[low]:
            low = j
    return low, False


def _vertex(z: np.ndarray, v: np.ndarray, i: int) -> float:
    """The vertex of the parabola through sample ``i`` and its neighbours (``z[i]`` at an end or when flat)."""
    if i == 0 or i == len(z) - 1:
        return float(z[i])
    return parabola_peak(z[i - 1:i + 2].tolist(), v[i - 1:i + 2].tolist())  # within its neighbours
