"""The scan's structure focus scored against the virtual slide's truth (``summary.json``'s focus keys)."""

from __future__ import annotations

from typing import Any

import pytest

from appliance.results.score import score
from appliance.results.store import ObjectRecord


def _truth() -> dict[str, Any]:
    def structure(i: int, x: float, focus: float, cls: str = "pentagon") -> dict[str, Any]:
        return {"id": i, "kind": "structure", "cls": cls, "center_um": [x, 50.0], "focus_z_um": focus,
                "bbox_um": [x - 10.0, 40.0, x + 10.0, 60.0]}

    return {"objects": [structure(1, 50.0, 100.0), structure(2, 150.0, 110.0), structure(3, 250.0, 120.0, "woodpile"),
                        structure(4, 350.0, 130.0)]}


def _record(x: float, z: float | None, cls: str = "pentagon", **extra: Any) -> ObjectRecord:
    return ObjectRecord(cell=0, kind="structure", cls=cls, confidence=0.9, x_um=x, y_um=50.0, z_um=z,
                        width_um=20.0, height_um=20.0, extra=extra or None)


def test_the_recorded_focus_is_scored_against_the_true_focus() -> None:
    objs = [
        _record(50.0, 100.5),                    # 0.5 um off
        _record(150.0, 112.0),                   # 2 um off
        _record(250.0, 119.2, cls="woodpile"),   # 0.8 um off
        _record(151.0, 110.0),                   # a duplicate: scored once, by the first record
    ]
    s = score(objs, _truth(), (0.0, 0.0, 400.0, 100.0))
    assert s["duplicates"] == 1 and s["structures_matched"] == 3
    assert s["focus_error_um_median"] == pytest.approx(0.8)
    assert s["focus_within_1um"] == pytest.approx(2 / 3)
    assert s["focus_error_um_p95"] == pytest.approx(0.8 + 0.9 * 1.2)
    assert s["per_type"]["pentagon"]["focus_within_1um"] == 1 and s["per_type"]["woodpile"]["focus_within_1um"] == 1
    assert s["per_type"]["pentagon"]["truth"] == 3
    # no autofocus position kept: the autofocus is where the record says it focused
    assert s["autofocus_within_1um"] == s["focus_within_1um"]


def test_the_autofocus_is_scored_where_the_stage_truly_stood() -> None:
    # the search read one lobe 4 um up (the stage truly 4.2 um up), the stack read both: 0.3 um off
    lobe = _record(50.0, 100.3, autofocus_z_um=104.0, true_position_um=[50.0, 50.0, 104.2])
    # a record with the autofocus's reported z only (a real board: no true position)
    lens = _record(150.0, 110.6, autofocus_z_um=110.6)
    s = score([lobe, lens], _truth(), (0.0, 0.0, 400.0, 100.0))
    assert s["focus_within_1um"] == 1.0 and s["focus_error_um_median"] == pytest.approx(0.45)
    assert s["autofocus_within_1um"] == pytest.approx(0.5) and s["autofocus_error_um_median"] == pytest.approx(2.4)


def test_no_structure_with_a_z_leaves_the_focus_keys_empty() -> None:
    s = score([_record(50.0, None)], _truth(), (0.0, 0.0, 400.0, 100.0))
    assert s["recall"] == 0.25
    assert s["focus_error_um_median"] is None and s["focus_within_1um"] is None and s["focus_error_um_p95"] is None
    assert s["autofocus_within_1um"] is None
    assert s["per_type"]["pentagon"]["focus_within_1um"] == 0


def test_a_drifting_focus_is_scored_in_the_slides_frame() -> None:
    """The focal plane drifted 3 um up by the time the print was focused: the drive's z of a perfect focus is 3 um
    lower than the print's focus, and that is no error."""
    drifted = _record(50.0, 97.2, autofocus_z_um=97.0, true_position_um=[50.0, 50.0, 100.0], true_focus_z_um=100.2)
    s = score([drifted], _truth(), (0.0, 0.0, 400.0, 100.0))
    assert s["autofocus_error_um_median"] == pytest.approx(0.0)
    assert s["focus_error_um_median"] == pytest.approx(0.2)
