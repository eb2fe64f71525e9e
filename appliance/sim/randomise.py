"""Domain randomisation of the virtual microscope's look: one seeded draw of every realism parameter.

``RANGES`` holds the sensible ranges of ``docs/simulator.md`` ("Parameters for randomised training data") as data;
:func:`draw` turns a generator into a :class:`Look` (slide losses and dust, sensor light, optics, capture chain)
whose parameter objects are the simulator's own, validated ones. What a detector learns must not depend on them:
they change the prints' absorption and the frame's look, never the layout or the ground truth.

>>> import numpy as np
>>> from appliance.sim.microscope import VirtualMicroscope
>>> look = draw(np.random.default_rng(7))
>>> scope = VirtualMicroscope(seed=7, slide=look.slide, sensor=look.sensor, optics=look.optics, chain=look.chain)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from appliance.sim.capture import DEMOSAIC_CODES, CameraChainParams
from appliance.sim.optics import OpticsParams
from appliance.sim.sensor import SensorParams
from appliance.sim.slide import SlideParams

# (class, parameter) -> (low, high), drawn uniformly.
RANGES: dict[tuple[str, str], tuple[float, float]] = {
    ("slide", "top_roughness_um"): (0.08, 0.3),
    ("slide", "contour_um"): (1.0, 7.0),
    ("slide", "contour_roughness"): (0.05, 0.5),
    ("slide", "internal_scatter_per_um"): (0.0, 0.03),
    ("slide", "initiator_absorption_per_um"): (0.0, 0.05),
    ("slide", "index_delta"): (0.45, 0.55),
    ("slide", "debris_per_mm2"): (5.0, 60.0),
    ("sensor", "optics_dust_per_mm2"): (50.0, 400.0),
    ("sensor", "optics_dust_blur_um"): (1.5, 6.0),
    ("sensor", "vignetting"): (0.1, 0.4),
    ("sensor", "illumination_variation"): (0.0, 0.06),
    ("sensor", "read_noise_e"): (2.0, 10.0),
    ("sensor", "electrons_per_ms"): (400.0, 850.0),  # background 40-85 % of the well at 10 ms
    ("optics", "na"): (0.2, 0.3),
    ("optics", "condenser_sigma"): (0.3, 0.8),
    ("chain", "lamp_temperature_k"): (2600.0, 3400.0),
    ("chain", "white_balance"): (0.0, 1.0),
    ("chain", "saturation"): (0.8, 1.6),
    ("chain", "isp_upscale"): (1.0, 2.0),
    ("chain", "lens_blur_px"): (0.3, 4.0),
    ("chain", "denoise_px"): (0.0, 1.5),
    ("chain", "sharpen"): (0.0, 0.8),
    ("chain", "sharpen_px"): (0.8, 2.0),
    ("chain", "gamma"): (1.8, 2.4),
    ("chain", "lens_shading_correction"): (0.5, 1.0),
}
# Probabilities of the discrete choices.
P_COLOUR = 0.9
P_JPEG = 0.5
JPEG_QUALITY = (40, 95)


@dataclass(frozen=True)
class Look:
    """One draw: the parameter objects to build a :class:`~appliance.sim.microscope.VirtualMicroscope` with."""

    slide: SlideParams
    sensor: SensorParams
    optics: OpticsParams
    chain: CameraChainParams


def draw(rng: np.random.Generator, slide: SlideParams | None = None, sensor: SensorParams | None = None,
         optics: OpticsParams | None = None) -> Look:
    """Draw every realism parameter in ``RANGES`` (and the discrete choices) on top of the given bases.

    Parameters
    ----------
    rng : numpy.random.Generator
        The source; the same state gives the same look.
    slide, sensor, optics : optional
        Bases whose other fields (slide size, structure count, frame size, magnification...) are kept.

    Returns
    -------
    Look
    """
    values: dict[str, dict[str, object]] = {"slide": {}, "sensor": {}, "optics": {}, "chain": {}}
    for (cls, name), (lo, hi) in RANGES.items():
        values[cls][name] = float(rng.uniform(lo, hi))
    values["chain"]["colour"] = bool(rng.random() < P_COLOUR)
    values["chain"]["demosaic"] = str(rng.choice(sorted(DEMOSAIC_CODES)))
    jpeg = rng.random() < P_JPEG
    values["chain"]["jpeg_quality"] = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)) if jpeg else 0
    return Look(slide=replace(slide or SlideParams(), **values["slide"]),  # type: ignore[arg-type]
                sensor=replace(sensor or SensorParams(), **values["sensor"]),  # type: ignore[arg-type]
                optics=replace(optics or OpticsParams(), **values["optics"]),  # type: ignore[arg-type]
                chain=replace(CameraChainParams(), **values["chain"]))  # type: ignore[arg-type]
