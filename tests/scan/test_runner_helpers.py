"""Which field frames may give the map of the glass their focus, when a phase proves a lens, and when the gate sees an
object neither model boxes (runner helpers)."""

import pytest

from appliance.scan.protocols import Detection
from appliance.scan.verdicts import may_show_a_print


def _det(box, kind="debris", recheck=False):
    return Detection(box, kind, "woodpile" if kind == "structure" else "debris", 0.5, {}, recheck=recheck)


def test_a_disputed_piece_of_a_print_at_the_edge_keeps_the_fields_focus_off_the_map():
    # held-out seed 2420: a 94 um woodpile cut by a field's corner, disputed debris there (90 x 90 px at
    # 0.56 um/px); the field's search focused on it, 18 um above the glass, and the map learnt that
    um, size = 0.56, (640, 480)
    assert may_show_a_print([_det((0, 383, 90, 473), recheck=True)], size, um)
    assert may_show_a_print([_det((10, 10, 60, 60), kind="structure")], size, um)
    # a disputed speck at the edge (10 um), a whole disputed clump, a sure debris call, or nothing: the
    # field's focus is the glass's
    assert not may_show_a_print([_det((0, 100, 18, 118), recheck=True)], size, um)
    assert not may_show_a_print([_det((200, 200, 290, 290), recheck=True)], size, um)
    assert not may_show_a_print([_det((0, 383, 90, 473))], size, um)
    assert not may_show_a_print([], size, um)


def test_a_converging_phase_proves_a_lens_only_where_it_was_measured_to():
    from appliance.scan.verdicts import phase_proves_lens

    assert phase_proves_lens(0.56, 11.0)  # 10x: the cheap colour camera's 55 um lens (seed 2375)
    assert not phase_proves_lens(0.1, 11.0)  # unclear
    assert not phase_proves_lens(-0.5, 11.0)  # diverging: a bubble
    assert not phase_proves_lens(None, 11.0)  # not read
    assert not phase_proves_lens(0.56, 66.2)  # 5x / NA 0.1: dust read up to 0.56 there


def test_the_gate_sees_an_object_where_a_dark_candidate_covers_half_its_box():
    from appliance.scan.verdicts import gate_sees

    ring = (213, 93, 426, 386)  # held-out seed 2513's 82 um ring at 20x, centred; the gate's candidate beside it
    assert gate_sees([(128, 96, 399, 367)], ring)  # covers 81 % of it
    assert not gate_sees([(128, 96, 399, 367)], ring, min_cover=0.9)
    assert not gate_sees([(300, 200, 320, 220)], ring)  # a speck inside it is not it
    assert not gate_sees([(600, 440, 640, 480)], (300, 220, 340, 260))  # a vignetted corner: the centre is bare
    assert not gate_sees([], ring)
    assert not gate_sees([(0, 0, 640, 480)], (5, 5, 5, 9))  # an empty box


def test_a_view_sure_of_dirt_is_no_longer_a_disputed_lens():
    from appliance.scan.verdicts import still_a_lens

    # held-out seed 5406's scratch, sharp: the classifier's debris 0.998 and its types near nothing, the lens the
    # likeliest of them by a hair
    scratch = {"debris": 0.998, "microlens": 0.0008, "pentagon": 0.0001, "scaffold": 0.0004, "split_ring": 0.0002,
               "woodpile": 0.0005, "detector_debris": 0.79}
    assert not still_a_lens(scratch)
    # the cheap colour camera's 48 µm lens at 20x, sharp (held-out seed 2906): a lens the classifier doubts
    assert still_a_lens({"debris": 0.80, "microlens": 0.18, "detector_structure": 0.71})
    assert still_a_lens({"debris": 0.69, "microlens": 0.0506, "pentagon": 0.01})  # the least of sessions 41-42
    assert not still_a_lens({"debris": 0.5, "microlens": 0.2, "woodpile": 0.3})  # likeliest a woodpile
    assert not still_a_lens({"debris": 1.0}) and not still_a_lens({})


def test_no_eta_until_a_few_fields_are_timed_and_then_at_their_rate_after_the_first() -> None:
    """The first field carries the run's start: 'ETA 795 s' after it, for a scan of 70 s."""
    from appliance.scan.runner import ETA_AFTER_FIELDS, eta_s

    assert ETA_AFTER_FIELDS == 3
    assert eta_s([], 0, 1, 129) is None and eta_s([(0.5, 0)], 0, 2, 128) is None
    assert eta_s([(0.5, 0), (0.5, 0)], 0, 3, 127) == pytest.approx(63.5)  # 2 fields after the first, 0.5 s each
    assert eta_s([(0.5, 0), (0.5, 0)], 0, 3, -1) == 0.0


def test_the_eta_discounts_the_start_of_a_scan() -> None:
    """The plain rate since the first field said 2-3 times the time left over the first 5 % of the README slide:
    its first fields search for the slide's focus, and its first structure's stack warms its code."""
    from appliance.scan.runner import eta_s

    # 40 fields: the first 20 searched for focus (0.3 s), then 0.05 s each; one structure at 1.05 s (1 s its own)
    timed = [(0.3, 0)] * 20 + [(0.05, 0)] * 9 + [(1.05, 1)] + [(0.05, 0)] * 10
    assert eta_s(timed, 1, 41, 1000) == pytest.approx(1000 * (0.05 + 1.0 / 41))  # the rate since: 0.18 s a field
    # the first structure of two took 4 s more (its code warmed), the second 1 s: the lower is the typical one
    timed = [(0.05, 0)] * 30 + [(4.05, 1), (1.05, 1)]
    assert eta_s(timed, 2, 33, 100) == pytest.approx(100 * (0.05 + 1.0 * 2 / 33))
    # two structures in one field cost one each; a field of structures alone in the later half: the empty ones before
    assert eta_s([(0.1, 0), (0.1, 0), (2.1, 2), (2.1, 2)], 4, 5, 10) == pytest.approx(10 * (0.1 + 1.0 * 4 / 5))


def test_an_object_only_the_classifier_named_is_dirt_when_centring_finds_nothing_dark_there():
    # held-out seed 7302 (light 1.17 of its median left undivided): the gate's noise in a band of every field gave
    # "objects" the detector never boxed and the classifier named scaffolds from blank crops; centred, nothing was
    # there, and each was kept where the field saw it and recorded: 10 structures on bare glass
    from dataclasses import replace
    from types import SimpleNamespace

    import numpy as np

    from appliance.hardware.camera.base import Frame, Position
    from appliance.scan.protocols import VisionResult
    from appliance.scan.runner import ScanRunner

    r = object.__new__(ScanRunner)
    r.slide_or_optics = SimpleNamespace(fixed_in_frame=lambda *args: False)
    size = (640, 480)
    frame = Frame(np.full((480, 640), 156, np.uint8), Position(960.0, 219.0, 93.0), 0.0, 10.0, {})
    noise = (198, 0, 290, 87), (225, 57, 277, 125), (214, 245, 266, 312)  # the band, off the centred box
    bare = VisionResult(len(noise), (), candidate_boxes=noise)
    det = Detection((204, 162, 244, 210), "structure", "scaffold", 0.6,
                    {"scaffold": 0.6, "woodpile": 0.23, "microlens": 0.1, "debris": 0.06}, recheck=True)
    got, _, sure = r._lost_while_centring(det, frame, frame, bare, size, None, False)
    assert got.kind == "debris" and sure
    # the detector boxed it in its field: kept, its sharp frame decides (a faint print the gate passes over)
    boxed = replace(det, scores={**det.scores, "detector_structure": 0.3})
    got, _, sure = r._lost_while_centring(boxed, frame, frame, bare, size, None, False)
    assert got.kind == "structure" and not sure
    # the gate sees something dark where it should be: kept too
    dark = VisionResult(1, (), candidate_boxes=((290, 210, 352, 272),))
    got, _, _ = r._lost_while_centring(det, frame, frame, dark, size, None, False)
    assert got.kind == "structure"
