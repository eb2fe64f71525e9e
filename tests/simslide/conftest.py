"""Fixtures for the virtual-slide tests: one default slide per module (building one takes ~0.2 s)."""

from __future__ import annotations

import pytest

from appliance.sim.slide import Slide, make_slide


@pytest.fixture(scope="module")
def slide() -> Slide:
    return make_slide(7)
