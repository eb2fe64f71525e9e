"""The glass's focus beside a structure, measured in the structure's own focus stack from the specks on the glass.

A height measured from where a print focuses (``H = 2 (structure focus - glass focus)``) is only as good as the
glass reference. Clear glass has no texture to focus on; what lies on it does. The scan's focus map holds the
fields' autofocus, which lands on the strongest thing in view (a dust clump, a fibre, a bubble: 1-6 µm above the
glass, up to 10 µm on a held-out slide), and it interpolates between fields hundreds of µm apart. The stack of
a structure (whole frames at the structure's focus ± the stack range, which spans the glass: a print's focus
lies at most half its height above it) also images the small dust specks around it. A speck a few µm across
stands at most about its width tall, so its focus lies within a µm of the glass; the flattest thing in view
says most about the glass.

How: every plane is divided by its glass level (the frame's median), so a speck is a dip below 1. The deepest
dip of each pixel over the planes finds specks wherever they are in focus; connected dips far enough from the
structure, small (the specks, not fibres or clumps) and whole inside the frame are kept. Each speck's focus is
the plane where the variance of the Laplacian over a window around it peaks, refined by a parabola through that
plane and its neighbours. The glass is the median of those foci: a speck's focus lies above the glass by half
its height (0.1-1.5 µm on the virtual slide), a speck only a few µm across reads 2-3 µm low (left out below
20 µm²), and a scratch, the one thing focusing below the glass, is long and thin and is not kept. Shadows fixed
to the camera (dust on its window) look the same at every plane and are left out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from appliance.results.focuscurve import LOBE_GAP_UM, curve_focus

#: Specks larger than this (µm²) are left out: clumps, fibres and bubbles stand several µm tall.
MAX_SPECK_AREA_UM2 = 120.0
#: Specks smaller than this (µm²) are left out: one a few µm across reads 2-3 µm below its focus on the virtual
#: slide (a strong phase object under a 7-point condenser: its sharpest plane is not its focus).
MIN_SPECK_AREA_UM2 = 20.0
#: Keep-out around the structure's box, µm: its defocused halo spreads about 0.4 µm per µm of defocus.
STRUCTURE_CLEARANCE_UM = 12.0
#: A speck must dip at least this far below the glass (fraction of the glass level) at its focus.
MIN_DIP = 0.08
#: Glass kept around a speck for its focus measure, µm.
WINDOW_MARGIN_UM = 3.5
#: A speck whose sharpness never falls below this fraction of its peak through the stack is not on the slide.
FLAT_CURVE = 0.5


@dataclass(frozen=True)
class GlassFocus:
    """The glass's focus measured beside a structure.

    Attributes
    ----------
    z_um : float
        Stage z at which the glass is in focus there, µm.
    n_specks : int
        Specks whose focus was measured.
    spread_um : float
        Spread (interquartile range) of the specks' foci, µm.
    """

    z_um: float
    n_specks: int
    spread_um: float


def _smooth(plane: np.ndarray, level: float) -> np.ndarray:
    """A plane relative to its glass level (glass 1.0), lightly blurred against the camera's noise, float32."""
    return cv2.GaussianBlur(plane.astype(np.float32) / np.float32(level), (0, 0), 1.0)


def _sharpness(window: np.ndarray) -> np.ndarray:
    """Variance of the Laplacian of each plane of a small window: peaks where a speck is in focus."""
    return np.array([float(np.var(cv2.Laplacian(p, cv2.CV_32F))) for p in window])


def glass_focus(planes: np.ndarray, z_um: Sequence[float], structure_box_px: tuple[int, int, int, int],
                um_per_px: float, below_z_um: float | None = None, min_specks: int = 1,
                lobe_gap_um: tuple[float, float] = LOBE_GAP_UM,
                out_foci: list[float] | None = None) -> GlassFocus | None:
    """The glass's focus from the specks around a structure in its focus stack, or None if none is usable.

    Parameters
    ----------
    planes : (Z, H, W) ndarray of uint8
        Whole frames through focus (the structure's stack), in the order of ``z_um``.
    z_um : sequence of Z floats
        Stage z of each plane, increasing.
    structure_box_px : (xmin, ymin, xmax, ymax)
        The structure's box in the frames; specks within ``STRUCTURE_CLEARANCE_UM`` of it are left out.
    um_per_px : float
        Pixel size at the sample, µm.
    below_z_um : float or None
        The structure's focus: a print stands on the glass, so a "speck" focused above it is something else (a
        neighbour's defocused halo reaching into the frame).
    min_specks : int
        Fewest specks to call it a measurement.
    lobe_gap_um : (float, float)
        The two-lobe window of a small speck's focus curve at the objective's depth of field
        (:func:`appliance.results.focuscurve.lobe_gap_um`).
    out_foci : list, optional
        Gets every speck's focus, above ``below_z_um`` too (the focus drive's direction check: on a drive wired
        the other way round the glass lies above a print's focus).

    Returns
    -------
    GlassFocus or None
    """
    z = _checked_stack(planes, z_um, um_per_px)
    # One plane at a time (a 5 MP stack as float32 would take 0.7 GB): its glass level, and the running minimum
    levels = [max(float(np.median(planes[k])), 1.0) for k in range(planes.shape[0])]
    mask = _speck_mask(planes, levels, structure_box_px, um_per_px)
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    foci: list[float] = []
    for i in range(1, count):
        zf = _speck_focus(planes, levels, z, stats[i], um_per_px, lobe_gap_um)
        if zf is not None:
            foci.append(zf)
    if out_foci is not None:
        out_foci.extend(foci)
    foci = [f for f in foci if below_z_um is None or f < below_z_um]
    if len(foci) < min_specks:
        return None
    q1, mid, q3 = np.percentile(np.asarray(foci), [25, 50, 75])
    return GlassFocus(float(mid), len(foci), float(q3 - q1))


def _checked_stack(planes: np.ndarray, z_um: Sequence[float], um_per_px: float) -> np.ndarray:
    """``z_um`` as an array, once the stack and the pixel size are ones :func:`glass_focus` can read."""
    z = np.asarray(z_um, dtype=np.float64)
    if planes.ndim != 3 or planes.shape[0] != z.size or z.size < 3:
        raise ValueError(f"planes must be (Z, H, W) with Z = len(z_um) >= 3, got {planes.shape} and {z.size} z")
    if not np.all(np.diff(z) > 0):
        raise ValueError("z_um must increase")
    if not (math.isfinite(um_per_px) and um_per_px > 0):
        raise ValueError(f"um_per_px must be a finite number > 0, got {um_per_px!r}")
    return z


def _speck_mask(planes: np.ndarray, levels: Sequence[float], structure_box_px: tuple[int, int, int, int],
                um_per_px: float) -> np.ndarray:
    """Pixels darker than the glass in some plane by ``MIN_DIP``, clear of the structure (uint8, 1 where so)."""
    n, h, w = planes.shape
    darkest = np.full((h, w), np.inf, np.float32)
    for k in range(n):
        np.minimum(darkest, _smooth(planes[k], levels[k]), out=darkest)
    dip = 1.0 - darkest
    keep_out = np.zeros((h, w), bool)
    c = int(math.ceil(STRUCTURE_CLEARANCE_UM / um_per_px))
    x0, y0, x1, y1 = structure_box_px
    keep_out[max(0, y0 - c):min(h, y1 + c), max(0, x0 - c):min(w, x1 + c)] = True
    return ((dip > MIN_DIP) & ~keep_out).astype(np.uint8)


def _speck_focus(planes: np.ndarray, levels: Sequence[float], z: np.ndarray, stats: np.ndarray, um_per_px: float,
                 lobe_gap_um: tuple[float, float]) -> float | None:
    """The focus of one dark component (``stats``: its box and area), or None where it is no usable speck."""
    n, h, w = planes.shape
    g = max(2, int(math.ceil(WINDOW_MARGIN_UM / um_per_px)))
    bx, by, bw, bh, area = (int(v) for v in stats)
    px2 = um_per_px * um_per_px
    if not MIN_SPECK_AREA_UM2 <= area * px2 <= MAX_SPECK_AREA_UM2:
        return None
    if bx < g or by < g or bx + bw > w - g or by + bh > h - g:
        return None  # cut by the frame: part of something larger
    if max(bw, bh) > 3 * max(1, min(bw, bh)) + 2:
        return None  # long and thin: a fibre's end or a scratch
    # blurred with 3 px of context each side, so the window's own border is not the blur's
    ya, yb, xa, xb = max(0, by - g - 3), min(h, by + bh + g + 3), max(0, bx - g - 3), min(w, bx + bw + g + 3)
    inner = (slice(by - g - ya, by + bh + g - ya), slice(bx - g - xa, bx + bw + g - xa))
    curve = _sharpness(np.stack([_smooth(planes[k, ya:yb, xa:xb], levels[k])[inner] for k in range(n)]))
    if curve.min() > FLAT_CURVE * curve.max():
        return None  # the same at every plane: dust on the camera's window, not on the slide
    return curve_focus(z, curve, lobe_gap_um)


class SpeckGlassPlane:
    """The glass over a scan from the specks measured beside its structures so far: a plane, slopes held near 0.

    About half the structures have no usable speck in their own field; the focus map was their only reference,
    3-6 µm RMS off at them on seeds 7, 11 and 121 (its points are the fields' autofocus on whatever is in view).
    A plane through the specks' glass points measured so far, its slopes pulled toward level by a prior of
    ``slope_sd_um_per_mm`` (a slide's tilt is a few µm per mm; two or three points must not tilt it wildly),
    was 1.9-3.0 µm RMS there. Its offset is the specks' own: they read the glass about 1 µm high.
    """

    def __init__(self, slope_sd_um_per_mm: float = 2.0) -> None:
        if not (math.isfinite(slope_sd_um_per_mm) and slope_sd_um_per_mm > 0):
            raise ValueError(f"slope_sd_um_per_mm must be a finite number > 0, got {slope_sd_um_per_mm!r}")
        self.slope_sd = slope_sd_um_per_mm
        self._points: list[tuple[float, float, float]] = []

    def __len__(self) -> int:
        return len(self._points)

    def add(self, x_um: float, y_um: float, z_um: float) -> None:
        """A glass focus measured from specks at a structure's position."""
        self._points.append((float(x_um), float(y_um), float(z_um)))

    def predict(self, x_um: float, y_um: float) -> float | None:
        """The glass's focus at ``(x, y)``, µm, or None before the first point."""
        if not self._points:
            return None
        p = np.asarray(self._points)
        a = np.column_stack([np.ones(len(p)), (p[:, 0] - x_um) / 1000.0, (p[:, 1] - y_um) / 1000.0])
        prior = np.diag([0.0, 1.0, 1.0]) / self.slope_sd ** 2
        coef = np.linalg.solve(a.T @ a + prior, a.T @ p[:, 2])
        return float(coef[0])
