"""Backlash: a dead band per axis, seen as true-vs-reported error after an approach from above."""

import pytest

from appliance.hardware.stage.base import Position

AX = {"x": 0, "y": 1, "z": 2}


def _err(stage):
    true, rep = stage.true_position_um(), stage.position_um()
    return tuple(t - r for t, r in zip(true, rep, strict=True))


@pytest.mark.parametrize("z_mode", ["servo", "stepper"])
@pytest.mark.parametrize("axis", ["x", "y", "z"])
def test_backlash_error_only_when_approaching_from_above(make_stage, axis, z_mode):
    backlash = (3.0, 5.0, 2.0)
    stage = make_stage(backlash_um=backlash, z_mode=z_mode, start_position_um=(1000.0, 1000.0, 90.0))
    i = AX[axis]
    # Approach 50 um from below: the motor pushes the carriage from below, no error.
    stage.move_to_um(**{axis: 140.0 if axis == "z" else 1050.0})
    assert _err(stage) == (0.0, 0.0, 0.0)
    # Approach 100 from above: the carriage lags by exactly the backlash, upward of the reported position.
    target = 110.0 if axis == "z" else 1000.0
    reported = stage.move_to_um(**{axis: target})
    assert reported[i] == target
    expected = [0.0, 0.0, 0.0]
    expected[i] = backlash[i]
    assert _err(stage) == pytest.approx(tuple(expected), abs=1e-9)
    assert stage.true_position_um()[i] == pytest.approx(target + backlash[i])
    # Coming back up takes up the slack again.
    stage.move_to_um(**{axis: target + 20.0})
    assert _err(stage) == pytest.approx((0.0, 0.0, 0.0), abs=1e-9)


def test_reversal_inside_dead_band_does_not_move_carriage(make_stage):
    stage = make_stage(backlash_um=(4.0, 4.0, 2.0), start_position_um=(100.0, 100.0, 90.0))
    stage.move_to_um(x=200.0)
    before = stage.true_position_um()
    stage.move_to_um(x=197.0)  # 3 um back: less than the 4 um backlash
    assert stage.position_um().x_um == 197.0
    assert stage.true_position_um() == before
    stage.move_to_um(x=195.0)  # 5 um back in total: the carriage now moves by 1 um
    assert stage.true_position_um().x_um == pytest.approx(199.0)
    stage.move_to_um(x=198.0)  # forward again by 3 um: slack is 4 um, the carriage stays at 199
    assert stage.true_position_um().x_um == pytest.approx(199.0)


@pytest.mark.parametrize("z_mode", ["servo", "stepper"])
def test_focus_to_um_cancels_backlash_from_either_side(make_stage, z_mode):
    stage = make_stage(backlash_um=(4.0, 4.0, 3.0), z_mode=z_mode, focus_overshoot_um=6.0)
    for z in (120.0, 60.0, 61.0, 30.0, 150.0, 149.0, 10.0):
        rep = stage.focus_to_um(z)
        assert rep.z_um == z
        assert stage.true_position_um().z_um == pytest.approx(z, abs=1e-9)
    # The same targets reached by plain moves from above do show the error.
    stage.move_to_um(z=160.0)
    stage.move_to_um(z=100.0)
    assert stage.true_position_um().z_um - stage.position_um().z_um == pytest.approx(3.0)
    stage.focus_to_um(100.0)
    assert stage.true_position_um().z_um == pytest.approx(100.0)


def test_focus_to_um_path_overshoots_below_then_comes_up(make_stage, clock):
    stage = make_stage(backlash_um=(4.0, 4.0, 2.0), focus_overshoot_um=5.0, servo_slew_deg_s=100.0,
                       servo_settle_s=0.2, um_per_servo_degree=1.0)
    # From 90 (last direction up) down to 50: 40 deg down, then 5 deg down more, then 5 up, one settle.
    t0 = clock.now_s()
    stage.focus_to_um(50.0)
    assert clock.now_s() - t0 == pytest.approx((40 + 5 + 5) / 100.0 + 0.2)
    # Upward from an upward approach: straight there, no overshoot.
    t0 = clock.now_s()
    stage.focus_to_um(70.0)
    assert clock.now_s() - t0 == pytest.approx(20 / 100.0 + 0.2)
    # Already there after an upward approach: nothing moves, no time.
    t0 = clock.now_s()
    assert stage.focus_to_um(70.0) == Position(0.0, 0.0, 70.0)
    assert clock.now_s() == t0
    # There, but after a downward move: it still goes below and comes back up.
    stage.move_to_um(z=80.0)
    stage.move_to_um(z=70.0)
    assert stage.true_position_um().z_um == pytest.approx(72.0)
    t0 = clock.now_s()
    stage.focus_to_um(70.0)
    assert clock.now_s() - t0 == pytest.approx(10 / 100.0 + 0.2)
    assert stage.true_position_um().z_um == pytest.approx(70.0)


def test_no_backlash_means_no_error(make_stage):
    stage = make_stage(backlash_um=(0.0, 0.0, 0.0), focus_overshoot_um=0.0, start_position_um=(500, 500, 90))
    for x, y, z in ((700, 300, 40), (100, 900, 120), (650, 650, 20)):
        stage.move_to_um(x, y, z)
        assert stage.true_position_um() == stage.position_um()


def test_backlash_combines_with_a_diagonal_move(make_stage):
    stage = make_stage(backlash_um=(4.0, 6.0, 2.0), start_position_um=(500, 500, 90))
    stage.move_to_um(x=600, y=400)  # x up, y down
    assert _err(stage) == pytest.approx((0.0, 6.0, 0.0))
    stage.move_to_um(x=550, y=450)  # x down, y up
    assert _err(stage) == pytest.approx((4.0, 0.0, 0.0))


def test_focus_at_the_lower_limit_cannot_approach_from_below(make_stage, clock):
    stage = make_stage(backlash_um=(4.0, 4.0, 2.0))
    stage.focus_to_um(0.0)  # from 90, going down to the limit: the carriage rides 2 um above the motor
    assert stage.position_um().z_um == 0.0 and stage.true_position_um().z_um == pytest.approx(2.0)
    t0 = clock.now_s()
    stage.focus_to_um(0.0)  # nothing it can do: no motion, no time
    assert clock.now_s() == t0
    stage.focus_to_um(1.0)  # a climb of 1 um is less than the backlash: overshoot clipped at 0, then up 1
    assert stage.true_position_um().z_um == pytest.approx(2.0)
    stage.focus_to_um(3.0)
    assert stage.true_position_um().z_um == pytest.approx(3.0)
