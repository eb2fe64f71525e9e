"""Reading a sampled focus curve: centre of the main lobe, three-point peaks, the best sample."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.focus.curve import crossings, estimate_focus, parabola_peak, symmetry_centre


def test_parabola_vertex_is_exact_for_a_parabola() -> None:
    z = (1.0, 3.0, 4.0)
    v = tuple(10 - (zz - 2.7) ** 2 for zz in z)
    assert parabola_peak(z, v) == pytest.approx(2.7)


def test_gaussian_estimator_is_exact_for_a_gaussian() -> None:
    z = np.arange(80.0, 101.0, 4.0)
    v = 500 * np.exp(-((z - 91.3) ** 2) / (2 * 4.0 ** 2))
    assert estimate_focus(z, v, "gaussian") == pytest.approx(91.3, abs=1e-9)


def test_centre_finds_the_dip_between_two_lobes() -> None:
    # A thin rim's curve: two maxima, a dip at focus, one lobe higher than the other.
    z = np.arange(70.0, 111.0, 2.0)
    v = 100 + 900 * np.exp(-((z - 84) ** 2) / 18) + 700 * np.exp(-((z - 96) ** 2) / 18)
    assert estimate_focus(z, v, "max") == pytest.approx(84.0)
    assert abs(estimate_focus(z, v, "centre", level=0.1) - 90.0) < 1.0


def test_centre_of_a_skewed_peak_lies_between_the_maximum_and_the_mean() -> None:
    z = np.arange(70.0, 111.0, 1.0)
    v = np.where(z < 90, np.exp(-((z - 90) ** 2) / 50), np.exp(-((z - 90) ** 2) / 8))
    c = estimate_focus(z, v, "centre", level=0.3)
    assert 86.0 < c < 90.0


def test_centre_falls_back_to_a_peak_fit_when_one_side_never_drops() -> None:
    z = np.array([80.0, 84.0, 88.0])
    v = np.array([10.0, 30.0, 29.0])
    assert estimate_focus(z, v, "centre") == pytest.approx(parabola_peak(tuple(z), tuple(v)))


def test_symmetry_centre_finds_the_mirror_plane_of_a_dipped_curve_sampled_coarsely() -> None:
    # Two equal lobes about 90.6 with a dip there, plus an odd ripple near focus that shifts the maximum and
    # the dip (the absorption-phase cross term): the wide wings still put the mirror plane at 90.6.
    z = np.arange(74.0, 107.0, 4.0) + 0.3
    d = z - 90.6
    v = 100 + 900 * np.exp(-((np.abs(d) - 5) ** 2) / 12) + 150 * d * np.exp(-(d ** 2) / 8)
    c = estimate_focus(z, v, "symmetry")
    assert c == pytest.approx(90.6, abs=0.5)
    assert abs(estimate_focus(z, v, "max") - 90.6) > 3


def test_symmetry_centre_needs_both_sides_sampled() -> None:
    z = np.array([80.0, 84.0, 88.0, 90.0])
    assert symmetry_centre(z, np.array([1.0, 2.0, 3.0, 2.0])) is None
    # ... and the estimator then falls back to the lobe's centre.
    assert estimate_focus(z, np.array([1.0, 5.0, 3.0, 1.0]), "symmetry") == estimate_focus(
        z, np.array([1.0, 5.0, 3.0, 1.0]), "centre")


def test_crossings_interpolate_linearly() -> None:
    z = np.array([0.0, 1.0, 2.0, 3.0])
    v = np.array([0.0, 10.0, 10.0, 0.0])
    assert crossings(z, v, 5.0) == (0.5, 2.5)
    assert crossings(z, np.array([10.0, 9, 8, 7]), 5.0) == (None, None)


@pytest.mark.parametrize("kwargs, match", [
    ({"estimator": "median"}, "estimator must be one of"),
    ({"level": 1.0}, "level must be in"),
])
def test_bad_arguments_name_the_value(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        estimate_focus([1.0, 2.0, 3.0], [1.0, 2.0, 1.0], **kwargs)  # type: ignore[arg-type]


def test_no_samples_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one"):
        estimate_focus([], [])
