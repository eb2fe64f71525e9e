"""Stages: one interface (:class:`Stage`); the GRBL serial driver here, the simulated stage in ``appliance.sim``."""

from appliance.hardware.stage.base import (
    Position,
    Stage,
    StageAlarm,
    StageError,
    StageLimitError,
    StageProtocolError,
    StageTimeout,
)

__all__ = ["Position", "Stage", "StageAlarm", "StageError", "StageLimitError", "StageProtocolError",
           "StageTimeout"]
