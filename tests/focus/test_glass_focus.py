"""A field's own focus is the glass, read from the specks resting on it, not from the largest object in view.

A fibre or a bubble lying on the glass stands up to 20 µm tall: its focus curve is mirror-symmetric about its
own mid-plane, 5-10 µm above the glass, and a field focused on it (the largest dark object) put the scan's map
of the glass that much too high (default slides 401-408 and 431-436: 2-4 µm median, up to 8 µm in whole rows).
A speck a few µm across stands at most about as tall as it is wide, so the specks' curve is centred on the glass.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from appliance.focus import autofocus
from appliance.focus.autofocus import NO_SPECKS
from appliance.focus.scores import SPECK_LIVE_CONTRAST, find_specks, glass_curve, speck_scale
from appliance.focus.testing import FocusOnly
from appliance.hardware.camera.base import Frame
from appliance.scan.adapters import AutofocusFocuser, FocusMapAdapter
from appliance.sim.microscope import VirtualMicroscope
from appliance.sim.overrides import parse_sim_sets, sim_microscope

# Fields of development slide 3 centred on a tall object lying on the glass, with dust specks around it
# (found by a scratch search over slide 3: a bubble and a fibre whose mid-planes lie 5.7 and 5.3 µm up).
TALL_OBJECTS = {"bubble": (9050.8, 6651.3), "fibre": (3308.0, 2489.8)}


def _speckled(size: tuple[int, int] = (200, 300)) -> np.ndarray:
    img = np.full(size, 200, np.uint8)
    img[40:46, 60:66] = 60          # a speck
    img[120:127, 200:206] = 60      # another
    img[20:120, 150:160] = 40       # a fibre (large)
    img[80:85, 165:170] = 60        # a speck beside the fibre: its halo, not the glass
    img[194:200, 100:106] = 60      # a blob cut by the frame's edge
    return img


def test_specks_are_small_blobs_clear_of_large_objects_and_of_the_frames_edge() -> None:
    rects = find_specks(_speckled())
    assert rects is not None and len(rects) == 2
    centres = sorted((x + w / 2, y + h / 2) for x, y, w, h in rects)
    assert np.allclose(centres, [(63, 43), (203, 123.5)], atol=1.0)


def test_a_frame_of_bare_glass_has_no_specks() -> None:
    assert find_specks(np.full((120, 160), 200, np.uint8)) is None


def test_the_glass_curve_leaves_out_shadows_that_do_not_change_with_z() -> None:
    # two specks on the slide peak at frame 2; a camera-window shadow (large, flat, strong) at every frame
    z = np.arange(5)
    speck = 10.0 + 40.0 * np.exp(-((z - 2) ** 2) / 2.0)
    shadow = np.full(5, 100.0) * (1 + 0.05 * np.cos(z))
    walking = np.stack([speck, 0.5 * speck, shadow], axis=1)
    rects = [(0, 0, 20, 20), (30, 0, 20, 20), (60, 0, 80, 80)]
    w, f = glass_curve(walking, 2 * walking, rects)
    assert int(np.argmax(w)) == 2 and w.max() / w.min() > 3
    assert np.allclose(f, 2 * w)
    assert shadow.max() / shadow.min() < SPECK_LIVE_CONTRAST
    # nothing changes yet (one frame): every speck counts
    w1, _ = glass_curve(walking[:1], walking[:1], rects)
    assert w1.shape == (1,) and w1[0] > speck[0]


@pytest.mark.parametrize("kind", sorted(TALL_OBJECTS))
def test_a_field_with_a_tall_object_focuses_on_its_glass(stepper_scope: VirtualMicroscope, kind: str) -> None:
    x, y = TALL_OBJECTS[kind]
    scope = stepper_scope
    glass = float(scope.slide.surface_z_um(x, y))
    scope.stage.move_to_um(x=x, y=y)
    kw = {"z_range_um": (glass - 12, glass + 18), "start_um": glass + 3, "now_s": scope.clock.now_s}
    on_object = autofocus(scope.stage, scope.camera, "classical", **kw)  # type: ignore[arg-type]
    on_glass = autofocus(scope.stage, scope.camera, "classical", mode="specks", **kw)  # type: ignore[arg-type]
    assert on_object.ok and on_object.z_um - glass > 4.0  # the object's mid-plane, as a field's focus was
    assert on_glass.ok and abs(on_glass.z_um - glass) <= 1.5, on_glass
    assert on_glass.frames <= 8


class _BareGlass(FocusOnly):
    """A stage and a camera over clean glass (sensor noise only)."""

    size_px = (160, 120)

    def __init__(self) -> None:
        super().__init__(100.0)
        self.rng = np.random.default_rng(0)

    def capture(self) -> Frame:
        img = np.clip(self.rng.normal(200, 2, (120, 160)), 0, 255).astype(np.uint8)
        return Frame(img, self.position_um(), 0.0, 1.0)


def test_no_specks_costs_one_frame_and_says_so() -> None:
    dev = _BareGlass()
    r = autofocus(dev, dev, "classical", mode="specks", z_range_um=(85, 115))  # type: ignore[arg-type]
    assert not r.ok and r.reason == NO_SPECKS and r.frames == 1 and r.z_um == 100.0


def test_far_out_of_focus_the_specks_search_reports_no_focus(stepper_scope: VirtualMicroscope) -> None:
    scope = stepper_scope
    z0 = float(scope.slide.surface_z_um(5000.0, 5000.0)) + 40.0  # nothing on the slide is sharp in range
    scope.stage.move_to_um(x=5000.0, y=5000.0)
    r = autofocus(scope.stage, scope.camera, "classical", mode="specks", z_range_um=(z0 - 15, z0 + 15),
                  start_um=z0)
    assert not r.ok


def test_the_scan_adapter_maps_the_glass_and_keeps_an_objects_focus_out(stepper_scope: VirtualMicroscope) -> None:
    scope = stepper_scope
    fmap = FocusMapAdapter()
    focuser = AutofocusFocuser("classical", scope.stage.params.travel_z_um, fmap, now_s=scope.clock.now_s)
    x, y = TALL_OBJECTS["bubble"]
    glass = float(scope.slide.surface_z_um(x, y))
    scope.stage.move_to_um(x=x, y=y)
    out = focuser.focus(scope.stage, scope.camera, glass + 3, 15.0)
    assert out.ok and abs(out.z_um - glass) <= 1.5
    fmap.add(x, y, out.z_um)
    assert len(fmap.inner) == 1
    # a field whose focus was an object's (no speck in view): kept out of the glass, kept for the fields' map
    fmap.not_glass(100.0, 200.0, glass + 9.0)
    fmap.add(100.0, 200.0, glass + 9.0)
    fmap.add(300.0, 200.0, glass)
    fmap.add(500.0, 700.0, glass)
    fmap.add(700.0, 300.0, glass)
    assert len(fmap.inner) == 4 and len(fmap.fields) == 5
    assert fmap.predict(200.0, 200.0) is not None  # five fields stand in while the glass has four points
    fmap.add(200.0, 900.0, glass)
    z, _ = fmap.predict(100.0, 200.0)  # type: ignore[misc]
    assert abs(z - glass) < 2.0  # the glass's map, without the object's 9 µm


class _SpeckAndShadow(_BareGlass):
    """Glass with one speck in focus at ``GLASS`` and a shadow of dust on the camera, the same at every z."""

    GLASS = 100.0
    size_px = (240, 160)

    def capture(self) -> Frame:
        v, u = np.mgrid[:160, :240].astype(np.float64)
        sigma = np.hypot(2.0, 0.2 * abs(self.z - self.GLASS) / 0.56)  # blur grows with defocus, light is kept
        speck = 120.0 * 4.0 / sigma**2 * np.exp(-((v - 90) ** 2 + (u - 150) ** 2) / (2 * sigma**2))
        shadow = 70.0 * np.exp(-((v - 40) ** 2 + (u - 50) ** 2) / (2 * 2.0**2))
        img = 200.0 - speck - shadow + self.rng.normal(0, 0.3, (160, 240))
        return Frame(np.clip(img, 0, 255).astype(np.uint8), self.position_um(), 0.0, 1.0)


def test_far_out_of_focus_only_the_cameras_dust_shows_and_the_speck_is_found_as_the_walk_nears_it() -> None:
    dev = _SpeckAndShadow()
    dev.z = 122.0  # 22 µm above the glass: the speck is blurred away, the camera's shadow is not
    r = autofocus(dev, dev, "classical", mode="specks", z_range_um=(80, 125))  # type: ignore[arg-type]
    assert r.ok and abs(r.z_um - _SpeckAndShadow.GLASS) <= 1.0, r
    # the shadow alone never makes a focus
    lone = _SpeckAndShadow()
    lone.GLASS = 500.0  # the speck far out of range: only the shadow is seen
    r = autofocus(lone, lone, "classical", mode="specks", z_range_um=(80, 125))  # type: ignore[arg-type]
    assert not r.ok


def test_speck_sizes_are_in_micrometres_for_finer_pixels_than_tuned() -> None:
    assert speck_scale(None) == speck_scale(0.56) == speck_scale(0.58) == 1.0  # as tuned, bit for bit
    assert speck_scale(1.12) == 1.0  # coarser pixels: the tuned sizes (not measured there)
    assert speck_scale(0.14) == pytest.approx(4.0)
    # the same specks seen through pixels four times finer are the same specks at scale 4 ...
    fine = cv2.resize(_speckled(), None, fx=4, fy=4, interpolation=cv2.INTER_NEAREST)
    rects = find_specks(fine, scale=4.0)
    assert rects is not None and len(rects) == 2
    centres = sorted((x + w / 2, y + h / 2) for x, y, w, h in rects)
    assert np.allclose(centres, [(4 * 63 + 2, 4 * 43 + 2), (4 * 203 + 2, 4 * 123.5 + 2)], atol=4.0)
    # ... and, at the tuned sizes, objects too large to be specks
    assert find_specks(fine) is None


#: Held-out seed 5014 at 40x / NA 0.65 (0.14 µm per pixel): a field whose corner a 12 µm fibre crosses, its
#: mid-plane 5.5 µm above the glass, and no speck on the glass in view.
FIBRE_40X = (5014, ["optics.magnification=40", "optics.na=0.65", "slide.width_um=1200", "slide.height_um=1200",
                    "slide.n_structures=7", "slide.debris_per_mm2=41.915"], (278.0, 85.0))


@pytest.mark.parametrize("um_per_px", [None, "camera"])
def test_at_40x_a_sharp_fibres_rough_edge_is_no_speck_of_the_glass(um_per_px: str | None) -> None:
    seed, sets, (x, y) = FIBRE_40X
    scope = sim_microscope(seed, parse_sim_sets(sets))
    um = scope.camera.um_per_px
    with scope.stage, scope.camera:
        focuser = AutofocusFocuser("classical", scope.stage.params.travel_z_um, FocusMapAdapter(),
                                   now_s=scope.clock.now_s, depth_of_field_um=scope.camera.optics.depth_of_field_um(um),
                                   um_per_px=None if um_per_px is None else um)
        glass = float(scope.slide.surface_z_um(x, y))
        scope.stage.move_to_um(x=x, y=y)
        out = focuser.focus(scope.stage, scope.camera, glass + 5.7, 15.0)  # started at the fibre's focus
    if um_per_px is None:  # speck sizes in the tuned pixels: the fibre's sharp edge broke into "specks"
        assert out.ok and out.glass and out.z_um - glass > 4.0
    else:
        assert not out.glass and out.z_um - glass > 4.0  # the fibre's own focus, not taken for the glass's
