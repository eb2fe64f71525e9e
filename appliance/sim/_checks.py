"""Parameter checks shared by the simulator's parameter classes (one message format for every parameter)."""

from __future__ import annotations

import math

import numpy as np


def check_number(name: str, value: object, lo: float, hi: float, *, positive: bool = False) -> float:
    """Return ``value`` as a float in ``[lo, hi]`` (and > 0 if ``positive``), else raise ``ValueError``.

    The message names the parameter, the allowed range and the value received, e.g.
    ``na must be a number in [0.01, 0.95], got 2``. Booleans and NaN/inf are rejected.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number in [{lo}, {hi}], got {value!r}")
    v = float(value)
    if not (math.isfinite(v) and lo <= v <= hi and (v > 0 or not positive)):
        raise ValueError(f"{name} must be a number in [{lo}, {hi}]{' and > 0' if positive else ''}, got {value!r}")
    return v
