"""One image of a print larger than the field, pasted from views of it through the calibration.

A print larger than the field is never seen whole in one frame; its type read from a piece is a guess (at 20x with
a 320 x 240 sensor a 119 µm micro-lens was named a pentagon and a woodpile from its pieces, seed 1501). Its views,
each placed on the slide by the pixel -> stage map, make one image of the whole print at the camera's scale, which
the classifier reads as it reads any crop: the same lens pasted from 12 views read micro-lens at 0.94.

The geometry only: :func:`view_positions` says where to look (over :func:`covered_fov_um`), :func:`paste` joins
what was seen. Moving the stage
and capturing is the stitcher's (:meth:`appliance.scan.stitcher.Stitcher.mosaic`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from appliance.hardware.camera.base import Frame
from appliance.scan.calibration import Calibration

BoxUm = tuple[float, float, float, float]

#: Views overlap by this fraction of the field, so that the frames' vignetted corners are never all a place has.
OVERLAP = 0.3

#: No mosaic of more views than this: a box this large is no print (a long fibre joined into one footprint).
MAX_VIEWS = 36


def view_positions(box_um: BoxUm, fov_um: tuple[float, float], overlap: float = OVERLAP) -> list[tuple[float, float]]:
    """Stage positions whose views cover ``box_um`` with ``overlap``, row by row in a serpentine.

    Raises
    ------
    ValueError
        More than ``MAX_VIEWS`` views would be needed, or a bad argument.
    """
    if not 0.0 <= overlap < 0.9:
        raise ValueError(f"overlap must be in [0, 0.9), got {overlap!r}")
    if min(fov_um) <= 0 or box_um[2] <= box_um[0] or box_um[3] <= box_um[1]:
        raise ValueError(f"need a field of view > 0 and a box with x1 > x0, y1 > y0, got {fov_um}, {box_um}")
    axes = []
    for lo, hi, fov in ((box_um[0], box_um[2], fov_um[0]), (box_um[1], box_um[3], fov_um[1])):
        step = fov * (1.0 - overlap)
        n = max(1, math.ceil((hi - lo - fov) / step) + 1) if hi - lo > fov else 1
        first, last = lo + fov / 2, hi - fov / 2
        axes.append([(lo + hi) / 2] if n == 1 else list(np.linspace(first, last, n)))
    if len(axes[0]) * len(axes[1]) > MAX_VIEWS:
        raise ValueError(f"a mosaic of {box_um} needs {len(axes[0])} x {len(axes[1])} views, at most {MAX_VIEWS}")
    return [(float(x), float(y)) for k, y in enumerate(axes[1])
            for x in (axes[0] if k % 2 == 0 else axes[0][::-1])]


def covered_fov_um(cal: Calibration) -> tuple[float, float]:
    """The largest slide box (width, height), centred on a frame and shaped like its extent, that it shows whole.

    For a camera square to the stage this is the frame's extent (:attr:`Calibration.fov_um`); a turned camera's
    frame does not cover its own extent's corners.
    """
    fw, fh = cal.fov_um
    w, h = cal.size_px
    m_inv = np.linalg.inv(cal.m)
    t = min(min((w / 2) / max(abs(du), 1e-12), (h / 2) / max(abs(dv), 1e-12))
            for du, dv in (m_inv @ np.array([sx * fw / 2, sy * fh / 2]) for sx in (-1, 1) for sy in (-1, 1)))
    return fw * min(t, 1.0), fh * min(t, 1.0)


def paste(frames: Sequence[Frame], cal: Calibration, box_um: BoxUm) -> np.ndarray:
    """The slide box ``box_um`` as one grey image at the calibration's scale, from ``frames`` placed by ``cal``.

    Mosaic pixel ``(j, i)`` shows slide point ``(box_um[0] + j s, box_um[1] + i s)``, ``s`` the calibration's
    mean µm per pixel; each frame is resampled onto it (bilinear, any rotation or shear the map holds) and where
    frames overlap they are averaged. A place no frame shows is filled with the frames' median level, as glass.
    """
    if not frames:
        raise ValueError("paste needs at least one frame")
    s = cal.um_per_px
    width = max(1, int(math.ceil((box_um[2] - box_um[0]) / s)))
    height = max(1, int(math.ceil((box_um[3] - box_um[1]) / s)))
    total = np.zeros((height, width), np.float32)
    weight = np.zeros((height, width), np.float32)
    m_inv = np.linalg.inv(cal.m)
    corner = np.array(box_um[:2]) - np.array(cal.offset_um)
    images = [_grey(f.image) for f in frames]
    for f, image in zip(frames, images, strict=True):
        # frame pixel of a mosaic pixel: uv = M^-1 (slide - stage - offset), slide = corner + s (j, i)
        b = m_inv @ (corner - np.array([f.position.x_um, f.position.y_um]))
        affine = np.hstack([m_inv * s, b[:, None]]).astype(np.float64)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        total += cv2.warpAffine(image.astype(np.float32), affine, (width, height), flags=flags,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        weight += cv2.warpAffine(np.ones(image.shape, np.float32), affine, (width, height), flags=flags,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    glass = float(np.median([np.median(image) for image in images]))
    out = np.where(weight > 0.5, total / np.maximum(weight, 1e-6), glass)
    return np.clip(out, 0, 255).astype(np.uint8)


def _grey(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
