"""The focus map: robust plane then quadratic, outliers set aside, honest uncertainty."""

from __future__ import annotations

import math

import numpy as np
import pytest

from appliance.focus.focusmap import GLASS_PRIOR_SIGMA_UM, PRIOR_SIGMA_UM, FocusMap


def _surface(x: float, y: float) -> float:
    return 90 + 2.0e-3 * (x - 5000) - 1.5e-3 * (y - 5000) + 3e-7 * ((x - 5000) ** 2 + (y - 5000) ** 2)


def test_plane_is_recovered_from_three_points_with_the_prior_uncertainty() -> None:
    m = FocusMap()
    for x, y in ((1000, 1000), (9000, 1000), (1000, 9000)):
        m.add(x, y, 90 + 0.002 * x - 0.001 * y)
    z, sigma = m.predict(5000, 5000)
    assert m.order == 1
    assert z == pytest.approx(90 + 10 - 5, abs=0.2)  # the weak level-slide prior shrinks the tilt a little
    assert sigma >= PRIOR_SIGMA_UM  # three points fix a plane but say nothing of the scatter


def test_three_points_almost_on_a_line_do_not_tilt_the_map_across_the_slide() -> None:
    # The first fields of a serpentine scan lie in one row: their y spread says nothing of the y tilt, and one
    # point a few micrometres off must not swing the plane by hundreds of micrometres (a free plane through
    # these points tilts by 160 um/mm in y); the map stays within the tilt a slide may have (10 um/mm, one
    # standard deviation, 5 mm away: 50 um) and says it does not know there.
    m = FocusMap(prior_sigma_um=GLASS_PRIOR_SIGMA_UM)
    for x, y, dz in ((1000, 1000, 0.0), (3000, 1020, 4.0), (5000, 990, 0.0)):
        m.add(x, y, 90 + dz, offset_um=0.0)
    z, _ = m.predict(3000, 6000)
    assert abs(z - 91.3) < min(50.0, m.surface_sigma(3000, 6000))
    assert m.surface_sigma(3000, 1000) < 1.5 < 40 < m.surface_sigma(3000, 6000)  # sure only near its points


def test_few_close_points_are_not_sure_far_away_on_a_slide_that_may_tilt() -> None:
    # Three fields 300 um apart at the start of a row: 1.5 mm further along, a slide tilted 20 um/mm may lie
    # 30 um away from a level plane through them; the map must not be sure there, though it is sure between
    # them. (Scaled by the points' scatter, as before, the prior let a map whose points agreed claim 1.2 um.)
    m = FocusMap(prior_sigma_um=GLASS_PRIOR_SIGMA_UM)
    for x in (1000.0, 1300.0, 1600.0):
        m.add(x, 500.0, 90.0)
    assert m.predict(1300.0, 500.0)[1] < 1.5
    assert m.predict(3100.0, 500.0)[1] > 3.0   # along the row: the points' own scatter over a short baseline
    assert m.predict(1300.0, 2000.0)[1] > 10.0  # across it: only the prior on the tilt


def test_noisy_points_widen_the_map() -> None:
    # The same places read by a noisy focus (a few micrometres either way): the scatter the residuals show
    # makes the map less sure everywhere, and most of all far from its points.
    rng = np.random.default_rng(5)
    quiet, noisy = FocusMap(prior_sigma_um=GLASS_PRIOR_SIGMA_UM), FocusMap(prior_sigma_um=GLASS_PRIOR_SIGMA_UM)
    for x in np.linspace(1000.0, 2400.0, 8):
        quiet.add(x, 500.0, 90.0 + rng.normal(0, 0.3))
        noisy.add(x, 500.0, 90.0 + rng.normal(0, 4.0))
    for where in ((1700.0, 500.0), (4000.0, 500.0)):
        assert noisy.predict(*where)[1] > 3 * quiet.predict(*where)[1]
    assert noisy.surface_sigma(4000.0, 500.0) > 4.0


def test_a_map_of_the_glass_adds_each_structures_offset() -> None:
    m = FocusMap(prior_sigma_um=GLASS_PRIOR_SIGMA_UM)
    for x, y, h in ((1000, 1000, 3.0), (9000, 1000, 7.5), (1000, 9000, 12.0), (9000, 9000, 5.0)):
        m.add(x, y, 90 + 0.002 * x - 0.001 * y + h, offset_um=h)
    z, _ = m.predict(5000, 5000, offset_um=4.0)
    assert z == pytest.approx(95 + 4.0, abs=0.2)
    with pytest.raises(ValueError, match="offset"):
        m.add(0, 0, 90, offset_um=math.nan)


def test_quadratic_surface_with_noise_predicts_within_its_sigma() -> None:
    rng = np.random.default_rng(7)
    m = FocusMap()
    for _ in range(40):
        x, y = rng.uniform(500, 9500, 2)
        m.add(x, y, _surface(x, y) + rng.normal(0, 0.5))
    assert m.order == 2
    errs = []
    for _ in range(200):
        x, y = rng.uniform(1000, 9000, 2)
        z, sigma = m.predict(x, y)
        errs.append(abs(z - _surface(x, y)) / sigma)
        assert 0.4 < sigma < 1.5
    assert np.mean(np.array(errs) <= 1.0) > 0.6  # about a standard normal's 68 %


def test_outliers_are_set_aside_and_do_not_pull_the_surface() -> None:
    rng = np.random.default_rng(1)
    m = FocusMap()
    pts = [(float(x), float(y)) for x, y in rng.uniform(500, 9500, (20, 2))]
    for k, (x, y) in enumerate(pts):
        wrong = 25.0 if k in (4, 11, 17) else 0.0  # dust on the cover glass, a failed focus
        m.add(x, y, _surface(x, y) + rng.normal(0, 0.3) + wrong)
    assert len(m.outliers) == 3
    z, sigma = m.predict(5000, 5000)
    assert abs(z - _surface(5000, 5000)) < 1.0
    assert sigma < 2.0  # the scatter (0.3 um) pulled up by the 5 um prior worth one point


def test_uncertainty_grows_away_from_the_points() -> None:
    m = FocusMap()
    rng = np.random.default_rng(3)
    for _ in range(10):
        x, y = rng.uniform(4000, 6000, 2)
        m.add(x, y, 90 + 0.002 * x + rng.normal(0, 0.5))
    assert m.predict(5000, 5000)[1] < m.predict(20000, 20000)[1]


def test_one_point_predicts_its_z_with_the_prior() -> None:
    m = FocusMap()
    m.add(10, 20, 95.0)
    z, sigma = m.predict(5000, 5000)
    assert z == 95.0 and sigma >= PRIOR_SIGMA_UM


@pytest.mark.parametrize("bad", [(math.nan, 0, 90), (0, math.inf, 90), (0, 0, "90")])
def test_bad_points_are_refused(bad: tuple[object, object, object]) -> None:
    with pytest.raises(ValueError, match="finite"):
        FocusMap().add(*bad)  # type: ignore[arg-type]


def test_empty_map_cannot_predict() -> None:
    with pytest.raises(ValueError, match="no points"):
        FocusMap().predict(0, 0)


def test_bad_settings_name_the_parameter() -> None:
    with pytest.raises(ValueError, match="quadratic_from"):
        FocusMap(quadratic_from=3)
    with pytest.raises(ValueError, match="outlier_k"):
        FocusMap(outlier_k=0)


def test_a_loose_point_weighs_by_its_own_sigma_and_is_an_outlier_only_further_out() -> None:
    # A structure's focus less a catalogue height (±3.5 µm) is a point of the glass that loose: beside two glass
    # readings it moves the map by a fraction of what a third reading would, and 6 µm off it is no outlier
    # among loose points, where a reading of the glass 6 µm off is
    m = FocusMap(prior_sigma_um=GLASS_PRIOR_SIGMA_UM)
    m.add(0, 0, 90.0)
    m.add(0, 100, 90.0)
    m.add(100, 0, 96.0, offset_um=0.0, extra_sigma_um=3.5)
    z, _ = m.predict(0, 50)
    assert 90.0 < z < 90.8  # a third glass reading at 96 would pull the constant to 92
    for off_is_loose in (True, False):
        mixed = FocusMap(prior_sigma_um=GLASS_PRIOR_SIGMA_UM, quadratic_from=50)
        for i in range(6):  # glass readings within ±0.3 µm, structures' points within the catalogue's ±3.5
            mixed.add(200 * i, 0, 90.0 + 0.3 * (-1) ** i)
            mixed.add(200 * i + 100, 300, 90.0 + 3.0 * (-1) ** i, extra_sigma_um=3.5)
        mixed.add(500, 150, 97.0, extra_sigma_um=3.5 if off_is_loose else 0.0)
        assert (mixed.outliers == []) == off_is_loose  # 7 µm off: two sigma of a loose point, 7 of a reading

def test_a_negative_extra_sigma_is_refused() -> None:
    with pytest.raises(ValueError, match="extra_sigma_um"):
        FocusMap().add(0, 0, 90.0, extra_sigma_um=-1.0)


def _scan_rows(n: int) -> list[tuple[float, float]]:
    """``n`` structures of a serpentine scan over 3 x 3 mm: rows 1 mm apart, x alternating."""
    rng = np.random.default_rng(3)
    pts = [(float(x), float(y)) for x, y in zip(rng.uniform(3500, 6500, n), rng.uniform(3500, 6500, n), strict=True)]
    return sorted(pts, key=lambda p: (p[1] // 1000, p[0] if int(p[1] // 1000) % 2 == 0 else -p[0]))


def test_a_bow_below_the_scatter_keeps_the_plane_and_predicts_better_than_a_quadratic() -> None:
    # The development slides' glass (tilt 2 / -1.5 um/mm, a bow of 1.5 um at the corners: 0.1 um over these
    # 3 mm) under foci with 0.7 um of scatter and one in ten 3-6 um off (a lobe read for the focus): the
    # quadratic's three more coefficients follow the scatter, and the map must not take them.
    rng = np.random.default_rng(11)
    pts = _scan_rows(40)
    z_err = rng.normal(0, 0.7, len(pts)) + np.where(rng.uniform(size=len(pts)) < 0.1,
                                                    rng.choice([-1, 1], len(pts)) * rng.uniform(3, 6, len(pts)), 0)
    plane_errs, quad_errs = [], []
    m, q = FocusMap(prior_sigma_um=GLASS_PRIOR_SIGMA_UM), FocusMap(prior_sigma_um=GLASS_PRIOR_SIGMA_UM)
    for k, ((x, y), e) in enumerate(zip(pts, z_err, strict=True)):
        if k >= 12:
            plane_errs.append(abs(m.predict(x, y)[0] - _surface(x, y)))
            quad_errs.append(abs(q._solve_degree(np.array(q._pts), 6)[0] @ q._design(np.array([x]), np.array([y]), 6)[0]
                                 - _surface(x, y)))
        m.add(x, y, _surface(x, y) + e)
        q.add(x, y, _surface(x, y) + e)
    assert m.order == 1
    assert np.mean(np.array(plane_errs) <= 1.0) > np.mean(np.array(quad_errs) <= 1.0)


def test_a_real_bow_takes_the_quadratic_from_twelve_points() -> None:
    # A slide bowed by 20 um at its corners (0.8 um/mm^2 here) under 0.3 um of scatter: far above the test.
    rng = np.random.default_rng(5)
    m = FocusMap(prior_sigma_um=GLASS_PRIOR_SIGMA_UM)
    for x, y in rng.uniform(500, 9500, (12, 2)):
        m.add(x, y, 90 + 8e-7 * ((x - 5000) ** 2 + (y - 5000) ** 2) + rng.normal(0, 0.3))
    assert m.order == 2
    assert m.predict(5000, 5000)[0] == pytest.approx(90, abs=1.0)
