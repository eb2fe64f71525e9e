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
scaffold walls, woodpiles), hence the 6 % default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kernels import FrameAnalysis, analyse_frame
from kernels._checks import check_contrast, check_real

__all__ = ["Candidate", "GateParams", "find_candidates", "gate_frame"]


@dataclass(frozen=True)
class GateParams:
    """Defaults of the candidate gate.

    Attributes
    ----------
    contrast : float
        A candidate pixel is darker than ``(1 - contrast)`` x the glass's brightness, in (0, 1).
    min_area_um2 : float
        Smallest blob area kept, µm² (> 0). TPP structures are 20-120 µm across; dust specks in focus a few µm.
    min_size_um : float
        Smallest length of the longer side of a blob's box, µm (>= 0).
    """

    contrast: float = 0.06
    min_area_um2: float = 80.0  # a 9 x 9 µm square: dust in focus is smaller, structures are 20-120 µm
    min_size_um: float = 10.0

    def __post_init__(self) -> None:
        check_contrast(self.contrast)
        if check_real(self.min_area_um2, "min_area_um2") <= 0:
            raise ValueError(f"min_area_um2 must be > 0 µm², got {self.min_area_um2}")
        check_real(self.min_size_um, "min_size_um", 0.0)


@dataclass(frozen=True)
class Candidate:
    """One candidate region of a frame.

    Attributes
    ----------
    box_px : (int, int, int, int)
        ``x, y, width, height`` of the blob's bounding box, pixels.
    area_px : int
        Pixels in the blob.
    centroid_px : (float, float)
        Mean x, y of the blob's pixels.
    focus : float
        Sum of squared Laplacian over the box (higher is sharper).
    """

    box_px: tuple[int, int, int, int]
    area_px: int
    centroid_px: tuple[float, float]
    focus: float


def gate_frame(frame: np.ndarray, um_per_px: float, params: GateParams | None = None,
               mask_out: np.ndarray | None = None) -> tuple[FrameAnalysis, np.ndarray]:
    """Run the fused analysis with the gate's settings; return it and the indices of the kept blobs.

    Parameters
    ----------
    frame : (M, N) ndarray of uint8
        Grayscale frame, C-contiguous.
    um_per_px : float
        Scale of the frame, µm per pixel (> 0).
    params : GateParams, optional
        Defaults when None.
    mask_out : (M, N) ndarray of uint8, optional
        Receives the candidate-pixel mask (0 / 255) before the size gate.

    Returns
    -------
    FrameAnalysis, (K,) ndarray of int64
        The analysis (its blobs pass the area gate) and the rows of ``stats`` that also pass the size gate.

    Raises
    ------
    ValueError
        On a bad frame, scale or parameter.
    """
    p = GateParams() if params is None else params
    scale = check_real(um_per_px, "um_per_px")
    if not scale > 0:
        raise ValueError(f"um_per_px must be > 0, got {um_per_px}")
    min_area = max(1, math.ceil(p.min_area_um2 / (scale * scale)))
    res = analyse_frame(frame, "background", contrast=p.contrast, invert=True, connectivity=8,
                        min_area=min_area, mask_out=mask_out)
    longer = np.maximum(res.stats[:, 2], res.stats[:, 3]) * scale
    return res, np.flatnonzero(longer >= p.min_size_um)


def find_candidates(frame: np.ndarray, um_per_px: float, params: GateParams | None = None) -> list[Candidate]:
    """The candidates of one frame, in raster order of their first pixel.

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
    res, keep = gate_frame(frame, um_per_px, params)
    return [Candidate(box_px=(int(x), int(y), int(w), int(h)), area_px=int(a),
                      centroid_px=(float(res.centroids[i, 0]), float(res.centroids[i, 1])),
                      focus=float(res.focus[i]))
            for i in keep.tolist() for x, y, w, h, a in [res.stats[i].tolist()]]
