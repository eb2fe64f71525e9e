"""What an autofocus returns, and the error it raises when it cannot run at all."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


class FocusError(RuntimeError):
    """Autofocus could not run (a bad range, no camera frame); a search that ran but failed is a result."""


@dataclass(frozen=True)
class FocusResult:
    """The outcome of one autofocus.

    Attributes
    ----------
    z_um : float
        Where the stage's focus was left (the reported z after the final ``focus_to_um``), µm.
    frames : int
        Frames captured by this autofocus.
    score : float
        Focus score of the target at the chosen z, as far as the strategy knows it (NaN when unknown).
    ok : bool
        True when the strategy is confident that ``z_um`` is the target's focus.
    reason : str
        Why: ``"focused"``, or what went wrong (``"nothing in view"``, ``"peak at the edge of the focus
        range ..."``, ``"net unsure ..."``); never empty.
    strategy : str
        The strategy that produced ``z_um`` (``"neural"`` may report ``"neural>classical"`` after a fall-back).
    time_s : float
        Device time the autofocus took (virtual seconds on the simulator), NaN if the camera gives no times.
    trace : tuple of (float, float)
        (z µm, score) of every scored frame, in capture order, for plots and tests.
    measured : bool
        True when ``z_um`` was measured on this field's frames (a search, the net); False when it was
        taken from the focus map's prediction. Only measured foci belong in a focus map.
    reading_um : float
        The focus the frames read, when ``z_um`` is not that alone (NaN otherwise): the ``map`` strategy
        combines its search's reading with the map's prediction, and a map must be fed the reading
        (:attr:`point_um`), never a z that holds its own prediction.
    learned : bool
        True when the learned reader (:mod:`appliance.focus.reader`) moved the search's reading to ``z_um``.
    """

    z_um: float
    frames: int
    score: float
    ok: bool
    reason: str
    strategy: str = ""
    time_s: float = float("nan")
    trace: tuple[tuple[float, float], ...] = field(default=())
    measured: bool = True
    reading_um: float = float("nan")
    learned: bool = False

    @property
    def point_um(self) -> float:
        """The z to add to a focus map for a measured result: the frames' own reading."""
        return self.z_um if math.isnan(self.reading_um) else self.reading_um
