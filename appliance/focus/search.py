"""The two image-only strategies: the full sweep (the baseline) and the classical coarse-to-fine search."""

from __future__ import annotations

import math

import numpy as np

from appliance.focus.curve import estimate_focus
from appliance.focus.result import FocusResult
from appliance.focus.session import FocusSession

#: A curve whose best score is less than this times its worst has no focus peak (empty glass, noise).
MIN_PEAK_CONTRAST = 1.25


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
    return bool(v.size >= 3 and v.max() >= MIN_PEAK_CONTRAST * max(float(v.min()), 1e-9))


def classical(s: FocusSession, start_um: float, coarse_um: float = 4.0, level: float = 0.3,
              estimator: str = "centre", max_frames: int = 40) -> FocusResult:
    """Walk the focus curve in coarse steps until its main lobe is bracketed, then read its centre.

    The walk starts at ``start_um`` and extends the sampled interval one coarse step at a time, on the side
    where the curve has not yet fallen below ``min + level * (max - min)`` (uphill first); it stops as soon
    as both sides have (the early stop), or at the ends of the range. The focus is then the lobe's centre
    (or a peak fit, ``estimator``) and the stage goes there from below.

    Returns
    -------
    FocusResult
        ``ok`` False, with the reason, when the curve has no peak (nothing in view) or its maximum is at an
        end of the range (the structure's focus lies outside it): the stage is then left at the best frame
        seen, never at an extrapolated z.
    """
    if not coarse_um > 0:
        raise ValueError(f"coarse_um must be > 0, got {coarse_um!r}")
    if not s.has_frame_at(start_um, tol_um=0.5):  # a strategy falling back here may have one already
        s.capture(start_um)
    while s.frames < max_frames:
        z, v = s.curve()
        nxt = _next_coarse(z, v, s.lo, s.hi, coarse_um, level)
        if nxt is None:
            break
        s.capture(nxt)
    z, v = s.curve()
    i = int(np.argmax(v))
    best = float(z[i])
    if not _has_peak(v):
        return s.result(best, False, f"no focus peak in [{s.lo:g}, {s.hi:g}] um (nothing in view?)",
                        "classical", float(v.max()))
    edge = (i == 0 and z[0] <= s.lo + 0.5) or (i == len(z) - 1 and z[-1] >= s.hi - 0.5)
    if edge:
        return s.result(best, False, f"focus peak at the edge of the range [{s.lo:g}, {s.hi:g}] um at "
                        f"{best:g} um: the structure's focus is outside the range", "classical", float(v.max()))
    if s.frames >= max_frames:
        return s.result(best, False, f"no bracketed focus peak after {max_frames} frames", "classical",
                        float(v.max()))
    zf = estimate_focus(z, v, estimator, level)
    return s.result(zf, True, "focused", "classical", float(v.max()))


def _next_coarse(z: np.ndarray, v: np.ndarray, lo: float, hi: float, step: float, level: float) -> float | None:
    """The next z to sample, or None when the lobe is bracketed (or the range is used up)."""
    i = int(np.argmax(v))
    vmin, vmax = float(v.min()), float(v.max())
    peaked = vmax >= MIN_PEAK_CONTRAST * max(vmin, 1e-9)
    thr = vmin + level * (vmax - vmin)
    left_done = peaked and bool(np.any(v[:i] < thr))
    right_done = peaked and bool(np.any(v[i + 1:] < thr))
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
