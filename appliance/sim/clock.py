"""The virtual clock: simulated devices advance it by the physical time of what they do.

A scan's real duration is then known without sleeping. In real-time mode ``advance`` also sleeps, so a
person watching (or a timeout on the host) sees the pace of real hardware.
"""

from __future__ import annotations

import time


class VirtualClock:
    """Monotonic simulated time in seconds, shared by the simulated stage and camera.

    Parameters
    ----------
    start_s : float
        Time at construction, seconds.
    realtime : bool
        If true, :meth:`advance` also sleeps for the same wall-clock time.
    """

    def __init__(self, start_s: float = 0.0, realtime: bool = False) -> None:
        if start_s < 0:
            raise ValueError(f"start_s must be >= 0, got {start_s}")
        self._now_s = float(start_s)
        self.realtime = bool(realtime)

    def now_s(self) -> float:
        """Current simulated time, seconds."""
        return self._now_s

    def advance(self, dt_s: float) -> float:
        """Let ``dt_s`` seconds pass (move, settle, exposure); returns the new time."""
        if not dt_s >= 0:  # also rejects NaN
            raise ValueError(f"dt_s must be a non-negative number of seconds, got {dt_s}")
        self._now_s += float(dt_s)
        if self.realtime and dt_s > 0:
            time.sleep(dt_s)
        return self._now_s
