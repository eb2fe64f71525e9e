"""A focus drive wired the other way round, turned into tppscan's convention: the focal plane rises with z.

tppscan reads z as the focal plane's height in the slide: a print's focus is its glass's plus half its height, the
fields are viewed a little above the glass, and a micro-lens converges light upwards. A drive that moves the
other way breaks all of these at once. That happens on an upright microscope that focuses by raising its stage
toward the objective, or with a servo coupled to the focus knob the other way round. Raising such a stage lowers
the focal plane through the slide, so every print focuses *below* its glass. The scan then says so
(``appliance.scan.session.focus_direction_warnings``), and ``stage.z_reversed: true`` in the config (``tppscan
scan --z-reversed``) wraps the stage in :class:`ReversedFocusStage`.

The wrapper mirrors z in the focus travel, ``z -> lo + hi - z``, so the travel maps onto itself and every range
the scan computes within it stays valid. x, y and everything else pass through unchanged. ``focus_to_um`` makes
its own approach: it ends moving *up* in tppscan's z, as every stage's does. The inner drive's approach would end
moving up in its own z, which is down in tppscan's. An autofocus then walks up from a stage that last moved down,
and each walk's first step is lost in the drive's backlash (on a virtual drive with 2 µm of z backlash: prints
recorded 1-2 µm off, 0-3 of 8 within 1 µm).
"""

from __future__ import annotations

import math

from appliance.hardware.camera.base import Camera
from appliance.hardware.stage.base import Position, Stage, StageWrapper, focus_travel_of
from appliance.hardware.stage.stamped_camera import StampedCamera


class ReversedFocusStage(StageWrapper):
    """``inner`` with its z mirrored in ``travel_z_um``: the focal plane rises as this stage's z grows.

    Parameters
    ----------
    inner : Stage
        The stage as wired (opening and closing stay with its owner, as with any wrapper).
    travel_z_um : (float, float)
        The focus travel, in the inner stage's z; the mirror's centre is its middle.
    approach_um : float
        How far below a focus target (in tppscan's z) ``focus_to_um`` starts its last move up; at least the
        drive's backlash (:func:`approach_of` reads the inner stage's own).
    """

    def __init__(self, inner: Stage, travel_z_um: tuple[float, float], approach_um: float = 20.0) -> None:
        lo, hi = (float(v) for v in travel_z_um)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"travel_z_um must be two finite numbers, the lower first, got {travel_z_um!r}")
        if not (math.isfinite(approach_um) and 0 <= approach_um <= hi - lo):
            raise ValueError(f"approach_um must be in [0, {hi - lo:g}] um (the focus travel), got {approach_um!r}")
        super().__init__(inner)
        self.travel_z_um = (lo, hi)
        self.approach_um = float(approach_um)
        self._sum = lo + hi

    def mirror(self, z: float) -> float:
        """``z`` in the other stage's coordinates (the mirror is its own inverse)."""
        return self._sum - z

    def to_inner(self, x: float | None, y: float | None, z: float | None) -> tuple[float | None, ...]:
        """X and y as they are, z mirrored."""
        return x, y, None if z is None else self.mirror(z)

    def from_inner(self, p: Position) -> Position:
        """The inner position, its z mirrored."""
        return Position(p.x_um, p.y_um, self.mirror(p.z_um))

    def move_by_um(self, dx: float = 0.0, dy: float = 0.0, dz: float = 0.0) -> Position:
        """Move the inner stage by ``dx``, ``dy`` and ``-dz``."""
        return self.from_inner(self.inner.move_by_um(dx, dy, -dz))

    def focus_to_um(self, z: float) -> Position:
        """Move focus to ``z``, the last move up (in this stage's z) from ``approach_um`` below it."""
        self.move_to_um(z=max(self.travel_z_um[0], z - self.approach_um))
        return self.move_to_um(z=z)

    @property
    def focus_travel_um(self) -> tuple[float, float]:
        """The travel the mirror maps onto itself (whatever the inner stage knows of its own)."""
        return self.travel_z_um


class ReversedFocusCamera(StampedCamera):
    """A camera whose frames' stage positions are stamped in ``stage``'s mirrored z, as the scan reads z.

    The camera stamps each frame with the position of the stage as wired (the virtual camera, or a real camera's
    ``position_source``); the scan compares those positions with :class:`ReversedFocusStage`'s.
    """

    def __init__(self, inner: Camera, stage: ReversedFocusStage) -> None:
        super().__init__(inner, stage)


def approach_of(stage: Stage, default_um: float = 20.0) -> float:
    """The distance below a focus target ``stage`` itself starts its approach from, µm (``default_um`` if unknown).

    A GRBL board's ``config.backlash_approach_um``, the virtual stage's ``params.overshoot_um``.
    """
    for holder, name in (("config", "backlash_approach_um"), ("params", "overshoot_um")):
        v = getattr(getattr(stage, holder, None), name, None)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0:
            return float(v)
    return default_um


def oriented(stage: Stage, camera: Camera, z_reversed: bool) -> tuple[Stage, Camera]:
    """``stage`` and ``camera`` as the scan reads them: z mirrored in the stage's focus travel when ``z_reversed``.

    The one place the config's ``stage.z_reversed`` and ``tppscan scan --z-reversed`` take effect.
    """
    if not z_reversed:
        return stage, camera
    mirrored = ReversedFocusStage(stage, focus_travel_of(stage), approach_of(stage))
    return mirrored, ReversedFocusCamera(camera, mirrored)
