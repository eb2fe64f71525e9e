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
