"""Focus stacks: plane positions, capture from below, OME-TIFF with each plane's stage z."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from appliance.focus.stack import (
    capture_stack,
    range_planes_um,
    read_plane_z_um,
    servo_planes_um,
    write_ome_stack,
)
from appliance.focus.testing import centre_on, structures
from appliance.sim.microscope import VirtualMicroscope


def test_range_planes_are_centred_and_upwards() -> None:
    assert range_planes_um(100.0, 4.0, 1.0) == [98.0, 99.0, 100.0, 101.0, 102.0]
    assert range_planes_um(100.0, 0.0, 1.0) == [100.0]


def test_servo_planes_are_whole_degrees() -> None:
    assert servo_planes_um(97.4, 101.6, 1.0) == [98.0, 99.0, 100.0, 101.0]
    assert servo_planes_um(10.0, 14.0, 2.5) == [10.0, 12.5]


def test_planes_the_drive_lands_on_one_z_are_captured_once(servo_scope: VirtualMicroscope) -> None:
    # half-degree planes on a servo of whole degrees: every other one lands where the last did
    obj = structures(servo_scope)[0]
    centre_on(servo_scope, obj, obj.focus_z_um)
    planes = range_planes_um(round(obj.focus_z_um), 4.0, 0.5)
    stack, zs = capture_stack(servo_scope.stage, servo_scope.camera, planes)
    assert len(planes) == 9 and len(zs) == len(stack) == 5
    assert all(b - a >= 1.0 - 1e-9 for a, b in zip(zs, zs[1:], strict=False))


@pytest.mark.parametrize("call, match", [
    (lambda: range_planes_um(100.0, 4.0, 0.0), "step_um"),
    (lambda: range_planes_um(100.0, -1.0, 1.0), "range_um"),
    (lambda: range_planes_um(100.0, 1000.0, 0.1), "planes"),
    (lambda: servo_planes_um(0.0, 10.0, -1.0), "um_per_degree"),
])
def test_bad_plane_requests_name_the_value(call: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()  # type: ignore[operator]


def test_stack_round_trips_with_plane_z_in_ome(tmp_path: Path, servo_scope: VirtualMicroscope) -> None:
    obj = structures(servo_scope)[0]
    centre_on(servo_scope, obj, obj.focus_z_um)
    planes = servo_planes_um(obj.focus_z_um - 3, obj.focus_z_um + 3, 1.0)
    stack, zs = capture_stack(servo_scope.stage, servo_scope.camera, planes[::-1])  # any order: captured upwards
    assert zs == sorted(planes)
    path = tmp_path / "s.ome.tif"
    write_ome_stack(path, stack, zs, servo_scope.camera.um_per_px, obj.center_um)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome
        data = tif.asarray()
        assert tif.series[0].axes == "ZYX"
    np.testing.assert_array_equal(data, stack)
    assert read_plane_z_um(path) == pytest.approx(zs)
    # Planes through focus differ: the stack is not one frame repeated.
    assert float(np.abs(stack[0].astype(int) - stack[-1].astype(int)).mean()) > 0.5


def test_write_refuses_mismatched_z(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="2 values for 3 planes"):
        write_ome_stack(tmp_path / "x.ome.tif", np.zeros((3, 4, 4), np.uint8), [1.0, 2.0])
    with pytest.raises(ValueError, match="uint8"):
        write_ome_stack(tmp_path / "x.ome.tif", np.zeros((3, 4, 4), np.float32), [1.0, 2.0, 3.0])


def _lobed_stack(z: np.ndarray, centre: float) -> np.ndarray:
    """Planes of one texture whose contrast follows two lobes 5 um either side of ``centre`` (a thin wall's)."""
    rng = np.random.default_rng(5)
    texture = rng.normal(0.0, 1.0, (48, 48))
    amp = [np.exp(-((v - centre - 5.0) ** 2) / 18.0) + np.exp(-((v - centre + 5.0) ** 2) / 18.0)
           + 0.05 for v in z]
    return np.stack([128.0 + 40.0 * a * texture for a in amp])


def test_a_stacks_symmetry_reading_finds_the_centre_between_both_wings() -> None:
    from appliance.focus.stack import symmetry_focus

    z = np.arange(84.0, 116.01, 2.0)  # +-16 um at 2 um, as a scan's stack
    assert symmetry_focus(_lobed_stack(z, 101.3), z) == pytest.approx(101.3, abs=0.3)
    # the planes in any order, each with its z
    rev = z[::-1].copy()
    assert symmetry_focus(_lobed_stack(rev, 101.3), rev) == pytest.approx(101.3, abs=0.3)


def test_planes_a_coarse_focus_drive_landed_on_one_z_count_as_one() -> None:
    """A stock GRBL Z at 250 steps/mm moves in 4 um: a 2 um stack repeats every other z (a scan stopped on it)."""
    from appliance.focus.stack import symmetry_focus

    target = np.arange(84.0, 116.01, 2.0)
    landed = np.floor(target / 4.0) * 4.0  # 84, 84, 88, 88, ...
    got = symmetry_focus(_lobed_stack(landed, 101.3), landed)
    assert got == pytest.approx(101.3, abs=1.0)
    assert symmetry_focus(_lobed_stack(landed[:8], 95.0), landed[:8]) is None  # 8 planes, 4 distinct z


def test_a_stack_too_short_for_the_reading_gives_none_and_a_bad_one_is_refused() -> None:
    from appliance.focus.stack import symmetry_focus

    z = np.array([98.0, 100.0, 102.0])
    assert symmetry_focus(_lobed_stack(z, 100.0), z) is None
    narrow = np.arange(98.0, 102.01, 1.0)  # five planes, 2 um either side: under the reading's 6 um
    assert symmetry_focus(_lobed_stack(narrow, 100.0), narrow) is None
    with pytest.raises(ValueError, match="one z per plane"):
        symmetry_focus(np.zeros((5, 8, 8)), [1.0, 2.0])
    with pytest.raises(ValueError, match=r"\(Z, H, W\)"):
        symmetry_focus(np.zeros((8, 8)), [1.0] * 8)


def test_the_focuser_reads_a_stack_less_the_types_bias_only_where_it_takes_bias_off() -> None:
    from appliance.focus.typebias import READING_BIAS_UM
    from appliance.scan.adapters import AutofocusFocuser, FocusMapAdapter

    z = np.arange(84.0, 116.01, 2.0)
    planes = _lobed_stack(z, 100.0)
    virtual = AutofocusFocuser("classical", (0.0, 180.0), FocusMapAdapter(), reading_bias=True)
    real = AutofocusFocuser("classical", (0.0, 180.0), FocusMapAdapter())
    centre = real.read_stack(planes, z, "pentagon", near_um=101.0)
    assert centre == pytest.approx(100.0, abs=0.3)
    less_bias = centre - READING_BIAS_UM["pentagon"]
    assert virtual.read_stack(planes, z, "pentagon", near_um=100.0) == pytest.approx(less_bias)
    assert virtual.read_stack(planes, z, "woodpile", near_um=101.0) == pytest.approx(centre)  # a type without a bias
    assert real.read_stack(planes[:3], z[:3], "pentagon", near_um=101.0) is None
    # a reading more than STACK_READ_REACH_UM from the autofocus's z is not the structure's focus
    assert real.read_stack(planes, z, "pentagon", near_um=102.5) is None
    assert real.read_stack(planes, z, "pentagon", near_um=98.5) == pytest.approx(centre)
