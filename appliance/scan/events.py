"""Every event the scan runner emits, declared in one place with its payload.

The runner calls its ``on_event`` callback, in the runner's thread, with one of these frozen objects; the
progress bar, the log lines and the live view subscribe to them. A callback must return quickly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from appliance.results.store import FieldRecord, ObjectRecord

if TYPE_CHECKING:
    from appliance.hardware.camera.base import Frame
    from appliance.scan.protocols import Detection
    from appliance.scan.runner import ScanStatus


@dataclass(frozen=True)
class FieldDone:
    """A field was committed: its row, and the runner's status just after."""

    field: FieldRecord
    status: ScanStatus


@dataclass(frozen=True)
class FieldFailed:
    """A field could not be imaged (its error is in the store's ``field_error`` table); not committed."""

    cell: int
    error: str
    status: ScanStatus


@dataclass(frozen=True)
class StageFault:
    """The stage failed in the middle of a field and was brought back; the field is redone from its move.

    ``action`` is what brought it back (``reopened and homed``, ``homed``, ``resynchronised``).
    """

    cell: int
    error: str
    action: str
    status: ScanStatus


@dataclass(frozen=True)
class ObjectRecorded:
    """A structure or piece of debris was committed (with its database id)."""

    obj: ObjectRecord


@dataclass(frozen=True)
class FrameAnalysed:
    """A field's (or a centring move's) frame and what the vision found in it, by reference.

    The frame and the detections are the runner's own objects, not copies: a subscriber keeps the references
    (the live view draws and encodes them later, in its own thread, and only when someone watches).
    """

    frame: Frame
    detections: Sequence[Detection]


@dataclass(frozen=True)
class ScanFinished:
    """The scan ended: the final status (its ``reason`` says how)."""

    status: ScanStatus


Event = FieldDone | FieldFailed | StageFault | ObjectRecorded | FrameAnalysed | ScanFinished
