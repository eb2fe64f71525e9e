"""What an autofocus returns, and the error it raises when it cannot run at all."""

from __future__ import annotations

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
