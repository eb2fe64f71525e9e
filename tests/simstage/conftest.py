"""Fixtures for the simulated-stage tests: a fresh clock and an open stage per test."""

from __future__ import annotations

import pytest

from appliance.sim.clock import VirtualClock
from appliance.sim.stage import SimStage, SimStageParams


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def make_stage(clock):
    """Build and open a SimStage on the shared clock; keyword arguments go to SimStageParams."""
    made: list[SimStage] = []

    def _make(seed: int = 0, **params) -> SimStage:
        stage = SimStage(clock, SimStageParams(**params), seed=seed)
        stage.open()
        made.append(stage)
        return stage

    yield _make
    for s in made:
        s.close()


@pytest.fixture
def stage(make_stage) -> SimStage:
    """The default stage (servo focus), open, at its power-on position (0, 0, 90)."""
    return make_stage()
