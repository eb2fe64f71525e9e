"""How real the virtual microscope looks: one table of measures on the real tiles and on matched simulated frames.

The real frames are ``docs/img/seed-frames.png``: 15 tiles of 256 x 192 px (5 across, 3 down, read row by row
as the focus series), one pentagon TPP structure through focus at about 1.4 µm per pixel. The simulated frames are
640 x 480 captures (default optics: 0.56 µm per pixel, the same 358 x 269 µm field) of a pentagon matched to the
real one's footprint area, on a default slide (its debris and the optics' faint dust), through focus, shrunk
to the tiles' size by area averaging. Every measure runs on grey (OpenCV ``BGR2GRAY``) divided by the background
median; the structure's footprint is its ground-truth outline in the simulated frames and, in the real ones, the
Otsu threshold of the smoothed tile, largest dark component, holes filled.

Measures (per frame, then the median over frames; ``docs/simulator.md`` has the table):

- ``interior``: median inside the footprint more than 4 px from its edge.
- ``dark_share``: share of footprint pixels darker than 0.75.
- ``rim``: mean of the band 1-4 px inside the edge minus ``interior``.
- ``halo``: the brightest 1 px ring 1-6 px outside the edge minus the median of the ring 10-16 px out (the
  local background; 0 if no ring is brighter).
- ``edge_width_px``: 10-90 % width of the mean profile across the outer edge (from its dark minimum near the edge
  up to the background).
- ``laplacian_var``: variance of the 3 x 3 Laplacian in the footprint's box grown by 4 px.
- ``noise_corr_px``: half-width at half maximum of the background noise's autocorrelation (grey minus a
  sigma-4 px blur, away from the structure and specks; 0.5 for white noise).
- ``specks_per_10k_px`` / ``speck_contrast``: connected groups (>= 2 px) of the background darker than 0.97 of the
  local background (median of 15 px) after a sigma-0.7 px blur, per 100 x 100 px; their median depth.
- ``illumination_range``: (max - min) / median of the background's medians over an 8 x 6 grid of blocks.
- ``colour_r/g/b``: interior over background in each channel.
- through focus: ``edge_first_px`` / ``edge_last_px`` (first and last frame), ``area_change`` (Otsu area, last
  over first, minus 1), ``rim_swing`` (max - min of ``rim`` over the frames).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from appliance.sim.camera import build_imaging, render_frame
from appliance.sim.capture import CameraChainParams
from appliance.sim.optics import OpticsParams
from appliance.sim.sensor import SensorParams
from appliance.sim.slide import Slide, SlideParams, make_slide
from appliance.sim.structures import pentagon

TILE_SIZE = (256, 192)
TILE_GRID = (5, 3)
TILE_UM_PER_PX = 1.4
REAL_TILES = Path(__file__).resolve().parents[2] / "docs" / "img" / "seed-frames.png"
# Pentagon area over circumradius squared: (5/2) sin(72°).
_PENTAGON_AREA = 2.5 * math.sin(math.radians(72.0))

ROWS: tuple[tuple[str, str], ...] = (
    ("interior", "interior / background"),
    ("dark_share", "share of the footprint darker than 0.75"),
    ("rim", "band 1-4 px inside the edge minus interior"),
    ("halo", "bright halo just outside the edge"),
    ("edge_width_px", "outer edge width 10-90 % (tile px)"),
    ("laplacian_var", "Laplacian variance in the structure's box (x1e-3)"),
    ("noise_corr_px", "background noise correlation half-width (px)"),
    ("specks_per_10k_px", "dust specks per 100x100 px darker than 3 %"),
    ("speck_contrast", "speck contrast, median"),
    ("illumination_range", "illumination range over the frame"),
    ("colour_r", "colour: interior / background, R"),
    ("colour_g", "colour: interior / background, G"),
    ("colour_b", "colour: interior / background, B"),
    ("edge_first_px", "through focus: edge width, first frame"),
    ("edge_last_px", "through focus: edge width, last frame"),
    ("area_change", "through focus: Otsu area, last / first - 1"),
    ("rim_swing", "through focus: rim range over the frames"),
)


def load_tiles(path: Path = REAL_TILES) -> list[np.ndarray]:
    """The 15 real tiles (BGR uint8, 192 x 256), row by row.

    Raises
    ------
    ValueError
        The file cannot be read or is not a 5 x 3 grid of 256 x 192 tiles.
    """
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    (tw, th), (nx, ny) = TILE_SIZE, TILE_GRID
    if img is None or img.shape[:2] != (th * ny, tw * nx):
        raise ValueError(f"{path}: expected a {tw * nx} x {th * ny} image of {nx} x {ny} tiles")
    return [np.ascontiguousarray(img[r * th:(r + 1) * th, c * tw:(c + 1) * tw]) for r in range(ny) for c in range(nx)]


def otsu_footprint(grey: np.ndarray) -> np.ndarray:
    """The structure's footprint in a frame: Otsu on the smoothed frame, largest dark component, holes filled."""
    blur = cv2.GaussianBlur(grey, (0, 0), 1.0)
    _, dark = cv2.threshold(blur, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(dark, connectivity=8)
    if n < 2:
        return np.zeros(grey.shape, bool)
    big = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    mask = (labels == big).astype(np.uint8)
    # fill holes: what the outside cannot reach
    flood = np.pad(mask, 1)
    cv2.floodFill(flood, None, (0, 0), 2)
    return (flood[1:-1, 1:-1] != 2)


def _dist(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance of each pixel centre inside / outside the mask to its edge, px (pixels next to it: 0.5)."""
    m = mask.astype(np.uint8)
    d_in = cv2.distanceTransform(m, cv2.DIST_L2, 5) - 0.5
    d_out = cv2.distanceTransform(1 - m, cv2.DIST_L2, 5) - 0.5
    return d_in, d_out


def _speck_mask(grey: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """Pixels of dark specks in ``valid`` background, and each speck's depth."""
    local = cv2.medianBlur(grey, 15).astype(np.float32)
    ratio = cv2.GaussianBlur(grey.astype(np.float32), (0, 0), 0.7) / np.maximum(local, 1.0)
    dark = ((ratio < 0.97) & valid).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(dark, connectivity=8)
    mask = np.zeros(grey.shape, bool)
    depths = []
    for i in range(1, n):
        if stats[i, cv2.CC_STAT_AREA] >= 2:
            sel = labels == i
            mask |= sel
            depths.append(float(1.0 - ratio[sel].min()))
    return mask, depths


def _noise_corr_px(norm: np.ndarray, valid: np.ndarray) -> float:
    """Half-width at half maximum of the autocorrelation of the background's fine texture, px."""
    r = (norm - cv2.GaussianBlur(norm, (0, 0), 4.0)) * valid
    m = valid.astype(np.float32)
    fr, fm = np.fft.rfft2(r), np.fft.rfft2(m)
    ac = np.fft.irfft2(fr * np.conj(fr), s=r.shape)
    cnt = np.fft.irfft2(fm * np.conj(fm), s=r.shape)
    ac = ac / np.maximum(cnt, 1.0)
    lags = [(ac[0, k] + ac[k, 0] + ac[0, -k] + ac[-k, 0]) / 4.0 if k else ac[0, 0] for k in range(9)]
    prof = np.asarray(lags) / lags[0]
    for k in range(1, len(prof)):
        if prof[k] < 0.5:
            return float(k - 1 + (prof[k - 1] - 0.5) / (prof[k - 1] - prof[k]))
    return float(len(prof) - 1)


def _edge_width(norm: np.ndarray, d_in: np.ndarray, d_out: np.ndarray, near: np.ndarray) -> float:
    """10-90 % width of the mean profile across the outer edge, px (NaN if it has no clean rise)."""
    sd = np.where(d_out > 0, d_out, -d_in)
    edges = np.arange(-10.0, 10.01, 0.5)
    idx = np.digitize(sd[near], edges) - 1
    vals = norm[near]
    ok = (idx >= 0) & (idx < len(edges) - 1)
    sums = np.bincount(idx[ok], vals[ok], len(edges) - 1)
    cnts = np.bincount(idx[ok], None, len(edges) - 1)
    centres = (edges[:-1] + edges[1:]) / 2
    have = cnts > 0
    prof, centres = sums[have] / cnts[have], centres[have]
    window = (centres >= -5.0) & (centres <= 2.0)
    if not window.any():
        return float("nan")
    i0 = int(np.flatnonzero(window)[np.argmin(prof[window])])
    lo, hi = float(prof[i0]), 1.0
    if hi - lo < 0.05:
        return float("nan")

    def crossing(level: float) -> float:
        for i in range(i0, len(prof) - 1):
            if prof[i] <= level < prof[i + 1]:
                return float(centres[i] + (level - prof[i]) / (prof[i + 1] - prof[i]) * (centres[i + 1] - centres[i]))
        return float("nan")

    return crossing(lo + 0.9 * (hi - lo)) - crossing(lo + 0.1 * (hi - lo))


def frame_measures(bgr: np.ndarray, footprint: np.ndarray) -> dict[str, float]:
    """Every per-frame measure of the module doc for one BGR frame and its structure's footprint."""
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if bgr.ndim == 3 else bgr
    d_in, d_out = _dist(footprint)
    h, w = grey.shape
    border = np.zeros(grey.shape, bool)
    border[8:h - 8, 8:w - 8] = True
    background = (d_out > 12) & border
    bg = float(np.median(grey[background]))
    norm = grey.astype(np.float32) / bg
    specks, depths = _speck_mask(grey, background)
    clean = background & ~cv2.dilate(specks.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    interior = footprint & (d_in > 4)
    inner = interior if interior.any() else footprint
    out: dict[str, float] = {}
    out["interior"] = float(np.median(norm[inner]))
    out["dark_share"] = float((norm[footprint] < 0.75).mean())
    out["rim"] = float(norm[footprint & (d_in >= 0.5) & (d_in <= 3.5)].mean() - out["interior"])
    rings = [float(norm[(d_out >= k - 0.5) & (d_out < k + 0.5) & ~specks].mean()) for k in range(1, 7)]
    local = float(np.median(norm[(d_out >= 10) & (d_out < 16) & ~specks]))
    out["halo"] = max(0.0, max(rings) - local)
    ys, xs = np.nonzero(footprint)
    y0, y1, x0, x1 = max(ys.min() - 4, 0), ys.max() + 5, max(xs.min() - 4, 0), xs.max() + 5
    near = np.zeros(grey.shape, bool)
    near[max(y0 - 8, 0):y1 + 8, max(x0 - 8, 0):x1 + 8] = True
    out["edge_width_px"] = _edge_width(norm, d_in, d_out, near & ~specks)
    out["laplacian_var"] = float(cv2.Laplacian(norm[y0:y1, x0:x1], cv2.CV_32F).var()) * 1e3
    out["noise_corr_px"] = _noise_corr_px(norm, clean)
    out["specks_per_10k_px"] = len(depths) / float(background.sum()) * 1e4
    out["speck_contrast"] = float(np.median(depths)) if depths else float("nan")
    out["illumination_range"] = _illumination_range(norm, clean)
    if bgr.ndim == 3:
        for c, name in ((2, "colour_r"), (1, "colour_g"), (0, "colour_b")):
            ch = bgr[..., c].astype(np.float32)
            out[name] = float(np.median(ch[inner]) / np.median(ch[background]))
    return out


def _illumination_range(norm: np.ndarray, valid: np.ndarray) -> float:
    h, w = norm.shape
    meds = []
    for r in range(6):
        for c in range(8):
            sl = (slice(r * h // 6, (r + 1) * h // 6), slice(c * w // 8, (c + 1) * w // 8))
            v = valid[sl]
            if v.mean() > 0.5:
                meds.append(float(np.median(norm[sl][v])))
    if len(meds) < 2:
        return float("nan")
    return (max(meds) - min(meds)) / float(np.median(meds))


def series_table(frames: list[np.ndarray], footprints: list[np.ndarray]) -> dict[str, float]:
    """Medians over a focus series of the per-frame measures, plus the through-focus rows."""
    per = [frame_measures(f, m) for f, m in zip(frames, footprints, strict=True)]
    out = {k: float(np.nanmedian([p.get(k, np.nan) for p in per])) for k in per[0]}
    out["edge_first_px"] = per[0]["edge_width_px"]
    out["edge_last_px"] = per[-1]["edge_width_px"]
    areas = [otsu_footprint(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) if f.ndim == 3 else f).sum() for f in frames]
    out["area_change"] = float(areas[-1] / max(areas[0], 1) - 1.0)
    rims = [p["rim"] for p in per]
    out["rim_swing"] = float(max(rims) - min(rims))
    return out


def real_table(path: Path = REAL_TILES) -> tuple[dict[str, float], float]:
    """The table's measures on the real tiles, and the real footprint's median area in tile pixels."""
    tiles = load_tiles(path)
    masks = [otsu_footprint(cv2.cvtColor(t, cv2.COLOR_BGR2GRAY)) for t in tiles]
    return series_table(tiles, masks), float(np.median([m.sum() for m in masks]))


@dataclass(frozen=True)
class SimSetup:
    """What the simulated side renders: a matched pentagon on a default slide, through focus.

    Attributes
    ----------
    seeds : tuple of int
        One matched pentagon (and its slide) per seed; medians are taken over all of them.
    dz_um : tuple of float
        Focus offsets of the series, µm from the pentagon's true focus.
    chain : CameraChainParams
        The capture chain.
    slide : SlideParams
        Slide parameters (polymer losses, debris density); the slide is cut to 2 x 2 mm for speed.
    optics, sensor : OpticsParams, SensorParams
        Defaults unless given.
    """

    seeds: tuple[int, ...] = (0, 1, 2, 3)
    dz_um: tuple[float, ...] = tuple(float(v) for v in np.linspace(-14.0, 14.0, 15))
    chain: CameraChainParams = CameraChainParams()
    slide: SlideParams = SlideParams()
    optics: OpticsParams = OpticsParams()
    sensor: SensorParams = SensorParams()


def simulated_series(setup: SimSetup, seed: int, circumradius_um: float) -> tuple[list[np.ndarray],
                                                                                 list[np.ndarray]]:
    """Frames (BGR, shrunk to the tile size) of a matched pentagon through focus, and its footprints."""
    params = replace(setup.slide, width_um=2000.0, height_um=2000.0, n_structures=0)
    base: Slide = make_slide(seed, params)
    shape = pentagon(np.random.default_rng([seed, 0x9E7]), circumradius_um=circumradius_um)
    centre = (1000.0, 1000.0)
    slide = base.with_structure("pentagon", shape, centre, np.random.default_rng([seed, 0x9E8]))
    obj = slide.objects[-1]
    renderer, chain = build_imaging(slide, setup.optics, setup.sensor, setup.chain, seed)
    s_out = setup.sensor.pixel_um / setup.optics.magnification
    frames = []
    for i, dz in enumerate(setup.dz_um):
        img = render_frame(renderer, chain, (centre[0], centre[1], obj.focus_z_um + dz), setup.sensor.exposure_ms,
                           np.random.default_rng([seed, i, 0xCA3]))
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        frames.append(cv2.resize(img, TILE_SIZE, interpolation=cv2.INTER_AREA))
    # ground-truth footprint at the tile scale: the base outline, area-shrunk, half-covered pixels in
    fine = (obj.height_um > 0).astype(np.float32)
    f = obj.pitch_um / (s_out * setup.sensor.width_px / TILE_SIZE[0])
    small = cv2.resize(fine, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    mask = np.zeros((TILE_SIZE[1], TILE_SIZE[0]), bool)
    sh, sw = small.shape
    v0 = int(round((TILE_SIZE[1] - sh) / 2))
    u0 = int(round((TILE_SIZE[0] - sw) / 2))
    mask[v0:v0 + sh, u0:u0 + sw] = small > 0.5
    return frames, [mask] * len(frames)


def simulated_table(setup: SimSetup, real_area_px: float) -> dict[str, float]:
    """The table's measures on matched simulated pentagons: per seed, then the median over seeds."""
    radius_um = math.sqrt(real_area_px / _PENTAGON_AREA) * TILE_UM_PER_PX
    tables = []
    for seed in setup.seeds:
        frames, masks = simulated_series(setup, seed, radius_um)
        tables.append(series_table(frames, masks))
    return {k: float(np.nanmedian([t[k] for t in tables])) for k in tables[0]}


def side_by_side(setups: dict[str, SimSetup], real_area_px: float, seed: int = 0,
                 picks: tuple[int, ...] = (0, 4, 7, 10, 14)) -> np.ndarray:
    """A picture: the real tiles in the top row, then one row per simulated setup, the same frames of the series.

    Every tile is 256 x 192 at 1.4 µm per pixel (the simulated frames shrunk by area), labelled top left.
    """
    radius_um = math.sqrt(real_area_px / _PENTAGON_AREA) * TILE_UM_PER_PX
    rows = [("real", [load_tiles()[i] for i in picks])]
    for name, setup in setups.items():
        frames, _ = simulated_series(setup, seed, radius_um)
        rows.append((name, [frames[i] for i in picks]))
    out = []
    for name, tiles in rows:
        labelled = []
        for t in tiles:
            t = t.copy()
            cv2.putText(t, name, (5, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
            labelled.append(np.pad(t, ((0, 2), (0, 2), (0, 0)), constant_values=255))
        out.append(np.hstack(labelled))
    return np.vstack(out)
