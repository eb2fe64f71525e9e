"""The stage's XY backlash, as the calibration measures it, and the approach a scan's moves need to cancel it.

Every scan move ends moving +x, +y after a detour ``imaging.approach_um`` below its target, so the lead
screws' slack is always taken up the same way. That holds only while the detour is longer than the slack:
a cheap lead-screw or geared stage has tens of micrometres of it, and a user may set the detour to 0 for a
stage believed to have none. The calibration therefore reads the slack once (:func:`measure_backlash`: the
same place reached from below and from above, the image shift between the two through the fitted map), and
the scan's moves approach by at least :func:`needed_approach_um` of it, saying so when that overrides the plan.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from appliance.hardware.camera.base import Camera
from appliance.hardware.stage.base import Stage, StageLimitError

#: How far past the place the probe goes before coming back to it from above, µm: the most slack it can read.
PROBE_UM = 50.0

#: A slack under this is the stage's repeatability (jitter, a step's rounding), not backlash, µm.
MIN_BACKLASH_UM = 1.0

#: The approach needed is this many times the slack, plus :data:`APPROACH_MARGIN_UM`: the slack varies along
#: a lead screw, and the reading has the phase correlation's error.
APPROACH_FACTOR = 1.5
APPROACH_MARGIN_UM = 2.0


#: Two frames in, the stage displacement between them out (µm), or None where they do not say.
MovedUm = Callable[[np.ndarray, np.ndarray], "tuple[float, float] | None"]


def measure_backlash(stage: Stage, camera: Camera, x_um: float, y_um: float, offset_um: float, approach_um: float,
                     moved_um: MovedUm) -> tuple[float, float] | None:
    """The XY slack near ``(x_um, y_um)``, µm per axis, or None where the probe could not read it.

    The place is reached from below (``approach_um`` under it on both axes) and captured; then the stage goes
    ``PROBE_UM`` beyond ``offset_um`` further on, comes back to that offset from above and captures again. The
    carriage stops short of a target reached from above by the slack, so the stage's displacement between the
    two frames (``moved_um(a, b)``: µm from the images, or None where they do not correlate well enough to say)
    exceeds the offset by it. The offset keeps the image shift clear of zero, where whatever is fixed to the
    camera correlates. The stage is left at the place, reached from below. A probe that would leave the travel,
    or a reading well below zero (a false correlation peak), reads nothing.
    """
    far = x_um + offset_um, y_um + offset_um
    try:
        stage.move_to_um(x=x_um - approach_um, y=y_um - approach_um)
        stage.move_to_um(x=x_um, y=y_um)
        below = camera.capture().image
        stage.move_to_um(x=far[0] + PROBE_UM, y=far[1] + PROBE_UM)
        stage.move_to_um(x=far[0], y=far[1])
        above = camera.capture().image
        stage.move_to_um(x=x_um - approach_um, y=y_um - approach_um)
        stage.move_to_um(x=x_um, y=y_um)
    except StageLimitError:
        return None
    d = moved_um(below, above)
    if d is None:
        return None
    slack = float(d[0]) - offset_um, float(d[1]) - offset_um
    if min(slack) < -APPROACH_MARGIN_UM or max(slack) > PROBE_UM + APPROACH_MARGIN_UM:
        return None
    return max(slack[0], 0.0), max(slack[1], 0.0)


def needed_approach_um(backlash_um: Sequence[float] | None) -> float:
    """The shortest detour that takes up ``backlash_um`` (0 where there is none to speak of or it is unknown)."""
    if backlash_um is None or max(backlash_um) < MIN_BACKLASH_UM:
        return 0.0
    return float(math.ceil(APPROACH_FACTOR * max(backlash_um) + APPROACH_MARGIN_UM))


def approach_um(plan_approach_um: float, calibration: Mapping[str, Any] | None) -> float:
    """The detour a scan's moves take: the plan's, or longer where the calibration measured more slack."""
    backlash = (calibration or {}).get("backlash_um")
    return max(float(plan_approach_um), needed_approach_um(backlash))


def backlash_warnings(plan_approach_um: float, calibration: Mapping[str, Any] | None) -> list[str]:
    """A warning when the measured slack overrides the plan's ``imaging.approach_um`` (empty otherwise)."""
    used = approach_um(plan_approach_um, calibration)
    if used <= plan_approach_um:
        return []
    bx, by = (calibration or {})["backlash_um"]
    return [f"the stage's backlash measured {bx:.1f} um in x and {by:.1f} um in y, more than imaging.approach_um "
            f"{plan_approach_um:g} um takes up, which would leave positions off by as much: every move approaches "
            f"by {used:g} um instead (set imaging.approach_um to at least that to say so in the plan)"]
