"""The cheap colour camera on a tilted slide: the runner's map of the glass (docs/autofocus.md, "The cheap
colour camera on a tilted slide").

Before: the camera's noisy field readings were taken as the glass, and the fields of seed 412 (4 x 4 mm) were
imaged 7-93 µm above their glass, median +55 µm; on seed 441 a plane through three of its readings walked a
row's fields 55 µm above the glass.
"""

from __future__ import annotations

from appliance.scan.adapters import FocusMapAdapter


def test_the_runners_map_places_no_field_until_its_points_can_be_checked() -> None:
    # Seed 441, cheap colour camera: three glass readings 1-9 µm below the glass, and a plane fitted exactly
    # through them claimed 1 µm (its prior) while tilted 15 µm/mm the wrong way; the row's fields went 55 µm off.
    fmap = FocusMapAdapter()
    for x, y, dz in ((1039.0, 2480.0, 1.1), (1680.0, 2480.0, -8.3), (399.0, 3441.0, -9.1)):
        fmap.add(x, y, 90.0 + dz)
    assert fmap.predict(3600.0, 3441.0) is None  # nothing checks three points
    fmap.add(3000.0, 600.0, 90.0 + 0.5)
    fmap.add(2200.0, 1500.0, 90.0 - 1.0)
    z, sigma = fmap.predict(3600.0, 3441.0)  # type: ignore[misc]
    assert sigma > 7.5  # five points: the residuals show the readings' scatter, and the runner will not use it
