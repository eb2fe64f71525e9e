"""Physics of the optics: focus, contrast inversion, blur, depth of field, parameter errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from appliance.sim.capture import CameraChainParams
from appliance.sim.microscope import VirtualMicroscope
from appliance.sim.optics import OpticsParams, image_intensity, object_spectrum
from appliance.sim.slide import STRUCTURE_TYPES, SlideParams


def _focus_curve(scope, obj, dzs):
    """Variance of the Laplacian in a box around ``obj`` in noise-free frames centred on it."""
    r = scope.camera.renderer
    s = scope.camera.um_per_px
    w, h = scope.camera.size_px
    fw, fh = obj.footprint_um
    hw, hh = int(fw / 2 / s) + 10, int(fh / 2 / s) + 10
    out = []
    for dz in dzs:
        t = r.transmission(obj.center_um[0], obj.center_um[1], obj.focus_z_um + dz, (w, h)) * 150.0
        crop = t[max(0, h // 2 - hh):h // 2 + hh, max(0, w // 2 - hw):w // 2 + hw]
        out.append(float(cv2.Laplacian(crop, cv2.CV_32F).var()))
    return np.asarray(out)


@pytest.mark.parametrize("cls", STRUCTURE_TYPES)
def test_focus_measure_peaks_within_one_depth_of_field(scope, cls):
    dof = scope.camera.optics.depth_of_field_um(scope.camera.um_per_px)
    dzs = np.arange(-15.0, 15.01, 1.0)
    objs = [o for o in scope.slide.objects if o.cls == cls][:2]
    assert objs, f"seed 2 has no {cls}"
    for obj in objs:
        curve = _focus_curve(scope, obj, dzs)
        best = dzs[int(np.argmax(curve))]
        assert abs(best) <= dof, f"{cls} id {obj.id}: focus measure peaks at dz={best} um, DoF {dof:.1f} um"
        # and it is a peak, not a flat line
        assert curve.max() > 1.3 * min(curve[0], curve[-1])


def _rim_contrast(scope, obj, dz, size=480):
    """Mean intensity on a 1.5 um band inside the edge of an object's flat top, minus the top's interior."""
    r, s = scope.camera.renderer, scope.camera.um_per_px
    h, p = obj.height_um, obj.pitch_um
    hh, ww = h.shape
    top = (h > 0.97 * h.max()).astype(np.uint8)

    def disc(um):
        return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * int(um / p) + 1,) * 2)

    band = (top & (1 - cv2.erode(top, disc(1.5)))).astype(bool)
    inner = cv2.erode(top, disc(5.0)).astype(bool)
    t = r.transmission(obj.center_um[0], obj.center_um[1], obj.focus_z_um + dz, (size, size))
    # camera pixel u sees map column c = (u - (W-1)/2) s/p + (w-1)/2 (frame centred on the object)
    axis = np.arange(size) - (size - 1) / 2
    c = np.rint(axis * s / p + (ww - 1) / 2).astype(int)
    rr = np.rint(axis * s / p + (hh - 1) / 2).astype(int)
    okc, okr = (c >= 0) & (c < ww), (rr >= 0) & (rr < hh)
    sub = t[np.ix_(okr, okc)]
    return float(sub[band[np.ix_(rr[okr], c[okc])]].mean() - sub[inner[np.ix_(rr[okr], c[okc])]].mean())


def test_edge_contrast_changes_sign_across_focus():
    # The inner rim of a split ring's flat top, as a phase edge alone (the prints' light losses off): lighter than
    # the top below focus, darker above.
    clear = VirtualMicroscope(seed=2, slide=SlideParams(top_roughness_um=0.0, internal_scatter_per_um=0.0,
                                                        initiator_absorption_per_um=0.0),
                              chain=CameraChainParams(lens_blur_px=0.0))  # the optics alone
    # (Which way it turns depends on the ring's height and width: seed 2's third ring is darker below focus.)
    flips = 0
    for obj in [o for o in clear.slide.objects if o.cls == "split_ring"][:3]:
        curve = [_rim_contrast(clear, obj, dz) for dz in (-8.0, -6.0, 4.0, 6.0)]
        assert abs(curve[0] - curve[-1]) > 0.08, (obj.id, curve)  # the rim changes through focus
        flips += (max(curve) > 0.02 and min(curve) < -0.02)
    assert flips >= 2


def test_edge_contrast_changes_through_focus_with_losses(scope):
    # With the default losses the smooth contour band is lighter than the rough top at any focus, and the phase
    # edge still moves the rim's contrast the same way through focus.
    for obj in [o for o in scope.slide.objects if o.cls == "split_ring"][:2]:
        below, above = _rim_contrast(scope, obj, -6.0), _rim_contrast(scope, obj, 6.0)
        assert below - above > 0.04, (obj.id, below, above)


def test_defocus_contrast_inverts_across_focus(scope):
    # Transport of intensity: I(+d) - I(0) and I(-d) - I(0) have opposite sign where the phase curves.
    for cls in ("microlens", "split_ring"):
        obj = next(o for o in scope.slide.objects if o.cls == cls)
        r = scope.camera.renderer
        _, i0 = r.patch(obj, 0.0)
        _, ip = r.patch(obj, 3.0)
        _, im = r.patch(obj, -3.0)
        corr = np.corrcoef((ip - i0).ravel(), (im - i0).ravel())[0, 1]
        assert corr < -0.3, f"{cls}: defocus contrast above and below focus correlate at {corr:.2f}"


def _width_um(inten, pitch):
    c = 1.0 - inten
    return float(np.sqrt(c.sum() * pitch**2 / c.max()))


def test_blur_grows_with_defocus(disc_maps):
    h, a = disc_maps(0.3, 1.0, 5.0)
    o = OpticsParams()
    spec = object_spectrum(h, a, 0.0, 0.25, (0.0, 0.0), o, 20.0)
    for sign in (1, -1):
        widths = [_width_um(image_intensity(spec, sign * dz, o), spec.pitch_um[0]) for dz in (0, 3, 6, 9, 12)]
        assert all(b > a for a, b in zip(widths, widths[1:], strict=False)), widths


def test_depth_of_field_follows_na(disc_maps):
    h, a = disc_maps(0.3, 1.0, 5.0)
    dzs = np.arange(-40.0, 40.01, 0.5)
    widths = []
    for na in (0.15, 0.25, 0.4):
        o = OpticsParams(na=na)
        spec = object_spectrum(h, a, 0.0, 0.25, (0.0, 0.0), o, 20.0)
        peak = np.array([(1.0 - image_intensity(spec, dz, o)).max() for dz in dzs])
        inside = dzs[peak >= peak.max() / 2]
        width = inside.max() - inside.min()
        widths.append(width)
        # full width at half contrast of a point absorber ~ lambda / NA^2 (within a factor of 2)
        assert 0.8 <= width * na**2 / o.wavelength_um <= 2.0, (na, width)
    assert widths[0] > widths[1] > widths[2]


def test_clear_glass_is_one_at_any_focus(disc_maps):
    h, a = disc_maps(5.0, 0.0, 0.0)
    o = OpticsParams()
    spec = object_spectrum(h, a, 0.5, 0.25, (0.0, 0.0), o, 5.0)
    for dz in (-10.0, 0.0, 7.0):
        np.testing.assert_allclose(image_intensity(spec, dz, o), 1.0, atol=1e-4)


@pytest.mark.parametrize(("name", "value"), [("na", 0.0), ("na", 1.2), ("magnification", -10.0),
                                             ("wavelength_um", 5.0), ("condenser_sigma", float("nan")),
                                             ("n_source_points", 0), ("magnification", "10")])
def test_bad_optics_parameter_named(name, value):
    with pytest.raises(ValueError, match=name):
        OpticsParams(**{name: value})


def _sliced(h, a, n, optics, dz, ref):
    slices = [h / n for _ in range(n)]
    spec = object_spectrum(h, a, 0.5, 0.25, (0.0, 0.0), optics, 8.0, slices, float(h.max()) / n, ref)
    return image_intensity(spec, dz, optics)


def test_sliced_clear_glass_is_one(disc_maps):
    h, a = disc_maps(4.0, 0.0, 0.0)
    o = OpticsParams(slice_um=2.0)
    h = h.copy()
    spec = object_spectrum(h, a, 0.5, 0.25, (0.0, 0.0), o, 8.0, [h, h, h], 2.0, 3.0)
    assert spec.spectrum.ndim == 3
    np.testing.assert_allclose(image_intensity(spec, 4.0, o), 1.0, atol=1e-4)


def test_sliced_tall_structures_focus_within_one_depth_of_field():
    scope = VirtualMicroscope(seed=2, optics=OpticsParams(slice_um=5.0))
    dof = scope.camera.optics.depth_of_field_um(scope.camera.um_per_px)
    dzs = np.arange(-12.0, 12.01, 1.5)
    for cls in ("pentagon", "microlens"):
        obj = max((o for o in scope.slide.objects if o.cls == cls), key=lambda o: o.max_height_um)
        assert obj.max_height_um > 10.0  # really sliced
        curve = _focus_curve(scope, obj, dzs)
        best = dzs[int(np.argmax(curve))]
        assert abs(best) <= dof, (cls, obj.id, best)


def test_sliced_propagation_of_a_tall_disc(disc_maps):
    """Multi-slice (opt-in) keeps clear glass at 1, conserves a thin object's image, and changes a tall one's."""
    thin = OpticsParams()
    sliced = OpticsParams(slice_um=2.0)
    # A 0.5 um disc is thinner than one slice: one slice means one screen, the same as the thin model.
    h, a = disc_maps(6.0, 0.5, 0.0)
    s_thin = object_spectrum(h, a, 0.5, 0.25, (0.0, 0.0), thin, 12.0)
    s_one = object_spectrum(h, a, 0.5, 0.25, (0.0, 0.0), sliced, 12.0, [h], 0.5, 0.25)
    np.testing.assert_allclose(image_intensity(s_one, 2.0, sliced), image_intensity(s_thin, 2.0, thin), atol=1e-4)
    # A 20 um tall pillar in 10 slices: each slice is a fraction of the height; the image differs from the thin
    # screen (light spreads inside the pillar) while glass far from it stays 1.
    h, a = disc_maps(8.0, 20.0, 0.0)
    slices = [h / 10.0 for _ in range(10)]
    s_many = object_spectrum(h, a, 0.5, 0.25, (0.0, 0.0), sliced, 12.0, slices, 2.0, 10.0)
    s_thin = object_spectrum(h, a, 0.5, 0.25, (0.0, 0.0), thin, 12.0)
    assert s_many.spectrum.shape[0] == sliced.n_source_points
    i_many = image_intensity(s_many, 0.0, sliced)
    i_thin = image_intensity(s_thin, 0.0, thin)
    assert i_many.shape == i_thin.shape
    assert abs(float(i_many[2:6, 2:6].mean()) - 1.0) < 0.02
    assert float(np.abs(i_many - i_thin).max()) > 0.05


def test_slice_um_is_validated():
    with pytest.raises(ValueError, match="slice_um"):
        OpticsParams(slice_um=0.1)


def test_sliced_smooth_thin_bump_matches_thin_element():
    # a smooth 0.4 um bump in two equal slices is still thin: multi-slice and one screen must agree
    n = 72
    yy, xx = np.mgrid[:n, :n]
    r = np.hypot(xx - (n - 1) / 2, yy - (n - 1) / 2) * 0.25
    h = (0.4 * np.exp(-((r / 3.0) ** 2))).astype(np.float32)
    a = np.where(h > 0.01, 0.01, 0.0).astype(np.float32)
    o = OpticsParams(slice_um=0.5)
    thin = image_intensity(object_spectrum(h, a, 0.5, 0.25, (0.0, 0.0), o, 8.0), 3.0, o)
    sliced = image_intensity(object_spectrum(h, a, 0.5, 0.25, (0.0, 0.0), o, 8.0, [h / 2, h / 2], 0.2, 0.2), 3.0, o)
    assert np.abs(thin - 1.0).max() > 0.1  # the bump is visible
    assert np.abs(sliced - thin).max() < 2e-3
