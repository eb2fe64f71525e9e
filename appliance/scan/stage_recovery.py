"""Bring the stage back after a fault in the middle of a field, so the runner can redo that field.

The stage driver already absorbs what it can on its own: a port that vanishes for a moment is re-found and
re-opened and the call repeated (``GrblStage._io``), a late or stray reply is drained. What reaches the scan
runner is what the driver could not absorb, as a :class:`~appliance.hardware.stage.base.StageError`:

- ``StageConnectionError``: the port stayed gone through every reconnect attempt (the driver closed it);
- ``StageResetError``: the board reset by itself (its banner came unasked), or came back restarted after a
  reconnect: the position it reports is no longer the carriage's;
- ``StageAlarm``: the board is locked in alarm (a reset in motion, a power cycle with homing enabled);
- ``StageTimeout``, ``StageProtocolError``: a reply that never came, a garbled or unexpected line.

:func:`recover_stage` answers each with the least that makes the stage's position true again: reopen what
is closed, home where the position is lost (a board without homing: keep the scan's coordinates from where the
carriage stood, ``OffsetStage.carry_over``), otherwise just ask the stage where it is (which also resynchronises the
line: the driver drains whatever was still coming). A ``StageLimitError`` is no fault of
the link but of the plan (a target beyond the travel); it is never "recovered" here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from appliance.hardware.stage.base import HomingDisabled, Stage, StageAlarm, StageError, StageLimitError
from appliance.hardware.stage.grbl_link import SoftLimitAlarm, StageConnectionError, StageResetError
from appliance.hardware.stage.offset import OffsetStage
from appliance.scan.plan import FaultsPlan

_log = logging.getLogger(__name__)
_T = TypeVar("_T")


def _drastic(fault: StageError) -> int:
    """How much recovering from ``fault`` does: 2 reopen and home, 1 home, 0 resynchronise."""
    if isinstance(fault, StageConnectionError):
        return 2
    return 1 if isinstance(fault, (StageAlarm, StageResetError)) else 0


def more_drastic(first: StageError, then: StageError) -> StageError:
    """The fault to recover from after ``then`` struck while recovering from ``first``.

    A position once lost stays lost until a homing succeeds: a timeout or a garbled line during the homing
    must not turn the next attempt into a mere resynchronisation. Of equals, the later fault.
    """
    return first if _drastic(first) > _drastic(then) else then


def recover_stage(stage: Stage, fault: StageError) -> str:
    """Make ``stage`` usable again after ``fault``; return what was done, in words.

    Parameters
    ----------
    stage : Stage
        The scan's stage, which raised ``fault``.
    fault : StageError
        What it raised.

    Returns
    -------
    str
        ``"reopened and homed"``, ``"homed"``, either with ``"re-established where it stood (no homing)"`` in place
        of ``"homed"``, or ``"resynchronised"``.

    Raises
    ------
    StageError
        The stage could not be brought back this time (the caller counts it as one more fault).
    ValueError
        ``fault`` is a ``StageLimitError``: a plan that reaches beyond the travel is not a stage fault.
    """
    if isinstance(fault, (StageLimitError, SoftLimitAlarm)):
        raise ValueError(f"a target beyond the travel is not a stage fault to recover from: {fault}")
    if isinstance(fault, StageConnectionError):
        # A board found again after a long outage may have lost power meanwhile, and a board without a
        # homing lock then reports its power-up zero as if it were the carriage's place: home it either way.
        stage.close()
        stage.open()
        return f"reopened and {_home_or_carry_over(stage)}"
    if isinstance(fault, (StageAlarm, StageResetError)):
        return _home_or_carry_over(stage)
    stage.position_um()  # a status round trip: the driver first drains what a broken exchange left coming
    return "resynchronised"


def _home_or_carry_over(stage: Stage) -> str:
    """Home ``stage``; where it has no homing (``HomingDisabled``), keep its coordinates from where it stood.

    Only a scan's :class:`~appliance.hardware.stage.offset.OffsetStage` knows where the carriage stood before the
    restart; any other stage without homing cannot be brought back.
    """
    try:
        _log.warning("homing the stage ($H) to find its position again")  # it may take minutes: said first
        stage.home()
        return "homed"
    except HomingDisabled:
        if not isinstance(stage, OffsetStage):
            raise
    stage.unlock()  # GRBL after a reset in motion: ALARM:3, which homing would have cleared
    stage.carry_over()
    return "re-established where it stood (no homing)"


def redo_after_stage_faults(stage: Stage, faults: FaultsPlan, work: Callable[[], _T], *,
                            on_fault: Callable[[StageError, int], None] = lambda fault, met: None,
                            on_recovered: Callable[[StageError, str], None] = lambda fault, action: None,
                            give_up: Callable[[StageError, int], BaseException] | None = None) -> _T:
    """``work()``, done again from its start after each stage fault the stage is brought back from.

    The plan's ``faults`` section rules: with ``on_stage_error: recover`` the stage is brought back
    (:func:`recover_stage`, after ``stage_retry_wait_s``) from up to ``stage_recoveries`` faults; a fault while
    recovering is one more, and the next attempt does at least what the first had to (:func:`more_drastic`).
    With ``stop``, or past the limit, the scan ends: ``give_up(fault, met)`` names the exception to raise
    (default: the fault itself). A recovery that homes the stage leaves it far from where the work stopped,
    so the work starts again from its beginning: a field from its move, the flat field from its first frame.

    Parameters
    ----------
    on_fault : callable
        ``on_fault(fault, met)`` for every fault caught (``met`` counts them, from 1), before anything else:
        where the caller forgets what the interrupted work had not committed, and counts faults.
    on_recovered : callable
        ``on_recovered(fault, action)`` once the stage is back (``fault``: the last one met), before the work
        starts again.
    """
    met = 0
    need: StageError | None = None  # what the recovery must do: a fault while recovering never asks for less
    last: StageError | None = None
    while True:
        try:
            if need is not None:
                time.sleep(faults.stage_retry_wait_s)
                on_recovered(last or need, recover_stage(stage, need))
            return work()
        except StageLimitError:
            raise
        except SoftLimitAlarm as exc:  # stock GRBL's ALARM:2: a target beyond the travel, which homing and
            # redoing the work only meet again (before, three recoveries' $H waited 120 s each on a board that
            # answers nothing until reset, and the scan ended on the alarm 7 minutes later)
            raise StageLimitError(f"{exc}: a target lies beyond the board's travel (soft limits); the plan's "
                                  "area or the scan's moves reach outside it") from exc
        except StageError as exc:
            met, last = met + 1, exc
            on_fault(exc, met)
            if faults.on_stage_error == "stop" or met > faults.stage_recoveries:
                if give_up is None:
                    raise
                raise give_up(exc, met) from exc
            need = exc if need is None else more_drastic(need, exc)


def retry_after_stage_faults(stage: Stage, faults: FaultsPlan, what: str, work: Callable[[], _T]) -> _T:
    """:func:`redo_after_stage_faults` for what a scan does before its first field, logging each recovery.

    The flat field's 16 moves, the slide's focus and the calibration: a garbled line on a noisy cable met
    the flat field's moves (tests/faults/test_serial_in_scan.py). A fault it cannot recover from is raised
    as it came, and the scan ends before its first field.
    """
    def recovered(fault: StageError, action: str) -> None:
        _log.warning("%s: stage %s after %s; starting it again", what, action, type(fault).__name__)

    return redo_after_stage_faults(stage, faults, work, on_recovered=recovered)
