"""A stage whose coordinates start elsewhere than its drive's: a fixed offset added to every target.

Two uses. A scan resumed after its slide moved under the drive (a board that restarted and homed to a switch
that trips a little elsewhere, a slide nudged in its clips while the scan was stopped) measures how far its first
print moved (:mod:`appliance.scan.position_check`) and goes on in the coordinates it started in, so the places
it records after the restart agree with those before. And a bench whose machine zero is not the slide's corner
(stock GRBL homes to its + ends, so its machine coordinates run negative) sees the slide in positive coordinates,
as a work offset (GRBL's G54) would give it. And a board without homing switches that restarts mid-scan counts
from zero again wherever it powered up: :meth:`OffsetStage.carry_over` keeps the carriage's coordinates across it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from appliance.hardware.camera.base import Camera
from appliance.hardware.stage.base import Position, Stage, StageError, StageWrapper
from appliance.hardware.stage.stamped_camera import StampedCamera

#: A board's report after a restart within this of where the carriage was (or on the way there) means it kept its
#: count, µm: GRBL reports to 1 µm, a step is a few tenths.
COUNT_KEPT_UM = 2.0


class OffsetStage(StageWrapper):
    """``inner`` seen from an origin ``offset_um`` away: a target ``t`` is ``t + offset`` for the drive.

    Parameters
    ----------
    inner : Stage
        The stage as it is (opening and closing stay with its owner, as with any wrapper).
    offset_um : (float, float, float)
        Where this stage's origin lies in the inner stage's coordinates, µm per axis; finite.
    """

    def __init__(self, inner: Stage, offset_um: tuple[float, float, float]) -> None:
        values = tuple(float(v) for v in offset_um)
        if len(values) != 3 or not all(math.isfinite(v) for v in values):
            raise ValueError(f"offset_um must be three finite numbers (x, y, z µm), got {offset_um!r}")
        super().__init__(inner)
        self.offset_um: tuple[float, float, float] = (values[0], values[1], values[2])

        self._known: Position | None = None  # where the inner stage's last move or homing ended
        self._going: tuple[float | None, ...] | None = None  # the inner target of a move that has not ended
        self.doubt_um: tuple[float, float] = (0.0, 0.0)  # see carry_over
        #: Called with :meth:`journal_entry` before every move in x or y (a scan writes it to its folder, so that a
        #: resumed run knows where the carriage stood: :meth:`resume_from`).
        self.journal: Callable[[dict[str, Any]], None] | None = None

    def to_inner(self, x: float | None, y: float | None, z: float | None) -> tuple[float | None, ...]:
        """Each given axis plus its offset."""
        return tuple(None if v is None else v + d for v, d in zip((x, y, z), self.offset_um, strict=True))

    def from_inner(self, p: Position) -> Position:
        """The inner position less the offset."""
        return Position(*(v - d for v, d in zip(p, self.offset_um, strict=True)))

    def _seen(self, p: Position) -> Position:
        # only where a move or a homing ended: a query after a restart would read the board's new zero as the
        # carriage's place
        self._known, self._going = p, None
        return self.from_inner(p)

    def move_to_um(self, x: float | None = None, y: float | None = None, z: float | None = None) -> Position:
        """The inner stage's move to the target plus the offset."""
        self._going = self.to_inner(x, y, z)
        if self.journal is not None and (x is not None or y is not None):
            self.journal(self.journal_entry())
        return self._seen(self.inner.move_to_um(*self._going))

    def focus_to_um(self, z: float) -> Position:
        """The inner stage's focus move to ``z`` plus the offset."""
        self._going = self.to_inner(None, None, z)
        target = self._going[2]
        assert target is not None
        return self._seen(self.inner.focus_to_um(target))

    def home(self) -> Position:
        """Home the inner stage."""
        return self._seen(self.inner.home())

    def journal_entry(self) -> dict[str, Any]:
        """Where the carriage is bound (inner µm: from where the last move ended, to the move's target) and the offset.

        JSON-ready; :meth:`resume_from` reads it back.
        """
        was = None if self._known is None else list(self._known)
        going = None if self._going is None else list(self._going)
        return {"from_um": was, "to_um": going, "offset_um": list(self.offset_um)}

    def resume_from(self, entry: Mapping[str, Any]) -> None:
        """Take up where a stopped run left the carriage (a :meth:`journal_entry`), before :meth:`carry_over`.

        Raises
        ------
        ValueError
            ``entry`` is not a journal entry (names what is wrong).
        """
        try:
            offset = tuple(float(v) for v in entry["offset_um"])
            was = entry["from_um"]
            going = entry["to_um"]
            known = Position(*(float(v) for v in (was if was is not None else going)))
            target = None if going is None else tuple(None if v is None else float(v) for v in going)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a carriage journal entry (from_um, to_um, offset_um: lists of 3 numbers): "
                             f"{entry!r}") from exc
        if len(offset) != 3 or not all(math.isfinite(v) for v in (*offset, *known)) or \
                (target is not None and len(target) != 3):
            raise ValueError(f"not a carriage journal entry (3 finite numbers each): {entry!r}")
        self.offset_um = (offset[0], offset[1], offset[2])
        self._known, self._going = known, target

    def carry_over(self) -> Position:
        """After the drive's board restarted and cannot home: keep this stage's coordinates for the carriage.

        A board without homing switches (stock GRBL's ``$22=0``) counts from zero wherever it powered up, but the
        carriage has not moved: its place was where the last move (or homing) ended, or, where a move had not ended,
        somewhere between there and the move's target. The offset is moved so that the target (else the last
        place) keeps its coordinates, and :attr:`doubt_um` is set to how far the carriage may lie from it in x and
        y (towards where the move began; zero at rest), for a realignment to search along
        (:class:`~appliance.scan.realign.Realigner`). Only a board whose x and y read its power-up zero restarted:
        one that kept its count (a soft reset at rest, a port that came back to a board that kept its power) reports
        where it was, and one moved since with its count (jogged by hand between two runs) reports where it is;
        either way nothing moves. A focus whose position survives a restart (:attr:`Stage.focus_absolute`: a
        servo's angle) keeps its z.

        Returns
        -------
        Position
            Where the stage now says it is, in this stage's coordinates.

        Raises
        ------
        StageError
            Nothing was known of the carriage before the restart, or the inner stage does not answer.
        """
        if self._known is None:
            raise StageError("the board restarted before the scan knew where its carriage was: home or position it "
                             "by hand, then run the scan again")
        now = self.inner.position_um()
        was = self._known
        going = was if self._going is None else Position(
            *(w if t is None else t for w, t in zip(was, self._going, strict=True)))
        kept = all(min(a, b) - COUNT_KEPT_UM <= n <= max(a, b) + COUNT_KEPT_UM
                   for n, a, b in zip(now, was, going, strict=True))
        # a count neither kept nor at the power-up zero was moved since, with the carriage (a jog by hand): it holds
        restarted = max(abs(now.x_um), abs(now.y_um)) <= COUNT_KEPT_UM
        if kept or not restarted:
            self.doubt_um = (0.0, 0.0)
            return self._seen(now)
        shift = [n - g for n, g in zip(now, going, strict=True)]
        if self.inner.focus_absolute:
            shift[2] = 0.0
        self.offset_um = (self.offset_um[0] + shift[0], self.offset_um[1] + shift[1], self.offset_um[2] + shift[2])
        self.doubt_um = (was.x_um - going.x_um, was.y_um - going.y_um)
        return self._seen(now)


def offset(stage: Stage, camera: Camera, offset_um: tuple[float, float, float]) -> tuple[OffsetStage, Camera]:
    """``stage`` seen from an origin ``offset_um`` away, and ``camera`` stamping its frames in those coordinates."""
    moved = OffsetStage(stage, offset_um)
    return moved, StampedCamera(camera, moved)
