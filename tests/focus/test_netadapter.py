"""The focus-net adapter: crops cut at the target's centre and the camera's scale, arrays to estimates.

The net and the crop function here are fakes that follow the documented API of ``appliance.vision``
(``FocusNet.predict`` returns arrays ``defocus_um`` and ``confidence`` of length N; ``focus_crop(image,
(cx, cy), um_per_px)``); the real ones are wired in when the focus net is merged.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from appliance.focus.netadapter import FocusNetEstimator


class _FakeNet:
    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def predict(self, crops: list[np.ndarray]) -> SimpleNamespace:
        self.seen = list(crops)
        n = len(crops)
        return SimpleNamespace(defocus_um=np.linspace(-2, 2, n).astype(np.float32),
                               confidence=np.full(n, 0.8, np.float32), probs=np.zeros((n, 41), np.float32))


def test_adapter_cuts_at_the_centre_and_scale_and_converts() -> None:
    calls = []

    def crop(image: np.ndarray, centre: tuple[float, float], um_per_px: float) -> np.ndarray:
        calls.append((image.shape, centre, um_per_px))
        return np.zeros((64, 64), np.uint8)

    net = _FakeNet()
    est = FocusNetEstimator(0.56, net=net, crop=crop)
    out = est.predict([np.zeros((40, 60), np.uint8), np.zeros((11, 21), np.uint8)])
    assert calls == [((40, 60), (29.5, 19.5), 0.56), ((11, 21), (10.0, 5.0), 0.56)]
    assert [(o.defocus_um, o.confidence) for o in out] == [(-2.0, pytest.approx(0.8)), (2.0, pytest.approx(0.8))]
    assert len(net.seen) == 2


def test_adapter_refuses_a_bad_scale() -> None:
    with pytest.raises(ValueError, match="um_per_px"):
        FocusNetEstimator(0.0, net=_FakeNet(), crop=lambda *a: a[0])
