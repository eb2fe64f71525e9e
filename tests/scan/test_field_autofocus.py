"""Where a field's own autofocus searches and leaves the field; an object past the end of the travel.

A field that the focus map placed, but that the runner measures anyway (no focused point within
``MAP_REFRESH_UM``, or the map leaning on its slope), used to be searched around the last focus found, which on
a snake over a tilted slide lies millimetres away: on the default slide, seed 406 (2 µm/mm), fields were
searched around a z 12-19 µm above their glass, found nothing, and were imaged there, out of focus.
"""

from __future__ import annotations

import threading
from collections import deque
from types import SimpleNamespace

import numpy as np
import pytest

from appliance.hardware.camera.base import Frame
from appliance.hardware.stage.base import Position, StageLimitError
from appliance.scan.adapters import FocusMapAdapter
from appliance.scan.calibration import Calibration
from appliance.scan.field_focus import FIELD_VIEW_ABOVE_GLASS_UM, LOST_LOOKS, FieldFocus, FieldWork
from appliance.scan.grid import FieldPosition
from appliance.scan.plan import FocusPlan, ScanPlan
from appliance.scan.protocols import Detection, FocusOutcome
from appliance.scan.runner import ScanRunner
from appliance.scan.slide_or_optics import SlideOrOptics
from appliance.scan.stitcher import Stitcher

GLASS_UM = 92.0


class _Stage:
    def __init__(self, z: float) -> None:
        self.z = z

    def position_um(self) -> SimpleNamespace:
        return SimpleNamespace(x_um=3400.0, y_um=2200.0, z_um=self.z)

    def focus_to_um(self, z: float) -> None:
        self.z = z


class _Focuser:
    """Finds the glass when it lies inside the searched range (as a classical search does), else fails."""

    def __init__(self, glass: float) -> None:
        self.glass = glass
        self.guesses: list[float] = []

    def focus(self, stage, camera, z_guess_um, range_um, roi_px=None, cls=None) -> FocusOutcome:
        self.guesses.append(z_guess_um)
        if abs(self.glass - z_guess_um) <= range_um:
            stage.focus_to_um(self.glass)
            return FocusOutcome(self.glass, 7, True, glass=True)
        stage.focus_to_um(z_guess_um + range_um)
        return FocusOutcome(z_guess_um + range_um, 7, False)


def _runner(glass: float, last_focus: float, field_focus: str = "map") -> FieldFocus:
    """A field focus that has found the glass at ``last_focus``, with no map yet and no structures' word on it."""
    r = FieldFocus(_Stage(last_focus), None, _Focuser(glass), SimpleNamespace(predict=lambda x, y: None),
                   FocusPlan(search_range_um=15.0, field_focus=field_focus), 0.56, z_start_um=last_focus)
    r._focus_found = r._guess_on_glass = True
    return r


def _field(map_z: float, source: str = "map") -> FieldWork:
    w = FieldWork(FieldPosition(cell=289, row=4, column=10, x_um=3400.0, y_um=2200.0), seq=299)
    w.z_um, w.focus_source = map_z, source
    return w


def test_a_measured_map_field_is_searched_around_the_maps_z_not_the_last_focus():
    # the map puts the field at 99 (7 um above its glass at 92); the last focus, 6 mm away, was 110
    r, w = _runner(GLASS_UM, 110.0), _field(99.0)
    r.autofocus_field(w)
    assert r.focuser.guesses[0] == 99.0
    assert w.focus_source == "autofocus" and w.z_um == GLASS_UM and r._z_guess == GLASS_UM


def test_a_failed_search_leaves_the_field_at_the_maps_z():
    # nothing to focus on near either z: the frame is taken where the map says, not 18 um above the glass
    r, w = _runner(60.0, 110.0), _field(99.0)
    r.autofocus_field(w)
    assert r.focuser.guesses == [99.0, 110.0]  # the map's z, then where focus was last found
    assert w.focus_source == "autofocus-unsure" and w.z_um == 99.0 and r.stage.z == 99.0


def test_a_map_that_ran_off_is_searched_again_at_the_last_focus():
    # the map leaning on its slope (45 um up a level slide, seed 86): its z fails, the last focus finds the glass
    r, w = _runner(GLASS_UM, 93.0), _field(137.0)
    r.autofocus_field(w)
    assert r.focuser.guesses == [137.0, 93.0]
    assert w.focus_source == "autofocus" and w.z_um == GLASS_UM


def test_field_focus_autofocus_still_starts_at_the_last_focus():
    # with `field_focus: autofocus` the field has no z of its own before its search
    r, w = _runner(GLASS_UM, 95.0, field_focus="autofocus"), _field(0.0)
    r.autofocus_field(w)
    assert r.focuser.guesses[0] == 95.0 and w.z_um == GLASS_UM


class _EdgeStage(_Stage):
    """A stage whose x travel starts at 0 (as the virtual stage's and GRBL's soft limits)."""

    def __init__(self) -> None:
        super().__init__(95.0)
        self.xy = (79.6, 559.7)

    def move_to_um(self, x=None, y=None, z=None):
        if x is not None and x < 0:
            raise StageLimitError(f"x target {x} um is outside the soft limits [0.0, 25000.0] um")
        self.xy = (self.xy[0] if x is None else x, self.xy[1] if y is None else y)


def test_an_object_past_the_end_of_the_travel_is_judged_where_it_was_seen():
    # a field at x 79.6 um overhangs the slide's left end by 100 um; something seen at its left edge lies at
    # stage x -15 um, and centring it failed the scan with StageLimitError (seed 412, 4 x 4 mm, cheap camera)
    r = object.__new__(ScanRunner)
    r.plan = ScanPlan()
    r.approach_um = r.plan.imaging.approach_um
    r.stage = _EdgeStage()
    r.camera = SimpleNamespace(size_px=(640, 480))
    r.cal = Calibration.nominal(0.56, (640, 480))
    r._resume_evt = threading.Event()
    r._resume_evt.set()
    r._cancel, r._lock = False, threading.Lock()
    r._step = r._cell = None
    r._xy_loaded = None
    r.slide_or_optics = SlideOrOptics(r.camera, r.cal, r._approach, r._analyse)
    pos = Position(79.6, 559.7, 95.0)
    frame = Frame(np.zeros((480, 640), np.uint8), pos, 0.0, 10.0, {})
    det = Detection((0, 200, 24, 240), "debris", "debris", 0.4, recheck=True)
    got, seen_in, sure = r._centre(det, frame, 95.0)
    assert got == det and seen_in is frame and not sure
    assert r.stage.xy == (79.6, 559.7)  # back where the view was taken


class _TopEdgeStage(_EdgeStage):
    """The travel starts at x 0 and y 0; the stage stands in the slide's top row."""

    def __init__(self) -> None:
        super().__init__()
        self.xy = (400.0, 20.0)

    def move_to_um(self, x=None, y=None, z=None):
        if y is not None and y < 0:
            raise StageLimitError(f"y target {y} um is outside the soft limits [0.0, 25000.0] um")
        super().move_to_um(x, y, z)

    def position_um(self) -> SimpleNamespace:
        return SimpleNamespace(x_um=self.xy[0], y_um=self.xy[1], z_um=self.z)


class _Camera:
    size_px = (160, 120)

    def __init__(self, stage: _TopEdgeStage) -> None:
        self.stage = stage

    def capture(self) -> Frame:
        return Frame(np.zeros((120, 160), np.uint8), Position(*self.stage.xy, 95.0), 0.0, 10.0, {})


class _CutAtTheTop:
    """Every view shows a print reaching past the frame's top edge (a print at the slide's top end)."""

    def analyse(self, frame):
        from appliance.scan.protocols import VisionResult

        return VisionResult(1, [Detection((50, 0, 110, 70), "structure", "scaffold", 0.9)])


def test_a_print_cut_at_the_end_of_the_travel_is_stitched_without_looking_past_it():
    # a print cut by a field's top edge, in the slide's top row: the view past that edge is centred at stage
    # y < 0, and StageLimitError there failed the scan (cheap colour camera, seed 496, main at 2c33e3f)
    r = object.__new__(ScanRunner)
    r.plan = ScanPlan()
    r.approach_um = r.plan.imaging.approach_um
    r.stage = _TopEdgeStage()
    r.camera = _Camera(r.stage)
    r.vision = _CutAtTheTop()
    r.cal = Calibration.nominal(0.56, (160, 120))
    r._analysed = deque(maxlen=4)
    r._emit = lambda e: None
    r._xy_loaded = None
    stitcher = Stitcher(r.camera, r.cal, r._approach, r._analyse, r._analysis_of,
                        SlideOrOptics(r.camera, r.cal, r._approach, r._analyse))
    frame = r.camera.capture()
    det = r.vision.analyse(frame).detections[0]
    r._analysed.append((frame, r.vision.analyse(frame)))
    piece, view, fp = stitcher.stitch(det, frame, [det], frame)
    assert piece.kind == "structure" and fp.views <= 10
    assert fp.box_um[1] < 0.0  # the footprint reaches the frame's top: its top side was closed, not seen


def _deciding(points: list[tuple[float, float, float]]) -> FieldFocus:
    """A field focus that has found focus, with ``points`` in its map."""
    r = FieldFocus(None, None, None, FocusMapAdapter(), FocusPlan(search_range_um=15.0), 0.56)
    r._focus_found = r._guess_on_glass = True
    for p in points:
        r.add_point(*p)
    return r


def _at(x: float, source: str, y: float = 29.0) -> tuple[FieldPosition, FieldWork]:
    pos = FieldPosition(cell=int(x + y), row=int(y // 271), column=int(x // 322), x_um=x, y_um=y)
    w = FieldWork(pos, seq=int(x))
    w.z_um, w.focus_source = 89.0 + (FIELD_VIEW_ABOVE_GLASS_UM if source == "map" else 0.0), source
    return pos, w


def _looked(r: FieldFocus, x: float, y: float = 29.0, found: float | None = None, seen: bool = True) -> None:
    """What a field's own autofocus leaves: its point, or that it found nothing (``seen``: with something in view)."""
    if found is None:
        r._unfocused.append((x, y, seen))
    else:
        r.add_point(x, y, found)


def test_an_empty_view_the_map_cannot_place_is_looked_at_but_not_again_near_a_failed_look():
    # the first row of a tilted slide: one focus found at x = 167, no map yet (one point); the row runs on at
    # that z, and 2 µm/mm further on its views are empty only because they are out of focus (seed 431)
    r = _deciding([(167.0, 29.0, 89.0)])
    assert r.wants_autofocus(*_at(1134.0, "guess"), 0)      # no map to place it: look
    _looked(r, 1134.0, seen=False)                           # ... and found nothing it could trust
    assert not r.wants_autofocus(*_at(1456.0, "guess"), 0)  # 322 µm on: not again
    assert r.wants_autofocus(*_at(1778.0, "guess"), 0)      # 644 µm past that look: again
    _looked(r, 1778.0, found=90.0)                           # found the glass: a point, and no bar near it
    assert r.wants_autofocus(*_at(2100.0, "guess"), 0)      # two points are no map yet


def test_a_map_is_trusted_near_its_points_and_looked_past_where_it_is_unsure():
    # Five points 322 µm apart at a row's start, read to about a micrometre: the map places the next fields,
    # and further on (still within MAP_REFRESH_UM of a point) its sigma says it does not know; nor does it know
    # the next row's glass (no point says anything of the cross tilt). Three points, fitted exactly, placed
    # fields with their prior's 1 µm; at 4 µm/mm the row then walked off its glass (seed 412).
    r = _deciding([(167.0, 29.0, 89.0), (489.0, 29.0, 90.0), (811.0, 29.0, 88.0), (1133.0, 29.0, 89.8),
                   (1455.0, 29.0, 88.4)])
    assert not r.wants_autofocus(*_at(2100.0, "map"), 0)
    assert r.wants_autofocus(*_at(3066.0, "map"), 0)          # 1.6 mm past the last point: unsure, look
    assert r.wants_autofocus(*_at(3066.0, "map"), 2)          # something in view there too
    assert r.wants_autofocus(*_at(489.0, "map", y=300.0), 0)  # the next row
    assert not r.wants_autofocus(*_at(489.0, "map"), 2)       # between its points it is sure
    r2 = _deciding([(167.0, 29.0, 89.0), (489.0, 29.0, 90.0), (811.0, 29.0, 88.0)])
    assert r2.wants_autofocus(*_at(650.0, "guess"), 0)        # three points fitted exactly are no map yet


def test_an_empty_view_far_from_every_point_is_looked_at_once_per_refresh_distance():
    # a map sure everywhere (many points of a level slide) still looks 1.5 mm from every point
    pts = [(x, y, 89.0) for x in np.linspace(0.0, 1000.0, 5) for y in (0.0, 600.0)]
    r = _deciding(pts)
    assert not r.wants_autofocus(*_at(1400.0, "map"), 0)
    assert r.wants_autofocus(*_at(2700.0, "map"), 0)
    assert not r.wants_autofocus(*_at(3000.0, "map"), 0)
    assert r.wants_autofocus(*_at(3000.0, "map"), 2)         # something in view, no point near: measure


class _TopZStage(_Stage):
    """A focus travel that ends at 180 µm (the virtual stage's and a GRBL board's soft limit)."""

    def focus_to_um(self, z: float) -> None:
        if not 0.0 <= z <= 180.0:
            raise StageLimitError(f"z target {z} um is outside the soft limits [0.0, 180.0] um")
        self.z = z


class _UnsureMap:
    def __init__(self, z: float) -> None:
        self.z = z

    def predict(self, x: float, y: float) -> tuple[float, float]:
        return self.z, 50.0  # far less sure than half the search range: a guess only


def test_an_unsure_map_past_the_focus_travel_leaves_the_field_at_the_last_focus():
    """The cheap colour camera on a tilted slide (seed 412): an unsure map extrapolated to 180.8 µm and the
    scan failed with StageLimitError after 180 of 221 fields."""
    r = _runner(GLASS_UM, last_focus=150.0)
    r.stage = _TopZStage(150.0)
    r.focus_map = _UnsureMap(180.8)
    w = _field(0.0)
    r.set_field_z(w)
    assert (w.z_um, w.focus_source, r.stage.z) == (150.0, "guess", 150.0)


class _SureOrNot:
    def __init__(self, z: float, sigma: float) -> None:
        self.z, self.sigma = z, sigma

    def predict(self, x: float, y: float) -> tuple[float, float]:
        return self.z, self.sigma


def test_a_field_the_map_is_not_sure_of_is_viewed_above_the_glass_it_guesses():
    # An unsure map (or only the last focus found) still says where the glass most likely is: the view goes
    # FIELD_VIEW_ABOVE_GLASS_UM above it, as for a field the map places (at the glass a tall print is 8 µm below
    # its mid-plane; the cheap colour camera's scan of seed 443 lost a woodpile so)
    for fmap, want in ((_SureOrNot(90.0, 1.0), "map"), (_SureOrNot(90.0, 9.0), "guess")):
        r = _runner(GLASS_UM, last_focus=92.0)
        r.focus_map = fmap
        w = _field(0.0)
        r.set_field_z(w)
        assert (w.z_um, w.focus_source, r.stage.z) == (90.0 + FIELD_VIEW_ABOVE_GLASS_UM, want, w.z_um)
    r = _runner(GLASS_UM, last_focus=92.0)
    r.focus_map = SimpleNamespace(predict=lambda x, y: None)
    w = _field(0.0)
    r.set_field_z(w)
    assert (w.z_um, w.focus_source) == (92.0 + FIELD_VIEW_ABOVE_GLASS_UM, "guess")
    r = _runner(GLASS_UM, last_focus=140.0)
    r._focus_found = r._guess_on_glass = False  # no focus found yet: the last guess is where a search started
    r.focus_map = SimpleNamespace(predict=lambda x, y: None)
    w = _field(0.0)
    r.set_field_z(w)
    assert (w.z_um, w.focus_source) == (140.0, "guess")


class _ObjectFocuser(_Focuser):
    """No speck in view: the search focuses on an object, ``above`` µm over the glass (its mid-plane)."""

    def __init__(self, glass: float, above: float) -> None:
        super().__init__(glass)
        self.above = above

    def focus(self, stage, camera, z_guess_um, range_um, roi_px=None, cls=None) -> FocusOutcome:
        out = super().focus(stage, camera, z_guess_um, range_um, roi_px, cls)
        stage.focus_to_um(out.z_um + self.above)
        return FocusOutcome(out.z_um + self.above, out.frames, out.ok, glass=False)


class _ObjectsMap(_SureOrNot):
    """A map that answers from the fields' foci: no glass read yet."""

    def reads_glass(self) -> bool:
        return False


def test_a_map_of_objects_foci_is_viewed_as_it_is():
    # at 40x most fields show no speck: the map's first points are objects' mid-planes (a bubble, a scaffold's
    # corner, 8-10 µm above the glass), and 5 µm above them put the views 13 µm above the glass (seed 4604)
    for fmap, want in ((_ObjectsMap(98.0, 1.0), "map"), (_ObjectsMap(98.0, 9.0), "guess")):
        r = _runner(GLASS_UM, last_focus=92.0)
        r._guess_on_glass = False
        r.focus_map = fmap
        w = _field(0.0)
        r.set_field_z(w)
        assert (w.z_um, w.focus_source, w.glass_um, r.stage.z) == (98.0, want, None, 98.0)
    # a glass reading beats an unsure map of objects: 5 µm above it
    r = _runner(GLASS_UM, last_focus=92.0)
    r.focus_map = _ObjectsMap(98.0, 9.0)
    w = _field(0.0)
    r.set_field_z(w)
    assert (w.z_um, w.glass_um) == (92.0 + FIELD_VIEW_ABOVE_GLASS_UM, 92.0)


def test_the_adapter_says_when_it_answers_from_the_glass():
    from appliance.scan.adapters import CHECKED_POINTS, FocusMapAdapter

    m = FocusMapAdapter()
    for k in range(CHECKED_POINTS):
        m.not_glass(100.0 * k, 0.0, 98.0)
        m.add(100.0 * k, 0.0, 98.0)
    assert m.predict(50.0, 0.0) is not None and not m.reads_glass()
    for k in range(CHECKED_POINTS):
        m.add(100.0 * k, 300.0, 90.0)
    assert m.reads_glass() and abs(m.predict(50.0, 300.0)[0] - 90.0) < 0.5


def test_an_objects_focus_is_viewed_as_it_is_and_does_not_replace_the_glass():
    # at 40x a field's search found no speck and focused on a dust clump, 7 µm above the glass: the next fields
    # are viewed there, not 5 µm above it (two such foci raised the views 17 µm above the glass, seed 4705)
    r = _runner(GLASS_UM, last_focus=GLASS_UM)
    r._guess_on_glass = False  # the scan has not read the glass
    r.focuser = _ObjectFocuser(GLASS_UM, 7.0)
    w = _field(GLASS_UM, "guess")
    r.autofocus_field(w)
    assert (w.focus_source, r._z_guess, r._guess_on_glass) == ("autofocus", GLASS_UM + 7.0, False)
    nxt = _field(0.0)
    r.set_field_z(nxt)
    assert (nxt.z_um, nxt.glass_um) == (GLASS_UM + 7.0, None)
    # once the glass is read, an object's focus leaves it the guess
    r.focuser = _Focuser(GLASS_UM)
    r.autofocus_field(_field(GLASS_UM + 7.0, "guess"))
    assert (r._z_guess, r._guess_on_glass) == (GLASS_UM, True)
    r.focuser = _ObjectFocuser(GLASS_UM, 7.0)
    r.autofocus_field(_field(GLASS_UM, "guess"))
    assert (r._z_guess, r._guess_on_glass) == (GLASS_UM, True)
    nxt = _field(0.0)
    r.set_field_z(nxt)
    assert nxt.z_um == GLASS_UM + FIELD_VIEW_ABOVE_GLASS_UM


def test_a_failed_look_at_bare_glass_does_not_stop_a_field_with_something_in_view():
    # at 40x a sparse slide's fields are bare glass: their searches fail whatever the camera. A blur in view 322
    # µm on is looked at (a micro-lens 14 µm above the fields' z, undetected there, seed 4604); once a look with
    # something in view has failed too, the camera is what cannot focus, and its neighbours do not look again
    r = _deciding([(167.0, 29.0, 89.0)])
    _looked(r, 1134.0, seen=False)
    assert not r.wants_autofocus(*_at(1456.0, "guess"), 0)
    assert r.wants_autofocus(*_at(1456.0, "guess"), 1)
    _looked(r, 1456.0, seen=True)
    assert not r.wants_autofocus(*_at(1778.0, "guess"), 1)
    assert not r.wants_autofocus(*_at(1778.0, "guess"), 0)


def test_a_field_records_whether_its_failed_look_had_something_in_view():
    r = _deciding([(167.0, 29.0, 89.0)])
    for first, after, seen in ((0, 0, False), (2, 0, True), (0, 1, True)):
        pos, w = _at(1134.0, "guess")
        w.focus_source = "autofocus-unsure"
        r.after_autofocus(pos, w, first, after)
        assert r._unfocused[-1] == (1134.0, 29.0, seen)


def test_until_focus_is_found_every_field_looks_but_only_for_so_many_fields():
    r = _deciding([])
    r._focus_found = False
    r._unfocused.append((1134.0, 29.0, True))
    r._lost_looks = 1
    assert r.wants_autofocus(*_at(1456.0, "guess"), 0)      # a slide put in by hand: look again next door
    r._lost_looks = LOST_LOOKS                               # a camera that finds nothing it can trust
    assert not r.wants_autofocus(*_at(1456.0, "guess"), 2)
    assert r.wants_autofocus(*_at(1778.0, "guess"), 2)


def test_a_field_focus_with_a_structure_in_view_is_not_the_next_fields_guess():
    # the field's autofocus found a focus (the print's mid-plane, 14 µm up); the map does not take it, and the
    # next fields at a guess are not viewed above it either
    r = _runner(GLASS_UM, last_focus=92.0)
    w = _field(92.0, source="guess")
    r.focuser.glass = 106.0
    r.autofocus_field(w)
    assert (w.focus_source, r._z_guess, w.guess_before) == ("autofocus", 106.0, (92.0, True))
    r._keep_glass_guess(w)
    assert r._z_guess == 92.0


def _structures_around(glass: float) -> FocusMapAdapter:
    """A map told of five structures (foci less the catalogue's 8.7 ± 3.5 µm) around a field at (3400, 2200)."""
    m = FocusMapAdapter()
    for (x, y), dz in zip(((3000, 1900), (3900, 2000), (3300, 2600), (3700, 2500), (3100, 2300)),
                          (1.5, -2.0, 2.5, -1.0, 0.5), strict=True):
        m.add_structure(x, y, glass + 8.7 + dz, None, loose=(8.7, 3.5))
    return m


def test_a_field_reading_the_structures_around_contradict_is_not_taken():
    # The cheap colour camera's empty-field reading 17 µm above the glass passed the curve's own tests (rise,
    # one lobe) and set the guess the following fields were viewed at (seed 443, session 8); five structures
    # around, each loose, put the glass at 92
    r = _runner(GLASS_UM, last_focus=GLASS_UM)
    r.focus_map = _structures_around(GLASS_UM)
    r.focuser.glass = GLASS_UM + 17.0  # what the search reads
    w = _field(GLASS_UM + FIELD_VIEW_ABOVE_GLASS_UM, source="guess")
    r.autofocus_field(w)
    assert (w.focus_source, w.focus_point, r._z_guess) == ("autofocus-unsure", None, GLASS_UM)
    r.focuser.glass = GLASS_UM + 2.0  # a reading within their spread is taken
    r.autofocus_field(w)
    assert (w.focus_source, r._z_guess) == ("autofocus", GLASS_UM + 2.0)


def test_a_field_at_a_guess_is_viewed_above_the_glass_the_structures_say():
    # no map of the glass yet (the cheap colour camera reads it on a few fields of 221): the structures'
    # foci less their reference heights say where it is, where the last focus found lies millimetres away
    r = _runner(GLASS_UM, last_focus=GLASS_UM + 12.0)
    r.focus_map = _structures_around(GLASS_UM)
    w = _field(0.0)
    r.set_field_z(w)
    assert w.focus_source == "guess"
    assert abs(w.z_um - (GLASS_UM + FIELD_VIEW_ABOVE_GLASS_UM)) < 1.5


def test_a_reading_taken_before_the_structures_could_say_leaves_the_guess_once_they_do():
    # one wrong reading 17 µm up, taken when two structures had been focused (too few to check it: they fit a
    # constant, as sure 3 mm away as beside them); from the fifth on, the guess is theirs
    m = FocusMapAdapter()
    m.add(3400.0, 2200.0, GLASS_UM + 17.0)
    assert m.guess(3400.0, 2200.0) is None  # no structure yet: the runner's own last focus stands
    few = _structures_around(GLASS_UM)
    for i, pt in enumerate(few._loose):
        x, y, z, h, sd = pt
        m.add_structure(x, y, z, None, loose=(h, sd))
        z_guess = m.guess(3400.0, 2200.0)
        if i < 3:
            assert z_guess is None  # fewer than five points in all: no plane whose scatter shows
        elif i >= 4:
            assert abs(z_guess[0] - GLASS_UM) < 2.0
    assert not m.contradicted(3400.0, 2200.0, GLASS_UM + 2.0) and m.contradicted(3400.0, 2200.0, GLASS_UM + 17.0)


def test_a_resumed_scan_tells_the_focuser_of_its_structures_but_not_as_evidence_of_the_glass():
    # a structure's focus feeds the maps that focus structures (the foci's, the glass's with a stated height);
    # whether its curve was one lobe (what makes it evidence of the glass) is not recorded, so it is not that
    from appliance.results.store import ObjectRecord

    told: list[tuple] = []
    r = object.__new__(ScanRunner)
    r.scan_id, r._done, r._known, r._n_struct, r._n_debris = 1, {}, [], 0, 0
    r.focuser = SimpleNamespace(structure_focused=lambda *a, **k: told.append((a, k)))
    r.field_focus = FieldFocus(None, None, r.focuser, None, FocusPlan(), 0.56)
    obj = ObjectRecord(cell=3, kind="structure", cls="pentagon", confidence=0.9, x_um=500.0, y_um=700.0, z_um=101.0,
                       width_um=40.0, height_um=40.0, extra={"focus_ok": True})
    # a record that keeps its autofocus's z apart from its stack's focus: the maps had the autofocus's live
    stacked = ObjectRecord(cell=4, kind="structure", cls="woodpile", confidence=0.9, x_um=900.0, y_um=700.0,
                           z_um=96.5, width_um=40.0, height_um=40.0, extra={"focus_ok": True, "autofocus_z_um": 100.0})
    # a servo's record: the stage stood on the degree 100, the frames read 100.4, and the maps had the reading
    servo = ObjectRecord(cell=5, kind="structure", cls="scaffold", confidence=0.9, x_um=1300.0, y_um=700.0,
                         z_um=100.4, width_um=40.0, height_um=40.0,
                         extra={"focus_ok": True, "autofocus_z_um": 100.0, "focus_reading_um": 100.4})
    r.store = SimpleNamespace(fields=lambda sid: [], objects=lambda sid: [obj, stacked, servo])
    r._load_committed()
    assert told == [((500.0, 700.0, 101.0, "pentagon"), {}), ((900.0, 700.0, 100.0, "woodpile"), {}),
                    ((1300.0, 700.0, 100.4, "scaffold"), {})]


def test_a_structure_focus_is_evidence_of_the_glass_only_when_its_curve_is_one_lobe():
    # the cheap colour camera's structure foci whose curves zigzag lay 5-30 µm off and followed the z their
    # search started from (seed 441): fed to the guess, they walked the fields 8 µm below their glass
    from appliance.focus.reference import ReferenceHeight
    from appliance.scan.adapters import AutofocusFocuser, _one_lobe

    assert _one_lobe([(0.0, 1.0), (4.0, 2.0), (8.0, 5.0), (12.0, 2.0), (16.0, 1.0)])
    assert not _one_lobe([(0.0, 1.0), (4.0, 5.0), (8.0, 2.0), (12.0, 5.0), (16.0, 1.0)])
    m = FocusMapAdapter()
    f = AutofocusFocuser("classical", (0.0, 200.0), focus_map=m,
                         reference_heights={"pentagon": ReferenceHeight(8.7, 3.6, "sim catalogue")})
    f.structure_focused(500.0, 700.0, 101.0, "pentagon")
    assert len(m.structures) == 0 and len(m.foci) == 1
    f.structure_focused(500.0, 700.0, 101.0, "pentagon", evidence=True)
    assert len(m.structures) == 1 and m.structures.predict(500.0, 700.0)[0] == pytest.approx(101.0 - 8.7)


def test_structures_that_scatter_leave_a_field_at_the_last_focus():
    # the cheap colour camera's structure foci lay 5-27 µm off (seed 443): a plane through them is not sure, and
    # a field at a guess stays above the last focus found, not on their tilt (fields up to 60 µm off before)
    r = _runner(GLASS_UM, last_focus=GLASS_UM)
    m = FocusMapAdapter()
    for (x, y), dz in zip(((3000, 1900), (3900, 2000), (3300, 2600), (3700, 2500), (3100, 2300)),
                          (15.0, -12.0, 20.0, -9.0, 27.0), strict=True):
        m.add_structure(x, y, GLASS_UM + 8.7 + dz, None, loose=(8.7, 3.5))
    r.focus_map = m
    w = _field(0.0)
    r.set_field_z(w)
    assert (w.z_um, w.focus_source) == (GLASS_UM + FIELD_VIEW_ABOVE_GLASS_UM, "guess")


def test_fields_are_viewed_above_a_glass_found_before_the_first_field_and_at_a_bare_start_z_otherwise():
    # at 40x most fields are bare glass and never find focus: a whole scan was viewed at the glass the slide was
    # found on, where a woodpile 5 um below its mid-plane was too faint for the gate in every field (seed 1609)
    def field_focus(on_glass: bool) -> FieldFocus:
        return FieldFocus(_Stage(90.0), None, _Focuser(GLASS_UM), SimpleNamespace(predict=lambda x, y: None),
                          FocusPlan(search_range_um=15.0), 0.14, z_start_um=90.0, start_on_glass=on_glass)

    for on_glass, z in ((True, 90.0 + FIELD_VIEW_ABOVE_GLASS_UM), (False, 90.0)):
        r, w = field_focus(on_glass), _field(0.0)
        r.set_field_z(w)
        assert (w.z_um, w.focus_source, r.stage.z) == (z, "guess", z)
    r = field_focus(True)  # a wide search's "peak" taken back: its guess is a view's z now, not the glass
    w = _field(95.0, "autofocus")
    w.wide_from = 95.0
    r._forget_wide_focus(w)
    w2 = _field(0.0)
    r.set_field_z(w2)
    assert w2.z_um == 95.0


def test_a_structure_is_recorded_at_its_stacks_pair_else_at_its_stacks_symmetry_else_at_its_autofocus():
    stack = np.zeros((17, 8, 8))
    zs = [float(z) for z in range(84, 118, 2)]
    r = object.__new__(ScanRunner)
    r.focuser = SimpleNamespace(read_stack=lambda planes, z, cls, near_um: 99.4 if len(z) == 17 and cls == "woodpile"
                                and near_um == 104.0 else None)
    assert r._stack_focus(stack, zs, "woodpile", 100.2, 104.0) == 100.2  # a pair of lobes in the stack stands
    assert r._stack_focus(stack, zs, "woodpile", 104.0, 104.0) == 99.4   # none: the stack's symmetry
    assert r._stack_focus(stack, zs, "pentagon", 104.0, 104.0) == 104.0  # no reading: the autofocus's z
    r.focuser = SimpleNamespace()  # a focuser that cannot read a stack (a test double)
    assert r._stack_focus(stack, zs, "woodpile", 104.0, 104.0) == 104.0


class _StartBiasedFocuser(_Focuser):
    """Finds the glass only partly: lands 60 % of the way from the glass back towards where it started (a
    search over a bare field's faint specks on the raw mono camera, seeds 2408 and 2411)."""

    def focus(self, stage, camera, z_guess_um, range_um, roi_px=None, cls=None) -> FocusOutcome:
        self.guesses.append(z_guess_um)
        z = self.glass + 0.6 * (z_guess_um - self.glass)
        stage.focus_to_um(z)
        return FocusOutcome(z, 7, True, glass=True)


def test_a_fields_search_starts_at_the_glass_it_guesses_so_readings_do_not_ratchet_upwards():
    # each field is viewed 5 um above the last focus found; searched from there, a reading that lands nearer
    # its start than the glass walked every field up (20-25 um above the glass after a row, seed 2411)
    r = FieldFocus(_Stage(GLASS_UM), None, _StartBiasedFocuser(GLASS_UM),
                   SimpleNamespace(predict=lambda x, y: None, add=lambda x, y, z: None),
                   FocusPlan(search_range_um=15.0), 0.56, z_start_um=GLASS_UM)
    r._focus_found = r._guess_on_glass = True
    for _ in range(10):
        w = _field(0.0)
        r.set_field_z(w)
        assert w.focus_source == "guess" and w.z_um == w.glass_um + FIELD_VIEW_ABOVE_GLASS_UM
        r.autofocus_field(w)
        assert r.focuser.guesses[-1] == w.glass_um  # searched from the glass, not from the view
    assert abs(r._z_guess - GLASS_UM) < 0.5  # from the view it settles 7.5 um up


def test_a_failed_search_from_the_glass_leaves_the_field_at_its_view():
    r = FieldFocus(_Stage(110.0), None, _Focuser(40.0), SimpleNamespace(predict=lambda x, y: None),
                   FocusPlan(search_range_um=15.0), 0.56, z_start_um=110.0)
    r._focus_found = r._guess_on_glass = True
    w = _field(0.0)
    r.set_field_z(w)
    r.autofocus_field(w)
    assert r.focuser.guesses == [110.0]
    assert w.focus_source == "autofocus-unsure" and w.z_um == 115.0 and r.stage.z == 115.0


def test_the_wide_search_stops_after_so_many_fields_found_nothing_with_it():
    # Until focus is found, a failed field search is followed by the wide one (a slide put in by hand). After
    # LOST_LOOKS fields in vain the camera, not the slide's distance, is why: the cheap colour camera on a Z
    # stepper paid 9.4 s of stage a field for it (seed 2717)
    r, w = _runner(300.0, 110.0), _field(99.0)  # the glass beyond every range
    r._focus_found = False
    r.autofocus_field(w)
    assert [round(g) for g in r.focuser.guesses] == [99, 110, 99]  # the usual, at the last focus, then the wide one
    r._lost_looks = LOST_LOOKS
    r.focuser.guesses.clear()
    r.autofocus_field(_field(99.0))
    assert [round(g) for g in r.focuser.guesses] == [99, 110]
