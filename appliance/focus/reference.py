"""Each structure type's focus reference height above the glass: what turns a map of the glass into a focus.

A structure's focus reference plane lies half its printed height above the glass (its mid-plane, see
docs/autofocus.md). The print job knows that height: a scan plan states it per structure type
(``focus.reference_height_um``), and it is then known to about ``PRINT_JOB_SIGMA_UM`` (a print's height
against its design). Without a stated value the virtual microscope takes it from its own structure
catalogue (``appliance.sim.structures.GENERATORS``): the mean half-height of the designs the catalogue
draws, known only to their spread (the virtual slides print every structure at its own height, 5-30 µm), which
is what a real print job would carry when it prints one design per type in several heights. A real device
without stated heights has none, and its structures are focused with the map of structure foci.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

#: How well a print job's design height gives a print's reference height (one standard deviation, µm):
#: resin shrinkage and where the first layer starts on the glass. An assumption, not a measurement.
PRINT_JOB_SIGMA_UM = 0.3
#: Designs drawn per type to estimate the virtual microscope's catalogue heights (the mean to about 0.1 µm).
CATALOGUE_DRAWS = 1000


@dataclass(frozen=True)
class ReferenceHeight:
    """A structure type's focus reference height above the glass.

    Attributes
    ----------
    height_um : float
        Half the printed height (a groove: minus half its depth), µm.
    sigma_um : float
        How well one structure's reference height is known (one standard deviation), µm.
    source : str
        Where it came from: ``plan`` or ``sim catalogue``.
    """

    height_um: float
    sigma_um: float
    source: str

    def __post_init__(self) -> None:
        for name in ("height_um", "sigma_um"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"ReferenceHeight.{name} must be a finite number of um, got {v!r}")
        if self.sigma_um < 0:
            raise ValueError(f"ReferenceHeight.sigma_um must be >= 0, got {self.sigma_um!r}")


@lru_cache(maxsize=1)
def sim_catalogue_reference(draws: int = CATALOGUE_DRAWS) -> dict[str, ReferenceHeight]:
    """The virtual microscope's catalogue: per type, the mean and spread of half the designs' heights.

    The designs are drawn from the simulator's own generators (a fixed seed, coarse 1 µm pitch, no surface
    roughness: only the design height matters here), never from a slide's objects. About 3 s, once per process.
    """
    from appliance.sim.structures import GENERATORS

    out = {}
    for i, (cls, gen) in enumerate(sorted(GENERATORS.items())):
        half = [0.5 * float(gen(np.random.default_rng([0x7EF, i, k]), 1.0, False).attrs["max_height_um"])
                for k in range(draws)]
        out[cls] = ReferenceHeight(float(np.mean(half)), float(np.std(half)), "sim catalogue")
    return out


def reference_heights(stated: Mapping[str, float], virtual: bool,
                      sigma_um: float = PRINT_JOB_SIGMA_UM) -> dict[str, ReferenceHeight]:
    """The reference heights a scan focuses with.

    Parameters
    ----------
    stated : mapping of str to float
        The plan's ``focus.reference_height_um`` (type -> µm). When it names any type it is the print job:
        only those types have a reference height.
    virtual : bool
        The device is the virtual microscope: with nothing stated, its catalogue gives every type's.
    sigma_um : float
        How well a stated height is known (the plan's ``focus.reference_height_sigma_um``); the catalogue's
        heights carry their own spread.

    Returns
    -------
    dict of str to ReferenceHeight
        Empty when nothing is stated on a real device (every structure is then focused with the map of
        structure foci).
    """
    if stated:
        return {str(k): ReferenceHeight(float(v), float(sigma_um), "plan") for k, v in stated.items()}
    return dict(sim_catalogue_reference()) if virtual else {}
