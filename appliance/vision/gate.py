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
join into a network at least ``texture_size_um`` long are candidates too, unless a dark candidate already
covers half of it. It costs under a millisecond at 640 x 480 and finds nothing on the default camera's clear
or dusty glass (docs/gate.md has the figures, and the cost on a compressing camera).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from kernels import FrameAnalysis, analyse_frame
from kernels._checks import check_contrast, check_real

__all__ = ["Candidate", "GateParams", "find_candidates", "gate_frame", "texture_boxes"]


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
        Smallest longer side of a texture candidate's box, µm (> 0): larger than any dust (up to 40 µm on
        the simulator's clear glass), as only large thin-walled prints need this evidence.
    """

    contrast: float = 0.05
    min_area_um2: float = 150.0  # a 14 µm disc: larger than the dust specks in focus (about 10 µm)
    min_size_um: float = 10.0
    piece_area_um2: float = 1.0
    merge_gap_um: float = 3.0
    texture_factor: float = 1.8
    texture_size_um: float = 60.0

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


def texture_boxes(frame: np.ndarray, um_per_px: float, factor: float, size_um: float) -> list[tuple[int, ...]]:
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
    out: list[tuple[int, ...]] = []
    for x, y, bw, bh, cells in stats[1:n].tolist():
        if max(bw, bh) * _CELL * um_per_px >= size_um:
            out.append((x * _CELL, y * _CELL, bw * _CELL, bh * _CELL, cells))
    return out


def _covered(box: tuple[int, ...], by: list[Candidate]) -> bool:
    """Whether half of ``box`` (x, y, w, h) or more lies in one candidate's box."""
    x, y, w, h = box[:4]
    for c in by:
        cx, cy, cw, ch = c.box_px
        ix = max(0, min(x + w, cx + cw) - max(x, cx))
        iy = max(0, min(y + h, cy + ch) - max(y, cy))
        if 2 * ix * iy >= w * h:
            return True
    return False


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
        for x, y, w, h, cells in texture_boxes(frame, scale, p.texture_factor, p.texture_size_um):
            if not _covered((x, y, w, h), dark):
                cands.append(Candidate(box_px=(x, y, w, h), area_px=cells * _CELL * _CELL,
                                       centroid_px=(x + w / 2, y + h / 2), focus=0.0, rows=()))
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
    """
    return gate_frame(frame, um_per_px, params)[1]
