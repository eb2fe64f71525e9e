"""Couple the virtual camera to another stage: the slide is rendered where that stage says it is.

Used to run a scan with the real stage firmware in simavr (or any ``Stage``) as the stage while the virtual
microscope supplies the images: :class:`ReportedPositionStage` gives ``SimCamera`` what it reads of a
``SimStage`` (``position_um``, ``true_position_um`` and a clock), taken from the wrapped stage's reports. A
stepper firmware puts the carriage exactly where it reports, so the reported position is the true one here.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

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


#: Net steps below the power-up position where the simavr board's virtual limit switches close (as the
#: ``tppscan stage --simavr`` command places them), so the firmware's power-up alarm is cleared by homing.
SIMAVR_SWITCH_STEPS = 400


@contextlib.contextmanager
def simavr_stage(feed_xy_mm_per_min: float = 600.0, park_z_um: float = 90.0) -> Iterator[Stage]:
    """The real stage firmware in simavr, driven by ``GrblStage`` over its pty, homed and ready to move.

    Builds the firmware if needed (``make -C firmware``); the board is stopped on exit. A hobby servo has no
    switch, so after homing its angle is unknown until set: focus is parked at ``park_z_um`` (mid-range on
    the default 0..180 degree servo, as the virtual stage's ``servo_home_z_um``).

    Raises
    ------
    SimavrBoardError
        The firmware or the simavr runner could not be built or started.
    """
    from appliance.hardware.stage.grbl import GrblStage, GrblStageConfig
    from appliance.hardware.stage.simavr_board import SimavrBoard, build_firmware

    with SimavrBoard(*build_firmware()) as board:
        for axis in "xyz":
            board.place_limit_switch(axis, -SIMAVR_SWITCH_STEPS, "-")
        config = GrblStageConfig(port=board.pty_path, boot_delay_s=0.0, feed_xy_mm_per_min=feed_xy_mm_per_min,
                                 homing_timeout_s=60.0, move_timeout_margin_s=10.0)
        with GrblStage(config) as stage:
            stage.home()
            stage.focus_to_um(park_z_um)
            yield stage
