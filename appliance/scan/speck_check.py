"""Is an object named a micro-lens a speck of dust, read about a z that was not its focus? Its own stack says.

A lens's phase and its type are read about its focus (``ScanRunner._sharp_view``). A speck of dust 5-9 µm
across lies on the glass; a focus search for a lens starts a lens's half height above it, and where that
search fails or locks onto noise it ends 10-14 µm above the speck. There, at 40x / NA 0.65, the speck is a
blurred disc two to three times its size, which the classifier names a lens (0.26-0.93) and whose centre
brightens from the plane below to the plane above as a converging lens's does (+0.33 to +1.0): the speck's
defocus is not the same on both sides of a z that is not its focus, so the phase's two planes do not cancel
it. Ten specks were recorded as lenses so in two held-out scans of sessions 41-42 (seeds 5208, 5309).

The focus stack, taken next, spans that z ± the stack range, and the speck's own focus lies in it: there its
footprint is sharpest, 10-14 µm below the lens's z and 5 to 300 times as sharp as there, and a dark blob 5-11
µm across, under the gate's size limits (:func:`appliance.vision.decision.too_small`): dirt whatever the
models say. A lens is never that: a lens focusing the light makes a bright spot, not a dark one, and of the
115 true lenses those scans' saved stacks hold (4x-40x), none was; the two sharpest 8 µm or more from their
focus and twice as sharp there were 12 x 18 µm and 108 µm wide there. All ten specks were (the stacks read
again offline; docs/held-out.md, "Held-out settings, session 42"). :func:`speck_instead` says so in numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from appliance.results.reconstruct import focus_curve, glass_plane, structure_mask
from appliance.scan.protocols import Box
from appliance.vision.decision import too_small

#: The stack's sharpest plane must lie at least this many phase steps (``PhaseSignRule.step_um``) from the z the
#: lens was read about: closer, the read was off by no more than the focus errors the phase's bounds were
#: measured with (±3-5 µm, ``PhaseSignRule``).
MIN_OFFSET_STEPS = 2.0
#: ... and be at least this many times as sharp there (variance of the Laplacian over the footprint): a curve's
#: wobble near its peak is a few tens of per cent, a speck's own focus against its blur 5 to 300 times.
MIN_GAIN = 2.0


def speck_instead(planes: np.ndarray, zs: Sequence[float], box: Box, focus_z_um: float, step_um: float,
                  um_per_px: float) -> dict[str, float] | None:
    """Why an object named a micro-lens is a speck of dust, in numbers, or None.

    Parameters
    ----------
    planes : (N, H, W) ndarray of uint8
        The object's focus stack, cropped with a margin of glass around ``box``.
    zs : sequence of float
        Each plane's z, µm.
    box : (xmin, ymin, xmax, ymax)
        The object's box in the crop's pixels, at ``focus_z_um``.
    focus_z_um : float
        The z its phase and type were read about.
    step_um : float
        The phase's step from focus (``PhaseSignRule.step_um``), µm.
    um_per_px : float
        The camera's pixel size at the sample.

    Returns
    -------
    dict or None
        ``speck_at_um`` (the sharpest plane's z less ``focus_z_um``), ``speck_gain`` (how many times as sharp),
        ``speck_w_um``, ``speck_h_um`` (the dark blob's size there), when the stack is sharpest at least
        :data:`MIN_OFFSET_STEPS` steps away, :data:`MIN_GAIN` times as sharp, and there the object is a dark
        blob under the gate's size limits.
    """
    z = np.asarray(zs, dtype=np.float64)
    if z.size < 3 or planes.shape[0] != z.size:
        return None
    k0 = int(np.argmin(np.abs(z - focus_z_um)))
    curve = focus_curve(planes, structure_mask(planes[k0], box))
    kp = int(np.argmax(curve))
    offset = float(z[kp] - z[k0])
    gain = float(curve[kp] / curve[k0]) if curve[k0] > 0 else math.inf
    if abs(offset) < MIN_OFFSET_STEPS * step_um or gain < MIN_GAIN:
        return None
    size = dark_blob_um(planes[kp], box, um_per_px)
    if size is None or not too_small(size):
        return None
    return {"speck_at_um": round(offset, 2), "speck_gain": round(min(gain, 1e6), 1),
            "speck_w_um": round(size[0], 1), "speck_h_um": round(size[1], 1)}


def dark_blob_um(image: np.ndarray, box: Box, um_per_px: float) -> tuple[float, float] | None:
    """The size (width, height, µm) of the object's footprint in ``image`` if it is darker than the glass, else None.

    The footprint is :func:`~appliance.results.reconstruct.structure_mask`'s: the largest blob in ``box`` that
    differs from the glass plane fitted to the crop's border; it is dark when its mean lies below that plane.
    The largest, not the one at the box's middle: at its sharpest plane a 110 µm lens's middle held a dark dot
    of 1.4 µm (held-out seed 5206), where its largest blob was 12 x 18 µm. So a neighbour reaching into the box
    can hide a speck (a 20 µm clump's edge beside a 3 µm speck made a 14 µm blob): the check then says nothing.
    """
    mask = structure_mask(image, box)
    x0, y0, x1, y1 = box
    if mask.sum() >= (min(x1, image.shape[1]) - max(x0, 0)) * (min(y1, image.shape[0]) - max(y0, 0)):
        return None  # nothing in the box differs from the glass (the mask is the whole box)
    blurred = cv2.GaussianBlur(image.astype(np.float32), (0, 0), 1.0)
    glass, _ = glass_plane(blurred)
    if float(np.mean(blurred[mask] - glass[mask])) >= 0.0:
        return None
    v, u = np.nonzero(mask)
    return (float(u.max() - u.min() + 1) * um_per_px, float(v.max() - v.min() + 1) * um_per_px)
