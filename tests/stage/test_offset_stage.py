"""The offset stage: targets moved by its offset, positions (the stage's and its camera's frames') moved back."""

from __future__ import annotations

import math

import numpy as np
import pytest

from appliance.hardware.stage.base import Position
from appliance.hardware.stage.offset import OffsetStage, offset
from appliance.sim.clock import VirtualClock
from appliance.sim.stage import SimStage, SimStageParams


def test_targets_gain_the_offset_and_positions_lose_it() -> None:
    with SimStage(VirtualClock(), SimStageParams(backlash_um=(0.0, 0.0, 0.0))) as inner:
        stage = OffsetStage(inner, (-7.0, 5.0, 0.0))
        assert stage.move_to_um(100.0, 200.0) == Position(100.0, 200.0, 90.0)
        assert inner.position_um() == Position(93.0, 205.0, 90.0)
        assert stage.move_by_um(10.0, -10.0) == Position(110.0, 190.0, 90.0)
        assert stage.focus_to_um(80.0).z_um == 80.0 and stage.focus_travel_um == (0.0, 180.0)


def test_its_camera_stamps_frames_in_the_offset_coordinates() -> None:
    class _Camera:
        size_px = (640, 480)

        def capture(self) -> object:
            from appliance.hardware.camera.base import Frame

            return Frame(np.zeros((4, 4), np.uint8), inner.position_um(), 0.0, 1.0)

    with SimStage(VirtualClock()) as inner:
        stage, camera = offset(inner, _Camera(), (3.0, -2.0, 0.0))  # type: ignore[arg-type]
        stage.move_to_um(50.0, 60.0)
        assert camera.capture().position[:2] == stage.position_um()[:2] == (50.0, 60.0)
        assert camera.size_px == (640, 480)


@pytest.mark.parametrize("bad", [(1.0, 2.0), (0.0, math.nan, 0.0), (0.0, 0.0, math.inf)])
def test_an_offset_that_is_not_three_finite_numbers_is_refused(bad) -> None:
    with SimStage(VirtualClock()) as inner, pytest.raises(ValueError, match="offset_um must be three finite"):
        OffsetStage(inner, bad)
