"""A field's focus reading that its frames cannot back says so (not ``ok``) and stays out of the map.

The cheap colour camera (Bayer demosaicing, denoising, JPEG at quality 40) smooths the specks on the glass into
a curve that does not change with focus beyond its noise: the scores of its "specks" (compression blocks among
them) wander 1.2-2 times over a search, and the classical walk read a focus somewhere in that noise and said
``ok``, 4-12 µm from the glass on 7 of 12 places of seed 412. Those points built a focus map that walked the
scan's fields tens of micrometres off their glass (docs/autofocus.md, "A reading that cannot be trusted").
"""

from __future__ import annotations

import cv2
import numpy as np

from appliance.focus import autofocus
from appliance.focus.curve import second_lobes
from appliance.focus.search import UNTRUSTED
from appliance.focus.testing import FocusOnly
from appliance.hardware.camera.base import Frame
from appliance.scan.adapters import AutofocusFocuser, FocusMapAdapter
from appliance.sim.overrides import parse_sim_sets, sim_microscope


def test_second_lobes_count_rises_after_a_fall_and_ignore_small_wiggles() -> None:
    lobe = np.array([1.0, 1.4, 3.0, 6.0, 3.2, 1.5, 1.1])
    assert second_lobes(lobe, 0.1) == 0
    assert second_lobes(lobe + np.array([0, 0.2, 0, 0, 0, 0.3, 0]), 0.1) == 0  # wiggles under 10 % of the range
    assert second_lobes(np.array([6.8, 8.5, 5.9, 11.2, 6.3, 5.7, 9.5]), 0.1) == 2  # the cheap camera's specks
    assert second_lobes(np.array([1.0, 5.0, 1.0, 4.0, 1.0]), 0.1) == 1  # two objects' lobes
    assert second_lobes(np.array([2.0, 1.0]), 0.1) == 0


class _AtOnePlace(FocusOnly):
    """A stage that only focuses and a camera of ``size_px`` at x = y = 0, starting at z = 100 µm."""

    size_px = (240, 160)

    def __init__(self, seed: int) -> None:
        super().__init__(100.0)
        self.rng = np.random.default_rng(seed)


class _FlickeringSpecks(_AtOnePlace):
    """Glass with three small specks whose darkness flickers from frame to frame (compression blocks that come
    and go) and does not depend on z: their scores change by up to twice over a search, with no focus."""

    def capture(self) -> Frame:
        v, u = np.mgrid[:160, :240].astype(np.float64)
        img = np.full((160, 240), 200.0)
        for cv, cu in ((40, 50), (100, 170), (120, 60)):
            amp = 90.0 * self.rng.uniform(0.6, 1.0)
            img -= amp * np.exp(-((v - cv) ** 2 + (u - cu) ** 2) / (2 * 1.6**2))
        img += self.rng.normal(0, 1.0, img.shape)
        return Frame(np.clip(img, 0, 255).astype(np.uint8), self.position_um(), 0.0, 1.0)


def test_specks_that_flicker_without_a_focus_are_no_reading() -> None:
    # before: four of these six searches said "focused" at a z their noise happened to peak at
    reasons = []
    for seed in range(6):
        dev = _FlickeringSpecks(seed)
        r = autofocus(dev, dev, "classical", mode="specks", z_range_um=(85, 115))  # type: ignore[arg-type]
        assert not r.ok, (seed, r)
        reasons.append(r.reason)
    assert sum(x.startswith(UNTRUSTED) for x in reasons) >= 3, reasons


def test_a_noisy_reading_on_a_field_leaves_the_map_as_it_was() -> None:
    # the scan adapter: an untrusted field reading is not ok, so the runner adds no point (and the largest
    # object, the fall-back, is read with the one-lobe test too)
    dev = _FlickeringSpecks(1)
    fmap = FocusMapAdapter()
    out = AutofocusFocuser("classical", (0.0, 180.0), fmap).focus(dev, dev, 100.0, 15.0)  # type: ignore[arg-type]
    assert not out.ok


def _field_readings(preset: str) -> list[tuple[bool, float]]:
    """(ok, z - glass) of the scan's field search at five places of a small tilted slide."""
    sets = parse_sim_sets(["slide.width_um=1500", "slide.height_um=1500", "slide.n_structures=1",
                           "slide.tilt_x_um_per_mm=4", f"camera.preset={preset}"])
    scope = sim_microscope(5, sets)
    out = []
    with scope.stage, scope.camera:
        f = AutofocusFocuser("classical", scope.stage.params.travel_z_um, FocusMapAdapter(), now_s=scope.clock.now_s)
        for x, y, start in ((400, 400, 3), (1100, 400, -4), (400, 1100, 6), (1100, 1100, -2), (750, 750, 1)):
            scope.stage.move_to_um(x=x, y=y)
            glass = float(scope.slide.surface_z_um(x, y))
            r = f.focus(scope.stage, scope.camera, glass + start, 15.0)
            out.append((r.ok, r.z_um - glass))
    return out


def test_the_cheap_colour_cameras_field_readings_are_ok_only_near_the_glass() -> None:
    # before: all five ok, four of them 4-10 µm off the glass
    cheap = _field_readings("cheap_colour")
    assert all(abs(dz) <= 3.0 for ok, dz in cheap if ok), cheap
    # the default camera's specks still read the glass
    default = _field_readings("default")
    assert sum(ok and abs(dz) <= 1.5 for ok, dz in default) >= 3, default


class _ObjectAbove(_AtOnePlace):
    """Glass with specks that flicker without a focus (a noisy camera's) and one large dark object whose focus
    lies 25 µm above the field's guess."""

    def __init__(self) -> None:
        super().__init__(3)

    def capture(self) -> Frame:
        v, u = np.mgrid[:160, :240].astype(np.float64)
        disc = np.where((v - 80) ** 2 + (u - 120) ** 2 <= 20**2, 110.0, 0.0)
        sigma = 0.5 + 0.3 * abs(self.z - 125.0) / 0.56  # blur grows with defocus, light is kept
        img = 200.0 - cv2.GaussianBlur(disc, (0, 0), sigma) + self.rng.normal(0, 1.0, (160, 240))
        for cv, cu in ((25, 30), (135, 30), (135, 210)):
            img -= 90.0 * self.rng.uniform(0.6, 1.0) * np.exp(-((v - cv) ** 2 + (u - cu) ** 2) / (2 * 1.6**2))
        return Frame(np.clip(img, 0, 255).astype(np.uint8), self.position_um(), 0.0, 1.0)


def test_a_slide_finding_search_takes_no_objects_focus_far_from_the_guess() -> None:
    # The runner's slide-finding search covers ±60 µm; when the specks' curve was noise, the largest object is
    # searched only within the usual ±15 µm: a camera that cannot show a speck in focus shows a broad hump of an
    # object somewhere in ±60 µm. Before, it became the scan's focus and every later field was viewed there.
    dev = _ObjectAbove()
    out = AutofocusFocuser("classical", (0.0, 180.0), FocusMapAdapter()).focus(dev, dev, 100.0, 60.0)  # type: ignore[arg-type]
    assert not out.ok and dev.z <= 115.5 + 1e-6
    # within reach it is still found (a field with no specks focuses on the largest object, as before)
    dev = _ObjectAbove()
    out = AutofocusFocuser("classical", (0.0, 180.0), FocusMapAdapter()).focus(dev, dev, 120.0, 60.0)  # type: ignore[arg-type]
    assert out.ok and abs(out.z_um - 125.0) <= 2.0, out


class _Print(_AtOnePlace):
    """A 60 px ring (a print) at the frame's centre, focused at z = 100 µm, on noisy glass; ``sharpens`` says
    whether the camera shows its focus (blur growing with defocus) or smooths it away (the same blur at every
    z, as a camera whose own optics blur more than the objective's depth of field does)."""

    def __init__(self, sharpens: bool, seed: int) -> None:
        super().__init__(seed)
        self.sharpens = sharpens

    def capture(self) -> Frame:
        v, u = np.mgrid[:160, :240].astype(np.float64)
        r = np.hypot(v - 80, u - 120)
        ring = np.where(np.abs(r - 30) <= 2, 80.0, 0.0)
        sigma = 0.6 + 0.35 * abs(self.z - 100.0) if self.sharpens else 2.0 + 0.05 * abs(self.z - 100.0)
        img = 200.0 - cv2.GaussianBlur(ring, (0, 0), sigma) + self.rng.normal(0, 2.0, (160, 240))
        return Frame(np.clip(img, 0, 255).astype(np.uint8), self.position_um(), 0.0, 1.0)


def test_a_structure_search_whose_curve_stays_flat_is_no_reading() -> None:
    # the box a detection gives around a print whose frames do not change with focus beyond their noise: before,
    # the walk read a "peak" of that noise and said ok (the cheap colour camera: 18 of 120 searches 2-20 µm off)
    box = (80, 40, 80, 80)
    reasons = []
    for seed in range(6):
        dev = _Print(sharpens=False, seed=seed)
        r = autofocus(dev, dev, "classical", z_range_um=(88, 118), start_um=103.0, roi=box)  # type: ignore[arg-type]
        assert not r.ok, (seed, r)  # before: seeds 1 and 3 "focused" 7 µm off, between two noise lobes
        reasons.append(r.reason)
    assert sum(x.startswith(UNTRUSTED) and "times its worst" in x for x in reasons) >= 2, reasons
    # a print the camera shows sharpening is focused as before
    dev = _Print(sharpens=True, seed=0)
    r = autofocus(dev, dev, "classical", z_range_um=(88, 118), start_um=103.0, roi=box)  # type: ignore[arg-type]
    assert r.ok and abs(r.z_um - 100.0) <= 1.5, r



class _Clump(_AtOnePlace):
    """A dark clump whose texture's contrast rises by ``rise`` of itself in a lobe 3 µm wide at z = 100 µm."""

    def __init__(self, rise: float, seed: int) -> None:
        super().__init__(seed)
        self.rise = rise
        tex = cv2.GaussianBlur(np.random.default_rng(99).normal(0, 1, (160, 240)), (0, 0), 1.5)
        v, u = np.mgrid[:160, :240]
        self.disc = np.hypot(v - 80, u - 120) <= 25
        self.texture = tex / tex.std()

    def capture(self) -> Frame:
        img = np.full((160, 240), 200.0)
        amp = 20.0 * (1 + self.rise * np.exp(-0.5 * ((self.z - 100.0) / 3.0) ** 2))
        img[self.disc] = 120.0 + amp * self.texture[self.disc]
        img += self.rng.normal(0, 0.5, img.shape)
        return Frame(np.clip(img, 0, 255).astype(np.uint8), self.position_um(), 0.0, 1.0)


def test_a_field_search_on_its_largest_object_whose_curve_barely_rises_is_no_reading() -> None:
    # A field with no speck to read falls back to the largest object in view (``roi`` mode, no box), and its
    # focus becomes the next fields' z. On the cheap colour camera such curves rose 1.11-1.44 times, the other
    # cameras' 2-35 times (held-out sweep 7600-7619), and one that rose 1.11 times, its "peak" 5.9 um below the
    # glass, set the z of every later field of its scan (seed 7617). Here the clump's curve rises 1.14 times in
    # one clean lobe: before, the field took it (ok at 100 um); a rise that small is what noise gives that camera,
    # so it is held to the structure searches' bound too.
    for seed in range(3):
        dev = _Clump(0.45, seed)
        r = autofocus(dev, dev, "classical", z_range_um=(88, 118), start_um=106.0, mode="roi",  # type: ignore[arg-type]
                      check_lobe=True)
        assert not r.ok and r.reason.startswith(UNTRUSTED) and "times its worst" in r.reason, (seed, r)
    dev = _Clump(2.0, 0)  # a clump the camera shows sharpening (1.8 times) is focused as before
    r = autofocus(dev, dev, "classical", z_range_um=(88, 118), start_um=106.0, mode="roi",  # type: ignore[arg-type]
                  check_lobe=True)
    assert r.ok and abs(r.z_um - 100.0) <= 0.5, r
