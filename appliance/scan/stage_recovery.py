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
is closed, home where the position is lost, otherwise just ask the stage where it is (which also
resynchronises the line: the driver drains whatever was still coming). A ``StageLimitError`` is no fault of
the link but of the plan (a target beyond the travel); it is never "recovered" here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from appliance.hardware.stage.base import Stage, StageAlarm, StageError, StageLimitError
from appliance.hardware.stage.grbl_link import StageConnectionError, StageResetError
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
        ``"reopened and homed"``, ``"homed"`` or ``"resynchronised"``.

    Raises
    ------
    StageError
        The stage could not be brought back this time (the caller counts it as one more fault).
    ValueError
        ``fault`` is a ``StageLimitError``: a plan that reaches beyond the travel is not a stage fault.
    """
    if isinstance(fault, StageLimitError):
        raise ValueError(f"a target beyond the travel is not a stage fault to recover from: {fault}")
    if isinstance(fault, StageConnectionError):
        # A board found again after a long outage may have lost power meanwhile, and a board without a
        # homing lock then reports its power-up zero as if it were the carriage's place: home it either way.
        stage.close()
        stage.open()
        stage.home()
        return "reopened and homed"
    if isinstance(fault, (StageAlarm, StageResetError)):
        stage.home()
        return "homed"
    stage.position_um()  # a status round trip: the driver first drains what a broken exchange left coming
    return "resynchronised"


def retry_after_stage_faults(stage: Stage, faults: FaultsPlan, what: str, work: Callable[[], _T]) -> _T:
    """``work()``, done again from its start after each stage fault it recovers from.

    For what a scan does before its first field (the flat field's 16 moves, the slide's focus and the
    calibration): ``faults`` (the plan's section) rules as it does for a field (``ScanRunner._recover``).
    With ``on_stage_error: recover`` up to ``stage_recoveries`` faults are recovered from
    (:func:`recover_stage`); with ``stop``, or past that, the fault is raised and the scan ends before its
    first field. A garbled line on a noisy cable met the flat
    field's moves (tests/faults/test_serial_in_scan.py); a recovery that homes the stage leaves it far from
    where the work started, so the work starts again, not where it stopped.
    """
    met, need = 0, None
    while True:
        try:
            if need is not None:
                time.sleep(faults.stage_retry_wait_s)
                _log.warning("%s: stage %s after %s; starting it again", what, recover_stage(stage, need),
                             type(need).__name__)
            return work()
        except StageLimitError:
            raise
        except StageError as exc:
            met += 1
            if faults.on_stage_error == "stop" or met > faults.stage_recoveries:
                raise
            need = exc if need is None else more_drastic(need, exc)
