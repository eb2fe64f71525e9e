"""Homing, alarms, stop(), open/close: the controller behaviour around the mechanics."""

import threading
import time

import pytest

from appliance.hardware.stage.base import Stage, StageAlarm, StageError
from appliance.sim.clock import VirtualClock
from appliance.sim.stage import SimStage, SimStageParams, trapezoid_distance_um


def trap(d, v, a):
    return d / v + v / a if d >= v * v / a else 2 * (d / a) ** 0.5


def test_is_a_stage_and_opens_with_with(clock):
    stage = SimStage(clock)
    assert isinstance(stage, Stage)
    assert not stage.is_open
    with stage as s:
        assert s is stage and stage.is_open
        assert stage.position_um() == (0.0, 0.0, 90.0)
    assert not stage.is_open
    stage.close()  # twice is fine


def test_closed_stage_refuses_commands_but_the_truth_is_visible(clock):
    stage = SimStage(clock)
    for call in (stage.position_um, lambda: stage.move_to_um(x=1.0), lambda: stage.focus_to_um(50.0),
                 stage.home, stage.unlock):
        with pytest.raises(StageError, match="not open"):
            call()
    assert stage.true_position_um() == (0.0, 0.0, 90.0)


def test_homing_required_blocks_moves_until_homed(make_stage):
    stage = make_stage(homing_required=True)
    assert stage.alarm is not None and not stage.is_homed
    with pytest.raises(StageAlarm, match="homing required"):
        stage.move_to_um(x=10.0)
    with pytest.raises(StageAlarm):
        stage.focus_to_um(50.0)
    stage.home()
    assert stage.is_homed and stage.alarm is None
    assert stage.move_to_um(x=10.0).x_um == 10.0


def test_unlock_clears_the_alarm_without_homing(make_stage):
    stage = make_stage(homing_required=True)
    stage.unlock()
    assert stage.move_to_um(x=10.0).x_um == 10.0 and not stage.is_homed


def test_home_position_and_time_servo(make_stage, clock):
    stage = make_stage(backlash_um=(4.0, 4.0, 2.0), start_position_um=(100.0, 100.0, 90.0))
    stage.move_to_um(x=3000.0, y=2000.0, z=60.0)
    stage.move_to_um(x=2990.0)  # approached from above: the carriage is at 2994
    t0 = clock.now_s()
    pos = stage.home()
    assert pos == (0.0, 0.0, 90.0)
    assert stage.true_position_um() == pos
    # Servo focus first: 60 -> 90 is a 30-degree climb (>= overshoot: straight up), then its settle.
    t_z = 30 / 600.0 + 0.1
    # Then X and Y together seek the switches 200 um below travel minimum at 1000 um/s: the carriage rides
    # 4 um above the motor, so the motors stop at -204 (x from 2990, y from 2000), then climb 204 um to 0.
    seek = max(trap(2990.0 + 204.0, 1000.0, 10000.0), trap(2000.0 + 204.0, 1000.0, 10000.0))
    pull = trap(204.0, 1000.0, 10000.0)
    assert clock.now_s() - t0 == pytest.approx(t_z + seek + pull + 0.05)


def test_home_with_a_z_stepper(make_stage, clock):
    stage = make_stage(z_mode="stepper", travel_z_um=(0.0, 3000.0), homing_pulloff_um=(200.0, 200.0, 50.0),
                       start_position_um=(0.0, 0.0, 1000.0), settle_s=0.0)
    stage.move_to_um(z=2000.0)
    t0 = clock.now_s()
    assert stage.home() == (0.0, 0.0, 0.0)
    assert stage.true_position_um() == (0.0, 0.0, 0.0)
    # z: switch at -50, motor stops 2 um (the z backlash) lower, then climbs 52 um to 0.
    t_z = trap(2052.0, 200.0, 1000.0) + trap(52.0, 200.0, 1000.0)
    # X and Y are already at 0: they seek 204 um down and pull off 204 um up.
    t_xy = trap(204.0, 1000.0, 10000.0) * 2
    assert clock.now_s() - t0 == pytest.approx(t_z + t_xy)


def test_stop_while_idle_changes_nothing(stage, clock):
    stage.move_to_um(x=500.0)
    before, t0 = stage.position_um(), clock.now_s()
    stage.stop()
    assert stage.alarm is None and stage.position_um() == before and clock.now_s() == t0
    assert stage.move_to_um(x=600.0).x_um == 600.0  # the stop does not cut the next move short


def _stop_after(stage, seconds):
    timer = threading.Timer(seconds, stage.stop)
    timer.start()
    return timer


# The real-time moves below are slowed to several seconds so that a timer thread starved on a loaded CI
# machine still stops them part way: the tests check what a stop does, not how fast the host schedules it.


def test_stop_during_a_realtime_move_halts_it_and_raises_an_alarm():
    clock = VirtualClock(realtime=True)
    slow = SimStageParams(settle_s=0.0, max_speed_um_s=(200.0, 200.0, 200.0))
    with SimStage(clock, slow) as stage:
        t_wall = time.monotonic()
        timer = _stop_after(stage, 0.1)
        with pytest.raises(StageAlarm, match="stopped during a move"):
            stage.move_to_um(x=1000.0)  # 5.02 s if not stopped
        timer.join()
        assert time.monotonic() - t_wall < 4.5
        t = clock.now_s()
        assert 0.08 < t < 4.5
        x = stage.position_um().x_um
        # The motors stand where the trapezoid had taken them when the stop came (to one step).
        assert abs(x - trapezoid_distance_um(t, 1000.0, 200.0, 10000.0)) <= 1.0
        assert 0.0 < x < 1000.0
        assert stage.true_position_um().x_um == x
        with pytest.raises(StageAlarm, match="stopped during a move"):
            stage.move_to_um(x=10.0)
        stage.home()
        assert stage.alarm is None and stage.position_um() == (0.0, 0.0, 90.0)


def test_stop_during_a_realtime_servo_move():
    clock = VirtualClock(realtime=True)
    with SimStage(clock, SimStageParams(servo_slew_deg_s=20.0)) as stage:
        timer = _stop_after(stage, 0.1)
        with pytest.raises(StageAlarm):
            stage.move_to_um(z=10.0)  # 80 degrees: 4 s
        timer.join()
        z = stage.position_um().z_um
        assert 10.0 < z < 90.0 and z == int(z)
        stage.unlock()
        assert stage.move_to_um(z=20.0).z_um == 20.0


def test_stop_during_homing_leaves_it_unhomed():
    clock = VirtualClock(realtime=True)
    with SimStage(clock, SimStageParams(homing_required=True, homing_speed_um_s=200.0,
                                        start_position_um=(500.0, 500.0, 90.0))) as stage:
        timer = _stop_after(stage, 0.1)
        with pytest.raises(StageAlarm):
            stage.home()  # seek of 700 um at 200 um/s: about 3.5 s
        timer.join()
        assert not stage.is_homed and stage.alarm is not None
        # It stopped part way along the seek, physically and by its step count.
        x = stage.position_um().x_um
        assert -204.0 < x < 500.0 and stage.true_position_um().x_um == x + 4.0
