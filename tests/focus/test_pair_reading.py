"""A thin wall's focus curve has two lobes with its focus in the dip between them: the classical search reads
the middle of the pair, not the lobe it happened to walk onto.

A thin wall, bar or rim of a phase object fades at its own plane (its contrast inverts through focus), so its
sharpness rises a few micrometres either side and dips at the focus. On the virtual microscope's held-out
slides the walk bracketed one lobe and read it on about a third of the scaffolds and many woodpiles and split
rings, 4-9 µm from their mid-plane (docs/autofocus.md, "Two lobes: a thin wall's curve"). The device here
images a texture whose contrast follows a hand-made curve of z, so the tests say exactly where the focus is.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import pytest

from appliance.focus import autofocus
from appliance.focus.search import PAIR_READING, _dip, _pair_side, _vertex
from appliance.focus.testing import FocusOnly
from appliance.hardware.camera.base import Frame

FOCUS_UM = 100.0
ROI = (80, 50, 80, 60)  # x, y, w, h: where the texture is


def _lobe(z: float, at: float, width: float = 3.0) -> float:
    return float(np.exp(-0.5 * ((z - at) / width) ** 2))


class _Texture(FocusOnly):
    """A stage that only focuses and a camera whose frame holds a texture of contrast ``curve(z)`` in ``ROI``."""

    size_px = (240, 160)

    def __init__(self, curve: Callable[[float], float], seed: int = 0) -> None:
        super().__init__(FOCUS_UM)
        self.curve = curve
        self.rng = np.random.default_rng(seed)
        tex = cv2.GaussianBlur(np.random.default_rng(99).normal(0, 1, (160, 240)), (0, 0), 1.5)
        self.texture = tex / tex.std()

    def capture(self) -> Frame:
        img = np.full((160, 240), 170.0)
        x, y, w, h = ROI
        amp = 4.0 + 30.0 * self.curve(self.z)
        img[y:y + h, x:x + w] += amp * self.texture[y:y + h, x:x + w]
        img += self.rng.normal(0, 0.5, img.shape)
        return Frame(np.clip(img, 0, 255).astype(np.uint8), self.position_um(), 0.0, 1.0)


def _pair(left: float = 1.0, right: float = 1.0, half_gap: float = 6.0) -> Callable[[float], float]:
    return lambda z: left * _lobe(z, FOCUS_UM - half_gap) + right * _lobe(z, FOCUS_UM + half_gap)


def _focus(dev: _Texture, start: float, **kw: object) -> tuple[float, object]:
    dev.z = start
    r = autofocus(dev, dev, "classical", z_range_um=(start - 15, start + 15), roi=ROI, **kw)  # type: ignore[arg-type]
    return dev.z - FOCUS_UM, r


@pytest.mark.parametrize("start", [FOCUS_UM - 7.0, FOCUS_UM - 2.0, FOCUS_UM + 3.0, FOCUS_UM + 8.0])
def test_a_pair_of_lobes_is_read_in_the_middle_wherever_the_walk_starts(start: float) -> None:
    dz, r = _focus(_Texture(_pair()), start)
    assert r.ok and r.reason.startswith(PAIR_READING), r  # type: ignore[attr-defined]
    assert abs(dz) <= 1.0, dz
    assert r.frames <= 10  # type: ignore[attr-defined]


@pytest.mark.parametrize("left,right", [(1.0, 0.75), (0.75, 1.0)])
def test_unequal_lobes_are_read_in_the_middle_too(left: float, right: float) -> None:
    # the absorption-phase cross term makes one lobe stronger (here its score is about half the other's);
    # the maxima stay either side of the focus
    dz, r = _focus(_Texture(_pair(left, right)), FOCUS_UM + 6.0)
    assert r.reason.startswith(PAIR_READING), r  # type: ignore[attr-defined]
    assert abs(dz) <= 1.0, dz


def test_one_lobe_is_read_as_before() -> None:
    dz, r = _focus(_Texture(lambda z: _lobe(z, FOCUS_UM, 4.0)), FOCUS_UM + 5.0)
    assert r.ok and r.reason == "focused", r  # type: ignore[attr-defined]
    assert abs(dz) <= 1.0, dz


def test_a_pair_reading_is_not_moved_by_the_symmetry_readings_type_bias() -> None:
    # the per-type table (appliance.focus.typebias) is the symmetry reading's bias; a pentagon's is +1 um
    dz, r = _focus(_Texture(_pair()), FOCUS_UM + 6.0, target_type="pentagon")
    assert r.reason.startswith(PAIR_READING) and "bias" not in r.reason, r  # type: ignore[attr-defined]
    assert abs(dz) <= 1.0, dz


def test_a_second_lobe_cut_by_the_range_leans_the_reading_towards_the_range() -> None:
    # the range stops 4 µm below the focus, on the lower lobe's rising side (its maximum is 6 µm below): read at
    # the range's end, the pair's middle leans up by half the cut, where the upper lobe alone is 6 µm off
    dev = _Texture(_pair())
    dev.z = FOCUS_UM + 6.0
    r = autofocus(dev, dev, "classical", z_range_um=(FOCUS_UM - 4.0, FOCUS_UM + 20.0), roi=ROI)  # type: ignore[arg-type]
    assert r.ok and "cut by the range" in r.reason, r
    assert 0.0 <= dev.z - FOCUS_UM <= 2.0, dev.z


def test_pair_side_needs_a_rise_after_a_dip_within_reach() -> None:
    z = np.arange(-12.0, 13.0, 4.0)  # -12 ... 12
    assert _pair_side(z, np.array([0.2, 0.9, 1.0, 0.3, 0.8, 0.7, 0.1]), 16.0) == 1
    assert _pair_side(z, np.array([0.1, 0.7, 0.8, 0.3, 1.0, 0.9, 0.2]), 16.0) == -1
    assert _pair_side(z, np.array([0.1, 0.3, 0.7, 1.0, 0.7, 0.3, 0.1]), 16.0) == 0  # one lobe
    assert _pair_side(z, np.array([0.1, 0.3, 0.7, 1.0, 0.6, 0.65, 0.2]), 16.0) == 0  # a ripple under the rise
    assert _pair_side(z, np.array([1.0, 0.6, 0.2, 0.1, 0.1, 0.2, 0.9]), 16.0) == 0  # beyond reach: another object


def test_dip_and_vertex() -> None:
    assert _dip(np.array([1.0, 0.5, 0.3, 0.4, 0.9, 0.2]), 0.2) == 2  # the low before the climb, not the tail
    z = np.array([0.0, 4.0, 8.0])
    assert _vertex(z, np.array([0.0, 4.0, 0.0]), 1) == pytest.approx(4.0)
    assert _vertex(z, 16.0 - (z - 5.0) ** 2, 1) == pytest.approx(5.0)
    assert _vertex(z, np.array([3.0, 2.0, 1.0]), 0) == 0.0  # at an end: the sample itself


def test_a_pair_with_one_lobe_cut_by_the_range_is_read_between_them() -> None:
    # the range ends 5 µm below the focus, before the lower lobe's maximum (6 µm below): the dip and the upper
    # lobe are inside, so the focus is too; read with the cut lobe's maximum at the range's end
    dev = _Texture(_pair())
    dev.z = FOCUS_UM + 2.0
    r = autofocus(dev, dev, "classical", z_range_um=(FOCUS_UM - 5.0, FOCUS_UM + 25.0), roi=ROI)  # type: ignore[arg-type]
    assert r.ok and r.reason.startswith(PAIR_READING) and "cut by the range" in r.reason, r
    assert abs(dev.z - FOCUS_UM) <= 1.0, dev.z


def test_one_lobe_cut_by_the_range_is_still_an_error() -> None:
    # no dip and no second lobe inside: the focus may lie beyond the range, and the search says so
    dev = _Texture(lambda z: _lobe(z, FOCUS_UM, 4.0))
    dev.z = FOCUS_UM + 10.0
    r = autofocus(dev, dev, "classical", z_range_um=(FOCUS_UM + 3.0, FOCUS_UM + 30.0), roi=ROI)  # type: ignore[arg-type]
    assert not r.ok and "no focus peak inside" in r.reason, r


class _TwoScales(_Texture):
    """A print's coarse detail with one lobe 4 µm above the focus, and its fine detail with a thin wall's pair.

    The walking measure (variance of the Laplacian) sees mostly the coarse texture, whose lobe fills the
    pair's dip; the fine measure (the biharmonic) sees the fine texture's two lobes, the stronger 5 µm below.
    """

    def __init__(self) -> None:
        super().__init__(lambda z: 0.0)
        rng = np.random.default_rng(99)
        coarse = cv2.GaussianBlur(rng.normal(0, 1, (160, 240)), (0, 0), 2.0)
        fine = cv2.GaussianBlur(rng.normal(0, 1, (160, 240)), (0, 0), 0.8)
        self.coarse, self.fine = coarse / coarse.std(), fine / fine.std()

    def capture(self) -> Frame:
        img = np.full((160, 240), 170.0)
        x, y, w, h = ROI
        a_coarse = 4.0 + 35.0 * _lobe(self.z, FOCUS_UM + 4.0, 5.0)
        a_fine = 1.0 + 5.0 * (_lobe(self.z, FOCUS_UM - 5.0, 2.5) + 0.7 * _lobe(self.z, FOCUS_UM + 5.0, 2.5))
        img[y:y + h, x:x + w] += a_coarse * self.coarse[y:y + h, x:x + w] + a_fine * self.fine[y:y + h, x:x + w]
        img += self.rng.normal(0, 0.5, img.shape)
        return Frame(np.clip(img, 0, 255).astype(np.uint8), self.position_um(), 0.0, 1.0)


@pytest.mark.parametrize("start", [FOCUS_UM - 2.0, FOCUS_UM + 3.0, FOCUS_UM + 8.0])
def test_a_pair_only_the_fine_curve_shows_is_read_in_the_middle(start: float) -> None:
    # read on the walking curve alone this was the coarse lobe, 4-5 µm above the focus
    dz, r = _focus(_TwoScales(), start)
    assert r.ok and r.reason.startswith(PAIR_READING), r  # type: ignore[attr-defined]
    assert abs(dz) <= 1.0, dz


def test_a_lens_pair_is_looked_for_on_the_walking_curve_only() -> None:
    # a micro-lens's fine curve has a second peak of its own, its focal spot: told the type, the search leaves
    # the fine curve's pair alone (here the walking curve's one lobe is read, 4 µm above the focus)
    dz, r = _focus(_TwoScales(), FOCUS_UM + 3.0, target_type="microlens")
    assert not r.reason.startswith(PAIR_READING), r  # type: ignore[attr-defined]
    assert dz > 2.0, dz
    dz, r = _focus(_TwoScales(), FOCUS_UM + 3.0, target_type="scaffold")
    assert r.reason.startswith(PAIR_READING) and abs(dz) <= 1.0, (r, dz)  # type: ignore[attr-defined]
