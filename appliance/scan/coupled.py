"""Couple the virtual camera to another stage: the slide is rendered where that stage says it is.

Used to run a scan with the real stage firmware in simavr (or any ``Stage``) as the stage while the virtual
microscope supplies the images: :class:`ReportedPositionStage` gives ``SimCamera`` what it reads of a
``SimStage`` (``position_um``, ``true_position_um`` and a clock), taken from the wrapped stage's reports. A
stepper firmware puts the carriage exactly where it reports, so the reported position is the true one here.
"""

from __future__ import annotations

import time

from appliance.hardware.stage.base import Position, Stage
from appliance.sim.clock import VirtualClock


class ReportedPositionStage:
    """What ``SimCamera`` needs of a stage, read from another :class:`Stage`'s reported position.

    Parameters
    ----------
    stage : Stage
        The stage that really moves (e.g. ``GrblStage`` on the simavr board).
    """

    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        self.clock = VirtualClock(realtime=False)
        self._t0 = time.monotonic()

    def position_um(self) -> Position:
        """The wrapped stage's reported position (one status round trip)."""
        return self.stage.position_um()

    def true_position_um(self) -> Position:
        """Same as :meth:`position_um` (the firmware's step count is the carriage's position)."""
        self.clock.advance(max(0.0, time.monotonic() - self._t0 - self.clock.now_s()))  # device time is wall time
        return self.stage.position_um()
