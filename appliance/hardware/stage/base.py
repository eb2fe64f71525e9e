"""The stage interface shared by the GRBL serial driver and the simulated stage.

All positions are in micrometres in the stage's machine frame. Focus is the z axis, whether the
hardware turns the fine-focus knob with a hobby servo or with a stepper: implementations hide which.
"""

from __future__ import annotations

import abc
import math
from types import TracebackType
from typing import Any, NamedTuple


class Position(NamedTuple):
    """A stage position in micrometres."""

    x_um: float
    y_um: float
    z_um: float


#: A board's focus travel when nothing says otherwise, µm: a hobby servo's 0-180 degrees at 1 µm a degree.
DEFAULT_FOCUS_TRAVEL_UM = (0.0, 180.0)


class StageError(RuntimeError):
    """Base class of every stage failure."""


class StageTimeout(StageError):
    """The stage did not answer, or did not finish a move, in time."""


class StageProtocolError(StageError):
    """The stage answered something the protocol does not allow, or rejected a command (``error:N``)."""


class HomingDisabled(StageProtocolError):
    """The drive has no homing cycle (stock GRBL ships with ``$22=0`` and answers ``$H`` with ``error:5``).

    Such a bench has no switches to find its place again after the board restarted: its position is wherever the
    board powered up (:meth:`appliance.hardware.stage.offset.OffsetStage.carry_over` keeps a scan's coordinates).
    """


class StageAlarm(StageError):
    """The stage is in alarm (limit hit, position lost): it must be homed or unlocked before moving."""


class StageLimitError(StageError):
    """A requested target lies outside the stage's travel (soft limits)."""


def round_half_away(value: float) -> int:
    """Round to the nearest integer, halves away from zero (C's ``lround``, which GRBL uses for steps).

    The one rounding rule of every stage: the GRBL driver's servo angles and the simulated stage's motor
    units both use it, so ``focus 42.5`` lands on the same angle on either (Python's ``round`` would go to
    the even neighbour).
    """
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


class Stage(abc.ABC):
    """An XYZ stage. Open with ``open()`` or ``with``; never in ``__init__``.

    Moves block until the stage reports the target reached (or raise). ``move_*`` returns the
    position the stage reports afterwards, which on real mechanics may differ from the target by
    backlash: callers that care (autofocus) use :meth:`focus_to_um`, which approaches from one side.
    """

    @abc.abstractmethod
    def open(self) -> None:
        """Connect to the stage and check it answers."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection; safe to call twice."""

    @abc.abstractmethod
    def position_um(self) -> Position:
        """The current position as the stage reports it."""

    @abc.abstractmethod
    def move_to_um(self, x: float | None = None, y: float | None = None, z: float | None = None) -> Position:
        """Move to an absolute position; ``None`` leaves an axis where it is."""

    def move_by_um(self, dx: float = 0.0, dy: float = 0.0, dz: float = 0.0) -> Position:
        """Move relative to the current position."""
        p = self.position_um()
        return self.move_to_um(p.x_um + dx, p.y_um + dy, p.z_um + dz)

    @abc.abstractmethod
    def focus_to_um(self, z: float) -> Position:
        """Move focus to ``z``, always finishing the approach from the same side to cancel backlash."""

    @property
    def focus_step_um(self) -> float | None:
        """The smallest focus move the drive makes, µm (a servo's degree, a stepper's step); None when unknown.

        A scan warns when it is coarse against the objective's depth of field (``appliance.scan.session``).
        """
        return None

    @property
    def focus_travel_um(self) -> tuple[float, float] | None:
        """The focus drive's travel (lowest, highest z), µm, in this stage's z; None when unknown.

        The autofocus keeps every search inside it (:func:`focus_travel_of` has the fall-back).
        """
        return None

    @property
    def xy_travel_um(self) -> tuple[tuple[float, float], tuple[float, float]] | None:
        """Where the carriage may go, ``((x_lo, x_hi), (y_lo, y_hi))`` µm in this stage's coordinates; None unknown.

        A homed GRBL board knows it (``$130``/``$131`` from its home switches); a scan refuses an area outside it
        before any move (:func:`appliance.scan.session.check_board_travel`).
        """
        return None

    @property
    def counts_from_power_up(self) -> bool:
        """Whether the drive's zero is wherever its board powered up: no homing switches to find it again.

        A position recorded before the board last restarted (a resumed scan's, after the host crashed and the
        Arduino reset as its port opened) may then lie anywhere in its count.
        """
        return False

    @property
    def focus_absolute(self) -> bool:
        """Whether the focus drive's position survives a restart of its board.

        A servo's angle is absolute; a stepper's count starts again at the board's power-up zero.
        """
        return False

    @abc.abstractmethod
    def home(self) -> Position:
        """Run the homing cycle and return the position afterwards."""

    def unlock(self) -> None:
        """Leave an alarm without homing (GRBL's ``$X``), trusting the position as it is.

        The default is for a stage that has no alarm state: nothing to leave.
        """
        return None

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop any motion at once (the position may be lost afterwards)."""

    def __enter__(self) -> Stage:
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class StageWrapper(Stage):
    """A stage seen through a change of coordinates: ``inner`` moves, :meth:`to_inner` and :meth:`from_inner` map.

    The identity here; a subclass overrides the two maps (and ``focus_to_um`` where the inner stage's approach
    side changes). What a particular stage offers beyond the interface (the virtual stage's ``params``, a board's
    settings) is the inner stage's.
    """

    def __init__(self, inner: Stage) -> None:
        self.inner = inner

    def to_inner(self, x: float | None, y: float | None, z: float | None) -> tuple[float | None, ...]:
        """A target in this stage's coordinates as the inner stage's (None: that axis stays)."""
        return x, y, z

    def from_inner(self, p: Position) -> Position:
        """A position the inner stage reports, in this stage's coordinates."""
        return p

    def open(self) -> None:
        """Open the inner stage."""
        self.inner.open()

    def close(self) -> None:
        """Close the inner stage."""
        self.inner.close()

    def position_um(self) -> Position:
        """The inner stage's position, mapped."""
        return self.from_inner(self.inner.position_um())

    def move_to_um(self, x: float | None = None, y: float | None = None, z: float | None = None) -> Position:
        """Move the inner stage to the mapped target."""
        return self.from_inner(self.inner.move_to_um(*self.to_inner(x, y, z)))

    def focus_to_um(self, z: float) -> Position:
        """The inner stage's focus move to the mapped ``z``."""
        target = self.to_inner(None, None, z)[2]
        assert target is not None
        return self.from_inner(self.inner.focus_to_um(target))

    @property
    def focus_step_um(self) -> float | None:
        """The inner drive's step."""
        return self.inner.focus_step_um

    @property
    def focus_travel_um(self) -> tuple[float, float] | None:
        """The inner drive's travel, mapped (None when it does not know its own)."""
        travel = self.inner.focus_travel_um
        if travel is None:
            return None
        ends = sorted(self.from_inner(Position(0.0, 0.0, v)).z_um for v in travel)
        return ends[0], ends[1]

    @property
    def focus_absolute(self) -> bool:
        """The inner drive's."""
        return self.inner.focus_absolute

    @property
    def counts_from_power_up(self) -> bool:
        """The inner drive's."""
        return self.inner.counts_from_power_up

    @property
    def xy_travel_um(self) -> tuple[tuple[float, float], tuple[float, float]] | None:
        """The inner drive's travel, mapped (None when it does not know its own)."""
        travel = self.inner.xy_travel_um
        if travel is None:
            return None
        (x0, x1), (y0, y1) = travel
        a, b = self.from_inner(Position(x0, y0, 0.0)), self.from_inner(Position(x1, y1, 0.0))
        return ((min(a.x_um, b.x_um), max(a.x_um, b.x_um)), (min(a.y_um, b.y_um), max(a.y_um, b.y_um)))

    def home(self) -> Position:
        """Home the inner stage."""
        return self.from_inner(self.inner.home())

    def unlock(self) -> None:
        """Unlock the inner stage."""
        self.inner.unlock()

    def stop(self) -> None:
        """Stop the inner stage."""
        self.inner.stop()

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (unpickling, a failed __init__): no endless lookup
            raise AttributeError(name)
        return getattr(self.inner, name)


#: Half the focus travel assumed around the present z where a stage does not know its own, µm.
UNKNOWN_TRAVEL_HALF_UM = 90.0


def focus_travel_of(stage: Stage) -> tuple[float, float]:
    """``stage.focus_travel_um``, or where the stage does not know it, 90 µm either side of its present z.

    (A stock GRBL board without homing has its machine zero wherever it powered up: a fixed 0-180 µm would send
    the focus searches where the drive may not go.) :data:`DEFAULT_FOCUS_TRAVEL_UM` where z is unknown too (a
    servo before its first move).
    """
    travel = getattr(stage, "focus_travel_um", None)
    if isinstance(travel, tuple) and len(travel) == 2 and all(math.isfinite(v) for v in travel) \
            and travel[0] < travel[1]:
        return float(travel[0]), float(travel[1])
    z = stage.position_um().z_um
    if not math.isfinite(z):
        return DEFAULT_FOCUS_TRAVEL_UM
    return z - UNKNOWN_TRAVEL_HALF_UM, z + UNKNOWN_TRAVEL_HALF_UM
