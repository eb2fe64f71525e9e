"""The classical reading's bias per structure type, measured on development slides, and its correction.

The centre of symmetry of a focus curve misses a print's mid-plane by an amount set by the print's
absorption and phase together (the cross term of docs/autofocus.md). No intensity-only reading removes it
(a positivity prior on the frames was tried and lost, docs/autofocus.md), but for a type whose prints are
alike it is the same sign and size from print to print, so it can be measured once and taken off.

``READING_BIAS_UM`` holds the median signed error (reading minus true focus) of the classical search on the
development slides 0-3 only (``tppscan focus bench --seed 0 --fields 80 --strategy classical``, Z stepper
and servo, 160 fields), for the types whose median had the same sign on every one of the four slides and
was at least 0.25 µm: pentagon +1.0 µm (per slide +0.7 to +1.5), microlens -0.55 µm (-0.2 to -1.3). Scaffolds
(-2.7 to +0.1 per slide), split rings and woodpiles (within ±0.4, either sign) are left alone. Left out of
each slide in turn, the correction took the development slides from 65.6 % to 75.0 % within 1 µm. It is a
calibration of the virtual microscope's default optics (10x / NA 0.25, its condenser and its prints): a
different objective, condenser or resin changes the cross term, and a real microscope needs its own
measurement. The focus net, trained on the simulator's true focus, would learn the same bias.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType

#: Median classical reading minus true focus per structure type, µm (module doc).
READING_BIAS_UM: Mapping[str, float] = MappingProxyType({"pentagon": 1.0, "microlens": -0.55})


def reading_bias_um(target_type: str | None, table: Mapping[str, float] = READING_BIAS_UM) -> float:
    """The classical reading's bias for ``target_type`` (0 for an unknown type or None), µm.

    Raises
    ------
    ValueError
        A table value that is not a finite number.
    """
    if target_type is None:
        return 0.0
    v = table.get(target_type, 0.0)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"reading bias for {target_type!r} must be a finite number of um, got {v!r}")
    return float(v)
