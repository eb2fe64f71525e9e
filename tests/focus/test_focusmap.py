"""The focus map: robust plane then quadratic, outliers set aside, honest uncertainty."""

from __future__ import annotations

import math

import numpy as np
import pytest

from appliance.focus.focusmap import PRIOR_SIGMA_UM, FocusMap


def _surface(x: float, y: float) -> float:
    return 90 + 2.0e-3 * (x - 5000) - 1.5e-3 * (y - 5000) + 3e-7 * ((x - 5000) ** 2 + (y - 5000) ** 2)


def test_plane_is_recovered_from_three_points_with_the_prior_uncertainty() -> None:
    m = FocusMap()
    for x, y in ((1000, 1000), (9000, 1000), (1000, 9000)):
        m.add(x, y, 90 + 0.002 * x - 0.001 * y)
    z, sigma = m.predict(5000, 5000)
    assert m.order == 1
    assert z == pytest.approx(90 + 10 - 5)
    assert sigma >= PRIOR_SIGMA_UM  # three points fix a plane but say nothing of the scatter


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
