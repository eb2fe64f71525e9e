"""The focus net (``appliance.vision.focusnet.FocusNet``) as a :class:`DefocusEstimator`.

The net takes fixed-scale crops (48 µm of slide at 0.75 µm per pixel, ``appliance.vision.crops.focus_crop``)
because blur has a size in micrometres; the autofocus hands over the target's rectangle, so this adapter
cuts the net's crop around that rectangle's centre at the camera's scale. Both use the same sign:
``defocus_um = stage z - the object's focus z``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from appliance.focus.neural import DefocusEstimate


class FocusNetEstimator:
    """Adapter from the focus net to the autofocus's estimator protocol.

    Parameters
    ----------
    um_per_px : float
        The camera's scale at the sample, µm per pixel (> 0).
    net : object, optional
        A loaded ``FocusNet`` (or anything with its ``predict``); loaded from ``model`` when None.
    crop : callable, optional
        ``crop(image, (cx, cy), um_per_px) -> patch``; ``appliance.vision.crops.focus_crop`` when None.
    model : path, optional
        The focus net file to load when ``net`` is None (a ``.tflite`` that ``tppscan train focus`` wrote); the
        shipped one when None.

    Raises
    ------
    ValueError
        A non-positive scale.
    OSError
        The focus net is not in this build, or its model file is missing or bad.
    """

    def __init__(self, um_per_px: float, net: Any = None, crop: Any = None, model: str | Path | None = None) -> None:
        if not (isinstance(um_per_px, (int, float)) and um_per_px > 0):
            raise ValueError(f"um_per_px must be a number > 0, got {um_per_px!r}")
        self.um_per_px = float(um_per_px)
        if net is None:
            try:
                from appliance.vision.focusnet import FocusNet  # type: ignore[import-not-found,unused-ignore]
            except ImportError:
                raise OSError("the focus net (appliance/vision/focusnet.py) is not in this build") from None
            net = FocusNet(model, num_threads=1)
        self.net = net
        if crop is None:
            from appliance.vision.crops import focus_crop  # type: ignore[import-not-found,unused-ignore]

            crop = focus_crop
        self.crop = crop

    def predict(self, crops: Sequence[np.ndarray]) -> list[DefocusEstimate]:
        """One estimate per target crop: the net's crop is cut around each crop's centre."""
        patches = [self.crop(c, ((c.shape[1] - 1) / 2, (c.shape[0] - 1) / 2), self.um_per_px) for c in crops]
        p = self.net.predict(patches)
        return [DefocusEstimate(float(d), float(c)) for d, c in zip(p.defocus_um, p.confidence, strict=True)]
