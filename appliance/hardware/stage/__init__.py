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
from appliance.hardware.stage.grbl import GrblStage, GrblStageConfig
from appliance.hardware.stage.grbl_link import SoftLimitAlarm, StageConnectionError

__all__ = ["GrblStage", "GrblStageConfig", "Position", "SoftLimitAlarm", "Stage", "StageAlarm",
           "StageConnectionError", "StageError", "StageLimitError", "StageProtocolError", "StageTimeout"]
