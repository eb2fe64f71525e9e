"""Bad parameters are a ValueError that names the parameter and the value."""

from __future__ import annotations

import math

import pytest

from appliance.sim.slide import SlideParams, make_slide


@pytest.mark.parametrize(("name", "value"), [
    ("width_um", 10.0), ("width_um", "wide"), ("height_um", math.nan), ("height_um", 1e9),
    ("n_structures", -1), ("n_structures", 2.5), ("n_structures", True), ("debris_per_mm2", -0.1),
    ("tilt_x_um_per_mm", 80.0), ("tilt_y_um_per_mm", math.inf), ("bow_um", -51.0),
    ("surface_z0_um", None), ("index_delta", 0.0), ("type_mix", (1.0, 1.0)), ("type_mix", (0, 0, 0, 0, 0)),
    ("type_mix", (1, 1, -1, 1, 1)), ("type_mix", "woodpile"),
])
def test_bad_parameter_names_itself(name, value):
    with pytest.raises(ValueError, match=name) as err:
        SlideParams(**{name: value})
    assert repr(value)[:6] in str(err.value) or name == "type_mix"


def test_good_parameters_are_normalised():
    p = SlideParams(width_um=2000, n_structures=3, type_mix=[1, 0, 0, 0, 0])
    assert p.width_um == 2000.0 and isinstance(p.width_um, float)
    assert p.type_mix == (1.0, 0.0, 0.0, 0.0, 0.0)


@pytest.mark.parametrize("seed", [-1, 1.5, "7", True])
def test_bad_seed(seed):
    with pytest.raises(ValueError, match="seed"):
        make_slide(seed)


def test_too_many_structures_for_the_area():
    with pytest.raises(ValueError, match="n_structures"):
        make_slide(0, SlideParams(width_um=1000, height_um=1000, n_structures=200, debris_per_mm2=0))


def test_params_must_be_slideparams():
    with pytest.raises(ValueError, match="params"):
        make_slide(0, {"width_um": 1000})  # type: ignore[arg-type]
