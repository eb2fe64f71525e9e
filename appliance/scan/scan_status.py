"""Where a scan is and why it stopped: its states, the steps of a field, the status snapshot, the errors that end it.

The runner (:mod:`appliance.scan.runner`) keeps these; its callers (the session, the service, the events) read them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path


class ScanState(enum.Enum):
    """Where the whole scan is."""

    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"


class FieldStep(enum.Enum):
    """The step of the field in hand."""

    MOVE = "move"
    SETTLE = "settle"
    FOCUS = "focus"
    CAPTURE = "capture"
    ANALYSE = "analyse"
    CENTRE = "centre"
    FOCUS_STRUCTURE = "focus_structure"
    STACK = "stack"
    RECONSTRUCT = "reconstruct"
    RECORD = "record"
    COMMIT = "commit"
    DONE = "done"


class FinishReason(enum.Enum):
    """Why a scan stopped."""

    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


@dataclass(frozen=True)
class ScanStatus:
    """A frozen snapshot of the runner, safe to hand to another thread."""

    state: ScanState
    step: FieldStep | None
    scan_id: int
    fields_done: int
    fields_planned: int
    structures: int
    debris: int
    cell: int | None
    elapsed_s: float
    eta_s: float | None
    reason: FinishReason | None = None
    error: str | None = None
    fields_failed: int = 0
    captures_retried: int = 0
    stage_faults: int = 0


class ScanCancelled(Exception):
    """Raised at a checkpoint after :meth:`ScanRunner.cancel`."""


class DiskSpaceError(OSError):
    """Less free space than the plan's ``faults.min_free_mb`` where the scan writes."""

def low_space_message(free_mb: float, where: Path, need_mb: float) -> str:
    """A disk below the plan's ``faults.min_free_mb``, in one wording: before a scan starts and before each field."""
    return (f"only {free_mb:.1f} MB free at {where}, below the plan's faults.min_free_mb ({need_mb:g} MB): free "
            "some space there (old scan folders), then start again: an interrupted scan resumes")



class FieldErrorLimit(RuntimeError):
    """Fields failed as the plan's ``faults`` section says the scan must stop."""


class StageFaultLimit(RuntimeError):
    """The stage failed mid-field and the plan's ``faults`` section says stop (or its recoveries ran out)."""
