"""Fixtures for the autofocus tests: virtual microscopes and helpers to put a structure in view."""

from __future__ import annotations

import pytest

from appliance.sim.microscope import VirtualMicroscope
from appliance.sim.stage import SimStageParams


@pytest.fixture
def servo_scope() -> VirtualMicroscope:
    """Seed 3 with the default servo focus, opened."""
    s = VirtualMicroscope(seed=3)
    s.stage.open()
    s.camera.open()
    return s


@pytest.fixture
def stepper_scope() -> VirtualMicroscope:
    """Seed 3 with a Z stepper (1/32 um steps), opened."""
    s = VirtualMicroscope(seed=3, stage=SimStageParams(z_mode="stepper"))
    s.stage.open()
    s.camera.open()
    return s
