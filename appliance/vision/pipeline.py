"""One frame through the vision chain: candidate gate -> detector -> structure classifier.

The gate (a classical threshold and blob search, microseconds to a millisecond) says whether anything in the
frame is darker than clear glass; the detector finds structures and debris with boxes; the classifier names
each box's type from a 64 x 64 crop. :class:`Pipeline` holds the loaded models, so a scan loads them once.

With ``skip_empty`` the detector and classifier are not run on a frame in which the gate found nothing, which
is how a scan keeps its frame rate on bare glass; ``tppscan detect`` runs them on every image.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from appliance.vision.decision import DecisionRule, Evidence, Verdict, judge
from appliance.vision.detector import Detector, to_gray
from appliance.vision.gate import Candidate, find_candidates


@dataclass(frozen=True)
class FoundObject:
    """One detection with its type.

    Attributes
    ----------
    box : (float, float, float, float)
        ``x1, y1, x2, y2`` in frame pixels.
    cls : str
        Detector class (``structure`` or ``debris``); ``""`` for a gate candidate the detector drew no box on
        (only with ``Pipeline(type_uncovered=True)``).
    score : float
        Detector confidence.
    type : str
        Classifier label (a structure type or ``debris``), ``""`` when no classifier ran.
    type_score : float
        Classifier probability of that label (NaN when no classifier ran).
    type_probs : mapping of str to float
        The classifier's whole distribution, label -> probability (empty when no classifier ran): what
        :mod:`appliance.vision.decision` weighs against the detector's call.
    """

    box: tuple[float, float, float, float]
    cls: str
    score: float
    type: str = ""
    type_score: float = float("nan")
    type_probs: Mapping[str, float] = field(default_factory=dict)

    @property
    def evidence(self) -> Evidence:
        """What the two models say of it, for :mod:`appliance.vision.decision` (no detector class: no box)."""
        return Evidence(self.box, {self.cls: float(self.score)} if self.cls else {}, self.type_probs)

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
    dark_boxes: list[tuple[int, int, int, int]] = field(default_factory=list)  # :func:`dark_only`, ``x, y, w, h``


@dataclass(frozen=True)
class ObjectCall:
    """The verdict on the object one detector box belongs to.

    Attributes
    ----------
    object : int
        The object's number in its frame, from 1, strongest detection first; boxes of one object share it.
    lead : bool
        This box is its object's strongest detection: the one to count the object by (detectNet suppresses per
        class, so one object can come out as a ``structure`` box and a ``debris`` box).
    verdict : Verdict
        Structure or debris, weighed over all the object's boxes.
    """

    object: int
    lead: bool
    verdict: Verdict


def verdicts(objects: list[FoundObject], um_per_px: float | None = None,
             rule: DecisionRule | None = None) -> list[ObjectCall]:
    """Each box's object's verdict, as a scan's first look decides it (:func:`appliance.vision.decision.judge`).

    One per entry of ``objects``, in their order; boxes of one object share its verdict and its number.
    ``um_per_px`` is the frame's true pixel size (None: the size limits are not applied).
    """
    out: list[ObjectCall | None] = [None] * len(objects)
    for number, (group, _, v) in enumerate(judge([o.evidence for o in objects], um_per_px, rule), start=1):
        for i in group:
            out[i] = ObjectCall(number, i == group[0], v)
    return [c for c in out if c is not None]


def gate_candidates(gray: np.ndarray, um_per_px: float) -> list[tuple[int, int, int, int]]:
    """Boxes ``(x, y, w, h)`` of the candidate gate's candidates in a grey frame.

    The scan's gate (:mod:`appliance.vision.gate`, docs/gate.md): pixels 5 % darker than the glass fitted to
    the frame, pieces grouped within 3 µm, candidates of at least 150 µm². A fixed level below the frame's
    median, which this chain used before that gate existed, passes over the faint prints the gate was tuned
    for (split rings and scaffold walls 4-15 % darker than the glass) and so never ran the detector on them.

    Parameters
    ----------
    gray : (H, W) ndarray of uint8
    um_per_px : float
        Pixel size at the sample, µm (> 0): the size limits are set in µm.

    Raises
    ------
    ValueError
        ``um_per_px`` not > 0, or a frame the fused analysis refuses.
    """
    if not (isinstance(um_per_px, (int, float)) and um_per_px > 0):
        raise ValueError(f"um_per_px must be > 0, got {um_per_px!r}")
    return [c.box_px for c in find_candidates(np.ascontiguousarray(gray), float(um_per_px))]


def dark_only(candidates: list[Candidate]) -> list[tuple[int, int, int, int]]:
    """The boxes (``x, y, w, h``) of the candidates found by their dark pixels, without the texture candidates.

    A texture candidate (``Candidate.rows`` empty: fine texture and no pixel 5 % darker than the glass) is
    worth the detector's look, not the classifier's alone. The classifier normalises each crop's contrast,
    so the JPEG blocks and demosaicing zipper of a compressing colour camera's bare glass, 1-2 grey levels,
    become a lattice to it: seed 412's 8 false structures were such candidates no detector box covered, named
    scaffolds at 0.85-0.94 (docs/scan.md, "Structure or debris", step 2). A thin-walled print the texture
    evidence was made for (dev seed 205's 134 µm scaffold) is boxed by the detector once it runs, and its
    classifier's crop of the uncovered texture said ``debris`` anyway.
    """
    return [c.box_px for c in candidates if c.rows]


def uncovered(candidates: list[tuple[int, int, int, int]], boxes: list[tuple[float, float, float, float]],
              min_cover: float = 0.5) -> list[tuple[float, float, float, float]]:
    """The candidates (``x, y, w, h``) that no box (``x1, y1, x2, y2``) covers ``min_cover`` of, as boxes."""
    out = []
    for x, y, w, h in candidates:
        c = (float(x), float(y), float(x + w), float(y + h))
        area = float(w * h)
        if not any(max(0.0, min(c[2], b[2]) - max(c[0], b[0])) * max(0.0, min(c[3], b[3]) - max(c[1], b[1]))
                   >= min_cover * area for b in boxes):
            out.append(c)
    return out


def spans_frame(box: tuple[float, float, float, float], size: tuple[int, int]) -> bool:
    """Whether a box ``x1, y1, x2, y2`` reaches all four edges of a frame of ``size`` (width, height) pixels.

    Such a gate candidate is no object the classifier can type: its crop is the whole frame, and it has no edge in
    view. It is the glass's own unevenness joined up with what is in view: a 20x field 12 µm under an 88 µm
    pentagon (raw mono camera, a lamp falling off at the frame's left) was one dark region with the pentagon, the
    classifier gave that frame's crop the structure types together 0.9, and it joined the pentagon as a piece of a
    print larger than the field, whose stitched footprint (174 x 529 µm) no type has: a print both models were
    sure of (0.98 and 0.92) recorded as dirt (held-out seed 6719, docs/held-out.md, session 46). It still opens
    the gate for the detector.
    """
    x1, y1, x2, y2 = box
    w, h = size
    return x1 <= 0 and y1 <= 0 and x2 >= w and y2 >= h


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
    type_uncovered : bool
        Also classify the dark gate candidates that no detector box covers (half their box or more), as
        objects of detector class ``""``: the detector misses some faint prints the gate and the classifier
        see (a split ring it scored 0.22 against its threshold of 0.25, seed 5). Texture candidates
        (:func:`dark_only`) are not, nor is one that reaches all four edges of the frame (:func:`spans_frame`):
        they only wake the detector.
    scale_known : bool
        ``um_per_px`` is the frames' true pixel size (a calibrated camera), not a guess: the detector is told it
        and reads frames at the scale it was trained on (finer tiles or bare-glass padding,
        :meth:`appliance.vision.detector.Detector.detect`).
    """

    def __init__(self, detector: Detector, classifier: Any | None = None, um_per_px: float = 1.0,
                 skip_empty: bool = False, type_uncovered: bool = False, scale_known: bool = False) -> None:
        if not (isinstance(um_per_px, (int, float)) and 0.01 <= um_per_px <= 100):
            raise ValueError(f"um_per_px must be a number in [0.01, 100], got {um_per_px!r}")
        self.detector = detector
        self.classifier = classifier
        self.um_per_px = float(um_per_px)
        self.skip_empty = skip_empty
        self.type_uncovered = type_uncovered
        self.scale_known = scale_known

    def run(self, frame: np.ndarray) -> FrameResult:
        """The chain on one frame (grey or BGR, any size)."""
        gray = to_gray(frame)
        h, w = gray.shape
        cands = find_candidates(np.ascontiguousarray(gray), self.um_per_px)
        if self.skip_empty and not cands:
            return FrameResult(w, h, 0, False)
        dets = self.detector.detect(gray, self.um_per_px if self.scale_known else None)
        objs = [FoundObject(d.box, d.label, d.score) for d in dets]
        dark = dark_only(cands)
        if self.type_uncovered and self.classifier is not None:
            objs += [FoundObject(b, "", 0.0) for b in uncovered(dark, [o.box for o in objs])
                     if not spans_frame(b, (w, h))]
        if self.classifier is not None and objs:
            res = self.classifier.classify_boxes(gray, [o.box for o in objs])
            probs = [dict(zip(res.classes, (float(v) for v in row), strict=True)) for row in res.probs]
            objs = [FoundObject(o.box, o.cls, o.score, lab, float(sc), pr)
                    for o, lab, sc, pr in zip(objs, res.labels, res.scores, probs, strict=True)]
        return FrameResult(w, h, len(cands), True, objs, dark)
