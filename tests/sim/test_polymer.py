"""Light lost inside prints: dark all over, lighter contour band, λ⁻² colour, per-type roughness, parameters."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.sim.camera import FieldRenderer
from appliance.sim.optics import OpticsParams, image_intensity, object_spectrum
from appliance.sim.polymer import LOSS_REF_UM, TYPE_ROUGHNESS, loss_scale, polymer_loss
from appliance.sim.slide import SlideParams, make_slide, with_polymer_loss
from appliance.sim.spectral import channel_response
from appliance.sim.structures import pentagon


def _pentagon(params: SlideParams, seed: int = 1):
    shape = pentagon(np.random.default_rng(seed), circumradius_um=25.0, height_um=15.0)
    return with_polymer_loss(shape, "pentagon", params, np.random.default_rng(seed + 100))


def _in_focus(shape, wavelength_um=0.55, exponent=2.0):
    o = OpticsParams(wavelength_um=wavelength_um)
    spec = object_spectrum(shape.height_um, shape.absorption, 0.5, shape.pitch_um, (0.0, 0.0), o, 12.0,
                           absorption_scale=loss_scale(exponent, wavelength_um))
    return spec, image_intensity(spec, 0.0, o)


def _regions(shape, spec, img):
    """Image samples over the top's interior (> 8 µm from the edge) and over the band 2-4 µm inside the base edge."""
    from scipy.ndimage import distance_transform_edt

    h = shape.height_um
    d = distance_transform_edt(h > 0) * shape.pitch_um
    my, mx = img.shape
    (ox, oy), (px, py) = spec.origin_um, spec.pitch_um
    ys = np.rint(((oy + np.arange(my) * py) / shape.pitch_um) + (h.shape[0] - 1) / 2).astype(int)
    xs = np.rint(((ox + np.arange(mx) * px) / shape.pitch_um) + (h.shape[1] - 1) / 2).astype(int)
    okr, okc = (ys >= 0) & (ys < h.shape[0]), (xs >= 0) & (xs < h.shape[1])
    sub = img[np.ix_(okr, okc)]
    dd = d[np.ix_(ys[okr], xs[okc])]
    return sub[dd > 8.0], sub[(dd > 2.0) & (dd < 4.0)]


def test_a_print_is_dark_all_over_and_its_contour_band_lighter():
    shape = _pentagon(SlideParams())
    spec, img = _in_focus(shape)
    interior, band = _regions(shape, spec, img)
    assert np.median(interior) < 0.45  # rough top: most light scattered out of the pupil
    assert np.median(band) > np.median(interior) + 0.05  # contour-traced rim is smoother
    # without roughness the same prism is a clear phase object: its top passes nearly everything
    clear = _pentagon(SlideParams(top_roughness_um=0.0, internal_scatter_per_um=0.0, initiator_absorption_per_um=0.0))
    assert np.median(_regions(clear, *_in_focus(clear))[0]) > 0.9


def test_loss_grows_with_roughness_as_total_integrated_scatter():
    # intensity kept on the top ~ exp(-(2 pi dn sigma / lambda)^2): check the loss map itself on the flat top
    for sigma in (0.05, 0.15):
        p = SlideParams(top_roughness_um=sigma, internal_scatter_per_um=0.0, initiator_absorption_per_um=0.0)
        s = _pentagon(p)
        kept = np.exp(-2.0 * (s.absorption * s.height_um))
        top = float(np.median(kept[s.height_um > 0.99 * s.height_um.max()]))
        rms = float(s.attrs["top_roughness_um"])
        assert top == pytest.approx(np.exp(-(2 * np.pi * 0.5 * rms / LOSS_REF_UM) ** 2), rel=0.02)


def test_loss_is_bluer_about_lambda_minus_two():
    shape = _pentagon(SlideParams())
    _, wl = channel_response(3000.0)
    means = []
    for lam in wl:
        spec, img = _in_focus(shape, float(lam), float(shape.attrs["loss_exponent"]))
        means.append(float(np.median(_regions(shape, spec, img)[0])))
    r, g, b = means
    assert r > g > b
    # log-transmission scales as lambda^-p, p between 2 (scatter) and 6 (initiator)
    p = np.log(np.log(b) / np.log(r)) / np.log(wl[0] / wl[2])
    assert 1.5 < p < 3.0, p


def test_exponent_weights_scatter_and_initiator():
    shape = pentagon(np.random.default_rng(3), circumradius_um=20.0)
    rng = np.random.default_rng(0)
    _, only_scatter = polymer_loss(shape, "pentagon", 0.5, 0.2, 5.0, 0.1, 0.01, 0.0, rng)
    _, only_dye = polymer_loss(shape, "pentagon", 0.5, 0.0, 5.0, 0.1, 0.0, 0.05, rng)
    _, both = polymer_loss(shape, "pentagon", 0.5, 0.2, 5.0, 0.1, 0.01, 0.05, rng)
    assert only_scatter == pytest.approx(2.0) and only_dye == pytest.approx(6.0)
    assert 2.0 < both < 6.0


def test_types_differ_in_roughness_and_slide_objects_carry_it():
    assert TYPE_ROUGHNESS["microlens"] < TYPE_ROUGHNESS["woodpile"] < TYPE_ROUGHNESS["pentagon"]
    slide = make_slide(4, SlideParams(width_um=3000, height_um=3000, n_structures=10, debris_per_mm2=2.0))
    for o in slide.objects:
        if o.kind == "structure":
            assert 2.0 <= o.loss_exponent <= 6.0 and o.truth()["loss_exponent"] == o.loss_exponent
        else:
            assert o.loss_exponent == 0.0  # dust and fibres are grey


def test_grey_objects_have_no_colour_ratio():
    slide = make_slide(4, SlideParams(width_um=3000, height_um=3000, n_structures=3, debris_per_mm2=20.0))
    r = FieldRenderer(slide, OpticsParams(), 5.6, channel_wavelengths_um=(0.6, 0.54, 0.47))
    dust = next(o for o in slide.objects if o.kind == "debris")
    print_ = next(o for o in slide.objects if o.kind == "structure")
    assert r.colour_ratios(dust, 0.0) is None
    ratios = r.colour_ratios(print_, 0.0)
    assert ratios is not None and ratios.shape[0] == 3
    assert ratios[0].max() > 1.0 and ratios[2].min() < 1.0  # red lighter, blue darker than the green image


@pytest.mark.parametrize(("name", "value"), [("top_roughness_um", 0.8), ("contour_um", -1.0),
                                             ("contour_roughness", 1.5), ("internal_scatter_per_um", float("nan")),
                                             ("initiator_absorption_per_um", "0.1")])
def test_bad_polymer_parameter_named(name, value):
    with pytest.raises(ValueError, match=name):
        SlideParams(**{name: value})
