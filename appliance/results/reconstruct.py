"""3-D reconstruction by shape from focus: per pixel, the z at which a local focus measure peaks.

For each plane of a focus stack the focus measure is the squared Laplacian averaged over a small window (the
sum-modified-Laplacian family, Nayar and Nakagawa's shape from focus); each pixel's peak plane is refined to
sub-step precision by a parabola through the peak and its two neighbours. Heights are that z minus the base
z, taken as the median peak z on a thin ring along the structure's outline (the foot of its walls stands on
the glass), and are kept only inside the structure's mask; outside it the map is NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def focus_volume(stack: np.ndarray, window_px: int = 7) -> np.ndarray:
    """Local focus measure of every plane.

    Parameters
    ----------
    stack : (Z, H, W) ndarray of uint8
        The focus stack.
    window_px : int
        Side of the averaging window, odd, >= 1.

    Returns
    -------
    (Z, H, W) ndarray of float32
    """
    if stack.ndim != 3 or stack.shape[0] < 3:
        raise ValueError(f"stack must be (Z, H, W) with Z >= 3, got shape {stack.shape}")
    if window_px < 1 or window_px % 2 == 0:
        raise ValueError(f"window_px must be odd and >= 1, got {window_px}")
    out = np.empty(stack.shape, np.float32)
    for k, plane in enumerate(stack):
        lap = cv2.Laplacian(cv2.GaussianBlur(plane.astype(np.float32), (0, 0), 1.0), cv2.CV_32F, ksize=3)
        out[k] = cv2.blur(lap * lap, (window_px, window_px))
    return out


def peak_z(volume: np.ndarray, z_um: Sequence[float]) -> np.ndarray:
    """Per-pixel z of the focus peak, with parabolic sub-step interpolation (uniform steps assumed).

    Parameters
    ----------
    volume : (Z, H, W) ndarray
        Focus measure per plane.
    z_um : sequence of Z floats
        Stage z of each plane, increasing.
    """
    z = np.asarray(z_um, dtype=np.float64)
    if z.shape[0] != volume.shape[0]:
        raise ValueError(f"z_um has {z.shape[0]} values for {volume.shape[0]} planes")
    step = float(np.median(np.diff(z)))
    k = np.argmax(volume, axis=0)
    kc = np.clip(k, 1, volume.shape[0] - 2)
    rows, cols = np.indices(k.shape)
    f0 = volume[kc - 1, rows, cols].astype(np.float64)
    f1 = volume[kc, rows, cols].astype(np.float64)
    f2 = volume[kc + 1, rows, cols].astype(np.float64)
    den = f0 - 2.0 * f1 + f2
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = np.where(den < 0, 0.5 * (f0 - f2) / den, 0.0)
    delta = np.where(k == kc, np.clip(delta, -0.5, 0.5), 0.0)
    return (z[k] + delta * step).astype(np.float32)


def structure_mask(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The structure's footprint in the in-focus crop: the darker-than-glass region inside ``box``, holes filled.

    Parameters
    ----------
    image : (H, W) ndarray of uint8
        The crop at best focus.
    box : (xmin, ymin, xmax, ymax)
        The detection's box in the crop's pixels.
    """
    h, w = image.shape
    x0, y0, x1, y1 = (max(0, box[0]), max(0, box[1]), min(w, box[2]), min(h, box[3]))
    f = image.astype(np.float32)
    background = cv2.GaussianBlur(f, (0, 0), 25.0)
    dev = np.abs(f - background)
    inside = np.zeros((h, w), bool)
    inside[y0:y1, x0:x1] = True
    thr = max(6.0, 3.0 * float(np.median(dev[~inside])) if (~inside).any() else 6.0)
    m = ((dev > thr) & inside).astype(np.uint8)
    m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9)))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    if n <= 1:
        return inside
    keep = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    blob = (labels == keep).astype(np.uint8)
    flood = blob.copy()
    cv2.floodFill(flood, np.zeros((h + 2, w + 2), np.uint8), (0, 0), 1)  # fill enclosed holes
    return ((blob | (1 - flood)) > 0) if blob[0, 0] == 0 else blob > 0


def height_map(stack: np.ndarray, z_um: Sequence[float], mask: np.ndarray,
               window_px: int = 7) -> tuple[np.ndarray, float]:
    """Heights above the glass inside ``mask`` by shape from focus, and the base z used.

    Parameters
    ----------
    stack : (Z, H, W) ndarray of uint8
        Focus stack of the structure (cropped).
    z_um : sequence of Z floats
        Stage z of each plane.
    mask : (H, W) ndarray of bool
        The structure's footprint.
    window_px : int
        Focus-measure window.

    Returns
    -------
    heights : (H, W) ndarray of float32
        µm above the base, NaN outside the mask.
    base_z_um : float
        Stage z taken as the glass under the structure.
    """
    zmap = peak_z(focus_volume(stack, window_px), z_um)
    m8 = mask.astype(np.uint8)
    ring = (cv2.dilate(m8, np.ones((5, 5), np.uint8)) > 0) & (cv2.erode(m8, np.ones((5, 5), np.uint8)) == 0)
    ring_z = zmap[ring]
    base = float(np.median(ring_z)) if ring_z.size else float(np.min(zmap))
    out = np.full(zmap.shape, np.nan, np.float32)
    out[mask] = np.maximum(zmap[mask] - base, 0.0)
    return out, base
