"""Which glass reference a structure's height takes: its specks, the specks' plane, the focus map, sure or not."""

import numpy as np
import pytest

from appliance.scan.field_focus import FieldFocus
from appliance.scan.plan import FocusPlan


class _Map:
    def __init__(self, pred):
        self.pred = pred

    def predict(self, x_um, y_um):
        return self.pred


def _runner(pred) -> FieldFocus:
    """A field focus whose map predicts ``pred`` everywhere (no stage or camera is needed to choose a glass)."""
    return FieldFocus(None, None, None, _Map(pred), FocusPlan(), 0.56)


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
    assert r.structure_glass(frames, z, (120, 80, 200, 160), 1000.0, 1000.0, 100.0) == (93.0, "focus-map-unsure")
    r.focus_map = _Map((93.0, 1.0))
    assert r.structure_glass(frames, z, (120, 80, 200, 160), 1000.0, 1000.0, 100.0) == (93.0, "focus-map")
    r.focus_map = _Map(None)
    assert r.structure_glass(frames, z, (120, 80, 200, 160), 1000.0, 1000.0, 100.0) == (None, None)


def test_specks_beside_the_structure_win_and_serve_the_next_structure_without_any():
    r = _runner((99.0, 1.0))
    frames, z = _frames(specks=True)
    g, src = r.structure_glass(frames, z, (120, 80, 200, 160), 1000.0, 1000.0, 104.0)
    assert src == "specks" and g == pytest.approx(95.5, abs=0.6)
    bare, _ = _frames(specks=False)
    g2, src2 = r.structure_glass(bare, z, (120, 80, 200, 160), 1400.0, 1100.0, 104.0)
    assert src2 == "specks-plane" and g2 == pytest.approx(g, abs=0.5)
    # a plane above the structure's own focus is no glass under it: the map takes over
    assert r.structure_glass(bare, z, (120, 80, 200, 160), 1400.0, 1100.0, 94.0)[1] == "focus-map"


def test_the_first_structure_takes_the_nearest_field_focus_below_it_while_the_map_holds_back():
    r = _runner(None)  # fewer than three points: the map predicts nothing
    frames, z = _frames(specks=False)
    box = (120, 80, 200, 160)
    assert r.structure_glass(frames, z, box, 1000.0, 1000.0, 100.0) == (None, None)
    r._focus_points = [(0.0, 0.0, 92.0), (900.0, 1000.0, 94.0), (1100.0, 1000.0, 103.0)]
    assert r.structure_glass(frames, z, box, 1000.0, 1000.0, 100.0) == (94.0, "field-focus")
    # a field focus above the structure's own is no glass under it
    assert r.structure_glass(frames, z, box, 1000.0, 1000.0, 93.0) == (92.0, "field-focus")
    assert r.structure_glass(frames, z, box, 1000.0, 1000.0, 91.0) == (None, None)


class _Focuser:
    depth_of_field_um = 4.1375


def test_the_reconstruction_is_told_the_focusers_depth_of_field():
    r = _runner(None)
    r.focuser = _Focuser()
    assert r.depth_of_field_um() == 4.1375
    r.focuser = object()  # a double that does not say: the tuned objective
    assert r.depth_of_field_um() == pytest.approx(11.04)


def test_the_glass_under_a_field_for_its_round_objects_phase_is_only_a_sure_one():
    from appliance.scan.field_focus import GLASS_UNDER_SIGMA_UM, FieldWork
    from appliance.scan.grid import FieldPosition

    w = FieldWork(FieldPosition(0, 0, 0, 0.0, 0.0), 0, z_um=101.0, focus_source="autofocus", focus_on_glass=True)
    assert _runner((95.0, 9.0)).glass_under(w, 1.0, 2.0) == 101.0   # the field's own reading of its specks
    w.focus_on_glass = False                                         # ... an object's focus is not the glass
    assert _runner((95.0, GLASS_UNDER_SIGMA_UM)).glass_under(w, 1.0, 2.0) == 95.0
    assert _runner((95.0, GLASS_UNDER_SIGMA_UM + 0.1)).glass_under(w, 1.0, 2.0) is None
    assert _runner(None).glass_under(w, 1.0, 2.0) is None
    ff = _runner((95.0, 0.5))
    ff.focus_map.reads_glass = lambda: False                        # a map of objects' foci, not the glass's
    assert ff.glass_under(w, 1.0, 2.0) is None
