"""Autofocus: focus scores, the sweep / classical / neural strategies, the focus map and focus stacks.

The public API (see docs/autofocus.md) drives only the ``Stage`` and ``Camera`` interfaces, so the scan
runner calls it the same way on the virtual microscope and on the real appliance::

    from appliance.focus import autofocus, FocusMap
    result = autofocus(stage, camera, "classical", z_range_um=(60.0, 120.0), roi=(x, y, w, h))
    if result.ok and result.measured:
        fmap.add(x_um, y_um, result.point_um)   # the frames' reading (``map`` may have moved z_um off it)
"""

from __future__ import annotations

from appliance.focus.autofocus import STRATEGIES, autofocus
from appliance.focus.focusmap import FocusMap
from appliance.focus.neural import DefocusEstimate, DefocusEstimator
from appliance.focus.result import FocusError, FocusResult
from appliance.focus.scores import SCORE_MODES

__all__ = ["SCORE_MODES", "STRATEGIES", "DefocusEstimate", "DefocusEstimator", "FocusError", "FocusMap",
           "FocusResult", "autofocus"]
