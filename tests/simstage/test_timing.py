"""A move's virtual time matches its trapezoid, computed here independently of the stage's own code."""

import math
import time

import pytest

from appliance.sim.clock import VirtualClock
from appliance.sim.stage import SimStage, SimStageParams, trapezoid_distance_um, trapezoid_time_s


def analytic_trapezoid(distance, v, a):
    """Rest-to-rest time: accelerate to v (distance v^2/2a), cruise, decelerate; a triangle if too short."""
    d_ramp = v * v / (2 * a)
    if distance >= 2 * d_ramp:
        return 2 * (v / a) + (distance - 2 * d_ramp) / v
    t_half = math.sqrt(distance / a)  # distance/2 = a t_half^2 / 2
    return 2 * t_half


def elapsed(clock, fn, *args, **kwargs):
    t0 = clock.now_s()
    fn(*args, **kwargs)
    return clock.now_s() - t0


@pytest.mark.parametrize("dx, kind", [(5000.0, "trapezoid"), (400.0, "trapezoid"), (399.0, "triangle"),
                                      (100.0, "triangle"), (1.0, "triangle")])
def test_single_axis_move_time(make_stage, clock, dx, kind):
    v, a, settle = 2000.0, 10000.0, 0.05
    stage = make_stage(max_speed_um_s=(v, 1500.0, 200.0), accel_um_s2=(a, 8000.0, 1000.0), settle_s=settle,
                       start_position_um=(1000.0, 1000.0, 90.0))
    # Long enough to cruise only if dx >= v^2/a = 400 um.
    assert (dx >= v * v / a) == (kind == "trapezoid")
    t = elapsed(clock, stage.move_to_um, x=1000.0 + dx)
    assert t == pytest.approx(analytic_trapezoid(dx, v, a) + settle, rel=1e-12)
    # Back the same distance in the other direction: same time.
    t = elapsed(clock, stage.move_to_um, x=1000.0)
    assert t == pytest.approx(analytic_trapezoid(dx, v, a) + settle, rel=1e-12)


def test_y_axis_uses_its_own_limits(make_stage, clock):
    stage = make_stage(max_speed_um_s=(2000.0, 500.0, 200.0), accel_um_s2=(10000.0, 2000.0, 1000.0),
                       settle_s=0.0)
    assert elapsed(clock, stage.move_to_um, y=3000.0) == pytest.approx(analytic_trapezoid(3000, 500, 2000))


def test_diagonal_move_is_one_line_limited_by_the_slower_axis(make_stage, clock):
    vx, vy, ax, ay = 2000.0, 1000.0, 10000.0, 4000.0
    stage = make_stage(max_speed_um_s=(vx, vy, 200.0), accel_um_s2=(ax, ay, 1000.0), settle_s=0.0)
    dx, dy = 3000.0, 4000.0
    length = 5000.0
    # Along the line each axis gets its share: x sees v*3/5, y sees v*4/5; the binding one sets the speed.
    v = min(vx / (dx / length), vy / (dy / length))
    a = min(ax / (dx / length), ay / (dy / length))
    assert v == pytest.approx(1250.0) and a == pytest.approx(5000.0)
    t = elapsed(clock, stage.move_to_um, x=dx, y=dy)
    assert t == pytest.approx(analytic_trapezoid(length, v, a))
    # Simultaneous, not one axis after the other: shorter than the two single-axis moves in a row.
    assert t < analytic_trapezoid(dx, vx, ax) + analytic_trapezoid(dy, vy, ay)


def test_servo_move_is_slew_plus_settle_and_follows_the_xy_move(make_stage, clock):
    stage = make_stage(servo_slew_deg_s=300.0, servo_settle_s=0.12, um_per_servo_degree=0.5,
                       travel_z_um=(0.0, 90.0), servo_home_z_um=45.0, start_position_um=(0.0, 0.0, 45.0),
                       settle_s=0.05)
    # 45 -> 30 um is 30 degrees at 0.5 um/degree.
    assert elapsed(clock, stage.move_to_um, z=30.0) == pytest.approx(30 / 300.0 + 0.12)
    # XY then servo, one after the other.
    t = elapsed(clock, stage.move_to_um, x=800.0, z=40.0)
    assert t == pytest.approx(analytic_trapezoid(800, 2000, 10000) + 0.05 + 20 / 300.0 + 0.12)


def test_stepper_z_joins_the_line(make_stage, clock):
    stage = make_stage(z_mode="stepper", max_speed_um_s=(2000.0, 2000.0, 100.0),
                       accel_um_s2=(10000.0, 10000.0, 500.0), settle_s=0.0)
    assert elapsed(clock, stage.move_to_um, z=150.0) == pytest.approx(analytic_trapezoid(60, 100, 500))
    # x 1000 and z -60 together: z's limits bind (its share is 60/1001.8 of the line).
    length = math.hypot(1000.0, 60.0)
    v = min(2000.0 * length / 1000.0, 100.0 * length / 60.0)
    a = min(10000.0 * length / 1000.0, 500.0 * length / 60.0)
    t = elapsed(clock, stage.move_to_um, x=1000.0, z=90.0)
    assert t == pytest.approx(analytic_trapezoid(length, v, a))


def test_move_time_s_predicts_the_clock(make_stage, clock):
    stage = make_stage(start_position_um=(100.0, 100.0, 90.0))
    for target in ((2100.0, 300.0, 60.0), (2100.0, 300.0, 60.0), (50.0, 7000.0, None), (None, None, 170.0)):
        predicted = stage.move_time_s(*target)
        assert elapsed(clock, stage.move_to_um, *target) == pytest.approx(predicted)
    assert stage.move_time_s() == 0.0


def test_zero_move_takes_no_time(stage, clock):
    here = stage.position_um()
    assert elapsed(clock, stage.move_to_um, *here) == 0.0
    assert elapsed(clock, stage.move_by_um) == 0.0


def test_time_uses_quantised_distance(make_stage, clock):
    stage = make_stage(steps_per_um_x=0.25, settle_s=0.0)  # 4 um steps
    # 1001 um rounds to 250 steps = 1000 um.
    assert elapsed(clock, stage.move_to_um, x=1001.0) == pytest.approx(analytic_trapezoid(1000, 2000, 10000))


def test_trapezoid_helpers_agree_with_the_formula():
    for d in (0.5, 10.0, 399.0, 400.0, 401.0, 12345.0):
        assert trapezoid_time_s(d, 2000.0, 10000.0) == pytest.approx(analytic_trapezoid(d, 2000.0, 10000.0))
        total = trapezoid_time_s(d, 2000.0, 10000.0)
        assert trapezoid_distance_um(0.0, d, 2000.0, 10000.0) == 0.0
        assert trapezoid_distance_um(total, d, 2000.0, 10000.0) == pytest.approx(d)
        # The profile is symmetric: half the time, half the way.
        assert trapezoid_distance_um(total / 2, d, 2000.0, 10000.0) == pytest.approx(d / 2)
        samples = [trapezoid_distance_um(total * k / 50, d, 2000.0, 10000.0) for k in range(51)]
        assert all(b >= a for a, b in zip(samples, samples[1:], strict=False))
    # Early on, the distance is a t^2 / 2.
    assert trapezoid_distance_um(0.01, 5000.0, 2000.0, 10000.0) == pytest.approx(0.5 * 10000.0 * 1e-4)


def test_realtime_mode_takes_the_virtual_time_on_the_wall_clock():
    clock = VirtualClock(realtime=True)
    stage = SimStage(clock, SimStageParams(settle_s=0.02))
    with stage:
        t_wall = time.monotonic()
        stage.move_to_um(x=200.0)  # triangle: 2 sqrt(200/10000) = 0.283 s, + 0.02 s settle
        wall = time.monotonic() - t_wall
    expected = analytic_trapezoid(200.0, 2000.0, 10000.0) + 0.02
    assert clock.now_s() == pytest.approx(expected)
    assert wall >= expected * 0.98
