"""The time a scan's fields still to scan will take (docs/scan.md, "The ETA")."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

#: No ETA before this many fields of a run are committed: the first field carries the run's start (the slide's
#: focus, warm caches) and said "ETA 795 s" for a 70 s scan; the rate is taken from the fields after it.
ETA_AFTER_FIELDS = 3


def eta_s(timed: Sequence[tuple[float, int]], structures: int, fields_done: int, fields_left: int) -> float | None:
    """Seconds left: a field without structures at the later half's pace, and each structure still to come its own.

    ``timed``: ``(seconds, structures recorded)`` of each field this run committed after its first; ``structures``
    and ``fields_done``: the scan's so far (the structures still to come are at their density). None until
    :data:`ETA_AFTER_FIELDS` fields of the run are committed.

    The plain rate since the first field said 2-3 times the time left over the first 5 % of the README slide and
    still +55 % at half way (docs/scan.md, "The ETA"): the first fields are searched for the slide's focus until
    the focus map holds, and the first structure's stack warms its code (4.8 s, later ones about 1.1 s). So the
    empty fields' pace is read from the later half of the run only, and a structure's cost is the lower median of
    the structures' own (one slow first structure of two is not the typical one).
    """
    if len(timed) + 1 < ETA_AFTER_FIELDS:
        return None
    later = timed[len(timed) // 2:]
    empty = [t for t, n in later if n == 0] or [t for t, n in timed if n == 0] or [t for t, _ in timed]
    base = sum(empty) / len(empty)
    each = [(t - base) / n for t, n in timed if n > 0]
    per_structure = max(0.0, statistics.median_low(each)) if each else 0.0
    return max(0, fields_left) * (base + per_structure * structures / max(1, fields_done))
