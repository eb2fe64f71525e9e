"""3-D reconstruction of a structure from its focus stack: the measured model (default) or shape from focus.

**Measured model** (:func:`reconstruct`, ``method="phase"``): what a bright-field stack of a transparent print
carries is its phase (:mod:`appliance.results.phase`) and where it is in focus. A print is a thin phase element
whose best focus lies half its height above the glass, so its peak height is twice its focus's height over the
glass (``2 (focus z - glass z)``; the caller measures the glass, :mod:`appliance.results.glass`). The focus is
the autofocus's, read again from the stack where its curve has the two lobes of a thin phase object
(:func:`stack_focus`). A lens's cap is smooth enough for its phase to be recovered by the
transport-of-intensity equation: its curvature and its footprint give its sag without any z reference. The map
is then the type's geometry with the measured numbers: a flat top over the footprint for the prisms (pentagon,
split ring, scaffold), the rods' mean thickness (``woodpile_fill`` of the stack's height) for a woodpile, both
rising over ``edge_um`` from the mask's edge, and the spherical cap for a lens.

**Shape from focus** (:func:`height_map`, ``method="focus"``, the fallback). For each plane of a focus stack
the focus measure is the squared Laplacian averaged over a small window (the sum-modified-Laplacian family,
Nayar and Nakagawa's shape from focus); each pixel's peak plane is refined to sub-step precision by a
parabola through the peak and its two neighbours. Heights are that z minus the base z, taken as the median
peak z on a thin ring along the structure's outline (the foot of its walls stands on the glass), and are kept
only inside the structure's mask; outside it the map is NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from appliance.results.focuscurve import (
    DIP_FRACTION,
    LOBE_GAP_UM,
    TUNED_DEPTH_OF_FIELD_UM,
    curve_focus,
    depth_of_field_scale,
    lobe_gap_um,
    straddles,
    two_lobe_centre,
)
from appliance.results.phase import cap_heights, lens_cap, linear_intensity, tie_phase

#: Reconstruction methods: the measured model (phase and focus offset) and shape from focus.
METHODS: tuple[str, ...] = ("phase", "focus")


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


#: Passes of the border's plane fit; each drops the border pixels more than ``GLASS_CLIP_MAD`` MADs off the last.
GLASS_FIT_PASSES = 3
GLASS_CLIP_MAD = 3.0


def glass_plane(blurred: np.ndarray) -> tuple[np.ndarray, float]:
    """The glass under a crop, as a plane fitted to the crop's border, and the noise (MAD, as σ) about it.

    A constant glass level (the border's median) took the light's fall-off across a crop for noise: under an
    uneven lamp a 50 µm crop went from 192 to 173 grey levels corner to corner, its border's MAD said 9.3,
    the threshold of four of them passed over the faint half of a split ring, and the ring's dark half alone
    read as an arc, no ring (held-out seed 3174). About a plane that border's noise is 1.2. The fit is
    least squares, started from the border's median and repeated without the pixels far off the last
    pass, so a neighbour or the print's own halo reaching into the border moves it little.

    Parameters
    ----------
    blurred : (H, W) ndarray of float32
        The crop, lightly smoothed.

    Returns
    -------
    glass : (H, W) ndarray of float64
        The plane's value at every pixel.
    noise : float
        1.4826 times the median absolute residual of the border pixels kept.
    """
    h, w = blurred.shape
    b = max(1, min(4, h // 8, w // 8))
    border = np.ones((h, w), bool)
    border[b:h - b, b:w - b] = False
    yy, xx = np.nonzero(border)
    design = np.column_stack([xx, yy, np.ones_like(xx)]).astype(np.float64)
    values = blurred[border].astype(np.float64)
    # the first pass clips about the border's median level, as robust as the constant glass it replaces
    coef = np.array([0.0, 0.0, float(np.median(values))])
    keep = np.ones(values.size, bool)
    for _ in range(GLASS_FIT_PASSES):
        res = values - design @ coef
        kept = np.abs(res - np.median(res[keep])) <= max(GLASS_CLIP_MAD * _mad_sigma(res[keep]), 1.0)
        if kept.sum() >= 3:  # (else a border of one level with a few outliers: keep what the last pass kept)
            keep = kept
        coef, *_ = np.linalg.lstsq(design[keep], values[keep], rcond=None)
    cols, rows = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    return coef[0] * cols + coef[1] * rows + coef[2], _mad_sigma((values - design @ coef)[keep])


def _mad_sigma(values: np.ndarray) -> float:
    """The median absolute deviation, scaled to a normal distribution's σ."""
    return 1.4826 * float(np.median(np.abs(values - np.median(values))))


#: A pixel is the structure's where it differs from the glass by this many noise σ ...
MASK_NOISE_K = 4.0
#: ... and by this many grey levels (what the default camera's noise made of 4 σ), unless the object's own
#: contrast is lower: then by ``MASK_CONTRAST_FRACTION`` of that contrast (its 99th-percentile difference from
#: the glass inside the box), but never by fewer than ``MASK_MIN_LEVELS`` (8-bit steps, a JPEG's block edges).
MASK_LEVELS = 6.0
MASK_CONTRAST_FRACTION = 0.5
MASK_MIN_LEVELS = 2.0


def mask_threshold(inside_deviation: np.ndarray, noise: float) -> float:
    """How far from the glass a pixel must lie to be the structure's, in grey levels.

    ``MASK_NOISE_K`` noise σ, and at least ``MASK_LEVELS`` levels, or half the object's own contrast where that
    is lower. The fixed floor alone lost a faint split ring under the cheap colour camera (held-out seed
    3412): JPEG had flattened the glass to 0.08 levels of noise, the ring lay 5.6 levels under it at most, and
    the 42 pixels over 6 levels were a sliver of its wall that read as no ring; at half its contrast the wall
    is whole (4,400 pixels, a circle 0.10 radii off its box's centre). A print of the default camera differs
    by tens of levels, so its mask is as before.

    Parameters
    ----------
    inside_deviation : ndarray
        |image - glass| over the box, after the mask's smoothing.
    noise : float
        The glass's noise σ (:func:`glass_plane`).
    """
    contrast = float(np.percentile(inside_deviation, 99)) if inside_deviation.size else 0.0
    floor = max(MASK_MIN_LEVELS, min(MASK_LEVELS, MASK_CONTRAST_FRACTION * contrast))
    return max(floor, MASK_NOISE_K * noise)


def structure_mask(image: np.ndarray, box: tuple[int, int, int, int], fill_holes: bool = True) -> np.ndarray:
    """The structure's footprint in the in-focus crop: what differs from the glass inside ``box``, holes filled.

    The glass is a plane fitted to the crop's border (the crop keeps a margin of glass around the box), and its
    noise the MAD about that plane, so a structure that fills most of the crop is measured against the glass,
    not against a blur of itself, and light that falls off across the crop does not pass for noise (see
    :func:`glass_plane`).

    Parameters
    ----------
    image : (H, W) ndarray of uint8
        The crop at best focus.
    box : (xmin, ymin, xmax, ymax)
        The detection's box in the crop's pixels.
    fill_holes : bool
        Fill enclosed holes (a solid print whose top is as bright as glass); false for open shapes (a
        scaffold's cells are glass).
    """
    h, w = image.shape
    x0, y0, x1, y1 = (max(0, box[0]), max(0, box[1]), min(w, box[2]), min(h, box[3]))
    f = cv2.GaussianBlur(image.astype(np.float32), (0, 0), 1.0)
    inside = np.zeros((h, w), bool)
    inside[y0:y1, x0:x1] = True
    glass, noise = glass_plane(f)
    deviation = np.abs(f - glass)
    m = ((deviation > mask_threshold(deviation[inside], noise)) & inside).astype(np.uint8)
    # Close gaps in a solid print's outline; an open shape's cells may be only a few µm across, keep them.
    k = 9 if fill_holes else 3
    m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    if n <= 1:
        return inside
    keep = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    blob = (labels == keep).astype(np.uint8)
    if not fill_holes:
        return blob > 0
    flood = np.pad(blob, 1)  # a glass frame around it, so the flood reaches every outside pixel
    cv2.floodFill(flood, np.zeros((h + 4, w + 4), np.uint8), (0, 0), 1)  # fill enclosed holes
    return (blob | (1 - flood[1:-1, 1:-1])) > 0


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


@dataclass(frozen=True)
class ReconstructSettings:
    """What the reconstruction needs to know of the optics and the print (from the plan, never the truth).

    Attributes
    ----------
    method : str
        ``phase`` (the measured model) or ``focus`` (shape from focus).
    wavelength_um : float
        Mean illumination wavelength, µm.
    index_delta : float
        Refractive-index step of the cured polymer against its surroundings.
    camera_gamma : float
        The camera's encoding gamma (frames are linearised with it before the TIE).
    tie_dz_um : float
        Distance of the TIE's two planes from focus, µm (the stack planes nearest it are used).
    woodpile_fill : float
        Mean polymer thickness of a woodpile over its footprint, as a fraction of its height (rods about half
        the rod pitch wide: each layer covers about half the area).
    edge_um : float
        Width over which a flat-topped map rises from 0 at its mask's edge to its full height, µm (0: a step).
        The mask is what differs from the glass in the image, which reaches about the optics' blur
        (``lambda / (2 NA)`` = 1.1 µm at NA 0.25) beyond a print's foot; a wall of 84-90° also has a run of up to
        2.5 µm. With the true heights, a 2 µm edge took the pentagons of seeds 7 and 11 from 4.7 to 2.0 µm RMS.
    depth_of_field_um : float
        The objective's depth of field at the camera's pixel size (``λ/NA² + pixel/NA``), µm; the default is
        10x / NA 0.25 at 0.56 µm per pixel, which the windows above were measured at. The window of a
        two-lobed focus curve (:func:`appliance.results.focuscurve.lobe_gap_um`) and with it the far-peak
        override of :func:`stack_focus` scale with it; the edge (``edge_um``) with its square root, as the
        blur ``λ/(2 NA)`` does with ``λ/NA²`` (1.2 µm at 20x / NA 0.4: on seed 143's 15 prints an edge of
        1-1.5 µm was 0.6-5 µm RMS better than 2 µm for split rings, scaffolds and woodpiles, 0.2-0.4 worse for
        pentagons).
    """

    method: str = "phase"
    wavelength_um: float = 0.55
    index_delta: float = 0.5
    camera_gamma: float = 2.2
    tie_dz_um: float = 2.0
    woodpile_fill: float = 0.55
    edge_um: float = 2.0
    depth_of_field_um: float = TUNED_DEPTH_OF_FIELD_UM

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        for name, lo, hi in (("wavelength_um", 0.3, 1.2), ("index_delta", 0.01, 1.5), ("camera_gamma", 0.2, 5.0),
                             ("tie_dz_um", 0.1, 20.0), ("woodpile_fill", 0.05, 1.0),
                             ("edge_um", 0.0, 10.0), ("depth_of_field_um", 0.05, 5000.0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and lo <= v <= hi):
                raise ValueError(f"{name} must be a number in [{lo}, {hi}], got {v!r}")

    @property
    def lobe_gap(self) -> tuple[float, float]:
        """The two-lobe window at this objective's depth of field, µm."""
        return lobe_gap_um(self.depth_of_field_um)

    @property
    def edge_width_um(self) -> float:
        """``edge_um`` at this objective's depth of field, µm."""
        return self.edge_um * math.sqrt(depth_of_field_scale(self.depth_of_field_um))


@dataclass(frozen=True)
class Reconstruction:
    """A height map and how it was measured.

    Attributes
    ----------
    heights : (H, W) ndarray of float32
        µm above the glass, NaN outside the structure.
    base_z_um : float
        Stage z taken as the glass under the structure.
    peak_um : float
        The measured peak height, µm.
    source : str
        What set the peak: ``focus-offset``, ``tie-curvature`` or ``shape-from-focus``.
    focus_z_um : float or None
        The structure's focus the peak was measured from (:func:`stack_focus`); None where none was used.
    """

    heights: np.ndarray
    base_z_um: float
    peak_um: float
    source: str
    focus_z_um: float | None = None


def focus_curve(stack: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Sharpness of each plane over the structure: variance of the Laplacian over its footprint grown by 4 px."""
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    if not grown.any():
        grown = np.ones(mask.shape, bool)
    out = np.empty(stack.shape[0], np.float64)
    for k, plane in enumerate(stack):
        lap = cv2.Laplacian(cv2.GaussianBlur(plane.astype(np.float32), (0, 0), 1.0), cv2.CV_32F)
        out[k] = float(np.var(lap[grown]))
    return out


def stack_focus(stack: np.ndarray, z_um: Sequence[float], mask: np.ndarray, focus_z_um: float,
                max_dip: float = DIP_FRACTION, lobe_gap_um: tuple[float, float] = LOBE_GAP_UM) -> float:
    """The structure's focus read again from its own stack: the middle of a two-lobed curve, else ``focus_z_um``.

    A thin wall, rim or rod grid (split ring, scaffold, woodpile) is a phase object whose contrast vanishes in
    focus and inverts through it: its sharpness curve has two lobes either side of its focus and a dip at it.
    The autofocus reads one lobe (4-6 µm off on held-out seeds 7 and 11, i.e. 8-12 µm of height). The stack
    spans the autofocus's z ± the stack range, so both lobes are in it: when its two strongest local maxima lie
    ``lobe_gap_um`` apart with a dip between them below ``max_dip`` of the weaker one, the focus is halfway
    between them. A single-peaked curve (a solid print, a lens) keeps the autofocus's reading, unless its peak
    lies more than half the widest lobe gap from it: no lobe is that far from a focus, so the autofocus locked
    onto something else (the glass under a tall print: 10-13 µm below three structures' foci on a slide tilted
    5 µm/mm, seed 142, where the stack's own peak was 1.3-4.6 µm from the truth). Nor when the curve's two
    strongest lobes lie either side of the autofocus's z (:func:`~appliance.results.focuscurve.straddles`): a
    pair wider than the window, one of whose lobes the override would take for the print.
    """
    z = np.asarray(z_um, dtype=np.float64)
    if z.size < 5:
        return focus_z_um
    curve = focus_curve(stack, mask)
    mid = two_lobe_centre(z, curve, max_dip, lobe_gap_um)
    if mid is not None:
        return mid
    if straddles(z, curve, focus_z_um, max_dip):
        return focus_z_um  # a pair of lobes too far apart for the window, around the autofocus: not one peak
    peak = curve_focus(z, curve, lobe_gap_um)
    if peak is not None and abs(peak - focus_z_um) > 0.5 * lobe_gap_um[1]:
        return peak
    return focus_z_um


def edge_profile(mask: np.ndarray, width_px: float) -> np.ndarray:
    """0 to 1 across ``width_px`` inside the mask's edge (1 everywhere inside for a width of 0), float32."""
    if width_px <= 0:
        return mask.astype(np.float32)
    inside = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    return np.clip((inside - 0.5) / width_px, 0.0, 1.0).astype(np.float32)


def _nearest(z: np.ndarray, target: float) -> int:
    return int(np.argmin(np.abs(z - target)))


def lens_from_stack(stack: np.ndarray, z_um: Sequence[float], mask: np.ndarray, focus_z_um: float,
                    um_per_px: float, s: ReconstructSettings) -> np.ndarray | None:
    """A lens's cap from the TIE phase of the stack around its focus, or None if no plane pair or no cap fits."""
    z = np.asarray(z_um, dtype=np.float64)
    k0 = _nearest(z, focus_z_um)
    km, kp = _nearest(z, z[k0] - s.tie_dz_um), _nearest(z, z[k0] + s.tie_dz_um)
    if not km < k0 < kp:
        return None
    dz = 0.5 * (z[kp] - z[km])
    i_m, i_0, i_p = (linear_intensity(stack[i], s.camera_gamma) for i in (km, k0, kp))
    phi = tie_phase(i_m, i_0, i_p, dz, s.wavelength_um, um_per_px)
    fit = lens_cap(phi, mask, um_per_px, s.wavelength_um, s.index_delta)
    if fit is None:
        return None
    radius, base, centre = fit
    return cap_heights(mask.shape, radius, base, centre, um_per_px)


def reconstruct(stack: np.ndarray, z_um: Sequence[float], mask: np.ndarray, cls: str, focus_z_um: float,
                glass_z_um: float | None, um_per_px: float, settings: ReconstructSettings) -> Reconstruction:
    """The height map of one structure (see the module doc for the two methods).

    Parameters
    ----------
    stack : (Z, H, W) ndarray of uint8
        The structure's crop through focus.
    z_um : sequence of Z floats
        Stage z of each plane, increasing.
    mask : (H, W) ndarray of bool
        The structure's footprint.
    cls : str
        The structure's type (from the classifier): chooses the geometry.
    focus_z_um : float
        The structure's own best focus (autofocus).
    glass_z_um : float or None
        The glass's focus at the structure (the specks beside it, or the focus map); None when unknown, which
        leaves only the lens's curvature and shape from focus.
    um_per_px : float
        Pixel size at the sample (calibration), µm.
    settings : ReconstructSettings

    Returns
    -------
    Reconstruction
    """
    if stack.ndim != 3 or stack.shape[1:] != mask.shape:
        raise ValueError(f"stack (Z, H, W) and mask (H, W) must agree, got {stack.shape} and {mask.shape}")
    # A structure in focus at or below the glass reference means one of the two focus measurements is wrong
    # (a print stands above the glass): there is no focus offset to use.
    if cls != "microlens" and settings.method == "phase":
        focus_z_um = stack_focus(stack, z_um, mask, focus_z_um, lobe_gap_um=settings.lobe_gap)
    no_offset = glass_z_um is None or focus_z_um <= glass_z_um
    if settings.method == "focus" or (no_offset and cls != "microlens"):
        heights, base = height_map(stack, z_um, mask)
        valid = heights[np.isfinite(heights)]
        return Reconstruction(heights, base, float(valid.max()) if valid.size else 0.0, "shape-from-focus")
    out = np.full(mask.shape, np.nan, np.float32)
    peak = max(0.0, 2.0 * (focus_z_um - glass_z_um)) if glass_z_um is not None else 0.0
    base = glass_z_um if glass_z_um is not None else focus_z_um - 0.5 * peak
    source = "focus-offset"
    if cls == "microlens":
        cap = lens_from_stack(stack, z_um, mask, focus_z_um, um_per_px, settings)
        if cap is not None:
            out[mask] = cap[mask]
            peak = float(cap.max())
            return Reconstruction(out, focus_z_um - 0.5 * peak if glass_z_um is None else base, peak,
                                  "tie-curvature")
    if cls == "microlens" and peak > 0 and mask.sum() >= 30:
        ys, xs = np.nonzero(mask)
        a = math.sqrt(xs.size / math.pi) * um_per_px
        cap = cap_heights(mask.shape, (a * a + peak * peak) / (2.0 * peak), a,
                          (float(xs.mean()), float(ys.mean())), um_per_px)
        out[mask] = cap[mask]
    else:
        top = settings.woodpile_fill * peak if cls == "woodpile" else peak
        out[mask] = top * edge_profile(mask, settings.edge_width_um / um_per_px)[mask]
    return Reconstruction(out, base, peak, source, focus_z_um)
