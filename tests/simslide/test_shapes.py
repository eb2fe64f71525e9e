"""Each structure and debris generator: sizes, heights, variation, defects and collapse, map conventions."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from appliance.sim import debris
from appliance.sim.slide import STRUCTURE_TYPES, SlideParams, make_slide
from appliance.sim.structures import GENERATORS


@pytest.fixture(scope="module")
def many():
    """60 structures of each type, no debris."""
    s = make_slide(11, SlideParams(width_um=30000, height_um=30000, n_structures=300, debris_per_mm2=0))
    return [o for o in s.objects]


def test_sizes_and_heights_in_range(many):
    for o in many:
        assert 3.0 <= o.max_height_um <= 30.0 + 0.25, (o.cls, o.max_height_um)  # + roughness
        assert 18.0 <= max(o.footprint_um) <= 120.0 * np.sqrt(2) + 10, (o.cls, o.footprint_um)
        assert o.height_um.min() >= 0 and o.height_um.dtype == np.float32
        assert o.absorption.shape == o.height_um.shape
        # the polymer's losses (appliance.sim.polymer): positive on the print, nothing beside it
        assert np.all(o.absorption[o.height_um > 0] > 0) and np.all(o.absorption[o.height_um == 0] == 0)
        assert 2.0 <= o.loss_exponent <= 6.0
    heights = np.array([o.max_height_um for o in many])
    assert heights.min() < 8 and heights.max() > 25  # the range is used, not one size


@pytest.mark.parametrize("cls", STRUCTURE_TYPES)
def test_each_type_varies_in_size_rotation_defects_collapse(many, cls):
    obs = [o for o in many if o.cls == cls]
    assert len(obs) == 60
    assert len({round(o.rotation_deg, 3) for o in obs}) == 60
    assert np.ptp([max(o.footprint_um) for o in obs]) > 20
    assert sum(o.attrs["collapse"] > 0 for o in obs) >= 3
    assert sum(o.attrs["collapse"] == 0 for o in obs) >= 30
    defects = [o.attrs.get("holes", 0) + o.attrs.get("missing_rods", 0) + o.attrs.get("missing_walls", 0)
               for o in obs]
    assert sum(d > 0 for d in defects) >= 5
    assert sum(d == 0 for d in defects) >= 10


def test_maps_are_tight_read_only_and_match_the_footprint(many):
    for o in many:
        h = o.height_um
        assert not h.flags.writeable and not o.absorption.flags.writeable
        assert o.footprint_um == (h.shape[1] * o.pitch_um, h.shape[0] * o.pitch_um)
        for edge in (h[0], h[-1], h[:, 0], h[:, -1]):
            assert np.any(edge != 0)


def test_type_specific_geometry():
    rng = np.random.default_rng(4)
    # Micro-lens: highest at the middle, falling off to the rim.
    lens = GENERATORS["microlens"](rng, 0.25, roughness=False)
    h = lens.height_um
    c = h.shape[0] // 2
    if lens.attrs["collapse"] == 0 and lens.attrs["holes"] == 0:
        assert h[c, c] == pytest.approx(h.max(), rel=1e-3)
    # Split ring: the centre is empty, a ring of polymer around it.
    ring = GENERATORS["split_ring"](rng, 0.25, roughness=False)
    c = ring.height_um.shape[0] // 2
    assert ring.height_um[c, c] == 0 and ring.height_um.max() > 0
    # Scaffold: open cells, so most of the footprint is bare glass.
    sc = GENERATORS["scaffold"](rng, 0.25, roughness=False)
    assert np.mean(sc.height_um > 0) < 0.5
    # Pentagon: a solid flat top covering most of its footprint.
    pe = GENERATORS["pentagon"](rng, 0.25, roughness=False)
    top = pe.height_um >= 0.99 * pe.height_um.max()
    assert top.mean() > 0.3
    # Woodpile: rods with air between them, so the material thickness takes several levels and is on
    # average well below the stack's top (about half of each layer is rod).
    wp = GENERATORS["woodpile"](rng, 0.25, roughness=False)
    levels = np.unique(wp.height_um[wp.height_um > 0])
    assert len(levels) >= 3
    assert wp.top_height_um is not None
    assert wp.height_um.max() <= wp.top_height_um + 1e-4
    assert np.mean(wp.height_um[wp.height_um > 0]) < 0.8 * wp.top_height_um


def test_woodpile_thickness_counts_layers():
    # No defects drawn here matter: thickness is a whole number of layers wherever nothing collapsed.
    for seed in range(10):
        wp = GENERATORS["woodpile"](np.random.default_rng(seed), 0.25, roughness=False)
        if wp.attrs["collapse"] or wp.attrs["holes"]:
            continue
        n = wp.height_um / wp.attrs["layer_um"]
        assert np.allclose(n, np.rint(n), atol=0.02)  # layer_um is rounded in attrs
        assert np.rint(n).max() <= wp.attrs["layers"]
        assert wp.top_height_um == pytest.approx(wp.attrs["layers"] * wp.attrs["layer_um"], rel=1e-3)


def test_debris_kinds_have_their_physics(slide):
    d = [o for o in slide.objects if o.kind == "debris"]
    by = {k: [o for o in d if o.cls == k] for k in debris.DEBRIS_MIX}
    assert all(o.absorption.max() >= 0.3 for o in by["dust"])  # strongly absorbing
    assert all(o.index_delta < 0 and o.absorption.max() == 0 for o in by["bubble"])
    assert all(o.height_um.max() == 0 and o.height_um.min() < 0 for o in by["scratch"])
    assert all(max(o.footprint_um) > 3 * o.attrs["diameter_um"] for o in by["fibre"])
    counts = Counter(o.cls for o in d)
    assert counts["dust"] > counts["fibre"] > counts["scratch"]
    # Small dust specks share a few read-only template maps.
    small = [o for o in by["dust"] if max(o.footprint_um) < 10]
    assert len({id(o.height_um) for o in small}) <= 32 < len(small)


def test_unknown_debris_kind_is_named():
    with pytest.raises(ValueError, match="'lint'"):
        debris.make_debris("lint", np.random.default_rng(0), debris.DustTemplates(np.random.default_rng(0)))


@pytest.mark.parametrize("cls", STRUCTURE_TYPES + ("scratch", "bubble"))
def test_slices_add_up_to_the_height_map(slide, cls):
    o = next(o for o in slide.objects if o.cls == cls)
    lo = min(0.0, float(o.height_um.min()))
    edges = np.linspace(lo, o.max_height_um, 7)
    total = sum(o.thickness_between(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True))
    assert np.allclose(total, o.height_um, atol=1e-4)
    # A slice above the object holds nothing; the bottom slice of a solid shape is full wherever it stands.
    assert not np.any(o.thickness_between(o.max_height_um + 1, o.max_height_um + 5))
    if cls in ("pentagon", "scaffold", "split_ring", "microlens"):
        bottom = o.thickness_between(0.0, 1.0)
        assert np.allclose(bottom[o.height_um >= 1.0], 1.0)


def test_slice_bounds_checked(slide):
    with pytest.raises(ValueError, match="z0_um"):
        slide.objects[0].thickness_between(5.0, 1.0)


def test_pentagon_top_edge_is_rounded():
    # The shoulder (height between top - rounding and the top) is a band about `rounding` wide all round,
    # while the steep wall below it is much narrower than its height.
    checked = 0
    for seed in range(30):
        pe = GENERATORS["pentagon"](np.random.default_rng(seed), 0.25, roughness=False)
        if pe.attrs["collapse"] or pe.attrs["holes"]:
            continue
        h, top, r = pe.height_um, float(pe.height_um.max()), pe.attrs["edge_rounding_um"]
        perimeter = 5 * 2 * pe.attrs["circumradius_um"] * np.sin(np.pi / 5)
        shoulder = np.count_nonzero((h > top - r) & (h < 0.999 * top)) * 0.25**2
        wall = np.count_nonzero((h > 0) & (h <= top - r)) * 0.25**2
        assert 0.5 * r * perimeter < shoulder < 1.5 * r * perimeter + 0.5 * perimeter
        assert wall < 0.3 * (top - r) * perimeter  # walls steeper than ~73 degrees
        checked += 1
    assert checked >= 10


@pytest.mark.parametrize("cls", STRUCTURE_TYPES)
def test_roughness_is_a_small_texture_on_the_ideal_shape(cls):
    rough = GENERATORS[cls](np.random.default_rng(5), 0.25)
    ideal = GENERATORS[cls](np.random.default_rng(5), 0.25, roughness=False)
    assert rough.height_um.shape == ideal.height_um.shape
    assert np.array_equal(rough.height_um > 0, ideal.height_um > 0)  # the outline does not move
    diff = (rough.height_um - ideal.height_um)[ideal.height_um > 1.0]
    assert 0.004 < float(diff.std()) < 0.05
    assert rough.attrs["roughness_rms_um"] == pytest.approx(float(diff.std()), rel=0.3)
