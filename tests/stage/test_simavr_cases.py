"""Issue 8's cases that apply to our own firmware, against the REAL firmware in simavr (never skipped)."""

import threading
import time

import pytest

from appliance.hardware.stage.base import StageAlarm
from appliance.hardware.stage.grbl import GrblStage

pytestmark = pytest.mark.simavr


def test_case04_servo_limits_written_in_dependency_order(simboard, stage_config):
    # defaults $201=1000, $202=2000: numeric order would write $201=2100 first, above $202 (error:3)
    with GrblStage(stage_config(simboard.pty_path, settings={201: 2100.0, 202: 2500.0})) as stage:
        assert (stage.board_settings[201], stage.board_settings[202]) == (2100.0, 2500.0)
    with GrblStage(stage_config(simboard.pty_path, settings={201: 500.0, 202: 900.0})) as stage:
        assert (stage.board_settings[201], stage.board_settings[202]) == (500.0, 900.0)


def test_case07_open_waits_for_a_move_left_running(simboard, stage_config):
    cfg = stage_config(simboard.pty_path, feed_xy_mm_per_min=600.0, reply_timeout_s=2.0)
    first = GrblStage(cfg)
    first.open()
    first.unlock()
    first.begin_move_to_um(x=5000)  # 0.5 s and more
    first.close()                    # the host goes away; the board keeps moving
    with GrblStage(cfg) as stage:
        assert stage.status().idle
        assert stage.position_um().x_um == 5000.0


def test_case07_a_feed_hold_pauses_the_move_deadline(simboard, stage_config):
    cfg = stage_config(simboard.pty_path, feed_xy_mm_per_min=600.0, move_timeout_margin_s=0.5,
                       reply_timeout_s=2.0)
    with GrblStage(cfg) as stage:
        stage.unlock()
        target = stage.begin_move_to_um(x=3000)  # 0.3 s plus ramps; deadline about 1 s
        time.sleep(0.1)
        stage.feed_hold()
        threading.Timer(1.5, stage.resume).start()
        assert stage.wait_for_move(target).x_um == 3000.0


def test_case02_stop_after_a_limit_alarm_resets_our_firmware_too(simboard, simstage):
    simstage.unlock()
    target = simstage.begin_move_to_um(x=8000)
    threading.Timer(0.2, simboard.set_limit, args=("x", True)).start()
    with pytest.raises(StageAlarm, match="ALARM:1"):
        simstage.wait_for_move(target)
    simboard.set_limit("x", False)
    simstage.stop()  # our firmware answers '?' after ALARM:1; the reset still goes through
    assert simstage.status().alarm
    simstage.unlock()
    assert simstage.move_to_um(x=1000).x_um == 1000.0


def test_case16_servo_halves_round_away_from_zero_like_simstage(simboard, stage_config):
    from appliance.sim.clock import VirtualClock
    from appliance.sim.stage import SimStage, SimStageParams

    with GrblStage(stage_config(simboard.pty_path, backlash_approach_um=0.0)) as stage:
        stage.unlock()
        assert stage.focus_to_um(42.5).z_um == 43.0
        lo, hi = stage.board_settings[201], stage.board_settings[202]
        assert simboard.servo_pulse_us() == pytest.approx(lo + (hi - lo) * 43 / 180, abs=1.0)
    sim = SimStage(VirtualClock(), SimStageParams(z_mode="servo", um_per_servo_degree=1.0))
    sim.open()
    sim.home()
    assert sim.focus_to_um(42.5).z_um == 43.0


def test_case08_a_reset_we_send_keeps_the_servo_angle(simboard, stage_config):
    """Our firmware keeps the servo pulse through a soft reset, so the driver keeps z (unlike an unasked reset)."""
    with GrblStage(stage_config(simboard.pty_path, backlash_approach_um=0.0)) as stage:
        stage.unlock()
        stage.focus_to_um(60.0)
        pulse = simboard.servo_pulse_us()
        stage.stop()
        assert simboard.servo_pulse_us() == pulse
        assert stage.position_um().z_um == 60.0
