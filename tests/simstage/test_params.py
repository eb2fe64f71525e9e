"""Bad parameters raise ValueError naming the parameter (and the value)."""

import numpy as np
import pytest

from appliance.sim.clock import VirtualClock
from appliance.sim.stage import MAX_STAGE_VALUE, SimStage, SimStageParams

BAD = [
    ({"steps_per_um_x": 0.0}, "steps_per_um_x"),
    ({"steps_per_um_y": -1.0}, "steps_per_um_y"),
    ({"steps_per_um_x": float("nan")}, "steps_per_um_x"),
    ({"steps_per_um_x": "1"}, "steps_per_um_x"),
    ({"steps_per_um_x": True}, "steps_per_um_x"),
    ({"z_mode": "piezo"}, "z_mode"),
    ({"um_per_servo_degree": 0.0}, "um_per_servo_degree"),
    ({"servo_angle_range_deg": (10.0, 10.0)}, "servo_angle_range_deg"),
    ({"servo_angle_range_deg": (-5.0, 180.0)}, "servo_angle_range_deg"),
    ({"servo_angle_range_deg": (0.0, 400.0)}, "servo_angle_range_deg"),
    ({"servo_angle_range_deg": (0.0,)}, "servo_angle_range_deg"),
    ({"servo_slew_deg_s": -600.0}, "servo_slew_deg_s"),
    ({"servo_settle_s": -0.1}, "servo_settle_s"),
    ({"z_steps_per_um": 0.0}, "z_steps_per_um"),
    ({"max_speed_um_s": (2000.0, 0.0, 100.0)}, "max_speed_um_s[y]"),
    ({"max_speed_um_s": (2000.0, 2000.0)}, "max_speed_um_s"),
    ({"accel_um_s2": (1.0, 1.0, -1.0)}, "accel_um_s2[z]"),
    ({"backlash_um": (-1.0, 0.0, 0.0)}, "backlash_um[x]"),
    ({"travel_x_um": (100.0, 0.0)}, "travel_x_um"),
    ({"travel_y_um": (0.0, float("inf"))}, "travel_y_um[1]"),
    ({"travel_z_um": (0.0, 200.0)}, "travel_z_um"),  # beyond the servo's reach of 180 um
    ({"settle_s": -1.0}, "settle_s"),
    ({"homing_required": "yes"}, "homing_required"),
    ({"homing_speed_um_s": 0.0}, "homing_speed_um_s"),
    ({"homing_pulloff_um": (1.0, 200.0, 20.0)}, "homing_pulloff_um[x]"),  # less than the 4 um backlash
    ({"servo_home_z_um": 190.0}, "servo_home_z_um"),
    ({"focus_overshoot_um": 1.0}, "focus_overshoot_um"),  # less than the 2 um z backlash
    ({"start_position_um": (0.0, -1.0, 90.0)}, "start_position_um[y]"),
    ({"start_position_um": (0.0, 0.0)}, "start_position_um"),
    ({"jitter_um": (0.0, 0.0, -0.1)}, "jitter_um[z]"),
    ({"homing_repeat_um": (-1.0, 0.0, 0.0)}, "homing_repeat_um[x]"),
    ({"no_switches": 1}, "no_switches"),
    ({"no_switches": True, "homing_required": True}, "homing_required needs switches"),
    ({"slide_offset_um": (1.0, 2.0, 3.0)}, "slide_offset_um"),
    ({"z_drift_um_per_min": 20.0}, "z_drift_um_per_min"),
    ({"z_drift_um_per_min": float("nan")}, "z_drift_um_per_min"),
]


@pytest.mark.parametrize("kwargs, name", BAD, ids=[b[1] for b in BAD])
def test_bad_param_named(kwargs, name):
    with pytest.raises(ValueError) as err:
        SimStageParams(**kwargs)
    assert str(err.value).startswith(name), str(err.value)


def test_message_shows_value_and_what_is_allowed():
    with pytest.raises(ValueError, match=r"z_mode must be 'servo' or 'stepper', got 'piezo'"):
        SimStageParams(z_mode="piezo")
    with pytest.raises(ValueError, match=r"steps_per_um_x must be > 0, got -2"):
        SimStageParams(steps_per_um_x=-2)


def test_a_default_outside_a_narrowed_travel_says_to_change_it_too():
    said = r"got 90.0 \(its default is 90\): change servo_home_z_um with travel_z_um, e.g. 30"
    with pytest.raises(ValueError, match=said):
        SimStageParams(travel_z_um=(0.0, 60.0))
    with pytest.raises(ValueError, match=r"start_position_um\[z\] .* change start_position_um with travel_z_um"):
        SimStageParams(travel_z_um=(0.0, 60.0), servo_home_z_um=30.0)
    SimStageParams(travel_z_um=(0.0, 60.0), servo_home_z_um=30.0, start_position_um=(0.0, 0.0, 30.0))


def test_stepper_mode_frees_z_travel_from_the_servo():
    p = SimStageParams(z_mode="stepper", travel_z_um=(0.0, 5000.0))
    assert p.travel_z_um == (0.0, 5000.0)


def test_lists_become_tuples_of_floats():
    p = SimStageParams(backlash_um=[1, 2, 0], travel_x_um=[0, 100], start_position_um=[0, 0, 90])
    assert p.backlash_um == (1.0, 2.0, 0.0) and isinstance(p.backlash_um, tuple)
    assert p.travel_x_um == (0.0, 100.0)
    assert hash(p)  # still a frozen, hashable value


def test_numpy_arrays_are_accepted():
    p = SimStageParams(backlash_um=np.array([1.0, 2.0, 0.5]), travel_x_um=np.array([0, 100]))
    assert p.backlash_um == (1.0, 2.0, 0.5) and p.travel_x_um == (0.0, 100.0)


def test_from_mapping_rejects_unknown_keys():
    assert SimStageParams.from_mapping({"settle_s": 0.2}).settle_s == 0.2
    with pytest.raises(ValueError, match=r"unknown SimStageParams key\(s\) \['backlash'\]"):
        SimStageParams.from_mapping({"backlash": 3})


def test_stage_constructor_checks_its_arguments():
    with pytest.raises(ValueError, match="clock"):
        SimStage(clock=1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="params"):
        SimStage(VirtualClock(), params={"settle_s": 0.1})  # type: ignore[arg-type]
    for bad in (-1, 1.5, "7", None):
        with pytest.raises(ValueError, match="seed must be a non-negative integer"):
            SimStage(VirtualClock(), seed=bad)  # type: ignore[arg-type]


def test_the_focus_overshoot_follows_a_large_z_backlash_unless_given():
    # `--sim-set stage.backlash_um=[9,9,6]` alone was refused: the 5 um default overshoot could not take up 6 um
    assert SimStageParams().focus_overshoot_um == 5.0
    assert SimStageParams(backlash_um=(9.0, 9.0, 6.0)).focus_overshoot_um == 6.0
    assert SimStageParams(backlash_um=(9.0, 9.0, 6.0), focus_overshoot_um=8.0).focus_overshoot_um == 8.0
    with pytest.raises(ValueError, match="focus_overshoot_um"):
        SimStageParams(backlash_um=(9.0, 9.0, 6.0), focus_overshoot_um=5.0)
    with pytest.raises(ValueError, match="focus_overshoot_um"):
        SimStageParams(focus_overshoot_um=-1.0)


def test_the_focus_drifts_with_the_virtual_clock_not_with_the_drive():
    clock = VirtualClock()
    with SimStage(clock, SimStageParams(z_drift_um_per_min=-0.6)) as stage:
        stage.focus_to_um(100.0)
        t0, true0 = clock.now_s(), stage.true_position_um().z_um
        clock.advance(300.0)  # five minutes standing still
        assert stage.position_um().z_um == pytest.approx(100.0)
        assert stage.true_position_um().z_um - true0 == pytest.approx(-3.0)
        assert true0 == pytest.approx(100.0 - 0.6 * t0 / 60.0)


def test_a_homing_after_the_first_finds_its_switches_within_their_repeatability():
    params = SimStageParams(homing_repeat_um=(5.0, 5.0, 0.0), homing_required=True)
    with SimStage(VirtualClock(), params, seed=3) as stage:
        stage.home()  # the first defines the machine's zero
        assert stage.true_position_um()[:2] == stage.position_um()[:2] == (0.0, 0.0)
        errors = []
        for _ in range(20):
            stage.move_to_um(x=500.0, y=500.0)
            stage.home()
            true, said = stage.true_position_um(), stage.position_um()
            assert said[:2] == (0.0, 0.0)
            errors.append((true.x_um - said.x_um, true.y_um - said.y_um))
    spread = np.std(np.array(errors), axis=0)
    assert np.all((spread > 2.5) & (spread < 8.0))  # about the 5 um asked for, each time a fresh draw


def test_the_slide_offset_moves_what_the_camera_sees_under_every_reported_place():
    with SimStage(VirtualClock(), SimStageParams(slide_offset_um=(7.0, -5.0)), seed=1) as stage:
        stage.move_to_um(x=100.0, y=200.0)
        assert stage.true_position_um()[:2] == (107.0, 195.0) and stage.position_um()[:2] == (100.0, 200.0)
        stage.home()  # no homing undoes a slide that moved
        assert stage.true_position_um()[:2] == (7.0, -5.0)


def test_a_stage_without_switches_refuses_homing_and_counts_from_where_its_carriage_stood():
    from appliance.hardware.stage.base import HomingDisabled, StageLimitError

    # the board powered up with its carriage 900 um along x: the mechanics' ends lie that far lower in its count
    params = SimStageParams(no_switches=True, slide_offset_um=(900.0, 0.0), backlash_um=(0.0, 0.0, 0.0))
    with SimStage(VirtualClock(), params) as stage:
        assert stage.counts_from_power_up and not stage.is_homed
        with pytest.raises(HomingDisabled, match="error:5"):
            stage.home()
        assert stage.move_to_um(x=-800.0).x_um == -800.0 and stage.true_position_um().x_um == 100.0
        with pytest.raises(StageLimitError, match=r"\[-900.0, 24100.0\]"):
            stage.move_to_um(x=-901.0)
    with SimStage(VirtualClock(), SimStageParams()) as stage:
        assert not stage.counts_from_power_up


@pytest.mark.parametrize("name", sorted(MAX_STAGE_VALUE))
def test_a_value_past_any_bench_drive_is_refused_naming_the_bound(name):
    # 1e308 used to pass and then overflow the step arithmetic or the virtual clock
    with pytest.raises(ValueError, match=rf"^{name} must be <= {MAX_STAGE_VALUE[name]:g} .*got 1e\+308"):
        SimStageParams(**{name: 1e308})
    SimStage(VirtualClock(), SimStageParams(**{name: MAX_STAGE_VALUE[name]}))  # the bound itself works


def test_the_sim_set_parser_gives_the_stage_bound():
    from appliance.sim.overrides import parse_sim_sets, sim_microscope

    with pytest.raises(ValueError, match=r"settle_s must be <= 10 .*got 1e\+20"):
        sim_microscope(0, parse_sim_sets(["stage.settle_s=1e20"]))
