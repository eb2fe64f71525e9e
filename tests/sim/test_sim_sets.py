"""``--sim-set SECTION.KEY=VALUE`` (appliance/sim/overrides.py): every section, every value checked and named."""

from __future__ import annotations

import pytest

from appliance.sim.capture import PRESETS
from appliance.sim.overrides import parse_sim_sets, sim_microscope


def test_the_camera_section_sets_the_capture_chain_from_a_preset() -> None:
    scope = sim_microscope(1, parse_sim_sets(["camera.preset=cheap_colour", "camera.lamp_temperature_k=4500",
                                              "slide.width_um=1000", "slide.height_um=1000"]))
    chain = scope.camera.chain_params
    cheap = PRESETS["cheap_colour"]
    assert chain.lamp_temperature_k == 4500.0
    assert (chain.isp_upscale, chain.jpeg_quality, chain.lens_blur_px) == \
        (cheap.isp_upscale, cheap.jpeg_quality, cheap.lens_blur_px)
    assert scope.truth()["imaging"]["chain"]["jpeg_quality"] == cheap.jpeg_quality  # what the scan records
    assert sim_microscope(1, parse_sim_sets(["slide.width_um=1000", "slide.height_um=1000"])).camera.chain_params \
        == PRESETS["default"]


@pytest.mark.parametrize(("item", "said"), [
    ("camera.preset=cheap", ["camera.preset", "cheap_colour", "mono_raw", "'cheap'"]),
    ("camera.flash=1", ["camera.flash", "unknown parameter", "preset", "lamp_temperature_k"]),
    ("camera.lamp_temperature_k=900", ["camera.lamp_temperature_k", "[2000.0, 7000.0]", "900"]),
    ("camera.jpeg_quality=5", ["camera.jpeg_quality", "[10, 100]", "5"]),
    ("optics.na=2", ["optics.na", "[0.01, 0.95]", "2"]),
    ("sensor.exposure_ms=0", ["sensor.exposure_ms", "0"]),
])
def test_a_bad_value_names_section_key_range_and_value(item: str, said: list[str]) -> None:
    with pytest.raises(ValueError) as err:
        sim_microscope(1, parse_sim_sets([item]))
    msg = str(err.value)
    assert msg.startswith("--sim-set ") and "\n" not in msg
    for s in said:
        assert s in msg, msg
