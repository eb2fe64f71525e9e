"""A homed stock GRBL board's travel, a plan outside it refused before any move, and ALARM:2 not "recovered".

The integrator's walkthrough (session 49): a stock GRBL 1.1h with homing and soft limits ($20=1), the default
plan in positive coordinates: seven minutes of silence, then ``SoftLimitAlarm: ALARM:2 ... before '$H' was
answered``. A homed stock GRBL works from minus its travel up to 0; the first move met ALARM:2, the stage-fault
recovery sent $H to a board that answers nothing until reset, and waited 120 s for it three times.
"""

from __future__ import annotations

import time

import pytest

from appliance.hardware.stage.base import StageLimitError
from appliance.hardware.stage.grbl import GrblStage
from appliance.hardware.stage.grbl_link import SoftLimitAlarm
from appliance.hardware.stage.offset import OffsetStage
from appliance.scan.plan import FaultsPlan
from appliance.scan.session import check_board_travel
from appliance.scan.stage_recovery import redo_after_stage_faults


def test_a_homed_stock_board_knows_its_travel_and_refuses_a_plan_outside_it(make_fake_grbl, stage_config):
    board = make_fake_grbl(homing=True, soft_limits=True)
    with GrblStage(stage_config(board.path)) as stage:
        stage.home()
        assert stage.xy_travel_um == ((-200000.0, 0.0), (-200000.0, 0.0))  # $130, $131 = 200 mm, below 0
        assert OffsetStage(stage, (0.0, 0.0, 0.0)).xy_travel_um == stage.xy_travel_um
        sent = len(board.received)
        with pytest.raises(StageLimitError) as err:
            check_board_travel(OffsetStage(stage, (0.0, 0.0, 0.0)), (0.0, 0.0, 1000.0, 1000.0))
        msg = str(err.value)
        assert "x 0..1000, y 0..1000 um" in msg and "x -200000..0 and y -200000..0 um" in msg
        assert "grid.right" in msg and "minus its travel ($130, $131) up to 0" in msg and "nothing moved" in msg
        assert len(board.received) == sent  # nothing sent for it
        check_board_travel(stage, (-5000.0, -5000.0, -4000.0, -4000.0))  # within: no error
    free = make_fake_grbl(homing=False, soft_limits=False)
    with GrblStage(stage_config(free.path)) as stage:
        assert stage.xy_travel_um is None  # its zero is wherever it powered up: not checked
        check_board_travel(stage, (0.0, 0.0, 1000.0, 1000.0))


def test_home_after_a_soft_limit_alarm_resets_the_board_first(make_fake_grbl, stage_config):
    board = make_fake_grbl(homing=True, soft_limits=True)
    with GrblStage(stage_config(board.path, homing_timeout_s=10.0)) as stage:
        stage.home()
        with pytest.raises(SoftLimitAlarm):
            stage.move_to_um(x=5000)
        t0 = time.monotonic()
        assert stage.home().x_um == pytest.approx(0.0, abs=5000)  # before: $H unanswered for homing_timeout_s
        assert time.monotonic() - t0 < 5.0 and board.resets_received >= 1


def test_a_soft_limit_alarm_is_the_plans_target_not_a_fault_to_home_from(make_fake_grbl, stage_config):
    board = make_fake_grbl(homing=True, soft_limits=True)
    with GrblStage(stage_config(board.path)) as stage:
        stage.home()
        homings = board.received.count("$H")
        t0 = time.monotonic()
        with pytest.raises(StageLimitError, match=r"ALARM:2.*a target lies beyond the board's travel"):
            redo_after_stage_faults(stage, FaultsPlan(stage_retry_wait_s=0.0), lambda: stage.move_to_um(x=5000))
        assert board.received.count("$H") == homings and time.monotonic() - t0 < 3.0  # no homing, no wait
