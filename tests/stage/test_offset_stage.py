"""The offset stage: targets moved by its offset, positions (the stage's and its camera's frames') moved back."""

from __future__ import annotations

import math

import numpy as np
import pytest

from appliance.hardware.stage.base import Position, StageError
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


class _Board(SimStage):
    """The virtual stage, counting from ``zero`` (a board that restarts without homing: power-up zero)."""

    zero = (0.0, 0.0, 0.0)

    def position_um(self) -> Position:
        p = super().position_um()
        return Position(*(v - z for v, z in zip(p, self.zero, strict=True)))

    def move_to_um(self, x: float | None = None, y: float | None = None, z: float | None = None) -> Position:
        super().move_to_um(*(None if v is None else v + d for v, d in zip((x, y, z), self.zero, strict=True)))
        return self.position_um()


def test_carry_over_keeps_the_carriages_coordinates_where_the_board_counts_anew() -> None:
    with _Board(VirtualClock(), SimStageParams(backlash_um=(0.0, 0.0, 0.0), z_mode="stepper")) as inner:
        stage = OffsetStage(inner, (0.0, 0.0, 0.0))
        with pytest.raises(StageError, match="before the scan knew where its carriage was"):
            stage.carry_over()
        stage.move_to_um(300.0, 200.0)
        assert stage.carry_over() == Position(300.0, 200.0, 90.0)  # a board that kept its count: nothing moves
        assert stage.offset_um == (0.0, 0.0, 0.0) and stage.doubt_um == (0.0, 0.0)
        SimStage.move_to_um(inner, 500.0, 400.0)  # jogged by hand, count and carriage together: the count holds
        assert stage.carry_over() == Position(500.0, 400.0, 90.0) and stage.offset_um == (0.0, 0.0, 0.0)
        stage.move_to_um(300.0, 200.0)
        _Board.zero = (300.0, 200.0, 90.0)  # it restarted where the move ended, counting from there
        try:
            assert stage.carry_over() == Position(300.0, 200.0, 90.0)
            assert stage.offset_um == (-300.0, -200.0, -90.0) and stage.doubt_um == (0.0, 0.0)
            stage.move_to_um(310.0, 190.0)
            assert inner.position_um() == Position(10.0, -10.0, 0.0)
        finally:
            _Board.zero = (0.0, 0.0, 0.0)


def test_carry_over_of_a_move_cut_short_assumes_its_target_and_says_how_far_back_it_began() -> None:
    with _Board(VirtualClock(), SimStageParams(backlash_um=(0.0, 0.0, 0.0))) as inner:
        stage = OffsetStage(inner, (0.0, 0.0, 0.0))
        stage.move_to_um(100.0, 100.0)
        stage._going = stage.to_inner(400.0, 100.0, None)  # the move in flight when the board restarted
        _Board.zero = (100.0, 100.0, 0.0)  # ... at its start, counting from there (a servo's angle stays)
        try:
            assert stage.carry_over() == Position(400.0, 100.0, 90.0)  # the target's coordinates, assumed
            assert stage.doubt_um == (-300.0, 0.0) and stage.offset_um == (-400.0, -100.0, 0.0)
        finally:
            _Board.zero = (0.0, 0.0, 0.0)
