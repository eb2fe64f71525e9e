"""Domain randomisation: every range is valid, draws are seeded, and every draw renders."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from appliance.sim.capture import CameraChainParams
from appliance.sim.microscope import VirtualMicroscope
from appliance.sim.optics import OpticsParams
from appliance.sim.randomise import RANGES, draw
from appliance.sim.sensor import SensorParams
from appliance.sim.slide import SlideParams

_CLASSES = {"slide": SlideParams, "sensor": SensorParams, "optics": OpticsParams, "chain": CameraChainParams}


@pytest.mark.parametrize(("key", "bounds"), sorted(RANGES.items()))
def test_each_range_lies_inside_the_parameter_check(key, bounds):
    cls, name = key
    for v in bounds:
        replace(_CLASSES[cls](), **{name: v})  # raises if the range leaves what the class allows


def test_draws_are_seeded_and_vary():
    a, b, c = draw(np.random.default_rng(1)), draw(np.random.default_rng(1)), draw(np.random.default_rng(2))
    assert a == b and a != c
    looks = [draw(np.random.default_rng(s)) for s in range(40)]
    assert {lk.chain.colour for lk in looks} == {True, False}
    assert {lk.chain.jpeg_quality == 0 for lk in looks} == {True, False}
    assert len({lk.chain.demosaic for lk in looks}) == 3


def test_bases_are_kept():
    look = draw(np.random.default_rng(3), slide=SlideParams(n_structures=5, width_um=2000, height_um=2000),
                sensor=SensorParams(width_px=320, height_px=240))
    assert look.slide.n_structures == 5 and look.sensor.width_px == 320


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_draw_renders_deterministically(seed):
    look = draw(np.random.default_rng(seed), slide=SlideParams(width_um=2000, height_um=2000, n_structures=2),
                sensor=SensorParams(width_px=160, height_px=120))
    images = []
    for _ in range(2):
        scope = VirtualMicroscope(seed=seed, slide=look.slide, sensor=look.sensor, optics=look.optics,
                                  chain=look.chain)
        o = scope.slide.objects[0]
        with scope.stage, scope.camera:
            scope.stage.move_to_um(x=round(o.center_um[0]), y=round(o.center_um[1]))
            images.append(scope.camera.capture().image)
    assert images[0].shape == (120, 160) and images[0].tobytes() == images[1].tobytes()
    assert images[0].min() < np.median(images[0]) * 0.8  # the print is visible
