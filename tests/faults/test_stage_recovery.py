"""How the scan runner answers each stage fault (``appliance/scan/stage_recovery.py``), without a board.

The whole-scan tests on the firmware are ``test_serial_in_scan.py``; these pin the policy (which fault
reopens, which homes, which only resynchronises) and the stop when a stage cannot be brought back.
"""

from __future__ import annotations

import pytest

from appliance.hardware.stage.base import (
    HomingDisabled,
    Position,
    Stage,
    StageAlarm,
    StageLimitError,
    StageProtocolError,
    StageTimeout,
)
from appliance.hardware.stage.grbl_link import GarbledLineError, StageConnectionError, StageResetError
from appliance.hardware.stage.offset import OffsetStage
from appliance.scan.plan import FaultsPlan, FocusPlan, ScanPlan
from appliance.scan.runner import FinishReason
from appliance.scan.session import parse_sim_sets, run_scan, scan_area, sim_microscope
from appliance.scan.stage_recovery import more_drastic, recover_stage
from appliance.scan.testing import PlaneFocusMap, SimTruthFocuser, SimTruthVision
from tests.faults.scans import SLIDE_SETS, check_scan


class Recording(Stage):
    """A stage that records the calls recovery makes."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def open(self) -> None:
        self.calls.append("open")

    def close(self) -> None:
        self.calls.append("close")

    def position_um(self) -> Position:
        self.calls.append("position")
        return Position(0.0, 0.0, 0.0)

    def move_to_um(self, x: float | None = None, y: float | None = None, z: float | None = None) -> Position:
        raise AssertionError("recovery never moves the stage itself")

    def focus_to_um(self, z: float) -> Position:
        raise AssertionError("recovery never moves the focus itself")

    def home(self) -> Position:
        self.calls.append("home")
        return Position(0.0, 0.0, 0.0)

    def stop(self) -> None:
        self.calls.append("stop")


@pytest.mark.parametrize(("fault", "action", "calls"), [
    (StageConnectionError("lost the stage; 3 reconnect attempts failed"), "reopened and homed",
     ["close", "open", "home"]),
    (StageResetError("the board reset by itself"), "homed", ["home"]),
    (StageAlarm("ALARM:3"), "homed", ["home"]),
    (StageTimeout("no ok/error"), "resynchronised", ["position"]),
    (GarbledLineError("unexpected reply"), "resynchronised", ["position"]),
    (StageProtocolError("board rejected 'M280 P0 S90': error:23"), "resynchronised", ["position"]),
])
def test_each_fault_gets_the_least_that_makes_the_position_true(fault, action, calls):
    stage = Recording()
    assert recover_stage(stage, fault) == action
    assert stage.calls == calls


class NoHoming(Recording):
    """A board with homing off (``$22=0``): ``$H`` is refused; ``$X`` leaves its alarm."""

    def home(self) -> Position:
        self.calls.append("home")
        raise HomingDisabled("board rejected '$H': error:5 (Setting disabled)")

    def unlock(self) -> None:
        self.calls.append("unlock")


def test_a_board_without_homing_is_unlocked_and_carried_over_by_the_scans_origin_only():
    inner = NoHoming()
    with pytest.raises(HomingDisabled):   # nothing but the scan's origin knows where the carriage stood
        recover_stage(inner, StageResetError("the board reset by itself"))
    origin = OffsetStage(inner, (0.0, 0.0, 0.0))
    origin._known = Position(5.0, 5.0, 90.0)   # where its last move ended
    for fault, action in [(StageResetError("banner"), "re-established where it stood (no homing)"),
                          (StageConnectionError("gone"), "reopened and re-established where it stood (no homing)")]:
        inner.calls.clear()
        assert recover_stage(origin, fault) == action
        assert inner.calls[-3:] == ["home", "unlock", "position"]


def test_a_lost_position_stays_lost_whatever_fails_while_homing():
    reset, timeout = StageResetError("banner"), StageTimeout("no reply to $H")
    lost = StageConnectionError("gone")
    assert more_drastic(reset, timeout) is reset and more_drastic(timeout, reset) is reset
    assert more_drastic(lost, reset) is lost and more_drastic(reset, StageAlarm("ALARM:3")).args == ("ALARM:3",)


def test_a_target_beyond_the_travel_is_no_fault_to_recover_from():
    stage = Recording()
    with pytest.raises(ValueError, match="beyond the travel"):
        recover_stage(stage, StageLimitError("error:15"))
    assert stage.calls == []


class ResetsAndCannotHome(Stage):
    """The virtual stage, except that its ``reset_at``-th move once armed (by the runner's start) meets a
    reset banner, and every homing fails (GRBL's ``ALARM:9``: a switch that was never found, a cable off). A
    board with homing off (``$22=0``: ``error:5``) is another case: :class:`RestartsWithoutSwitches`."""

    def __init__(self, inner: Stage, reset_at: int) -> None:
        self.inner = inner
        self.reset_at = reset_at
        self.armed = False
        self.moves = 0
        self.homes = 0

    def open(self) -> None:
        self.inner.open()

    def close(self) -> None:
        self.inner.close()

    def position_um(self) -> Position:
        return self.inner.position_um()

    def move_to_um(self, x: float | None = None, y: float | None = None, z: float | None = None) -> Position:
        self.moves += self.armed
        if self.moves == self.reset_at:
            raise StageResetError("the board reset by itself ('Grbl 1.1h', no reset was sent)")
        return self.inner.move_to_um(x, y, z)

    def focus_to_um(self, z: float) -> Position:
        return self.inner.focus_to_um(z)

    def home(self) -> Position:
        self.homes += 1
        raise StageAlarm("ALARM:9 (Homing fail: could not find limit switch within search distance) during "
                         "homing ($H)")

    def stop(self) -> None:
        self.inner.stop()


def test_a_stage_that_cannot_be_rehomed_after_a_reset_stops_the_scan_with_one_line(tmp_path):
    scope = sim_microscope(5, parse_sim_sets(SLIDE_SETS))
    plan = ScanPlan(name="no-homing", focus=FocusPlan(stack_range_um=2.0, stack_step_um=1.0),
                    faults=FaultsPlan(stage_retry_wait_s=0.0))
    p = scope.slide.params
    with scope.stage, scope.camera:
        stage = ResetsAndCannotHome(scope.stage, reset_at=12)   # a few fields in
        out = run_scan(stage, scope.camera, SimTruthVision(scope), SimTruthFocuser(scope), PlaneFocusMap(), plan,
                       tmp_path / "scan", tmp_path / "t.db", scan_area(plan, (p.width_um, p.height_um)),
                       device_clock=scope.clock.now_s, runner_hook=lambda runner: setattr(stage, "armed", True))
    st = out.status
    assert st.reason is FinishReason.FAILED and st.error is not None and "\n" not in st.error
    assert st.error.startswith("StageFaultLimit: stage fault at field") and "ALARM:9" in st.error, st.error
    # the reset, then three homing attempts refused: four faults, the default faults.stage_recoveries 3
    assert st.stage_faults == 4 and stage.homes == 3
    problems, scans = check_scan(tmp_path / "scan", tmp_path / "t.db")
    assert not problems and len(scans) == 1
    assert scans[0].status == "failed" and 1 <= len(scans[0].cells) < scans[0].fields_planned
    assert st.cell not in scans[0].cells   # the field in flight was not committed


class ResetsOnce(ResetsAndCannotHome):
    """The virtual stage, except that its ``reset_at``-th move once armed meets a reset banner; homing works."""

    def home(self) -> Position:
        self.homes += 1
        return self.inner.home()


@pytest.mark.parametrize("realign", [True, False])
def test_a_stage_homed_after_a_reset_goes_on_in_the_scans_coordinates(tmp_path, realign):
    # the switches repeat to 6 um (a mechanical switch): the homing after the reset lands the slide elsewhere
    scope = sim_microscope(5, parse_sim_sets([*SLIDE_SETS, "stage.homing_repeat_um=[6,6,0]"]))
    plan = ScanPlan(name="homed", focus=FocusPlan(stack_range_um=2.0, stack_step_um=1.0),
                    faults=FaultsPlan(stage_retry_wait_s=0.0))
    p = scope.slide.params
    with scope.stage, scope.camera:
        scope.stage.home()  # at power-on (home_on_start): the machine's zero is the slide's
        stage = ResetsOnce(scope.stage, reset_at=40)
        hook = (lambda runner: setattr(stage, "armed", True)) if realign else \
            (lambda runner: (setattr(stage, "armed", True), setattr(runner, "_realign", None)))
        out = run_scan(stage, scope.camera, SimTruthVision(scope), SimTruthFocuser(scope), PlaneFocusMap(), plan,
                       tmp_path / "scan", tmp_path / "t.db", scan_area(plan, (p.width_um, p.height_um)),
                       device_clock=scope.clock.now_s, truth=scope.slide.truth(), runner_hook=hook)
    assert out.status.reason is FinishReason.COMPLETED and stage.homes == 1
    slide_moved = out.summary["position_check"]["moved_um"]
    if not realign:  # the places after the homing are off by what the switches missed; said at the end
        assert slide_moved > 2.0
        return
    (after,) = out.summary["realignments"]
    assert after["when"].startswith("after the stage was homed at field") and after["corrected"]
    assert after["moved_um"] > 2.0 and slide_moved < 1.0 and out.summary["recall"] == 1.0


class RestartsWithoutSwitches(Stage):
    """Stock GRBL with homing off (``$22=0``) on the virtual stage's mechanics, whose board restarts once.

    The board counts from zero wherever it powered up: it reports the mechanics' place less ``offset_um``, which
    the restart sets to where the carriage stands (a servo focus keeps its angle: absolute). ``$H`` is answered with
    ``error:5``. The ``restart_at``-th move once armed (by the runner's start) restarts the board ``part`` of the
    way along (0: before the carriage left, 1: once it arrived; between: a reset in motion, then ALARM:3 until
    ``$X``, as GRBL). Nothing of it is kinder than the board: the carriage is left where the restart caught it, and
    every later report counts from there.
    """

    def __init__(self, inner: Stage, restart_at: int, part: float) -> None:
        self.inner, self.restart_at, self.part = inner, restart_at, part
        self.offset_um = (0.0, 0.0, 0.0)  # where the board's zero lies on the mechanics
        self.armed, self.moves, self.homes, self.alarm = False, 0, 0, False

    def open(self) -> None:
        self.inner.open()

    def close(self) -> None:
        self.inner.close()

    def _board(self, p: Position) -> Position:
        return Position(*(v - z for v, z in zip(p, self.offset_um, strict=True)))

    def _mechanics(self, v: float | None, i: int) -> float | None:
        return None if v is None else v + self.offset_um[i]

    def position_um(self) -> Position:
        return self._board(self.inner.position_um())

    def _restart(self) -> None:
        here = self.inner.position_um()
        self.offset_um = (here.x_um, here.y_um, self.offset_um[2] if self.inner.focus_absolute else here.z_um)
        raise StageResetError("the board reset by itself ('Grbl 1.1h', no reset was sent)")

    def move_to_um(self, x: float | None = None, y: float | None = None, z: float | None = None) -> Position:
        if self.alarm:
            raise StageAlarm("board rejected 'G1': error:9 (G-code locked out during alarm)")
        self.moves += self.armed
        target = [self._mechanics(v, i) for i, v in enumerate((x, y, z))]
        if self.moves == self.restart_at:
            was = self.inner.position_um()
            self.inner.move_to_um(*(None if t is None else w + self.part * (t - w)
                                    for w, t in zip(was, target, strict=True)))
            self.alarm = 0.0 < self.part < 1.0   # caught in motion: ALARM:3 after the reset
            self._restart()
        return self._board(self.inner.move_to_um(*target))

    def focus_to_um(self, z: float) -> Position:
        if self.alarm:
            raise StageAlarm("board rejected 'G1': error:9 (G-code locked out during alarm)")
        return self._board(self.inner.focus_to_um(z + self.offset_um[2]))

    @property
    def focus_travel_um(self) -> tuple[float, float] | None:
        lo, hi = self.inner.focus_travel_um or (0.0, 180.0)
        return lo - self.offset_um[2], hi - self.offset_um[2]

    @property
    def focus_step_um(self) -> float | None:
        return self.inner.focus_step_um

    @property
    def focus_absolute(self) -> bool:
        return self.inner.focus_absolute

    def true_position_um(self) -> Position:
        return self.inner.true_position_um()  # type: ignore[attr-defined]

    def home(self) -> Position:
        self.homes += 1
        raise HomingDisabled("board rejected '$H': error:5 (Setting disabled (homing cycle is not enabled in "
                             "settings))")

    def unlock(self) -> None:
        self.alarm = False

    def stop(self) -> None:
        self.inner.stop()


@pytest.mark.parametrize(("part", "z_mode", "realign"), [
    (0.6, "servo", True), (0.6, "stepper", True), (1.0, "stepper", True), (0.0, "servo", True), (0.6, "servo", False)])
def test_a_board_without_homing_that_restarts_goes_on_in_the_scans_coordinates(tmp_path, part, z_mode, realign):
    scope = sim_microscope(5, parse_sim_sets([*SLIDE_SETS, f"stage.z_mode={z_mode}"]))
    plan = ScanPlan(name="no-switches", focus=FocusPlan(stack_range_um=2.0, stack_step_um=1.0),
                    faults=FaultsPlan(stage_retry_wait_s=0.0))
    p = scope.slide.params
    with scope.stage, scope.camera:
        stage = RestartsWithoutSwitches(scope.stage, restart_at=40, part=part)

        def hook(runner):
            stage.armed = True
            if not realign:
                runner._realign = None
        out = run_scan(stage, scope.camera, SimTruthVision(scope), SimTruthFocuser(scope), PlaneFocusMap(), plan,
                       tmp_path / "scan", tmp_path / "t.db", scan_area(plan, (p.width_um, p.height_um)),
                       device_clock=scope.clock.now_s, truth=scope.slide.truth(), runner_hook=hook)
    assert out.status.reason is FinishReason.COMPLETED, out.status.error
    assert stage.homes == 1 and stage.moves > 40 and max(abs(v) for v in stage.offset_um[:2]) > 100  # it did restart
    slide_moved = out.summary["position_check"]["moved_um"]
    if not realign:  # caught 60 % along a 320 µm move: the places after it are off by the rest, beyond the end
        assert slide_moved is None  # check's search (67 µm), which finds no print where it was recorded
        return
    (after,) = out.summary["realignments"]
    assert after["when"].startswith("after the stage was re-established where it stood"), after
    # caught where the move ended, the target's coordinates were the carriage's; elsewhere on the move, the
    # print was looked for along it and the shift undone
    assert after["corrected"] == (part < 1.0) and after["match"] >= 0.8, after
    assert slide_moved < 1.0 and out.summary["recall"] == 1.0
