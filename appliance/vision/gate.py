"""The scan loop's candidate gate: which parts of a frame are worth a closer look.

One call of the fused per-frame analysis (:func:`kernels.analyse_frame`, method ``background``): a pixel is
a candidate pixel when it is at least ``contrast`` darker than the clear glass there, the glass being a
smooth surface fitted to the frame (:mod:`kernels.background`). Connected candidate pixels make a blob, and a
blob is a candidate when it is big enough in micrometres (area, and the longer side of its box), so the same
defaults hold at any magnification and frame size.

Why this method (docs/gate.md has the measurements): developed TPP prints are dark all over in bright
field (interior about half the background in the seed authors' real frames), with soft edges 5-7 px wide at
1.4 µm/px. An adaptive threshold with a 31 px block sees only their edges, and none at all once a frame is
enlarged; Otsu's level alone fills them but drifts with whatever else is in the frame (very dark debris, or
an empty field, where it splits the noise) and takes darker corners for objects. A fixed fraction of the
local glass's brightness does neither. Structures on the simulator are as faint as 7 % in places (thin
scaffold walls, woodpiles), hence the 5 % default.

A second, texture evidence catches what is not dark: a large scaffold at its own focus is a phase object
whose thin walls are barely 1-3 % off the glass and turn brighter or darker through focus (issue 10: 0
candidates at its focus). On a frame halved in size, the absolute difference from a 5 x 5 local mean is
averaged over cells of 8 x 8 frame pixels; cells above ``texture_factor`` x the frame's 90th-percentile cell
(the glass's own noise, whatever the camera: a print's walls fill far fewer than a tenth of the cells) that
join into a network at least ``texture_size_um`` long are candidates too, unless a dark candidate's box already
holds a quarter of it. It costs under a millisecond at 640 x 480 and finds nothing on the default camera's clear
or dusty glass (docs/gate.md has the figures, and the cost on a compressing camera).

A third, faint evidence catches what is dark but not 5 % dark: a flat woodpile between its glass and its own
focus is a uniform region 2.6-3.3 % darker than the glass, plain to the eye and to the detector (``structure``
0.67-0.70) but with almost no pixel past the dark test (seed 401: 0 candidates from 2 to 6 µm above the glass,
the fields' view plane in between). On the frame halved and smoothed over ``faint_smooth_um`` (the sensor's
noise averaged away), regions ``faint_contrast`` darker than the fitted glass that pass the size gate are
candidates when they are also ``faint_local`` darker than the ring of glass just around them and lie clear of
the frame's edge: the lamp field's fall-off in a corner is as dark against the fitted surface, but soft, and
its surround is almost as dark (1.1-2.3 %).

A frame finer than about 0.12 µm per pixel (40x and up) in which none of the three finds anything is looked at
once more reduced to about 0.35 µm per pixel, the scale the evidence was set at: a print far out of a 1 µm depth
of field is blurred past what 8-pixel texture cells see (:func:`find_candidates`).

Texture and faint candidates (``Candidate.rows`` empty) only wake the detector: the classifier alone does not
type them (``appliance/vision/pipeline.py``, ``dark_only``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from kernels import FrameAnalysis, analyse_frame
from kernels._checks import check_contrast, check_real

__all__ = ["Candidate", "GateParams", "faint_boxes", "find_candidates", "gate_frame", "texture_boxes"]


@dataclass(frozen=True)
class GateParams:
    """Defaults of the candidate gate.

    Attributes
    ----------
    contrast : float
        A candidate pixel is darker than ``(1 - contrast)`` x the glass's brightness there, in (0, 1).
    min_area_um2 : float
        Smallest candidate area (the pixels of all its pieces), µm² (> 0). TPP structures are 20-120 µm
        across; dust in focus is a few µm.
    min_size_um : float
        Smallest length of the longer side of a candidate's box, µm (>= 0).
    piece_area_um2 : float
        Blobs smaller than this are left out before grouping (noise, specks), µm² (> 0, <= min_area_um2).
    merge_gap_um : float
        Blobs whose boxes come within this distance form one candidate (the faint walls of a scaffold break
        into pieces), µm (>= 0).
    texture_factor : float
        A texture cell is more than this many times the frame's 90th-percentile cell (> 1); 0 turns the
        texture evidence off.
    texture_size_um : float
        Smallest longer side of a texture candidate's box, µm (> 0): the smallest scaffold the virtual
        microscope prints (40 µm) with the region's cell of slack either side; most dust networks on clear
        glass are smaller (up to 40 µm seen). It was 60 µm, and a 43 µm scaffold at its focus, whose thin
        walls the dark test breaks up, was missed (seed 606: a 58 µm region).
    texture_edge_size_um : float
        ... and of one whose box reaches the frame's edge and spans at least 12 texture cells (so only on frames
        finer than about 0.3 µm per pixel), µm (> 0, <= ``texture_size_um``): a print cut by the edge shows
        only a part of itself. At 40x a 55 µm woodpile at its focus lay cut in each of the four
        fields over it, its corners 20-38 µm of texture there, and no field opened the gate for it (seed 1609).
    faint_contrast : float
        A faint region is this much darker than the glass on the smoothed frame, in [0, contrast); 0 turns the
        faint evidence off. Below the sensor's noise per pixel, above it once ``faint_smooth_um`` averages it.
    faint_local : float
        ... and at least this much darker than the ring of glass around it, in (0, 1): a print's edge is sharp,
        the lamp field's fall-off is not.
    faint_smooth_um : float
        Side of the box the halved frame is averaged over for the faint evidence, µm (> 0).
    """

    contrast: float = 0.05
    min_area_um2: float = 150.0  # a 14 µm disc: larger than the dust specks in focus (about 10 µm)
    min_size_um: float = 10.0
    piece_area_um2: float = 1.0
    merge_gap_um: float = 3.0
    texture_factor: float = 1.8
    texture_size_um: float = 45.0
    texture_edge_size_um: float = 20.0
    faint_contrast: float = 0.025
    faint_local: float = 0.02
    faint_smooth_um: float = 3.0

    def __post_init__(self) -> None:
        check_contrast(self.contrast)
        if check_real(self.min_area_um2, "min_area_um2") <= 0:
            raise ValueError(f"min_area_um2 must be > 0 µm², got {self.min_area_um2}")
        check_real(self.min_size_um, "min_size_um", 0.0)
        if not 0 < check_real(self.piece_area_um2, "piece_area_um2") <= self.min_area_um2:
            raise ValueError(f"piece_area_um2 must be in (0, min_area_um2 = {self.min_area_um2}] µm², "
                             f"got {self.piece_area_um2}")
        check_real(self.merge_gap_um, "merge_gap_um", 0.0)
        f = check_real(self.texture_factor, "texture_factor", 0.0)
        if f != 0 and f <= 1:
            raise ValueError(f"texture_factor must be 0 (off) or > 1, got {self.texture_factor}")
        if check_real(self.texture_size_um, "texture_size_um") <= 0:
            raise ValueError(f"texture_size_um must be > 0 µm, got {self.texture_size_um}")
        if not 0 < check_real(self.texture_edge_size_um, "texture_edge_size_um") <= self.texture_size_um:
            raise ValueError(f"texture_edge_size_um must be in (0, texture_size_um = {self.texture_size_um}] µm, "
                             f"got {self.texture_edge_size_um}")
        if not 0 <= check_real(self.faint_contrast, "faint_contrast") < self.contrast:
            raise ValueError(f"faint_contrast must be in [0, contrast = {self.contrast}), got {self.faint_contrast}")
        if not 0 < check_real(self.faint_local, "faint_local") < 1:
            raise ValueError(f"faint_local must be in (0, 1), got {self.faint_local}")
        if check_real(self.faint_smooth_um, "faint_smooth_um") <= 0:
            raise ValueError(f"faint_smooth_um must be > 0 µm, got {self.faint_smooth_um}")


@dataclass(frozen=True)
class Candidate:
    """One candidate region of a frame: one blob, or blobs close enough to be one object.

    Attributes
    ----------
    box_px : (int, int, int, int)
        ``x, y, width, height`` of the bounding box of its blobs, pixels.
    area_px : int
        Pixels in its blobs.
    centroid_px : (float, float)
        Mean x, y of those pixels.
    focus : float
        Sum of squared Laplacian over its blobs' boxes (higher is sharper); 0 for a texture candidate.
    rows : tuple of int
        Its blobs: rows of the :class:`kernels.FrameAnalysis` tables.
    """

    box_px: tuple[int, int, int, int]
    area_px: int
    centroid_px: tuple[float, float]
    focus: float
    rows: tuple[int, ...]


def _groups(stats: np.ndarray, gap_px: float) -> list[list[int]]:
    """Rows whose boxes (x, y, w, h) come within ``gap_px`` of each other, joined transitively."""
    n = stats.shape[0]
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    x0, y0 = stats[:, 0].astype(np.float64), stats[:, 1].astype(np.float64)
    x1, y1 = x0 + stats[:, 2], y0 + stats[:, 3]
    for i in range(n):
        near = np.flatnonzero((x0[i + 1:] <= x1[i] + gap_px) & (x0[i] <= x1[i + 1:] + gap_px)
                              & (y0[i + 1:] <= y1[i] + gap_px) & (y0[i] <= y1[i + 1:] + gap_px)) + i + 1
        for j in near.tolist():
            a, b = find(i), find(j)
            if a != b:
                parent[max(a, b)] = min(a, b)
    out: dict[int, list[int]] = {}
    for i in range(n):
        out.setdefault(find(i), []).append(i)
    return list(out.values())


_CELL = 8  # texture cell side, frame pixels (4 x 4 pixels of the halved frame)
_GLASS_PCT = 90.0  # percentile of the frame's cells taken as the glass's own texture
# A texture region at the frame's edge shorter than ``texture_size_um`` spans at least this many cells: on the
# real seed frames (1.4 µm/px, and enlarged to 0.56) the camera's own texture along the edges made regions of
# up to 6 cells, while a 40x print's cut corners were 18-34 cells (0.14 µm/px). So the shorter edge size acts
# only on fine-sampled frames, above about 20x, where a field is narrower than the prints.
_EDGE_MIN_CELLS = 12


def texture_boxes(frame: np.ndarray, um_per_px: float, factor: float, size_um: float,
                  edge_size_um: float | None = None) -> list[tuple[int, ...]]:
    """Boxes ``x, y, w, h, cells`` of large regions of fine texture (thin walls), frame pixels.

    Parameters
    ----------
    frame : (M, N) ndarray of uint8
        Grayscale frame.
    um_per_px : float
        Scale, µm per pixel (> 0).
    factor : float
        A cell is textured above ``factor`` x the frame's 90th-percentile cell (> 1).
    size_um : float
        Smallest longer side of a region's box, µm.
    edge_size_um : float, optional
        ... of a region whose box reaches the frame's edge, if it spans ``_EDGE_MIN_CELLS`` cells (default
        ``size_um``).

    Returns
    -------
    list of tuple of int
    """
    h, w = frame.shape
    gh, gw = h // _CELL, w // _CELL
    if gh < 3 or gw < 3:
        return []
    # Halving averages the sensor noise down while a 1-2 px wall survives; the absolute difference from the
    # local mean counts a wall whether it is darker or brighter than the glass at this focus.
    small = cv2.resize(frame[:gh * _CELL, :gw * _CELL], (gw * _CELL // 2, gh * _CELL // 2),
                       interpolation=cv2.INTER_AREA).astype(np.float32)
    dev = cv2.absdiff(small, cv2.blur(small, (5, 5)))
    energy = cv2.resize(dev, (gw, gh), interpolation=cv2.INTER_AREA)
    mask = (energy > factor * float(np.percentile(energy, _GLASS_PCT))).astype(np.uint8)
    # one cell of slack joins the pieces of a wall that fades in places
    mask = np.asarray(cv2.dilate(mask, np.ones((3, 3), np.uint8)), np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    at_edge = size_um if edge_size_um is None else min(size_um, max(edge_size_um, _EDGE_MIN_CELLS * _CELL * um_per_px))
    out: list[tuple[int, ...]] = []
    for x, y, bw, bh, cells in stats[1:n].tolist():
        edge = x == 0 or y == 0 or x + bw == gw or y + bh == gh
        if max(bw, bh) * _CELL * um_per_px >= (at_edge if edge else size_um):
            out.append((x * _CELL, y * _CELL, bw * _CELL, bh * _CELL, cells))
    return out


def faint_boxes(frame: np.ndarray, um_per_px: float, params: GateParams) -> list[tuple[int, int, int, int]]:
    """Boxes ``x, y, w, h`` (frame pixels) of regions a little darker than the glass and than their surround.

    Parameters
    ----------
    frame : (M, N) ndarray of uint8
        Grayscale frame.
    um_per_px : float
        Scale, µm per pixel (> 0).
    params : GateParams
        ``faint_contrast``, ``faint_local`` and ``faint_smooth_um``; the size gate's ``min_area_um2``.

    Returns
    -------
    list of tuple of int
        Regions on the halved, smoothed frame ``faint_contrast`` darker than the glass fitted to it, of the
        size gate's area and ``_FAINT_MIN_SIZE_UM`` long, clear of the frame's edge, whose mean is
        ``faint_local`` below the median of a ring around them (``_FAINT_RING_UM`` wide, one pixel out) and
        whose darkest point is not ``_FAINT_MAX_DEPTH`` below it (a dust speck the dark test found too small,
        grown by the smoothing).
    """
    h, w = frame.shape
    if h < 16 or w < 16 or not params.faint_contrast:
        return []
    scale = 2.0 * um_per_px
    # halving and a box mean average the sensor's noise away, so a 2.5 % step is well above it
    k = max(1, round(params.faint_smooth_um / scale)) | 1
    small = np.ascontiguousarray(cv2.blur(cv2.resize(frame, (w // 2, h // 2), interpolation=cv2.INTER_AREA), (k, k)))
    mask = np.empty_like(small)
    min_area = params.min_area_um2 / (scale * scale)
    found = analyse_frame(small, "background", contrast=params.faint_contrast, invert=True, connectivity=8,
                          min_area=max(1, math.ceil(min_area)), mask_out=mask)
    sh, sw = small.shape
    ring = max(2, round(_FAINT_RING_UM / scale))
    out = []
    for x, y, bw, bh, _ in found.stats.tolist():
        if max(bw, bh) * scale < _FAINT_MIN_SIZE_UM:
            continue
        if x <= 1 or y <= 1 or x + bw >= sw - 1 or y + bh >= sh - 1:
            continue  # its surround is not all in view, and the lamp field falls off at the edges
        x0, y0 = max(0, x - 2 * ring), max(0, y - 2 * ring)
        x1, y1 = min(sw, x + bw + 2 * ring), min(sh, y + bh + 2 * ring)
        marked = mask[y0:y1, x0:x1] > 0
        region = np.zeros(marked.shape, np.uint8)  # the marked pixels in the blob's box: the blob, near enough
        region[y - y0:y - y0 + bh, x - x0:x - x0 + bw] = marked[y - y0:y - y0 + bh, x - x0:x - x0 + bw]
        near = cv2.dilate(region, np.ones((3, 3), np.uint8))
        far = cv2.dilate(region, np.ones((2 * ring + 1, 2 * ring + 1), np.uint8))
        around = (far > 0) & (near == 0) & ~marked
        if int(around.sum()) < 4:
            continue
        patch = small[y0:y1, x0:x1].astype(np.float32)
        glass = float(np.median(patch[around]))
        inside = patch[region > 0]
        # a region with a dark core is a speck the dark test saw and found too small (its blur made it larger)
        if glass > 0 and float(inside.mean()) <= (1 - params.faint_local) * glass \
                and float(inside.min()) >= (1 - _FAINT_MAX_DEPTH) * glass:
            out.append((2 * x, 2 * y, 2 * bw, 2 * bh))
    return out


_FAINT_RING_UM = 4.0  # width of the glass around a faint region that it is compared with
# A faint region's darkest smoothed point lies at most this far below its surround: a 20 µm split ring too small
# for the size gate reads 0.08, a 58 µm woodpile 0.03, an 11-14 µm dust speck 0.23-0.42
_FAINT_MAX_DEPTH = 0.15
# Smallest longer side of a faint region, µm: the prints are 20 µm and more (the smoothing grows a region by
# about a micrometre); fainter, smaller blobs are out-of-focus dust (15 µm ones on the real seed frames)
_FAINT_MIN_SIZE_UM = 18.0


def _covered(box: tuple[int, ...], by: list[Candidate], fraction: float = 0.5) -> bool:
    """Whether ``fraction`` of ``box`` (x, y, w, h) or more lies in one candidate's box."""
    x, y, w, h = box[:4]
    for c in by:
        cx, cy, cw, ch = c.box_px
        ix = max(0, min(x + w, cx + cw) - max(x, cx))
        iy = max(0, min(y + h, cy + ch) - max(y, cy))
        if ix * iy >= fraction * w * h:
            return True
    return False


# A texture region a quarter in a dark candidate's box is that object's edge (a dark print's or a dust clump's
# blurred rim has texture too), not another print
_TEXTURE_ON_DARK = 0.25


def gate_frame(frame: np.ndarray, um_per_px: float, params: GateParams | None = None,
               mask_out: np.ndarray | None = None) -> tuple[FrameAnalysis, list[Candidate]]:
    """Run the fused analysis with the gate's settings; return it and the candidates.

    Parameters
    ----------
    frame : (M, N) ndarray of uint8
        Grayscale frame, C-contiguous.
    um_per_px : float
        Scale of the frame, µm per pixel (> 0).
    params : GateParams, optional
        Defaults when None.
    mask_out : (M, N) ndarray of uint8, optional
        Receives the candidate-pixel mask (0 / 255) before any size gate.

    Returns
    -------
    FrameAnalysis, list of Candidate
        The analysis (its blobs are the pieces, at least ``piece_area_um2``) and the candidates grouped
        from them that pass the size gate, in raster order of their first piece; then the texture
        candidates no dark one covers (``rows`` empty, ``focus`` 0).

    Raises
    ------
    ValueError
        On a bad frame, scale or parameter.
    """
    p = GateParams() if params is None else params
    scale = check_real(um_per_px, "um_per_px")
    if not scale > 0:
        raise ValueError(f"um_per_px must be > 0, got {um_per_px}")
    res = analyse_frame(frame, "background", contrast=p.contrast, invert=True, connectivity=8,
                        min_area=max(1, math.ceil(p.piece_area_um2 / (scale * scale))), mask_out=mask_out)
    min_area = p.min_area_um2 / (scale * scale)
    cands = []
    for rows in _groups(res.stats, p.merge_gap_um / scale):
        st = res.stats[rows]
        x, y = int(st[:, 0].min()), int(st[:, 1].min())
        w, h = int((st[:, 0] + st[:, 2]).max()) - x, int((st[:, 1] + st[:, 3]).max()) - y
        area = int(st[:, 4].sum())
        if area < min_area or max(w, h) * scale < p.min_size_um:
            continue
        weights = st[:, 4].astype(np.float64)
        cx, cy = (res.centroids[rows] * weights[:, None]).sum(axis=0) / weights.sum()
        cands.append(Candidate(box_px=(x, y, w, h), area_px=area, centroid_px=(float(cx), float(cy)),
                               focus=float(res.focus[rows].sum()), rows=tuple(rows)))
    if p.texture_factor:
        dark = list(cands)
        for x, y, w, h, cells in texture_boxes(frame, scale, p.texture_factor, p.texture_size_um,
                                                p.texture_edge_size_um):
            if not _covered((x, y, w, h), dark, _TEXTURE_ON_DARK):
                cands.append(Candidate(box_px=(x, y, w, h), area_px=cells * _CELL * _CELL,
                                       centroid_px=(x + w / 2, y + h / 2), focus=0.0, rows=()))
    if p.faint_contrast:
        before = list(cands)
        for x, y, w, h in faint_boxes(frame, scale, p):
            if not _covered((x, y, w, h), before):
                cands.append(Candidate(box_px=(x, y, w, h), area_px=w * h, centroid_px=(x + w / 2, y + h / 2),
                                       focus=0.0, rows=()))
    return res, cands


def find_candidates(frame: np.ndarray, um_per_px: float, params: GateParams | None = None) -> list[Candidate]:
    """The candidates of one frame, in raster order of their first piece.

    Parameters
    ----------
    frame : (M, N) ndarray of uint8
        Grayscale frame, C-contiguous.
    um_per_px : float
        Scale of the frame, µm per pixel (> 0).
    params : GateParams, optional
        Defaults when None.

    Returns
    -------
    list of Candidate

    Raises
    ------
    ValueError
        On a bad frame, scale or parameter.

    Examples
    --------
    >>> f = np.full((120, 160), 200, np.uint8); f[30:70, 40:90] = 95; f[100, 10] = 20
    >>> [c.box_px for c in find_candidates(f, 0.56)]
    [(40, 30, 50, 40)]

    A frame finer than ``COARSE_LOOK_UM_PER_PX / COARSE_LOOK_MIN_FACTOR`` in which the gate finds nothing is
    looked at once more, reduced to about ``COARSE_LOOK_UM_PER_PX`` (:func:`_coarse_look`).
    """
    cands = gate_frame(frame, um_per_px, params)[1]
    return cands if cands else _coarse_look(frame, um_per_px, params)


#: A frame in which the gate finds nothing is looked at again reduced to about this scale, µm per pixel, when
#: that reduces it at least ``COARSE_LOOK_MIN_FACTOR`` times (40x and finer on the usual sensors). At 60x / NA
#: 0.8 (0.093 µm per pixel, a 1 µm depth of field) a 58 µm scaffold 4 µm below the fields' view plane was cut by
#: the frame's edge in every field, its blurred walls 2-3 % off the glass: no pixel passed the dark test, the
#: texture cells (8 pixels, 0.75 µm) saw no fine texture left and the faint evidence keeps off the frame's
#: edge, so no field woke the detector (held-out seed 3748). Reduced four times, its walls' blur is the texture
#: evidence's scale again and the cut scaffold a texture region at the edge.
COARSE_LOOK_UM_PER_PX = 0.35
COARSE_LOOK_MIN_FACTOR = 3


def _coarse_look(frame: np.ndarray, um_per_px: float, params: GateParams | None) -> list[Candidate]:
    """The candidates of ``frame`` reduced to about ``COARSE_LOOK_UM_PER_PX``, in the frame's pixels.

    Empty for a frame no finer than ``COARSE_LOOK_UM_PER_PX / COARSE_LOOK_MIN_FACTOR``. The candidates' ``rows``
    and ``focus`` are the reduced frame's (only whether ``rows`` is empty is read outside this module).
    """
    factor = int(COARSE_LOOK_UM_PER_PX / float(um_per_px) + 0.5) if um_per_px > 0 else 0
    h, w = frame.shape[:2]
    if factor < COARSE_LOOK_MIN_FACTOR or h // factor < 16 or w // factor < 16:
        return []
    small = np.ascontiguousarray(cv2.resize(frame, (w // factor, h // factor), interpolation=cv2.INTER_AREA))
    out = []
    for c in gate_frame(small, um_per_px * factor, params)[1]:
        x, y, bw, bh = c.box_px
        box = (x * factor, y * factor, min(bw * factor, w - x * factor), min(bh * factor, h - y * factor))
        centre = ((c.centroid_px[0] + 0.5) * factor - 0.5, (c.centroid_px[1] + 0.5) * factor - 0.5)
        out.append(Candidate(box_px=box, area_px=c.area_px * factor * factor, centroid_px=centre, focus=c.focus,
                             rows=c.rows))
    return out
