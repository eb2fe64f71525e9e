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

**A micro-lens's bias follows its shape** (session 21). Over the development slides 100-139 (298 lens readings,
Z stepper and servo) the lens's error ran from about -4 µm for a flat lens to +0.7 µm for a steep one: its
rim's slope, height over diameter, set it (correlation +0.72; the print's height alone +0.54, its diameter
-0.29, its roughness 0.0). ``SHAPE_BIAS`` holds the least-squares fit ``a + b h/d + c h`` (h the print's
height, twice its reference height above the glass; d its width across, the detection box's larger side):
within 1 µm 61 % with the constant, 88 % with the fit; left out one slide at a time, 54 -> 87 % (stepper) and
53 -> 83 % (servo). The autofocus uses it when it is told both the print's own height (known to
``SHAPE_HEIGHT_SIGMA_UM``) and its width, else the constant.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType

#: Median classical reading minus true focus per structure type, µm (module doc).
READING_BIAS_UM: Mapping[str, float] = MappingProxyType({"pentagon": 1.0, "microlens": -0.55})
#: Types whose bias is ``a + b * height / width + c * height`` (µm, height and width in µm), and (a, b, c) (module doc).
SHAPE_BIAS: Mapping[str, tuple[float, float, float]] = MappingProxyType({"microlens": (-4.30, 9.62, 0.046)})
#: The height-over-width the shape fit saw (0.05-0.49); a ratio outside is taken at the nearer end.
SHAPE_RATIO_RANGE = (0.05, 0.5)
#: The shape fit wants the print's own height: one known to this (one standard deviation, µm) or better, as a
#: print job states it. A type's typical height (the virtual microscope's catalogue: ±3.5 µm) would put a lens's
#: height over its width off by more than the fit explains, so the type's constant is used then.
SHAPE_HEIGHT_SIGMA_UM = 1.0


def reading_bias_um(target_type: str | None, table: Mapping[str, float] = READING_BIAS_UM, *,
                    height_um: float | None = None, width_um: float | None = None) -> float:
    """The classical reading's bias for ``target_type`` (0 for an unknown type or None), µm.

    Parameters
    ----------
    target_type : str or None
    table : mapping of str to float
        Each type's constant bias.
    height_um, width_um : float, optional
        The print's height and its width across, µm: with both (finite, > 0), a type of ``SHAPE_BIAS`` takes
        its bias from its shape instead of ``table``.

    Raises
    ------
    ValueError
        A table value that is not a finite number.
    """
    if target_type is None:
        return 0.0
    shape = SHAPE_BIAS.get(target_type)
    if shape is not None and _positive(height_um) and _positive(width_um):
        a, b, c = shape
        h, w = float(height_um), float(width_um)  # type: ignore[arg-type]
        ratio = min(max(h / w, SHAPE_RATIO_RANGE[0]), SHAPE_RATIO_RANGE[1])
        return a + b * ratio + c * h
    v = table.get(target_type, 0.0)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"reading bias for {target_type!r} must be a finite number of um, got {v!r}")
    return float(v)


def _positive(v: float | None) -> bool:
    return v is not None and not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and v > 0
