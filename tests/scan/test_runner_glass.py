"""Which glass reference a structure's height takes: its specks, the specks' plane, the focus map, sure or not."""

import numpy as np
import pytest

from appliance.results.glass import SpeckGlassPlane
from appliance.scan.calibration import Calibration
from appliance.scan.plan import ScanPlan
from appliance.scan.runner import ScanRunner


class _Map:
    def __init__(self, pred):
        self.pred = pred

    def predict(self, x_um, y_um):
        return self.pred


def _runner(pred) -> ScanRunner:
    """A runner with only what ``_structure_glass`` reads (the rest of a scan is not needed to choose a glass)."""
    r = object.__new__(ScanRunner)
    r.plan = ScanPlan()
    r.focus_map = _Map(pred)
    r.cal = Calibration.nominal(0.56, (320, 240))
    r._speck_glass = SpeckGlassPlane()
    return r


def _frames(specks: bool) -> tuple[np.ndarray, list[float]]:
    z = [float(v) for v in np.arange(84.0, 117.0, 2.0)]
    v, u = np.mgrid[:240, :320].astype(np.float64)
    out = []
    for zz in z:
        t = np.ones((240, 320))
        if specks:
            for r, c in ((40, 40), (200, 60), (50, 280)):
                sigma = np.hypot(3.0, 0.45 * abs(zz - 95.5) / 0.56)
                t *= 1 - 0.9 * 25 / (25 + 2 * sigma**2) * np.exp(-((v - r) ** 2 + (u - c) ** 2) / (2 * sigma**2))
        out.append(np.clip(180 * t, 0, 255).astype(np.uint8))
    return np.stack(out), z


def test_an_unsure_map_is_used_rather_than_no_glass_at_all():
    r = _runner((93.0, 40.0))  # sigma 40 µm: more than half the search range
    frames, z = _frames(specks=False)
    assert r._structure_glass(frames, z, (120, 80, 200, 160), 1000.0, 1000.0, 100.0) == (93.0, "focus-map-unsure")
    r.focus_map = _Map((93.0, 1.0))
    assert r._structure_glass(frames, z, (120, 80, 200, 160), 1000.0, 1000.0, 100.0) == (93.0, "focus-map")
    r.focus_map = _Map(None)
    assert r._structure_glass(frames, z, (120, 80, 200, 160), 1000.0, 1000.0, 100.0) == (None, None)


def test_specks_beside_the_structure_win_and_serve_the_next_structure_without_any():
    r = _runner((99.0, 1.0))
    frames, z = _frames(specks=True)
    g, src = r._structure_glass(frames, z, (120, 80, 200, 160), 1000.0, 1000.0, 104.0)
    assert src == "specks" and g == pytest.approx(95.5, abs=0.6)
    bare, _ = _frames(specks=False)
    g2, src2 = r._structure_glass(bare, z, (120, 80, 200, 160), 1400.0, 1100.0, 104.0)
    assert src2 == "specks-plane" and g2 == pytest.approx(g, abs=0.5)
    # a plane above the structure's own focus is no glass under it: the map takes over
    assert r._structure_glass(bare, z, (120, 80, 200, 160), 1400.0, 1100.0, 94.0)[1] == "focus-map"
