"""Same seed, same positions; the optional jitter comes from the seed and is off by default."""

import statistics

import pytest

from appliance.sim.clock import VirtualClock
from appliance.sim.stage import SimStage, SimStageParams

MOVES = [(1200.0, 800.0, 70.0), (300.0, 2500.0, 110.0), (1250.5, 801.3, 40.0), (1250.5, 300.0, 95.5),
         (20.0, 20.0, 20.0), (5000.0, 4000.0, 150.0)]


def _run(seed, params):
    clock = VirtualClock()
    out = []
    with SimStage(clock, params, seed=seed) as stage:
        for x, y, z in MOVES:
            stage.move_to_um(x, y)
            stage.focus_to_um(z)
            out.append((stage.position_um(), stage.true_position_um(), clock.now_s()))
        stage.home()
        out.append((stage.position_um(), stage.true_position_um(), clock.now_s()))
    return out


def test_same_seed_same_everything():
    params = SimStageParams(jitter_um=(0.3, 0.3, 0.1))
    assert _run(7, params) == _run(7, params)


def test_different_seed_different_jitter_same_reports_and_times():
    params = SimStageParams(jitter_um=(0.3, 0.3, 0.1))
    a, b = _run(7, params), _run(8, params)
    assert [r[1] for r in a] != [r[1] for r in b]
    assert [(r[0], r[2]) for r in a] == [(r[0], r[2]) for r in b]


def test_default_has_no_jitter_whatever_the_seed():
    a, b = _run(1, SimStageParams()), _run(2, SimStageParams())
    assert a == b
    # x and z were approached from below or by focus_to_um: true equals reported there.
    for rep, true, _ in a:
        assert true.z_um == rep.z_um


def test_jitter_has_the_requested_spread():
    stage = SimStage(VirtualClock(), SimStageParams(jitter_um=(0.5, 0.0, 0.0), backlash_um=(0.0, 4.0, 2.0)),
                     seed=3)
    errs = []
    with stage:
        for k in range(400):
            stage.move_to_um(x=100.0 + (k % 2) * 50.0)
            errs.append(stage.true_position_um().x_um - stage.position_um().x_um)
        assert stage.true_position_um().y_um == stage.position_um().y_um
    assert statistics.pstdev(errs) == pytest.approx(0.5, rel=0.15)
    assert abs(statistics.fmean(errs)) < 0.1
