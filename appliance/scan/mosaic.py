"""One image of a print larger than the field, pasted from views of it through the calibration.

A print larger than the field is never seen whole in one frame; its type read from a piece is a guess (at 20x with
a 320 x 240 sensor a 119 µm micro-lens was named a pentagon and a woodpile from its pieces, seed 1501). Its views,
each placed on the slide by the pixel -> stage map, make one image of the whole print at the camera's scale, which
the classifier reads as it reads any crop: the same lens pasted from 12 views read micro-lens at 0.94.

The geometry only: :func:`view_positions` says where to look (over :func:`covered_fov_um`), :func:`look_region`
what a whole look must hold, :func:`paste` joins what was seen. Moving the stage and capturing is the stitcher's
(:meth:`appliance.scan.stitcher.Stitcher.paste_views`).
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

#: A whole look's image is at least this wide, µm: the detector shrinks any image to its 320 px input, and it
#: was trained on frames of 0.3-1.2 µm per pixel shrunk 2x, i.e. 0.6-2.4 µm per input pixel; a narrower image
#: would show it a print at a finer scale than any it learnt.
LOOK_MIN_WIDTH_UM = 200.0
#: ... and shaped like the frames the detector was trained on (4:3), so that its resize does not squash it.
LOOK_ASPECT = 4.0 / 3.0
#: Glass kept around what a whole look should show, as a fraction of its size on each side.
LOOK_MARGIN = 0.15
#: A box this close to a whole look's border (fraction of the image's width or height) may go on past it: the
#: region keeps glass around what it should show, so a print reaching into that band was cut. A 105 µm ring
#: whose box stopped 3 µm short of the border was half a ring, too short to be read as one (seed 1611).
LOOK_EDGE = 0.05


def look_cut(box_px: tuple[float, float, float, float], size_px: tuple[int, int]) -> tuple[bool, bool, bool, bool]:
    """The sides (left, top, right, bottom) where a box in a whole look's image reaches ``LOOK_EDGE`` of its border."""
    w, h = size_px
    mx, my = LOOK_EDGE * w, LOOK_EDGE * h
    x0, y0, x1, y1 = box_px
    return (x0 <= mx, y0 <= my, x1 >= w - mx, y1 >= h - my)


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


def look_region(box_um: BoxUm, cut: tuple[bool, bool, bool, bool], largest_um: float,
                fov_um: tuple[float, float] | None = None) -> BoxUm:
    """The slide box a whole look pastes to show the object seen as ``box_um``, cut by the frame at ``cut``.

    ``cut`` (left, top, right, bottom): the sides where the view's frame cut it, past which it may go on, up to
    ``largest_um`` across (the largest print a scan expects). Each cut side is pushed out by what the object may
    still have there; the box grows by ``LOOK_MARGIN`` of glass on each side, to ``LOOK_ASPECT`` and to at
    least ``LOOK_MIN_WIDTH_UM``, about its centre. Given the field of view ``fov_um``, a region whose margin
    would take more than ``MAX_VIEWS`` views keeps no margin: a piece cut on all four sides at 40x (a 90 x 67 µm
    field) asked for 406 x 304 µm, 49 views, and was never looked at (held-out seed 3780: a 110 µm micro-lens
    typed from a 67 µm piece); without the margin it is 311 x 233 µm, 25 views. Beyond the print's largest
    extent the region keeps its ``LOOK_ASPECT`` and ``LOOK_MIN_WIDTH_UM``, which the detector needs.

    Raises
    ------
    ValueError
        A box without extent, or ``largest_um`` not > 0.
    """
    x0, y0, x1, y1 = box_um
    if not (x1 > x0 and y1 > y0 and largest_um > 0):
        raise ValueError(f"need a box with x1 > x0, y1 > y0 and largest_um > 0, got {box_um}, {largest_um!r}")
    more_x, more_y = max(0.0, largest_um - (x1 - x0)), max(0.0, largest_um - (y1 - y0))
    core = (x0 - more_x * cut[0], y0 - more_y * cut[1], x1 + more_x * cut[2], y1 + more_y * cut[3])
    region = _grown(core, LOOK_MARGIN)
    if fov_um is not None and not _fits(region, fov_um):
        region = _grown(core, 0.0)
    return region


def _grown(core: BoxUm, margin: float) -> BoxUm:
    """``core`` with ``margin`` of its size on each side, to ``LOOK_ASPECT`` and ``LOOK_MIN_WIDTH_UM``."""
    x0, y0, x1, y1 = core
    w, h = (x1 - x0) * (1.0 + 2.0 * margin), (y1 - y0) * (1.0 + 2.0 * margin)
    w = max(w, h * LOOK_ASPECT, LOOK_MIN_WIDTH_UM)
    h = w / LOOK_ASPECT
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    return (cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0)


def _fits(region: BoxUm, fov_um: tuple[float, float]) -> bool:
    """Whether ``region`` can be pasted from at most ``MAX_VIEWS`` views of ``fov_um``."""
    try:
        view_positions(region, fov_um)
    except ValueError:
        return False
    return True


def covered_fov_um(cal: Calibration) -> tuple[float, float]:
    """The largest slide box (width, height), square to the stage and centred on a frame, that the frame shows whole.

    For a camera square to the stage this is the frame's extent (:attr:`Calibration.fov_um`); a turned camera's
    frame does not cover its own extent's corners. The box's corners ``(±a, ±b)`` lie in the frame where
    ``|M^-1| (a, b) <= (w / 2, h / 2)``; the largest ``a b`` under those two bounds lies where one bound is met
    halfway along its line, if the other allows that, or where the two lines meet. (The extent scaled down until
    it fits, as before session 35, left 64 % of a frame turned 10 degrees where this leaves 73 %: fewer fields.)
    """
    w, h = cal.size_px
    a = np.abs(np.linalg.inv(cal.m))
    r = np.array([w / 2.0, h / 2.0])
    candidates = []
    for i in range(2):
        if a[i, 0] > 0 and a[i, 1] > 0:
            candidates.append(np.array([r[i] / (2 * a[i, 0]), r[i] / (2 * a[i, 1])]))
    if abs(np.linalg.det(a)) > 1e-12:
        candidates.append(np.linalg.solve(a, r))
    fits = [c for c in candidates if c.min() > 0 and np.all(a @ c <= r * (1 + 1e-9))]
    best = max(fits, key=lambda c: float(c[0] * c[1]))
    return 2.0 * float(best[0]), 2.0 * float(best[1])


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
