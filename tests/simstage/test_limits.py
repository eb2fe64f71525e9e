"""Soft limits refuse a move before any motion and before any time passes; bad targets are errors."""

import math

import pytest

from appliance.hardware.stage.base import StageLimitError


@pytest.mark.parametrize("kwargs, axis", [({"x": -0.5}, "x"), ({"x": 25000.1}, "x"), ({"y": 30000.0}, "y"),
                                          ({"y": -1.0}, "y"), ({"z": 181.0}, "z"), ({"z": -3.0}, "z"),
                                          ({"x": 100.0, "y": 100.0, "z": 200.0}, "z")])
def test_outside_soft_limits_refused_with_no_motion_and_no_time(stage, clock, kwargs, axis):
    stage.move_to_um(x=500.0, y=500.0, z=60.0)
    rep, true, t0 = stage.position_um(), stage.true_position_um(), clock.now_s()
    with pytest.raises(StageLimitError) as err:
        stage.move_to_um(**kwargs)
    msg = str(err.value)
    assert msg.startswith(f"{axis} target")
    assert f"travel_{axis}_um" in msg
    lo, hi = {"x": (0.0, 25000.0), "y": (0.0, 25000.0), "z": (0.0, 180.0)}[axis]
    assert f"[{lo}, {hi}]" in msg and str(kwargs[axis]) in msg
    assert stage.position_um() == rep and stage.true_position_um() == true and clock.now_s() == t0


def test_focus_outside_limits_refused(stage, clock):
    t0 = clock.now_s()
    with pytest.raises(StageLimitError, match=r"z target 250.0 um is outside"):
        stage.focus_to_um(250.0)
    assert clock.now_s() == t0 and stage.position_um().z_um == 90.0


def test_move_by_past_the_limit_refused(stage):
    with pytest.raises(StageLimitError, match="x target -10.0"):
        stage.move_by_um(dx=-10.0)


def test_limits_follow_params(make_stage):
    stage = make_stage(travel_x_um=(-500.0, 500.0), start_position_um=(0.0, 0.0, 90.0))
    assert stage.move_to_um(x=-500.0).x_um == -500.0
    with pytest.raises(StageLimitError, match=r"\[-500.0, 500.0\]"):
        stage.move_to_um(x=500.5)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "10", [1.0]])
def test_non_numeric_targets_are_value_errors(stage, clock, bad):
    with pytest.raises(ValueError, match="x target"):
        stage.move_to_um(x=bad)
    with pytest.raises(ValueError, match="z target"):
        stage.focus_to_um(bad)
    assert clock.now_s() == 0.0
