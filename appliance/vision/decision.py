"""Structure or debris: one verdict from the detector's call and the classifier's distribution.

The detector (``structure`` / ``debris`` with one score, detectNet's contract) and the structure classifier
(a softmax over the five structure types and ``debris``, on a crop of the box) look at the same object in
different ways, and each is wrong in its own way (docs/scan.md, "Structure or debris"):

- the detector calls a faint or thin print ``debris`` at a low score (split rings most often: 0.25-0.4 where
  the classifier gives the ring 0.9-0.99), so "the detector says debris" alone loses real structures;
- the classifier names a dark speck of dust a pentagon or a bubble a micro-lens now and then, and sees every
  crop at one size, so "the classifier says a type" alone records dirt;
- detectNet's suppression is per class, so one object can come out as a ``structure`` box *and* a
  ``debris`` box; read one at a time, whichever the scan picks decides.

:func:`judge` makes one :class:`Evidence` of boxes that overlap (IoU >= 0.5) across the classes
(:func:`group_overlapping`, then :func:`join`): the detector's score for
each class, the classifier's distribution averaged over the boxes' crops. :func:`decide` then keeps a structure when
the classifier is sure of it (the structure types together at least ``DecisionRule.min_structure``) and the
detector's stronger class is ``structure``; also when the detector's call is ``debris`` at a low score (below
``DecisionRule.rescue_max_debris_score``) and the classifier is as sure (at least
``DecisionRule.rescue_min_structure``). A box smaller than the candidate gate's size limits is debris. The type is
the classifier's most likely structure type. A verdict also says whether the two models agreed
(:attr:`Verdict.agree`): where they did not, the scan looks again, with the object centred and then in focus, before
it records it (``appliance/scan/runner.py``).

:func:`lens_disputed` names the one confusion neither model can settle from a crop: a round object the
classifier takes for a micro-lens (at least ``DecisionRule.lens_check_min``) that is not a structure both
models agree on. A small, dim micro-lens and an air bubble look alike on opposite sides of focus; the scan
settles it with the sign of the object's phase, from two frames either side of its focus
(``appliance/vision/phasesign.py``).

>>> v = decide(Evidence((0, 0, 9, 9), {"debris": 0.29}, {"split_ring": 0.962, "debris": 0.029, "scaffold": 0.009}))
>>> v.kind, v.cls, v.rescued, v.agree
('structure', 'split_ring', True, False)
>>> decide(Evidence((0, 0, 9, 9), {"debris": 0.85}, {"pentagon": 0.95, "debris": 0.05})).kind
'debris'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from appliance.vision.gate import GateParams

DEBRIS = "debris"
STRUCTURE = "structure"
MICROLENS = "microlens"


def _unit(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


#: The smallest print the virtual catalogue makes, µm (20.2 µm over 800 prints of 40 default slides): a box
#: this large may be a print, one smaller is dust (``DecisionRule.large_min_size_um``; the scan's field focus).
SMALLEST_PRINT_UM = 20.0


@dataclass(frozen=True)
class DecisionRule:
    """How the detector's and the classifier's evidence are weighed.

    Attributes
    ----------
    min_structure : float
        A detector ``structure`` box is a structure when the classifier gives the structure types together at
        least this, in [0, 1]. Chosen on the detector's validation split as the rescue's bound was: boxes the
        detector called structure were prints 49 times in 93 where the classifier gave the types 0.5-0.9
        (dirt 38), and 604 times in 633 where it gave them 0.9 or more.
    rescue_min_structure : float
        A detector ``debris`` box is still a structure when the classifier gives the structure types together at
        least this, in [0, 1] ...
    rescue_max_debris_score : float
        ... and the detector's ``debris`` score is below this, in [0, 1] (0 turns the rescue off). Chosen on
        the detector's validation split (docs/scan.md, "Structure or debris"): below 0.35, 27 of the 29
        boxes this rescues are prints; from 0.35 to 0.6, 45 of 74, too few for slides that hold ten times
        more dust than prints.
    min_area_um2, min_size_um : float
        A box smaller than the candidate gate's size limits (its area in µm², its longer side in µm; the
        gate's defaults, docs/gate.md) is debris whatever the models say: the classifier sees every crop at
        the same size, so it cannot tell an 8 µm speck from a 40 µm pentagon by size.
    large_min_size_um, large_rescue_max_debris_score : float
        A box whose longer side is at least ``large_min_size_um`` (µm) is rescued (the classifier's types at
        ``rescue_min_structure`` or more) up to this detector ``debris`` score. The classifier sees every crop at
        one size, and the crops it wrongly sure-names a type are specks: on 13 held-out slides of session 10
        (docs/held-out.md, "Held-out slides, session 10") the debris records with the types at 0.9 or more and the
        detector's ``debris`` at 0.35-0.6 were 120 pieces of 6-22 µm and 3 prints of 49-113 µm (a pentagon
        and two split rings, lost), so the bound was 30 µm until session 24, when two pentagons of 25 and 29 µm
        (held-out seeds 2363, 2364) were lost the same way (types 0.97 and 0.998, ``debris`` 0.43 and 0.47). Now
        20 µm, the smallest print the virtual catalogue makes (20.2 µm over 800 prints): in the debris records of
        36 scans (about 7,000), one dirt piece of 20-30 µm had these scores (27 µm, at 5x, named micro-lens, where
        its phase's sign is read next). Off with a ``large_min_size_um`` of inf, and without a pixel size.
    dispute_min_structure : float
        A detector ``debris`` call is disputed (:attr:`Verdict.agree` False, so a scan looks at it again) when
        the classifier gives the structure types together at least this, in [0, 1], short of the rescue's
        bound: the classifier leans to a type, the detector to debris, and neither view is sure.
    lens_check_min : float
        An object whose likeliest structure type is ``microlens`` at least this, and which is not a structure
        both models agree on, is :func:`lens_disputed`, in [0, 1]. Micro-lenses of 20-24 µm the scans
        missed got 0.36-0.67 in the view that dropped them (docs/scan.md, step 6). On the virtual
        microscope's development slides (seeds 502-508) the views this disputes were 51 of lenses, 85 of
        bubbles and 4 of 702 dust-clump readings.
    """

    min_structure: float = 0.9
    rescue_min_structure: float = 0.9
    rescue_max_debris_score: float = 0.35
    dispute_min_structure: float = 0.5
    large_min_size_um: float = SMALLEST_PRINT_UM
    large_rescue_max_debris_score: float = 0.5
    min_area_um2: float = GateParams.min_area_um2
    min_size_um: float = GateParams.min_size_um
    lens_check_min: float = 0.3

    def __post_init__(self) -> None:
        _unit(self.min_structure, "min_structure")
        _unit(self.lens_check_min, "lens_check_min")
        _unit(self.rescue_min_structure, "rescue_min_structure")
        _unit(self.rescue_max_debris_score, "rescue_max_debris_score")
        _unit(self.dispute_min_structure, "dispute_min_structure")
        _unit(self.large_rescue_max_debris_score, "large_rescue_max_debris_score")
        for name in ("min_area_um2", "min_size_um"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v < math.inf:
                raise ValueError(f"{name} must be a number >= 0, got {v!r}")
        v = self.large_min_size_um
        if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v) or v < 0:
            raise ValueError(f"large_min_size_um must be a number >= 0 (inf turns it off), got {v!r}")


@dataclass(frozen=True)
class Verdict:
    """What one view says of one object.

    Attributes
    ----------
    kind : str
        ``structure`` or ``debris``.
    cls : str
        The structure type, or ``debris``.
    confidence : float
        For a structure, the classifier's probability of ``cls``; for debris, the detector's score when the
        detector called it debris, else the classifier's ``debris`` probability.
    structure_prob : float
        The classifier's probability summed over the structure types (NaN when no classifier ran).
    detector_label : str
        The detector's stronger class.
    agree : bool
        The detector's call and the classifier's (structure types at least ``min_structure``, or not) are the
        same: a verdict the models disagree on is worth a second look.
    rescued : bool
        A structure the detector called debris (the classifier overruled it).
    """

    kind: str
    cls: str
    confidence: float
    structure_prob: float
    detector_label: str
    agree: bool
    rescued: bool = False


Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Evidence:
    """What the detector and the classifier say of one object in one frame.

    Attributes
    ----------
    box : (float, float, float, float)
        ``x1, y1, x2, y2`` in frame pixels.
    detector : mapping of str to float
        The detector's score for each class it gave this object (``structure``, ``debris`` or both), in [0, 1];
        empty for a gate candidate the detector drew no box on, which counts as a ``debris`` call at score 0
        (the detector as unsure as it can be).
    probs : mapping of str to float
        The classifier's softmax over its labels on the box's crop; empty when no classifier ran.
    """

    box: Box
    detector: Mapping[str, float]
    probs: Mapping[str, float]

    @property
    def detector_label(self) -> str:
        """The detector's stronger class (``structure`` on a tie; ``debris`` when it drew no box)."""
        if not self.detector:
            return DEBRIS
        s, d = self.detector.get(STRUCTURE, 0.0), self.detector.get(DEBRIS, 0.0)
        return STRUCTURE if s >= d else DEBRIS


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``x1, y1, x2, y2`` boxes (0 when either is empty)."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def group_overlapping(items: Sequence[Evidence], min_iou: float = 0.5) -> list[list[int]]:
    """Which boxes are one object: indices into ``items``, one list per object, its leading box first.

    Strongest detection first; each later box joins the first group whose leading box it overlaps by
    ``min_iou`` or more, across the classes (detectNet suppresses per class, so one object can come out as a
    ``structure`` box and a ``debris`` box).

    Parameters
    ----------
    items : sequence of Evidence
        One per detector box.
    min_iou : float
        In (0, 1].
    """
    if not 0.0 < min_iou <= 1.0:
        raise ValueError(f"min_iou must be in (0, 1], got {min_iou!r}")
    order = sorted(range(len(items)), key=lambda i: -max(items[i].detector.values(), default=0.0))
    groups: list[list[int]] = []
    for i in order:
        for g in groups:
            if iou(items[g[0]].box, items[i].box) >= min_iou:
                g.append(i)
                break
        else:
            groups.append([i])
    return groups


def join(group: Sequence[Evidence]) -> Evidence:
    """One evidence of the boxes of one object.

    The first box, the highest score per detector class and the classifier's distribution averaged over the
    boxes (every box is a crop of the same object).
    """
    det: dict[str, float] = {}
    for e in group:
        for c, v in e.detector.items():
            det[c] = max(det.get(c, 0.0), float(v))
    with_probs = [e.probs for e in group if e.probs]
    labels = {c for p in with_probs for c in p}
    probs = {c: sum(float(p.get(c, 0.0)) for p in with_probs) / len(with_probs) for c in sorted(labels)}
    return Evidence(group[0].box, det, probs)


def judge(items: Sequence[Evidence], um_per_px: float | None = None,
          rule: DecisionRule | None = None) -> list[tuple[list[int], Evidence, Verdict]]:
    """Each object's verdict from the boxes of one frame: :func:`group_overlapping`, :func:`join`, :func:`decide`.

    Parameters
    ----------
    items : sequence of Evidence
        One per detector box (or gate candidate).
    um_per_px, rule
        As :func:`decide` takes them.

    Returns
    -------
    list of (list of int, Evidence, Verdict)
        Per object, strongest detection first: the indices of its boxes in ``items`` (its strongest first), the
        evidence joined over them and its verdict.
    """
    out = []
    for group in group_overlapping(items):
        joined = join([items[i] for i in group])
        out.append((group, joined, decide(joined, rule, um_per_px)))
    return out


def structure_probability(probs: Mapping[str, float]) -> float:
    """The classifier's probability that the crop is any structure: every label's but ``debris``'s."""
    return float(sum(float(p) for c, p in probs.items() if c != DEBRIS))


def decide(evidence: Evidence, rule: DecisionRule | None = None, um_per_px: float | None = None) -> Verdict:
    """One object's verdict from the detector's scores and the classifier's distribution.

    Parameters
    ----------
    evidence : Evidence
        The detector's score per class (``structure``, ``debris``; none for a candidate it drew no box on)
        and the classifier's softmax; with no classifier output the detector's call stands and a
        structure's type is ``""``.
    rule : DecisionRule, optional
        Defaults when None.
    um_per_px : float, optional
        The frame's pixel size at the sample; without it the size limits are not applied.

    Returns
    -------
    Verdict

    Raises
    ------
    ValueError
        A detector class other than ``structure`` or ``debris``, a score or probability not in [0, 1], or
        ``um_per_px`` not > 0.
    """
    r = DecisionRule() if rule is None else rule
    for c, v in evidence.detector.items():
        if c not in (STRUCTURE, DEBRIS):
            raise ValueError(f"evidence.detector: class must be 'structure' or 'debris', got {c!r}")
        _unit(v, f"evidence.detector[{c!r}]")
    for c, p in evidence.probs.items():
        if not (isinstance(p, (int, float)) and math.isfinite(p) and -1e-6 <= p <= 1.0 + 1e-6):
            raise ValueError(f"evidence.probs[{c!r}] must be a probability in [0, 1], got {p!r}")
    if um_per_px is not None and not (isinstance(um_per_px, (int, float)) and 0 < um_per_px < math.inf):
        raise ValueError(f"um_per_px must be > 0, got {um_per_px!r}")
    label = evidence.detector_label
    score = float(evidence.detector.get(label, 0.0))
    p_struct = structure_probability(evidence.probs) if evidence.probs else float("nan")
    if um_per_px is not None and _too_small(evidence.box, um_per_px, r):
        return Verdict(DEBRIS, DEBRIS, score if label == DEBRIS else 1.0 - score, p_struct, label, agree=True)
    if not evidence.probs:
        return Verdict(label, "" if label == STRUCTURE else DEBRIS, score, p_struct, label, agree=True)
    types = {c: float(p) for c, p in evidence.probs.items() if c != DEBRIS}
    best = max(types, key=lambda c: types[c]) if types else ""
    clf_structure = bool(best) and p_struct >= r.min_structure
    if label == STRUCTURE:
        agree = clf_structure
    else:  # the classifier leaning to a type, even short of the rescue's bound, disputes a debris call
        agree = not (bool(best) and p_struct >= r.dispute_min_structure)
    if label == STRUCTURE and clf_structure:
        return Verdict(STRUCTURE, best, types[best], p_struct, label, agree)
    bound = r.rescue_max_debris_score
    if um_per_px is not None and max(_size_um(evidence.box, um_per_px)) >= r.large_min_size_um:
        bound = max(bound, r.large_rescue_max_debris_score)
    if label == DEBRIS and best and score < bound and p_struct >= r.rescue_min_structure:
        return Verdict(STRUCTURE, best, types[best], p_struct, label, agree, rescued=True)
    conf = score if label == DEBRIS else float(evidence.probs.get(DEBRIS, 1.0 - p_struct))
    return Verdict(DEBRIS, DEBRIS, conf, p_struct, label, agree)


def likeliest_type(scores: Mapping[str, float]) -> str:
    """The classifier's likeliest structure type in ``scores`` (``""`` when it holds none).

    ``scores`` may also hold the detector's scores under ``detector_<class>`` keys (a scan's
    ``Detection.scores``); those and ``debris`` are not types.
    """
    types = {c: float(p) for c, p in scores.items() if c != DEBRIS and not c.startswith("detector_")}
    return max(types, key=lambda c: types[c]) if types else ""


def lens_disputed(scores: Mapping[str, float], kind: str, agree: bool, rule: DecisionRule | None = None,
                  size_um: tuple[float, float] | None = None) -> bool:
    """Whether an object is a micro-lens or a bubble only its phase can tell (``appliance/vision/phasesign.py``).

    Parameters
    ----------
    scores : mapping of str to float
        The classifier's softmax (``detector_<class>`` keys are ignored, see :func:`likeliest_type`).
    kind : str
        The verdict's ``structure`` or ``debris``.
    agree : bool
        Whether the two models agreed on it (:attr:`Verdict.agree`).
    rule : DecisionRule, optional
        ``lens_check_min`` and the size limits; defaults when None.
    size_um : (float, float), optional
        The box's width and height, µm; a box under the size limits is debris whatever the models say, so
        never disputed (the classifier names 5-8 µm specks micro-lenses at 0.4-0.6).

    Returns
    -------
    bool
        The likeliest structure type is ``microlens`` with at least ``rule.lens_check_min``, the verdict
        is not a structure both models agree on, and the box is not under the size limits.

    >>> lens_disputed({"microlens": 0.67, "debris": 0.32, "detector_debris": 0.57}, "debris", agree=True)
    True
    >>> lens_disputed({"microlens": 0.95, "detector_structure": 0.6}, "structure", agree=True)
    False
    """
    r = DecisionRule() if rule is None else rule
    if (kind == STRUCTURE and agree) or (size_um is not None and too_small(size_um, r)):
        return False
    return likeliest_type(scores) == MICROLENS and float(scores[MICROLENS]) >= r.lens_check_min


def too_small(size_um: tuple[float, float], rule: DecisionRule | None = None) -> bool:
    """Whether a box of ``size_um`` (width, height, µm) is under the rule's size limits: debris whatever the models say.

    ``DecisionRule.min_area_um2`` and ``min_size_um`` (the candidate gate's); defaults when ``rule`` is None.
    """
    r = DecisionRule() if rule is None else rule
    w, h = size_um
    return w * h < r.min_area_um2 or max(w, h) < r.min_size_um


def _size_um(box: Box, um_per_px: float) -> tuple[float, float]:
    return (float((box[2] - box[0]) * um_per_px), float((box[3] - box[1]) * um_per_px))


def _too_small(box: Box, um_per_px: float, rule: DecisionRule) -> bool:
    return too_small(_size_um(box, um_per_px), rule)
