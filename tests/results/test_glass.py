"""The glass's focus from the specks beside a structure, and a thin print's focus read again from its stack."""

import numpy as np
import pytest

from appliance.results.focuscurve import LOBE_GAP_UM, curve_focus, lobe_gap_um
from appliance.results.glass import glass_focus
from appliance.results.reconstruct import ReconstructSettings, reconstruct, stack_focus

UM_PX = 0.56


def _speck_stack(z: np.ndarray, specks: list[tuple[int, int, float, float]], camera_dust: list[tuple[int, int]],
                 shape: tuple[int, int] = (240, 320), seed: int = 0) -> np.ndarray:
    """Frames through focus: dark specks (row, col, radius px, focus z) blurred by their defocus, glass 180.

    ``camera_dust``: shadows fixed to the camera, the same at every z (dust on the camera's window).
    """
    rng = np.random.default_rng(seed)
    v, u = np.mgrid[:shape[0], :shape[1]].astype(np.float64)
    out = []
    for zz in z:
        t = np.ones(shape)
        for r, c, rad, zf in specks:
            sigma = np.hypot(0.6 * rad, 0.45 * abs(zz - zf) / UM_PX)  # blur grows with defocus
            depth = 0.9 * rad * rad / (rad * rad + 2 * sigma * sigma)  # the blocked light spreads out
            t *= 1 - depth * np.exp(-((v - r) ** 2 + (u - c) ** 2) / (2 * sigma * sigma))
        for r, c in camera_dust:
            t *= 1 - 0.3 * np.exp(-((v - r) ** 2 + (u - c) ** 2) / (2 * 3.0 ** 2))
        out.append(np.clip(180 * t + rng.normal(0, 1.0, shape), 0, 255).astype(np.uint8))
    return np.stack(out)


def test_glass_is_the_focus_of_the_specks_beside_the_structure_not_of_the_camera_dust():
    z = np.arange(84.0, 117.0, 2.0)
    box = (120, 80, 200, 160)  # the structure: specks inside its keep-out are not the glass
    specks = [(40, 40, 6, 95.3), (200, 60, 5, 95.6), (50, 280, 5, 96.0), (120, 160, 5, 108.0)]
    frames = _speck_stack(z, specks, camera_dust=[(200, 250), (30, 150)])
    g = glass_focus(frames, z, box, UM_PX)
    assert g is not None and g.n_specks == 3  # the speck on the structure and the camera's dust are left out
    assert g.z_um == pytest.approx(95.5, abs=0.6)
    # something focused above the structure's own focus is not on the glass under it
    high = _speck_stack(z, [*specks[:3], (200, 280, 5, 106.0)], camera_dust=[])
    assert glass_focus(high, z, box, UM_PX).n_specks == 4
    assert glass_focus(high, z, box, UM_PX, below_z_um=102.0).n_specks == 3
    # ... but the focus drive's direction check hears of it (on a reversed drive the glass lies above the print)
    every: list[float] = []
    glass_focus(high, z, box, UM_PX, below_z_um=102.0, out_foci=every)
    assert sorted(round(f) for f in every) == [95, 96, 96, 106]
    assert glass_focus(high, z, box, UM_PX, below_z_um=90.0, out_foci=every) is None and len(every) == 8
    assert glass_focus(_speck_stack(z, [], camera_dust=[(200, 250)]), z, box, UM_PX) is None


def test_glass_rejects_bad_input_by_name():
    z = np.arange(90.0, 100.0, 2.0)
    frames = np.full((5, 40, 40), 180, np.uint8)
    with pytest.raises(ValueError, match="planes"):
        glass_focus(frames[:3], z, (0, 0, 1, 1), UM_PX)
    with pytest.raises(ValueError, match="increase"):
        glass_focus(frames, z[::-1], (0, 0, 1, 1), UM_PX)
    with pytest.raises(ValueError, match="um_per_px"):
        glass_focus(frames, z, (0, 0, 1, 1), 0.0)


def test_a_small_specks_two_lobed_curve_is_read_between_its_lobes():
    z = np.arange(80.0, 113.0, 2.0)
    v = np.exp(-((z - 90.0) / 3.0) ** 2) + 0.8 * np.exp(-((z - 102.0) / 3.0) ** 2) + 0.05
    assert curve_focus(z, v) == pytest.approx(96.0, abs=0.3)  # not the stronger lobe at 90
    assert curve_focus(z, np.exp(-((z - 97.3) / 5.0) ** 2)) == pytest.approx(97.3, abs=0.3)
    assert curve_focus(z, np.exp(-((z - 120.0) / 5.0) ** 2)) is None  # its peak lies beyond the stack


def _wall_stack(z: np.ndarray, z0: float, phase: bool, dof_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A ring wall whose contrast is antisymmetric through its focus ``z0`` (a phase object) or peaks at it.

    ``dof_scale``: the objective's depth of field over 10x / NA 0.25's (the curve's z widths scale with it).
    """
    v, u = np.mgrid[:120, :120].astype(np.float64)
    r = np.hypot(v - 60, u - 60)
    wall = np.exp(-((r - 35) ** 2) / 8.0)
    out = []
    for zz in z:
        d = (zz - z0) / dof_scale
        if phase:  # contrast grows from zero at focus and inverts through it, then fades far out
            c = 0.4 * (d / 6.0) * np.exp(-(d / 9.0) ** 2)
        else:
            c = 0.4 * np.exp(-(d / 6.0) ** 2)
        blur = 1 + abs(d) / 4
        k = np.exp(-((r - 35) ** 2) / (8.0 * blur))
        out.append(np.clip(180 * (1 - c * (wall + k) / 2), 0, 255).astype(np.uint8))
    return np.stack(out), r <= 38


def test_a_thin_walls_focus_is_read_between_the_two_lobes_of_its_stack():
    z = np.arange(80.0, 113.0, 2.0)
    stack, mask = _wall_stack(z, 101.0, phase=True)
    # the autofocus read the lower lobe, 5 µm below the focus: the stack centred there holds both lobes
    assert stack_focus(stack, z, mask, 96.0) == pytest.approx(101.0, abs=1.0)
    solid, mask = _wall_stack(z, 101.0, phase=False)
    assert stack_focus(solid, z, mask, 100.6) == 100.6  # one peak: the autofocus's reading stands
    # ... unless the stack's own peak is farther from it than any lobe can be: the autofocus found the glass
    assert stack_focus(solid, z, mask, 88.0) == pytest.approx(101.0, abs=0.5)


def test_the_height_uses_the_focus_read_again():
    z = np.arange(80.0, 113.0, 2.0)
    stack, mask = _wall_stack(z, 101.0, phase=True)
    rec = reconstruct(stack, list(z), mask, "split_ring", 96.0, 91.0, UM_PX, ReconstructSettings())
    assert rec.source == "focus-offset" and rec.focus_z_um == pytest.approx(101.0, abs=1.0)
    assert rec.peak_um == pytest.approx(20.0, abs=2.0)  # 2 (101 - 91); the lobe would have given 10


#: 20x / NA 0.4 at 0.28 µm per pixel: 0.55 / 0.4² + 0.28 / 0.4, µm.
DOF_20X = 4.1375


def test_the_lobe_window_follows_the_objectives_depth_of_field_and_not_at_the_default():
    assert lobe_gap_um(None) == LOBE_GAP_UM == lobe_gap_um(11.04) == lobe_gap_um(11.3)  # within 5 %: as tuned
    assert lobe_gap_um(DOF_20X) == pytest.approx((2.25, 7.5), abs=0.01)
    assert ReconstructSettings().lobe_gap == LOBE_GAP_UM and ReconstructSettings().edge_width_um == 2.0
    assert ReconstructSettings(depth_of_field_um=DOF_20X).edge_width_um == pytest.approx(1.22, abs=0.01)


def test_a_thin_walls_lobes_at_20x_are_read_between_with_that_objectives_window():
    z = np.arange(84.0, 117.0, 1.0)
    s = DOF_20X / 11.04
    stack, mask = _wall_stack(z, 101.0, phase=True, dof_scale=s)  # lobes about 4.8 µm apart
    lobe = 101.0 - 2.4
    # NA 0.25's window (6-20 µm) takes these lobes for one peak: the autofocus's lobe reading stood
    assert stack_focus(stack, z, mask, lobe) == lobe
    assert stack_focus(stack, z, mask, lobe, lobe_gap_um=lobe_gap_um(DOF_20X)) == pytest.approx(101.0, abs=0.5)
    rec = reconstruct(stack, list(z), mask, "split_ring", lobe, 91.0, UM_PX,
                      ReconstructSettings(depth_of_field_um=DOF_20X))
    assert rec.focus_z_um == pytest.approx(101.0, abs=0.5) and rec.peak_um == pytest.approx(20.0, abs=1.0)


def test_the_specks_plane_follows_a_tilt_it_has_seen_and_does_not_tip_on_two_points():
    from appliance.results.glass import SpeckGlassPlane

    plane = SpeckGlassPlane()
    assert plane.predict(0.0, 0.0) is None
    for x, y in [(0, 0), (3000, 0), (0, 3000), (3000, 3000), (1500, 1500), (500, 2500)]:
        plane.add(x, y, 90.0 + 2.0 * x / 1000)  # 2 µm/mm along x
    assert plane.predict(2000.0, 1000.0) == pytest.approx(94.0, abs=0.5)
    two = SpeckGlassPlane()
    two.add(0, 0, 90.0)
    two.add(200, 0, 93.0)  # 15 µm/mm between two noisy points 200 µm apart
    assert abs(two.predict(2000.0, 0.0) - 91.5) < 3.0  # a free plane would say 120
    with pytest.raises(ValueError, match="slope_sd_um_per_mm"):
        SpeckGlassPlane(0.0)


def test_a_pair_of_lobes_wider_than_the_window_around_the_autofocus_is_not_taken_for_a_far_peak():
    # a narrow condenser puts a thin wall's lobes farther apart: here 24 µm, past the 6-20 µm window
    z = np.arange(70.0, 133.0, 2.0)
    stack, mask = _wall_stack(z, 101.0, phase=True, dof_scale=2.1)
    assert stack_focus(stack, z, mask, 101.0) == 101.0  # the override took the upper lobe, 12 µm off
    assert stack_focus(stack, z, mask, 100.0) == 100.0
    # a solid print's single peak far from the autofocus still overrides it (the glass found under it)
    solid, mask = _wall_stack(z, 101.0, phase=False)
    assert stack_focus(solid, z, mask, 88.0) == pytest.approx(101.0, abs=0.5)
