"""Focus stacks: frames through focus around a structure, written as OME-TIFF with each plane's stage z.

The file is what Fiji (Bio-Formats), napari (its tifffile reader) and ``tifffile.TiffFile(...).ome_metadata``
read: one ZYX uint8 series, ``PhysicalSizeX/Y`` from the camera's scale, ``PhysicalSizeZ`` the nominal step,
and one ``Plane`` element per plane with ``PositionZ`` (the z the stage reported for it, µm) and the field's
stage ``PositionX``/``PositionY`` — the true spacing, which on a servo focus is whole degrees.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from appliance.focus.curve import SYMMETRY_HALF_WIDTH_UM, SYMMETRY_MIN_HALF_WIDTH_UM, symmetry_centre
from appliance.focus.scores import biharmonic_variance
from appliance.hardware.camera.base import Camera
from appliance.hardware.stage.base import Stage

#: Planes a stack may have (a 2592 x 1944 stack of 401 planes is 2 GB).
MAX_PLANES = 401
#: Two planes whose reported z lie closer than this (µm) are one plane: the focus drive could not move between them
#: (a step coarser than the stack's: stock GRBL's 250 steps/mm Z moves 4 µm). Far below any drive's step (the Z
#: stepper's 1/32 µm), above float noise. Every reading of a stack needs its z to rise strictly.
SAME_PLANE_UM = 1e-3


def range_planes_um(centre_um: float, range_um: float, step_um: float) -> list[float]:
    """The z of the planes ``centre ± range/2`` at ``step``, upwards, the centre always a plane.

    Raises
    ------
    ValueError
        A non-positive step, a negative range, or more than ``MAX_PLANES`` planes.
    """
    if not (math.isfinite(step_um) and step_um > 0):
        raise ValueError(f"step_um must be > 0, got {step_um!r}")
    if not (math.isfinite(range_um) and range_um >= 0):
        raise ValueError(f"range_um must be >= 0, got {range_um!r}")
    k = int(math.floor(range_um / 2 / step_um + 1e-9))
    if 2 * k + 1 > MAX_PLANES:
        raise ValueError(f"range_um / step_um gives {2 * k + 1} planes, more than {MAX_PLANES}")
    return [centre_um + i * step_um for i in range(-k, k + 1)]


def servo_planes_um(z_from_um: float, z_to_um: float, um_per_degree: float) -> list[float]:
    """The seed's servo-angle sweep: every whole servo degree from ``z_from`` to ``z_to``, upwards."""
    if not (math.isfinite(um_per_degree) and um_per_degree > 0):
        raise ValueError(f"um_per_degree must be > 0, got {um_per_degree!r}")
    a0 = math.ceil(min(z_from_um, z_to_um) / um_per_degree - 1e-9)
    a1 = math.floor(max(z_from_um, z_to_um) / um_per_degree + 1e-9)
    if a1 - a0 + 1 > MAX_PLANES:
        raise ValueError(f"the sweep has {a1 - a0 + 1} planes, more than {MAX_PLANES}")
    return [a * um_per_degree for a in range(a0, a1 + 1)]


def capture_stack(stage: Stage, camera: Camera, planes_um: Sequence[float]) -> tuple[np.ndarray, list[float]]:
    """Capture one frame per plane, in ascending z (each approach from below); returns (ZYX stack, z µm).

    A plane the focus drive lands on a z already taken (``SAME_PLANE_UM``) is left out.
    """
    if len(planes_um) == 0:
        raise ValueError("planes_um must hold at least one z")
    images: list[np.ndarray] = []
    zs: list[float] = []
    for z in sorted(float(v) for v in planes_um):
        reached = float(stage.focus_to_um(z).z_um)
        if zs and abs(reached - zs[-1]) < SAME_PLANE_UM:
            continue
        zs.append(reached)
        images.append(camera.capture().image)
    return np.stack(images), zs


def symmetry_focus(planes: np.ndarray, z_um: Sequence[float], width_scale: float = 1.0) -> float | None:
    """The z about which a focus stack's fine focus curve is most nearly mirror-symmetric, or None.

    The classical search's reading (:func:`appliance.focus.curve.symmetry_centre` of the biharmonic variance,
    its half-widths stretched by ``width_scale`` for another objective) on the stack's planes, each scored whole
    (a stack is cut to its structure). A stack spans its autofocus's z ± its range on even steps, so its curve
    has both wings where the search's six to eight frames often have one; None when it is too short for the
    reading (under ``SYMMETRY_MIN_HALF_WIDTH_UM`` either side, or under five distinct z). Planes at one z (a focus
    drive coarser than the stack's step) count as one, their scores averaged.

    Raises
    ------
    ValueError
        ``planes`` not (Z, H, W), or ``z_um`` not one z per plane.
    """
    if planes.ndim != 3 or len(z_um) != planes.shape[0]:
        raise ValueError(f"planes must be (Z, H, W) with one z per plane, got {planes.shape} and {len(z_um)} z")
    # planes the focus drive could not separate (a step coarser than the stack's) are one plane: their mean
    zu, which = np.unique(np.asarray(z_um, dtype=np.float64), return_inverse=True)
    if zu.size < 5:
        return None
    scores = np.array([biharmonic_variance(p) for p in planes], dtype=np.float64)
    v = np.bincount(which, weights=scores) / np.bincount(which)
    return symmetry_centre(zu, v, width_scale * SYMMETRY_HALF_WIDTH_UM, width_scale * SYMMETRY_MIN_HALF_WIDTH_UM)


def write_ome_stack(path: str | os.PathLike[str], stack: np.ndarray, z_um: Sequence[float],
                    um_per_px: float | None = None, xy_um: tuple[float, float] | None = None,
                    name: str | None = None) -> None:
    """Write a ZYX uint8 stack as OME-TIFF with each plane's stage z (and x, y) in its OME ``Plane``.

    ``name`` is the OME ``Image`` name Fiji and napari show for it (``pentagon obj_001_00001``); without it
    tifffile names every stack ``Image0``.

    Raises
    ------
    ValueError
        A stack that is not (Z, Y, X) uint8, or a z list of another length.
    OSError
        The file cannot be written.
    """
    import tifffile

    if stack.ndim != 3 or stack.dtype != np.uint8:
        raise ValueError(f"stack must be a (Z, Y, X) uint8 array, got {stack.dtype} {stack.shape}")
    if len(z_um) != stack.shape[0]:
        raise ValueError(f"z_um has {len(z_um)} values for {stack.shape[0]} planes")
    n = stack.shape[0]
    plane: dict[str, list[object]] = {"PositionZ": [float(z) for z in z_um], "PositionZUnit": ["µm"] * n}
    if xy_um is not None:
        plane.update({"PositionX": [float(xy_um[0])] * n, "PositionXUnit": ["µm"] * n,
                      "PositionY": [float(xy_um[1])] * n, "PositionYUnit": ["µm"] * n})
    meta: dict[str, object] = {"axes": "ZYX", "Plane": plane, **({"Name": name} if name else {})}
    if um_per_px is not None:
        meta.update({"PhysicalSizeX": float(um_per_px), "PhysicalSizeXUnit": "µm",
                     "PhysicalSizeY": float(um_per_px), "PhysicalSizeYUnit": "µm"})
    if n > 1:
        steps = np.diff(np.asarray(z_um, dtype=np.float64))
        meta.update({"PhysicalSizeZ": float(np.median(steps)), "PhysicalSizeZUnit": "µm"})
    tifffile.imwrite(path, np.ascontiguousarray(stack), ome=True, photometric="minisblack", metadata=meta)


def read_plane_z_um(path: str | os.PathLike[str]) -> list[float]:
    """The ``PositionZ`` of every plane of an OME-TIFF written by :func:`write_ome_stack`."""
    import xml.etree.ElementTree as ET

    import tifffile

    with tifffile.TiffFile(path) as tif:
        xml = tif.ome_metadata
    if xml is None:
        raise ValueError(f"{os.fspath(path)} has no OME metadata")
    root = ET.fromstring(xml)
    return [float(p.attrib["PositionZ"]) for p in root.iter() if p.tag.endswith("Plane")]
