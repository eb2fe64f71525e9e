"""Positions are whole motor steps, or whole servo degrees; the truth is quantised the same way."""

import pytest


@pytest.mark.parametrize("target, expected", [(10.0, 10.0), (11.0, 12.0), (12.9, 12.0), (13.0, 14.0), (13.1, 14.0),
                                              (1234.56, 1234.0)])
def test_xy_positions_are_whole_steps(make_stage, target, expected):
    stage = make_stage(steps_per_um_x=0.5, steps_per_um_y=0.5)  # 2 um per step
    rep = stage.move_to_um(x=target, y=target)
    assert rep.x_um == expected and rep.y_um == expected
    assert stage.true_position_um()[:2] == (expected, expected)


def test_fine_steps_report_the_step_grid(make_stage):
    stage = make_stage(steps_per_um_x=8.0)  # 0.125 um per step
    assert stage.move_to_um(x=100.06).x_um == 100.0
    assert stage.move_to_um(x=100.07).x_um == 100.125


@pytest.mark.parametrize("target, degrees", [(30.0, 12), (31.0, 12), (31.3, 13), (32.4, 13), (33.8, 14)])
def test_servo_focus_moves_in_whole_degrees(make_stage, target, degrees):
    stage = make_stage(um_per_servo_degree=2.5, travel_z_um=(0.0, 450.0), servo_home_z_um=225.0,
                       start_position_um=(0.0, 0.0, 225.0))
    z = stage.focus_to_um(target).z_um
    assert z == pytest.approx(degrees * 2.5)
    assert stage.true_position_um().z_um == pytest.approx(degrees * 2.5)


def test_one_servo_degree_is_the_smallest_focus_step(make_stage):
    stage = make_stage(um_per_servo_degree=1.0)
    seen = set()
    for k in range(21):
        seen.add(stage.focus_to_um(50.0 + 0.1 * k).z_um)
    assert seen == {50.0, 51.0, 52.0}


def test_stepper_focus_is_finer(make_stage):
    stage = make_stage(z_mode="stepper", z_steps_per_um=32.0)
    assert stage.focus_to_um(50.01).z_um == pytest.approx(1600 / 32)
    assert stage.focus_to_um(50.02).z_um == pytest.approx(1601 / 32)


def test_target_on_the_limit_stays_inside_when_limits_are_off_grid(make_stage):
    stage = make_stage(steps_per_um_x=0.5, travel_x_um=(1.0, 999.0), start_position_um=(1.0, 0.0, 90.0))
    # The nearest steps to 999 um are 998 and 1000; 1000 would be outside the soft limit.
    assert stage.move_to_um(x=999.0).x_um == 998.0
    assert stage.move_to_um(x=1.0).x_um == 2.0
