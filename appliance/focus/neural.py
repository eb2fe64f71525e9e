"""Single-image focus: a defocus estimator predicts, the stage moves, one frame verifies.

The estimator is anything with a ``predict(crops)`` method (:class:`DefocusEstimator`); the focus net
(``appliance/vision/focusnet.py``) is meant to satisfy it. Sign convention: ``defocus_um`` is the stage z
of the frame minus the structure's focus z (positive: the objective is focused above the structure), so
the correction is ``z - defocus_um``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from appliance.focus.result import FocusResult
from appliance.focus.scores import Rect, find_target
from appliance.focus.search import classical
from appliance.focus.session import FocusSession


@dataclass(frozen=True)
class DefocusEstimate:
    """One crop's predicted defocus.

    Attributes
    ----------
    defocus_um : float
        Frame z minus the structure's focus z, µm.
    confidence : float
        In [0, 1]; how sure the estimator is (for the 41-class net, e.g. the probability mass within
        ±1 µm of the prediction).
    """

    defocus_um: float
    confidence: float


@runtime_checkable
class DefocusEstimator(Protocol):
    """What the neural strategy needs from a focus net."""

    def predict(self, crops: Sequence[np.ndarray]) -> Sequence[DefocusEstimate]:
        """One estimate per grayscale uint8 crop (any size: the estimator resizes as it needs)."""
        ...


def crop(image: np.ndarray, rect: Rect) -> np.ndarray:
    """The C-contiguous ``(x, y, w, h)`` crop of ``image``."""
    x, y, w, h = rect
    return np.ascontiguousarray(image[y:y + h, x:x + w])


def estimate(estimator: DefocusEstimator, image: np.ndarray, rect: Rect) -> DefocusEstimate:
    """The estimator's answer for one crop, checked (a non-finite answer reads as no confidence)."""
    out = list(estimator.predict([crop(image, rect)]))
    if len(out) != 1:
        raise ValueError(f"the defocus estimator returned {len(out)} estimates for 1 crop")
    e = out[0]
    d, c = float(e.defocus_um), float(e.confidence)
    if not (np.isfinite(d) and np.isfinite(c)):
        return DefocusEstimate(0.0, 0.0)
    return DefocusEstimate(d, min(max(c, 0.0), 1.0))


def neural(s: FocusSession, estimator: DefocusEstimator, start_um: float, *, min_confidence: float = 0.5,
           accept_um: float = 1.0, verify: bool = True, coarse_um: float = 4.0,
           fine_pairs: bool = True) -> FocusResult:
    """Predict from one frame, move, verify with one more; fall back to :func:`classical` when unsure.

    Parameters
    ----------
    s : FocusSession
    estimator : DefocusEstimator
    start_um : float
        Where the first frame is taken.
    min_confidence : float
        Below this the estimate is not trusted.
    accept_um : float
        The verifying frame passes when it predicts a residual defocus within ±``accept_um``; the residual is
        then corrected without another frame.
    verify : bool
        False: trust a confident first prediction (one frame; used by the focus map when the prediction
        agrees with the map).
    coarse_um : float
        The classical fall-back's coarse step.
    fine_pairs : bool
        Whether the fall-back may read a thin wall's pair on the fine curve (:func:`classical`).

    Returns
    -------
    FocusResult
        ``strategy`` is ``neural``, or ``neural>classical`` with the fall-back's reason prefixed by why.
    """
    z0 = s.capture(start_um)
    rect = s.target if s.target is not None else find_target(s.images[-1])
    if rect is None:
        return _fallback(s, z0, "nothing in view", coarse_um, fine_pairs)
    e0 = estimate(estimator, s.images[-1], rect)
    if e0.confidence < min_confidence:
        return _fallback(s, z0, f"net unsure (confidence {e0.confidence:.2f})", coarse_um, fine_pairs)
    z1_target = z0 - e0.defocus_um
    if not s.lo <= z1_target <= s.hi:
        return _fallback(s, z0, f"net points outside the range ({z1_target:.1f} um)", coarse_um, fine_pairs)
    if not verify:
        return s.result(z1_target, True, "focused (one frame, not verified)", "neural")
    z1 = s.capture(z1_target)
    e1 = estimate(estimator, s.images[-1], rect)
    if e1.confidence >= min_confidence and abs(e1.defocus_um) <= accept_um:
        return s.result(z1 - e1.defocus_um, True, "focused (verified)", "neural")
    why = f"verify frame disagrees (residual {e1.defocus_um:+.1f} um, confidence {e1.confidence:.2f})"
    return _fallback(s, z1, why, coarse_um, fine_pairs)


def _fallback(s: FocusSession, start: float, why: str, coarse_um: float, fine_pairs: bool = True) -> FocusResult:
    r = classical(s, start, coarse_um=coarse_um, fine_pairs=fine_pairs)
    return FocusResult(z_um=r.z_um, frames=r.frames, score=r.score, ok=r.ok, reason=f"{why}; {r.reason}",
                       strategy="neural>classical", time_s=r.time_s, trace=r.trace)
