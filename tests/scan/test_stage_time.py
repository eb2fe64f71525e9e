"""Stage time the runner spent for nothing (docs/held-out.md, "Held-out settings, session 7").

At 5x / NA 0.1 the median field took 2.1-2.4 s of stage time (bar 1.5 s). Two wastes, each cut here, each
without changing where the stage ends or what a search reaches:

- the backlash detour (a move 20 µm below the target first) on moves that end moving +x, +y anyway;
- a second field search that reaches no further than the first, because the focuser had already widened the
  first to the objective's depth of field.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from appliance.scan.field_focus import FIND_SLIDE_RANGE_UM, MAP_DRIFT_FRACTION, FieldFocus, FieldWork, searched_range_um
from appliance.scan.grid import FieldPosition
from appliance.scan.plan import FocusPlan, ImagingPlan, ScanPlan
from appliance.scan.protocols import FocusOutcome
from appliance.scan.runner import ScanRunner
from appliance.scan.session import find_slide
from appliance.sim.clock import VirtualClock
from appliance.sim.stage import SimStage, SimStageParams


class _CountingStage(SimStage):
    """The virtual stage (backlash 4 µm on x and y), counting the XY moves it is asked for."""

    def __init__(self) -> None:
        super().__init__(VirtualClock(), SimStageParams(backlash_um=(4.0, 4.0, 2.0)))
        self.xy_moves = 0

    def move_to_um(self, x=None, y=None, z=None):  # type: ignore[no-untyped-def]
        self.xy_moves += 1
        return super().move_to_um(x=x, y=y, z=z)


def _approach_runner(stage: SimStage) -> ScanRunner:
    """Only what ``_approach`` reads."""
    r = object.__new__(ScanRunner)
    r.plan = ScanPlan(imaging=ImagingPlan(approach_um=20.0))
    r.approach_um = r.plan.imaging.approach_um  # no calibration slack: the plan's
    r.stage = stage
    r._xy_loaded = None
    return r


def _slack_taken_up(stage: SimStage) -> bool:
    true, told = stage.true_position_um(), stage.position_um()
    return abs(true.x_um - told.x_um) < 1e-9 and abs(true.y_um - told.y_um) < 1e-9


def test_a_move_that_ends_moving_plus_x_plus_y_takes_no_detour_and_every_move_ends_with_the_slack_taken_up():
    stage = _CountingStage()
    with stage:
        r = _approach_runner(stage)
        stage.move_to_um(x=3000.0, y=3000.0)  # not the runner's move: the slack's side is unknown
        stage.move_to_um(x=2000.0, y=2000.0)  # (and now wrong: the carriage rides 4 µm above the motor)
        assert not _slack_taken_up(stage)
        stage.xy_moves = 0
        plan = [((2500.0, 2000.0), 2), ((3216.0, 2000.0), 1), ((3932.0, 2000.0), 1),  # along a row: +x
                ((3932.0, 2537.0), 1), ((3216.0, 2537.0), 2),  # the next row, snaked back: -x needs the detour
                ((3300.0, 2500.0), 2), ((3300.0, 2500.0), 1)]  # a centring move up in y; the same place again
        for (x, y), moves in plan:
            before, t = stage.xy_moves, stage.clock.now_s()
            r._approach(x, y)
            assert stage.xy_moves - before == moves, (x, y)
            if (x, y) == (3300.0, 2500.0) and moves == 1:
                assert stage.clock.now_s() == t  # nothing moved, no settle
            assert _slack_taken_up(stage), (x, y)
            assert (stage.position_um().x_um, stage.position_um().y_um) == (x, y)


def test_the_detour_is_taken_again_once_anything_else_moved_the_stage():
    stage = _CountingStage()
    with stage:
        r = _approach_runner(stage)
        r._approach(1000.0, 1000.0)
        stage.move_to_um(x=1500.0, y=1500.0)  # e.g. a recovery; then back down from above
        stage.move_to_um(x=1200.0, y=1200.0)
        stage.xy_moves = 0
        r._approach(1300.0, 1300.0)  # above where it stands, but its slack lies the other way
        assert stage.xy_moves == 2 and _slack_taken_up(stage)


class _FailingFocuser:
    """A search that finds nothing (a field of faint dust), over a range the focuser may widen."""

    def __init__(self, min_range_um: float | None) -> None:
        if min_range_um is not None:
            self.min_range_um = min_range_um
        self.calls: list[tuple[float, float]] = []

    def focus(self, stage, camera, z_guess_um, range_um, roi_px=None, cls=None) -> FocusOutcome:  # type: ignore[no-untyped-def]
        self.calls.append((z_guess_um, range_um))
        stage.focus_to_um(z_guess_um)
        return FocusOutcome(z_guess_um, 9, False)


class _ZStage:
    def __init__(self, z: float) -> None:
        self.z = z

    def position_um(self) -> SimpleNamespace:
        return SimpleNamespace(x_um=700.0, y_um=75.0, z_um=self.z)

    def focus_to_um(self, z: float) -> None:
        self.z = z


def _field_runner(focuser: _FailingFocuser, found: bool, last: float) -> tuple[FieldFocus, FieldWork]:
    # no map, and no structures' word on the glass
    r = FieldFocus(_ZStage(last), None, focuser, SimpleNamespace(predict=lambda x, y: None),
                   FocusPlan(search_range_um=15.0), 1.0, z_start_um=last)
    r._focus_found = found
    w = FieldWork(FieldPosition(cell=3, row=0, column=3, x_um=700.0, y_um=75.0), seq=3)
    w.z_um, w.focus_source = 91.0, "guess"
    return r, w


@pytest.mark.parametrize(("min_range", "found", "last", "searches"), [
    (90.0, False, 91.0, 1),   # 5x: the wide search (±60) reaches no further than the usual one (±90)
    (90.0, True, 100.0, 1),   # 5x: the last focus, 9 µm away, lay well inside the search
    (90.0, True, 150.0, 2),   # ... one 59 µm away did not
    (None, False, 91.0, 2),   # 10x: the usual ±15, then the wide ±60, as before
    (None, True, 100.0, 2),   # 10x: the last focus 9 µm away lies outside half of ±15
])
def test_a_second_field_search_runs_only_where_it_reaches_further(min_range, found, last, searches):
    focuser = _FailingFocuser(min_range)
    r, w = _field_runner(focuser, found, last)
    r.autofocus_field(w)
    assert len(focuser.calls) == searches, focuser.calls
    assert w.focus_source == "autofocus-unsure" and w.z_um == 91.0 and r.stage.z == 91.0


def test_finding_the_slide_searches_wide_only_where_that_reaches_further():
    for min_range, searches in ((90.0, 1), (None, 2)):
        focuser = _FailingFocuser(min_range)
        assert find_slide(_ZStage(90.0), None, focuser, 15.0) is None  # type: ignore[arg-type]
        assert len(focuser.calls) == searches
    assert searched_range_um(_FailingFocuser(90.0), 15.0) == 90.0
    assert searched_range_um(_FailingFocuser(None), 15.0) == 15.0
    assert searched_range_um(_FailingFocuser(0.0), FIND_SLIDE_RANGE_UM) == FIND_SLIDE_RANGE_UM


def test_the_maps_drift_bound_follows_what_a_field_search_reaches():
    # 5x / NA 0.1: the searches reach +-90 um, and a map 20 um (a third of the 66 um depth of field) from its
    # nearest point is no reason for a 1.3-2.4 s search; at 10x (+-15 um) 5 um still is (seed 86's runaway map)
    for min_range, drifted in ((90.0, False), (None, True)):
        r, w = _field_runner(_FailingFocuser(min_range), True, 92.0)
        r._focus_points = [(700.0, 400.0, 92.0)]  # a point the map itself need not hold
        w.focus_source, w.z_um = "map", 112.0
        assert r._map_drifted(w.pos, w) is drifted
        assert r._drift_bound_um() == pytest.approx(MAP_DRIFT_FRACTION * (min_range or 15.0))
