"""The capture chain: colour under halogen, lens shading, noise correlation, JPEG, presets, faint dust."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from appliance.sim.camera import FieldRenderer
from appliance.sim.capture import PRESETS, CameraChainParams, CaptureChain, photosite_size, preset, to_grey
from appliance.sim.faint_dust import speck_field
from appliance.sim.microscope import VirtualMicroscope
from appliance.sim.optics import OpticsParams, image_intensity, object_spectrum
from appliance.sim.polymer import loss_scale
from appliance.sim.sensor import SensorParams, vignetting_profile
from appliance.sim.slide import SlideParams
from appliance.sim.spectral import bayer_sites, channel_response, colour_ratios, loss_map_on_grid, ratio_blur_um

CLEAN = SensorParams(optics_dust_per_mm2=0.0, illumination_variation=0.0)


def _blank(chain: CameraChainParams, sensor: SensorParams = CLEAN, seed: int = 0, exposure_ms: float = 10.0):
    cc = CaptureChain(sensor, chain, 0.56, 0)
    w, h = cc.size_px
    return cc.capture(np.ones((h, w), np.float32), exposure_ms, np.random.default_rng(seed))


def test_halogen_light_is_warm_and_white_balance_greys_it():
    gains, wl = channel_response(3000.0)
    assert wl[0] > wl[1] > wl[2] and gains[0] > gains[1] > gains[2]
    assert channel_response(6500.0)[0][2] > gains[2]  # a bluer lamp
    raw = _blank(CameraChainParams()).reshape(-1, 3).mean(axis=0)  # B, G, R
    assert raw[2] > raw[1] > raw[0] + 40
    balanced = _blank(CameraChainParams(white_balance=1.0)).reshape(-1, 3).mean(axis=0)
    assert balanced.max() - balanced.min() < 6


def test_bayer_layout_is_rggb():
    s = bayer_sites(4, 4)
    assert s[0, 0] == 0 and s[0, 1] == 1 and s[1, 0] == 1 and s[1, 1] == 2


def test_demosaic_returns_the_channel_each_site_saw():
    plain = CameraChainParams(denoise_px=0.0, sharpen=0.0, saturation=1.0)
    cc = CaptureChain(CLEAN, plain, 0.56, 0)
    h, w = cc.size_px[1], cc.size_px[0]
    t = np.ones((h, w), np.float32)
    t[cc.sites == 2] = 0.25  # blue sites see a quarter of the light
    img = cc.capture(t, 10.0, np.random.default_rng(0))
    ref = _blank(plain)
    b_ratio = img[100:300, 100:500, 0].mean() / ref[100:300, 100:500, 0].mean()
    r_ratio = img[100:300, 100:500, 2].mean() / ref[100:300, 100:500, 2].mean()
    assert b_ratio == pytest.approx(0.25 ** (1 / 2.2), rel=0.05) and r_ratio == pytest.approx(1.0, rel=0.02)


def test_lens_shading_correction_leaves_the_rest_of_the_vignetting():
    sensor = SensorParams(optics_dust_per_mm2=0.0, illumination_variation=0.0, vignetting=0.25)
    for corr in (0.0, 0.75):
        img = _blank(CameraChainParams(colour=False, gamma=1.0, denoise_px=3.0, sharpen=0.0,
                                       lens_shading_correction=corr), sensor).astype(np.float32)
        centre = img[200:280, 280:360].mean()
        corner = img[:30, :30].mean()
        prof = vignetting_profile(img.shape)[:30, :30].mean()
        expected = (1 - 0.25 * prof) / (1 - corr * 0.25 * prof)
        assert corner / centre == pytest.approx(expected, abs=0.02)


def _corr_half_width(img: np.ndarray) -> float:
    g = img.astype(np.float32)
    r = g - cv2.GaussianBlur(g, (0, 0), 4.0)
    r = r[20:-20, 20:-20]
    c0 = float((r * r).mean())
    c1 = float((r[:, 1:] * r[:, :-1]).mean() + (r[1:] * r[:-1]).mean()) / 2
    return c1 / c0


def test_chain_correlates_the_noise():
    raw = to_grey(_blank(CameraChainParams(colour=False, denoise_px=0.0, sharpen=0.0)))
    cheap = to_grey(_blank(PRESETS["cheap_colour"]))
    assert abs(_corr_half_width(raw)) < 0.1  # white per photosite
    assert _corr_half_width(cheap) > 0.6  # upscale, denoise and JPEG spread it


def test_upscaling_camera_renders_coarser_photosites():
    chain = PRESETS["cheap_colour"]
    assert photosite_size(SensorParams(), chain) == (320, 240)
    img = _blank(chain)
    assert img.shape == (480, 640, 3)


def test_grey_shortcut_matches_grey_of_colour():
    scope = VirtualMicroscope(seed=3)
    o = next(o for o in scope.slide.objects if o.kind == "structure")
    r, cc = scope.camera.renderer, scope.camera.chain
    t = r.transmission(o.center_um[0], o.center_um[1], o.focus_z_um, cc.size_px, cc.sites)
    bgr = cc.capture(t.copy(), 10.0, np.random.default_rng(1))
    grey = cc.capture(t.copy(), 10.0, np.random.default_rng(1), grey=True)
    assert np.abs(to_grey(bgr).astype(int) - grey.astype(int)).max() <= 2


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_byte_deterministic(name):
    frames = []
    for _ in range(2):
        scope = VirtualMicroscope(seed=5, chain=PRESETS[name],
                                  slide=SlideParams(width_um=2000, height_um=2000, n_structures=2))
        o = scope.slide.objects[0]
        with scope.stage, scope.camera:
            scope.stage.move_to_um(x=round(o.center_um[0]), y=round(o.center_um[1]))
            frames.append(scope.camera.capture().image)
    assert frames[0].tobytes() == frames[1].tobytes() and frames[0].dtype == np.uint8 and frames[0].ndim == 2


@pytest.mark.parametrize(("name", "value"), [("lamp_temperature_k", 900.0), ("white_balance", 2.0),
                                             ("isp_upscale", 0.5), ("lens_blur_px", -1.0), ("denoise_px", 9.0),
                                             ("sharpen", float("inf")), ("gamma", 0.5), ("jpeg_quality", 5),
                                             ("jpeg_quality", 101), ("demosaic", "nearest"), ("colour", 1),
                                             ("lens_shading_correction", 1.2)])
def test_bad_chain_parameter_named(name, value):
    with pytest.raises(ValueError, match=name):
        CameraChainParams(**{name: value})


def test_unknown_preset_named():
    with pytest.raises(ValueError, match="cheap_colour"):
        preset("cheapest")
    assert preset("cheap_colour", jpeg_quality=90).jpeg_quality == 90


def test_faint_dust_density_depth_and_mass():
    field = speck_field((480, 640), 0.56, 180.0, 3.0, np.random.default_rng(0))
    dips = 1.0 - field
    assert dips.max() <= 1.0 and field.min() > 0.0
    # about 180/mm2 x 0.0963 mm2 = 17 specks; each a few pixels wide and faint
    n, _ = cv2.connectedComponents((dips > 0.03).astype(np.uint8))
    assert 8 <= n - 1 <= 30
    assert 0.03 < float(np.median(dips[dips > 0.03])) < 0.3
    assert speck_field((48, 64), 0.56, 0.0, 3.0, np.random.default_rng(0)).min() == 1.0


def test_faint_dust_stays_at_every_focus():
    scope = VirtualMicroscope(seed=7, slide=SlideParams(n_structures=0, debris_per_mm2=0.0),
                              chain=CameraChainParams(colour=False, gamma=1.0))
    frames = []
    with scope.stage, scope.camera:
        scope.stage.move_to_um(x=3000, y=3000)
        for z in (80.0, 110.0):
            scope.stage.focus_to_um(z)
            frames.append(cv2.GaussianBlur(scope.camera.capture().image.astype(np.float32), (0, 0), 1.5))
    a, b = frames
    dark = a < np.median(a) * 0.97
    assert dark.any()  # faint specks are there with no debris on the slide
    assert np.abs(a[dark] - b[dark]).mean() < 1.0  # and the same at both foci


def test_colour_ratio_matches_a_full_render_at_the_channel_wavelength():
    # the cheap spectral rendering (green optics x loss ratio) against the optics run at the blue wavelength
    from appliance.sim.slide import with_polymer_loss
    from appliance.sim.structures import pentagon

    shape = with_polymer_loss(pentagon(np.random.default_rng(2), circumradius_um=20.0, height_um=12.0), "pentagon",
                              SlideParams(), np.random.default_rng(5))
    p = float(shape.attrs["loss_exponent"])
    base = OpticsParams(wavelength_um=0.54)
    for lam in (0.465, 0.6):
        exact_o = OpticsParams(wavelength_um=lam)
        for dz in (0.0, 6.0):
            spec_g = object_spectrum(shape.height_um, shape.absorption, 0.5, 0.25, (0.0, 0.0), base, 12.0,
                                     absorption_scale=loss_scale(p, 0.54))
            loss = loss_map_on_grid(shape.height_um, shape.absorption, 0.25, (0.0, 0.0), spec_g)
            ratio = colour_ratios(loss, np.array([loss_scale(p, lam)] * 3), loss_scale(p, 0.54))[0]
            sig = ratio_blur_um(dz, base)
            ratio = cv2.GaussianBlur(ratio, (0, 0), sig / spec_g.pitch_um[0])
            approx = image_intensity(spec_g, dz, base) * ratio
            spec_x = object_spectrum(shape.height_um, shape.absorption, 0.5, 0.25, (0.0, 0.0), exact_o, 12.0,
                                     absorption_scale=loss_scale(p, lam))
            exact = image_intensity(spec_x, dz, exact_o)
            # the grids differ with the wavelength: compare the mean over the print's middle (10 µm square)
            ca, ce = _middle(approx, spec_g.pitch_um[0]), _middle(exact, spec_x.pitch_um[0])
            # measured: 0.020 / 0.012 in focus, 0.042 / 0.036 at 6 µm (blue / red); docs/simulator.md
            assert abs(ca - ce) < (0.03 if dz == 0 else 0.05), (lam, dz, ca, ce)


def _middle(img: np.ndarray, pitch_um: float, half_um: float = 5.0) -> float:
    cy, cx, k = img.shape[0] // 2, img.shape[1] // 2, int(half_um / pitch_um)
    return float(img[cy - k:cy + k, cx - k:cx + k].mean())


def test_renderer_without_colour_has_no_ratios():
    scope = VirtualMicroscope(seed=3, chain=CameraChainParams(colour=False))
    assert scope.camera.chain.sites is None
    r: FieldRenderer = scope.camera.renderer
    o = next(o for o in scope.slide.objects if o.kind == "structure")
    assert r.colour_ratios(o, 0.0) is None


@pytest.mark.parametrize(("size", "chain"), [((16, 16), CameraChainParams(isp_upscale=4.0, demosaic="vng",
                                                                           jpeg_quality=10)),
                                            ((17, 23), CameraChainParams(isp_upscale=3.0, demosaic="edge_aware")),
                                            ((641, 479), CameraChainParams()), ((33, 31), PRESETS["mono_raw"])])
def test_odd_and_tiny_frames_keep_their_size(size, chain):
    w, h = size
    scope = VirtualMicroscope(seed=1, sensor=SensorParams(width_px=w, height_px=h), chain=chain,
                              slide=SlideParams(width_um=2000, height_um=2000, n_structures=1))
    o = scope.slide.objects[0]
    with scope.stage, scope.camera:
        scope.stage.move_to_um(x=round(o.center_um[0]), y=round(o.center_um[1]))
        assert scope.camera.capture().image.shape == (h, w)
