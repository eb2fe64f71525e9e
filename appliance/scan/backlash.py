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


#: Two frames and the least and most displacement expected on each axis (µm) in, the stage's displacement between
#: the frames out (µm), or None where they do not say.
MovedUm = Callable[[np.ndarray, np.ndarray, float, float], "tuple[float, float] | None"]


#: The probe's points, as fractions of :data:`PROBE_UM` taken off ``offset_um``, tried in turn until one reads:
#: the frame reached from above stands ``offset + slack`` from the one reached from below, which phase correlation
#: cannot read beyond a third of the frame (at 20x, 45 µm of slack past the first point). A nearer point shows the
#: same slack at a shorter distance, and where the first point failed, the slack is too large for a nearer point
#: to put the two frames at zero shift, where whatever is fixed to the camera correlates.
PROBE_POINTS = (0.0, 0.25, 0.5)


def measure_backlash(stage: Stage, camera: Camera, x_um: float, y_um: float, offset_um: float, approach_um: float,
                     moved_um: MovedUm) -> tuple[float, float] | None:
    """The XY slack near ``(x_um, y_um)``, µm per axis, or None where the probe could not read it.

    The place is reached from below (``approach_um`` under it on both axes) and captured; then a probe point
    (``offset_um`` on from the place, less one of :data:`PROBE_POINTS` of ``PROBE_UM``) is reached from
    ``PROBE_UM`` above it and captured, point by point until one reads. The carriage stops short of a target
    reached from above by the slack, so the stage's displacement between the place's frame and the point's
    (``moved_um(a, b, lo, hi)``: µm from the images, expected within ``lo`` to ``hi`` on each axis, or None where
    they do not correlate well enough to say) exceeds the point's offset by it. A reading well below zero or
    beyond the probe is a false correlation peak and reads nothing. The stage is left at the place, reached
    from below. A probe that would leave the travel reads nothing.
    """
    slack = None
    try:
        stage.move_to_um(x=x_um - approach_um, y=y_um - approach_um)
        stage.move_to_um(x=x_um, y=y_um)
        below = camera.capture().image
        for k in PROBE_POINTS:
            point = offset_um - k * PROBE_UM
            stage.move_to_um(x=x_um + point + PROBE_UM, y=y_um + point + PROBE_UM)
            stage.move_to_um(x=x_um + point, y=y_um + point)
            lo, hi = point - APPROACH_MARGIN_UM, point + PROBE_UM + APPROACH_MARGIN_UM
            slack = _read(moved_um(below, camera.capture().image, lo, hi), point)
            if slack is not None:
                break
        stage.move_to_um(x=x_um - approach_um, y=y_um - approach_um)
        stage.move_to_um(x=x_um, y=y_um)
    except StageLimitError:
        return None
    return slack


def _read(moved: tuple[float, float] | None, point_um: float) -> tuple[float, float] | None:
    """The slack a displacement reached from above shows past ``point_um``, or None where it is no reading."""
    if moved is None:
        return None
    bx, by = float(moved[0]) - point_um, float(moved[1]) - point_um
    if min(bx, by) < -APPROACH_MARGIN_UM or max(bx, by) > PROBE_UM + APPROACH_MARGIN_UM:
        return None
    return max(bx, 0.0), max(by, 0.0)


def needed_approach_um(backlash_um: Sequence[float] | None) -> float:
    """The shortest detour that takes up ``backlash_um`` (0 where there is none to speak of or it is unknown)."""
    if backlash_um is None or max(backlash_um) < MIN_BACKLASH_UM:
        return 0.0
    return float(math.ceil(APPROACH_FACTOR * max(backlash_um) + APPROACH_MARGIN_UM))


def approach_um(plan_approach_um: float, backlash_um: Sequence[float] | None) -> float:
    """The detour a scan's moves take: the plan's, or longer where the calibration measured more slack."""
    return max(float(plan_approach_um), needed_approach_um(backlash_um))


def backlash_warnings(plan_approach_um: float, calibration: Mapping[str, Any] | None) -> list[str]:
    """A warning when the measured slack overrides the plan's ``imaging.approach_um`` (empty otherwise)."""
    backlash = (calibration or {}).get("backlash_um")
    used = approach_um(plan_approach_um, backlash)
    if backlash is None or used <= plan_approach_um:
        return []
    bx, by = backlash
    return [f"the stage's backlash measured {bx:.1f} um in x and {by:.1f} um in y, more than imaging.approach_um "
            f"{plan_approach_um:g} um takes up, which would leave positions off by as much: every move approaches "
            f"by {used:g} um instead (set imaging.approach_um to at least that to say so in the plan)"]
