"""Slide plane: tilt and bow follow the parameters; every object's true focus follows the surface."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.sim.slide import SlideParams, make_slide


def test_centre_is_z0_and_tilt_is_the_slope():
    s = make_slide(0, SlideParams(tilt_x_um_per_mm=3.0, tilt_y_um_per_mm=-2.0, bow_um=0.0, surface_z0_um=50.0,
                                  n_structures=0, debris_per_mm2=0))
    assert s.surface_z_um(5000, 5000) == pytest.approx(50.0)
    assert s.surface_z_um(6000, 5000) - s.surface_z_um(5000, 5000) == pytest.approx(3.0)
    assert s.surface_z_um(5000, 7000) - s.surface_z_um(5000, 5000) == pytest.approx(-4.0)


def test_bow_lifts_the_corners_by_bow_um():
    s = make_slide(0, SlideParams(tilt_x_um_per_mm=0.0, tilt_y_um_per_mm=0.0, bow_um=4.0, surface_z0_um=0.0,
                                  n_structures=0, debris_per_mm2=0))
    for x, y in [(0, 0), (10000, 0), (0, 10000), (10000, 10000)]:
        assert s.surface_z_um(x, y) == pytest.approx(4.0)
    # Radial and quadratic: halfway to a corner sits a quarter of the bow.
    assert s.surface_z_um(7500, 7500) == pytest.approx(1.0)


def test_surface_accepts_arrays():
    s = make_slide(0, SlideParams(n_structures=0, debris_per_mm2=0))
    xs = np.linspace(0, 10000, 7)
    z = s.surface_z_um(xs, np.full(7, 2000.0))
    assert z.shape == (7,)
    assert np.allclose(z, [s.surface_z_um(float(x), 2000.0) for x in xs])


def test_focus_follows_surface_at_each_centre(slide):
    for o in slide.objects:
        h = o.height_um
        extreme = float(h.max() if h.max() >= -h.min() else h.min())
        if o.cls == "woodpile":  # thickness map; the focus follows the stack's geometric top
            assert o.max_height_um >= extreme - 1e-6
            extreme = o.max_height_um
        else:
            assert o.max_height_um == pytest.approx(abs(extreme))
        assert o.focus_z_um == pytest.approx(slide.surface_z_um(*o.center_um) + extreme / 2, abs=1e-6)


def test_focus_varies_across_a_tilted_slide_as_the_tilt_says():
    s = make_slide(5, SlideParams(tilt_x_um_per_mm=10.0, tilt_y_um_per_mm=0.0, bow_um=0.0, debris_per_mm2=0))
    st = [o for o in s.objects if o.kind == "structure"]
    # Remove each structure's own half-height: what remains is the surface, a plane of slope 10 um/mm in x.
    x = np.array([o.center_um[0] for o in st])
    base = np.array([o.focus_z_um - o.max_height_um / 2 for o in st])
    slope, _ = np.polyfit(x / 1000, base, 1)
    assert slope == pytest.approx(10.0, abs=1e-6)
