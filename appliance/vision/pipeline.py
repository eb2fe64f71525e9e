"""One frame through the vision chain: candidate gate -> detector -> structure classifier.

The gate (a classical threshold and blob search, microseconds to a millisecond) says whether anything in the
frame is darker than clear glass; the detector finds structures and debris with boxes; the classifier names
each box's type from a 64 x 64 crop. :class:`Pipeline` holds the loaded models, so a scan loads them once.

With ``skip_empty`` the detector and classifier are not run on a frame in which the gate found nothing, which
is how a scan keeps its frame rate on bare glass; ``tppscan detect`` runs them on every image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from appliance.vision.detector import Detector, to_gray

# Until the scan's candidate gate (appliance/vision/gate.py) is in this tree, the gate is one call of the
# fused analysis: pixels GATE_CONTRAST darker than the glass (the frame's median: glass covers most of a
# frame), blobs at least GATE_MIN_AREA_UM2. (Otsu alone splits an empty frame's noise into blobs.)
GATE_CONTRAST = 0.2
GATE_MIN_AREA_UM2 = 80.0


@dataclass(frozen=True)
class FoundObject:
    """One detection with its type.

    Attributes
    ----------
    box : (float, float, float, float)
        ``x1, y1, x2, y2`` in frame pixels.
    cls : str
        Detector class (``structure`` or ``debris``).
    score : float
        Detector confidence.
    type : str
        Classifier label (a structure type or ``debris``), ``""`` when no classifier ran.
    type_score : float
        Classifier probability of that label (NaN when no classifier ran).
    """

    box: tuple[float, float, float, float]
    cls: str
    score: float
    type: str = ""
    type_score: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (box rounded to 0.01 px)."""
        return {"box": [round(v, 2) for v in self.box], "class": self.cls, "score": round(self.score, 5),
                "type": self.type, "type_score": None if np.isnan(self.type_score) else round(self.type_score, 5)}


@dataclass(frozen=True)
class FrameResult:
    """What the chain found in one frame."""

    width: int
    height: int
    gate_candidates: int
    detector_ran: bool
    objects: list[FoundObject] = field(default_factory=list)


def gate_candidates(gray: np.ndarray, um_per_px: float) -> list[tuple[int, int, int, int]]:
    """Boxes ``(x, y, w, h)`` of the gate's candidate blobs in a grey frame.

    Parameters
    ----------
    gray : (H, W) ndarray of uint8
    um_per_px : float
        Pixel size at the sample, µm (> 0): the minimum blob area is set in µm².
    """
    from kernels import analyse_frame

    if not um_per_px > 0:
        raise ValueError(f"um_per_px must be > 0, got {um_per_px!r}")
    min_area = max(1, int(round(GATE_MIN_AREA_UM2 / (um_per_px * um_per_px))))
    level = int(np.median(gray) * (1.0 - GATE_CONTRAST))
    res = analyse_frame(np.ascontiguousarray(gray), "global", level=level, invert=True, min_area=min_area)
    return [tuple(int(v) for v in row[:4]) for row in res.stats]  # type: ignore[misc]


class Pipeline:
    """Gate, detector and (optionally) classifier on single frames.

    Parameters
    ----------
    detector : Detector
        Loaded detector.
    classifier : object, optional
        A loaded :class:`appliance.vision.classifier.StructureClassifier` (anything with
        ``classify_boxes(image, boxes)``); None to skip typing.
    um_per_px : float
        Pixel size at the sample, for the gate's size limits.
    skip_empty : bool
        Skip detector and classifier when the gate finds nothing.
    """

    def __init__(self, detector: Detector, classifier: Any | None = None, um_per_px: float = 1.0,
                 skip_empty: bool = False) -> None:
        if not (isinstance(um_per_px, (int, float)) and 0.01 <= um_per_px <= 100):
            raise ValueError(f"um_per_px must be a number in [0.01, 100], got {um_per_px!r}")
        self.detector = detector
        self.classifier = classifier
        self.um_per_px = float(um_per_px)
        self.skip_empty = skip_empty

    def run(self, frame: np.ndarray) -> FrameResult:
        """The chain on one frame (grey or BGR, any size)."""
        gray = to_gray(frame)
        h, w = gray.shape
        cands = gate_candidates(gray, self.um_per_px)
        if self.skip_empty and not cands:
            return FrameResult(w, h, 0, False)
        dets = self.detector.detect(gray)
        objs = [FoundObject(d.box, d.label, d.score) for d in dets]
        if self.classifier is not None and objs:
            res = self.classifier.classify_boxes(gray, [o.box for o in objs])
            objs = [FoundObject(o.box, o.cls, o.score, lab, float(sc))
                    for o, lab, sc in zip(objs, res.labels, res.scores, strict=True)]
        return FrameResult(w, h, len(cands), True, objs)
