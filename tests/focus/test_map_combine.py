"""The map strategy combines its search's reading with a map of the glass's prediction, by their uncertainties.

Two independent measurements of one z: the search's reading of the structure (scatter ``READING_SIGMA_UM``) and
the glass the other structures measured plus this one's reference height (the surface's own uncertainty there).
On the held-out slides that took the map strategy from 75.5 to 81.5 % within 1 µm (stepper) and 69.0 to 74.5 %
(servo; docs/autofocus.md, "The map's prediction and the reading together"). The device here images a texture
whose contrast peaks 2 µm above the map's prediction, so the reading and the prediction are known apart (and
6 µm above it, a reading that missed by a lobe's distance: the reading's error is a mixture, and a sure map then
carries the field; session 22: 80.0 -> 80.9 % servo, 83.0 -> 85.4 % stepper on the development slides).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from appliance.focus import FocusMap, autofocus
from appliance.focus.autofocus import (
    READING_OUTLIER_SIGMA_UM,
    READING_SIGMA_UM,
    _map_trusted,
    _posterior_z,
)
from appliance.focus.focusmap import GLASS_PRIOR_SIGMA_UM
from appliance.focus.result import FocusResult
from appliance.focus.testing import FocusOnly
from appliance.hardware.camera.base import Frame
from appliance.hardware.stage.base import Position

GLASS_UM, REF_UM = 95.0, 5.0  # the map's glass under the stage (x = y = 0) and the structure's height above it
PEAK_UM = GLASS_UM + REF_UM + 2.0  # where the texture is sharpest: the reading, 2 µm above the prediction
ROI = (80, 50, 80, 60)


class _Peak(FocusOnly):
    """A stage that only focuses and a camera whose texture's contrast peaks at ``PEAK_UM`` (one lobe)."""

    size_px = (240, 160)

    def __init__(self, peak_um: float = PEAK_UM) -> None:
        super().__init__(peak_um - 6.0)
        self.peak_um = peak_um
        self.rng = np.random.default_rng(0)
        tex = cv2.GaussianBlur(np.random.default_rng(99).normal(0, 1, (160, 240)), (0, 0), 1.5)
        self.texture = tex / tex.std()

    def capture(self) -> Frame:
        img = np.full((160, 240), 170.0)
        x, y, w, h = ROI
        amp = 4.0 + 30.0 * math.exp(-0.5 * ((self.z - self.peak_um) / 3.0) ** 2)
        img[y:y + h, x:x + w] += amp * self.texture[y:y + h, x:x + w]
        img += self.rng.normal(0, 0.5, img.shape)
        return Frame(np.clip(img, 0, 255).astype(np.uint8), self.position_um(), 0.0, 1.0)


def _glass_map(distance_um: float) -> FocusMap:
    """A map of the glass at ``GLASS_UM`` from six structures on a ring ``distance_um`` from the stage, each read
    within 0.3 µm: the further the ring, the less the map knows of the glass under the stage."""
    m = FocusMap(prior_sigma_um=GLASS_PRIOR_SIGMA_UM)
    for k, e in enumerate((0.3, -0.3, 0.2, -0.2, 0.1, -0.1)):
        a = 2 * math.pi * k / 6
        m.add(distance_um + 150 * math.cos(a), 150 * math.sin(a), GLASS_UM + REF_UM + e, offset_um=REF_UM)
    return m


def _focus(strategy: str, fmap: FocusMap, ref: float | None, peak_um: float = PEAK_UM) -> tuple[_Peak, FocusResult]:
    dev = _Peak(peak_um)
    r = autofocus(dev, dev, strategy, z_range_um=(80.0, 120.0), roi=ROI, focus_map=fmap,  # type: ignore[arg-type]
                  xy_um=(0.0, 0.0), ref_height_um=ref)
    return dev, r


def test_the_reading_and_the_prediction_meet_where_their_uncertainties_say() -> None:
    fmap = _glass_map(300.0)
    sure, z_map = fmap.surface_sigma(0.0, 0.0), fmap.predict(0.0, 0.0, offset_um=REF_UM)[0]
    assert not _map_trusted(z_map, sure, z_map, 1.0) and sure < 1.0  # not sure enough alone: a search
    dev, r = _focus("map", fmap, REF_UM)
    assert r.ok and r.measured and r.strategy == "map>classical", r
    assert abs(r.reading_um - PEAK_UM) < 0.5  # the search read its peak
    w_read, w_map = READING_SIGMA_UM ** -2, sure ** -2
    assert r.z_um == pytest.approx((r.reading_um * w_read + z_map * w_map) / (w_read + w_map), abs=0.01)
    assert dev.z == r.z_um and z_map < r.z_um < r.reading_um
    assert "combined with the map's prediction" in r.reason
    assert r.frames == len(r.trace)  # one more move, no frame
    assert r.point_um == r.reading_um  # a map is fed the reading, never its own prediction back


def test_a_map_that_knows_little_there_moves_the_reading_little() -> None:
    far = _glass_map(1000.0)
    assert far.surface_sigma(0.0, 0.0) > 2.0
    knows, guesses = _focus("map", _glass_map(300.0), REF_UM)[1], _focus("map", far, REF_UM)[1]
    assert knows.reading_um - knows.z_um > 0.6  # pulled half-way and more towards the prediction
    assert 0 < guesses.reading_um - guesses.z_um < 0.3  # a map 2 µm unsure moves a 0.7 µm reading by little


def test_no_combination_without_a_reference_height_or_outside_the_map_strategy() -> None:
    fmap = _glass_map(3000.0)
    for strategy, ref in (("map", None), ("classical", REF_UM)):
        _, r = _focus(strategy, fmap, ref)
        assert math.isnan(r.reading_um) and r.point_um == r.z_um, (strategy, r)
        assert "combined" not in r.reason


def test_a_reading_far_from_a_sure_map_is_taken_for_a_miss() -> None:
    fmap = _glass_map(300.0)
    z_map = fmap.predict(0.0, 0.0, offset_um=REF_UM)[0]
    dev, r = _focus("map", fmap, REF_UM, peak_um=GLASS_UM + REF_UM + 6.0)
    assert r.ok and r.measured and abs(r.reading_um - (GLASS_UM + REF_UM + 6.0)) < 0.5, r
    assert abs(r.z_um - z_map) < 0.4 and dev.z == r.z_um  # the map carries the field, not a point between
    assert "the reading taken for a miss" in r.reason
    assert r.point_um == r.reading_um  # the map still gets the reading: its own robust fit judges it


def test_the_mixture_switches_only_where_the_reading_cannot_be_the_likelier() -> None:
    # near the prediction: the plain weighted mean, continuous in the reading
    for d in (0.0, 0.5, 1.0, -1.0):
        z, missed = _posterior_z(100.0 + d, 100.0, 0.7)
        assert not missed and z == pytest.approx(100.0 + d / 2)
    # far from a sure prediction: near the prediction, pulled by the reading only through the wide component
    z, missed = _posterior_z(106.0, 100.0, 0.5)
    assert missed and z == pytest.approx(100.0 + 6.0 * 0.5 ** 2 / (0.5 ** 2 + READING_OUTLIER_SIGMA_UM ** 2))
    # the switch lies where the wide component's weight overtakes: between 2 and 4 µm for a 0.7 µm map
    switched = [d for d in np.arange(0.0, 6.0, 0.1) if _posterior_z(100.0 + d, 100.0, 0.7)[1]]
    assert 2.0 < switched[0] < 4.0 and switched == [d for d in np.arange(0.0, 6.0, 0.1) if d >= switched[0]]
    assert _posterior_z(1e6, 100.0, 0.5)[1]  # however far: no underflow into a tie
    # a loose prediction (a type's typical height, +-3.5 µm) is no ground to call an 8 µm reading a miss
    assert not _posterior_z(108.0, 100.0, 3.5)[1]


# ----- when a map of the glass stands alone: the odds that the stage lands within the budget ----------------

def test_a_map_stands_alone_where_the_stage_lands_within_a_micrometre_nine_times_in_ten() -> None:
    # a stage that stands at the prediction (a stepper): a surface sure to 0.61 µm, no less sure
    assert _map_trusted(100.0, 0.60, 100.0, 1.0) and not _map_trusted(100.0, 0.62, 100.0, 1.0)
    # a servo stands on a whole degree: the same surface is trusted near a degree, not half-way between two
    assert _map_trusted(100.05, 0.45, 100.0, 1.0) and not _map_trusted(100.5, 0.45, 100.0, 1.0)
    # a shallower objective (half the default depth of field) halves the budget
    assert not _map_trusted(100.0, 0.45, 100.0, 0.5) and _map_trusted(100.0, 0.30, 100.0, 0.5)
    # a deeper one keeps it: the budget is the micrometre, never wider
    assert _map_trusted(100.0, 0.60, 100.0, 6.0) and not _map_trusted(100.0, 0.62, 100.0, 6.0)
    for bad in (0.0, math.nan, math.inf):
        assert not _map_trusted(100.0, bad, 100.0, 1.0)


def test_a_servos_search_keeps_its_reading_for_the_map_not_the_degree_it_stopped_at() -> None:
    dev = _Servo(PEAK_UM + 0.4)  # the texture sharpest 0.4 µm above a whole degree
    r = autofocus(dev, dev, "classical", z_range_um=(80.0, 120.0), roi=ROI)  # type: ignore[arg-type]
    assert r.ok and r.z_um == round(r.z_um) and dev.z == r.z_um, r  # the stage stands on a degree
    assert abs(r.reading_um - (PEAK_UM + 0.4)) < abs(r.z_um - (PEAK_UM + 0.4)), r  # the reading is nearer
    assert r.point_um == r.reading_um  # and it is what a map is fed


class _Servo(_Peak):
    """:class:`_Peak` on a focus drive that stops on whole micrometres (a servo's degrees)."""

    def focus_to_um(self, z: float) -> Position:
        return super().focus_to_um(float(round(z)))
