"""Fixtures for the virtual-microscope imaging tests."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.sim.microscope import VirtualMicroscope


@pytest.fixture(scope="module")
def scope() -> VirtualMicroscope:
    """A virtual microscope on seed 2 (its renderer cache is shared within a module)."""
    return VirtualMicroscope(seed=2)


@pytest.fixture
def disc_maps():
    """Height and absorption maps of a disc (stand-in object): radius, height, absorption per um -> maps."""

    def _make(radius_um: float, height_um: float, absorption: float, pitch_um: float = 0.25):
        n = int(2 * radius_um / pitch_um) + 8
        yy, xx = np.mgrid[:n, :n]
        r = np.hypot(xx - (n - 1) / 2, yy - (n - 1) / 2) * pitch_um
        h = np.where(r < radius_um, height_um, 0.0).astype(np.float32)
        a = np.where(h > 0, absorption, 0.0).astype(np.float32)
        return h, a

    return _make
