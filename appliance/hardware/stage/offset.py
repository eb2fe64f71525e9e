"""A stage whose coordinates start elsewhere than its drive's: a fixed offset added to every target.

Two uses. A scan resumed after its slide moved under the drive (a board that restarted and homed to a switch
that trips a little elsewhere, a slide nudged in its clips while the scan was stopped) measures how far its first
print moved (:mod:`appliance.scan.position_check`) and goes on in the coordinates it started in, so the places
it records after the restart agree with those before. And a bench whose machine zero is not the slide's corner
(stock GRBL homes to its + ends, so its machine coordinates run negative) sees the slide in positive coordinates,
as a work offset (GRBL's G54) would give it.
"""

from __future__ import annotations

import math

from appliance.hardware.camera.base import Camera
from appliance.hardware.stage.base import Position, Stage, StageWrapper
from appliance.hardware.stage.stamped_camera import StampedCamera


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

    def to_inner(self, x: float | None, y: float | None, z: float | None) -> tuple[float | None, ...]:
        """Each given axis plus its offset."""
        return tuple(None if v is None else v + d for v, d in zip((x, y, z), self.offset_um, strict=True))

    def from_inner(self, p: Position) -> Position:
        """The inner position less the offset."""
        return Position(*(v - d for v, d in zip(p, self.offset_um, strict=True)))


def offset(stage: Stage, camera: Camera, offset_um: tuple[float, float, float]) -> tuple[OffsetStage, Camera]:
    """``stage`` seen from an origin ``offset_um`` away, and ``camera`` stamping its frames in those coordinates."""
    moved = OffsetStage(stage, offset_um)
    return moved, StampedCamera(camera, moved)
