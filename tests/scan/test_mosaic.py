"""One image of a print larger than the field, pasted from its views (appliance/scan/mosaic.py)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from appliance.hardware.camera.base import Frame
from appliance.hardware.stage.base import Position
from appliance.scan.calibration import Calibration
from appliance.scan.mosaic import MAX_VIEWS, covered_fov_um, paste, view_positions

SLIDE_UM_PER_PX = 0.25  # the synthetic slide's own sampling, finer than any camera's


def _slide(seed: int = 2) -> np.ndarray:
    """A 400 x 400 µm slide of blobs and lines, sampled every 0.25 µm."""
    rng = np.random.default_rng(seed)
    img = np.full((1600, 1600), 180, np.uint8)
    for _ in range(120):
        c = tuple(int(v) for v in rng.integers(0, 1600, 2))
        cv2.circle(img, c, int(rng.integers(8, 60)), int(rng.integers(40, 140)), -1)
    for _ in range(30):
        p, q = (tuple(int(v) for v in rng.integers(0, 1600, 2)) for _ in range(2))
        cv2.line(img, p, q, int(rng.integers(60, 120)), 6)
    return cv2.GaussianBlur(img, (0, 0), 2)


def _frame(slide: np.ndarray, cal: Calibration, x: float, y: float) -> Frame:
    """What a camera with map ``cal`` sees with the stage at (x, y): each pixel's slide point sampled."""
    w, h = cal.size_px
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    m, o = cal.m, cal.offset_um
    sx = x + m[0, 0] * u + m[0, 1] * v + o[0]
    sy = y + m[1, 0] * u + m[1, 1] * v + o[1]
    img = cv2.remap(slide, (sx / SLIDE_UM_PER_PX).astype(np.float32), (sy / SLIDE_UM_PER_PX).astype(np.float32),
                    cv2.INTER_LINEAR)
    return Frame(image=img, position=Position(x, y, 0.0), time_s=0.0, exposure_ms=1.0)


def test_views_pasted_through_a_turned_map_show_the_slide_as_it_is() -> None:
    # a camera turned 30 degrees and mirrored (as a camera mounted any way round is), 0.7 um per pixel
    a = math.radians(30)
    s = 0.7
    cal = Calibration(((s * math.cos(a), s * math.sin(a)), (s * math.sin(a), -s * math.cos(a))), (160, 120))
    slide = _slide()
    box = (150.0, 140.0, 290.0, 250.0)
    assert covered_fov_um(cal)[0] < cal.fov_um[0]  # a turned frame does not show its extent's corners
    assert covered_fov_um(Calibration.nominal(s, (160, 120))) == pytest.approx((112.0, 84.0))
    frames = [_frame(slide, cal, x, y) for x, y in view_positions(box, covered_fov_um(cal))]
    image = paste(frames, cal, box)
    assert image.shape == (math.ceil(110 / s), math.ceil(140 / s))
    jj, ii = np.meshgrid(np.arange(image.shape[1]), np.arange(image.shape[0]))
    truth = cv2.remap(slide, ((box[0] + jj * s) / SLIDE_UM_PER_PX).astype(np.float32),
                      ((box[1] + ii * s) / SLIDE_UM_PER_PX).astype(np.float32), cv2.INTER_LINEAR)
    err = np.abs(image.astype(np.float64) - truth)
    assert np.median(err) < 2.0 and np.percentile(err, 99) < 20.0


def test_the_views_cover_the_box_with_overlap_and_a_huge_box_is_refused() -> None:
    fov = (90.0, 67.0)
    pos = view_positions((0.0, 0.0, 200.0, 120.0), fov)
    xs, ys = sorted({p[0] for p in pos}), sorted({p[1] for p in pos})
    assert xs[0] - fov[0] / 2 == pytest.approx(0.0) and xs[-1] + fov[0] / 2 == pytest.approx(200.0)
    assert ys[0] - fov[1] / 2 == pytest.approx(0.0) and ys[-1] + fov[1] / 2 == pytest.approx(120.0)
    assert all(b - a <= 0.7 * fov[0] + 1e-9 for a, b in zip(xs, xs[1:], strict=False))
    assert all(b - a <= 0.7 * fov[1] + 1e-9 for a, b in zip(ys, ys[1:], strict=False))
    assert view_positions((0.0, 0.0, 50.0, 40.0), fov) == [(25.0, 20.0)]  # fits one field: its centre
    with pytest.raises(ValueError, match=f"at most {MAX_VIEWS}"):
        view_positions((0.0, 0.0, 1000.0, 1000.0), fov)


def test_a_print_larger_than_the_field_is_named_from_its_views_pasted_whole() -> None:
    # 20x with a 320 x 240 sensor (a 90 x 67 um field): the scan named this 119 um micro-lens a pentagon and a
    # woodpile from its pieces (seed 1501); pasted from its views at its focus the classifier reads it whole
    from appliance.scan.stitcher import Stitcher
    from appliance.sim.overrides import sim_microscope
    from appliance.vision.classifier import StructureClassifier

    scope = sim_microscope(1501, {"slide": {"width_um": 2000, "height_um": 2000, "n_structures": 8},
                                  "optics": {"magnification": 20, "na": 0.4},
                                  "sensor": {"width_px": 320, "height_px": 240}})
    lens = max((o for o in scope.slide.objects if o.cls == "microlens"), key=lambda o: o.footprint_um[0])
    (cx, cy), (fw, fh) = lens.center_um, lens.footprint_um
    cal = Calibration.nominal(scope.camera.um_per_px, scope.camera.size_px)
    assert fw > cal.fov_um[0]
    with scope.stage, scope.camera:
        scope.stage.focus_to_um(float(lens.focus_z_um))
        stitcher = Stitcher(scope.camera, cal, lambda x, y: scope.stage.move_to_um(x=x, y=y),
                            analyse=None, analysis_of=None, optics=None)  # mosaic() needs none of them
        pasted = stitcher.mosaic((cx - fw / 2, cy - fh / 2, cx + fw / 2, cy + fh / 2))
    assert pasted is not None
    image, box, views = pasted
    assert views >= 4 and image.shape[0] == image.shape[1]
    whole = StructureClassifier().classify_views([image], box)
    assert max(whole, key=lambda c: whole[c]) == "microlens" and whole["microlens"] > 0.8


def test_a_whole_look_reaches_past_the_cut_sides_to_the_largest_print_and_keeps_the_detectors_shape() -> None:
    from appliance.scan.mosaic import LOOK_ASPECT, LOOK_MIN_WIDTH_UM, look_region

    # a 40 x 30 um piece cut on the right: the print may run on up to 150 um across, rightwards only
    region = look_region((100.0, 100.0, 140.0, 130.0), (False, False, True, False), 150.0)
    assert region[0] < 100.0 and region[2] > 100.0 + 150.0  # the piece's left end and all it may have beyond
    assert (region[2] - region[0]) / (region[3] - region[1]) == pytest.approx(LOOK_ASPECT)
    assert (region[1] + region[3]) / 2 == pytest.approx(115.0)  # not cut in y: centred on the piece
    # a small whole piece still gets the detector's widest scale
    small = look_region((0.0, 0.0, 10.0, 10.0), (False,) * 4, 150.0)
    assert small[2] - small[0] == pytest.approx(LOOK_MIN_WIDTH_UM)
    with pytest.raises(ValueError, match="x1 > x0"):
        look_region((5.0, 0.0, 5.0, 10.0), (False,) * 4, 150.0)


def test_a_piece_cut_on_every_side_at_40x_is_looked_at_without_the_margin_rather_than_not_at_all() -> None:
    from appliance.scan.mosaic import LOOK_ASPECT, MAX_VIEWS, look_region, view_positions

    # held-out seed 3780: a 67 x 65 um piece of a 110 um lens, its joined boxes cut on all four sides of a
    # 90 x 67 um field: with the margin the region needed 7 x 7 views and the look was never made
    fov, box = (89.6, 67.2), (523.0, 671.0, 590.0, 736.0)
    with pytest.raises(ValueError, match=f"at most {MAX_VIEWS}"):
        view_positions(look_region(box, (True,) * 4, 150.0), fov)
    region = look_region(box, (True,) * 4, 150.0, fov)
    assert len(view_positions(region, fov)) <= MAX_VIEWS
    more = 150.0 - 67.0  # what the print may still have past each cut side
    assert region[0] <= box[0] - more and region[2] >= box[2] + more
    assert region[1] <= box[1] - (150.0 - 65.0) and region[3] >= box[3] + (150.0 - 65.0)
    assert (region[2] - region[0]) / (region[3] - region[1]) == pytest.approx(LOOK_ASPECT)
    # where the margin fits, it stays
    assert look_region(box, (False,) * 4, 150.0, fov) == look_region(box, (False,) * 4, 150.0)


def test_a_box_reaching_into_a_whole_looks_border_band_may_go_on_past_it() -> None:
    from appliance.scan.mosaic import LOOK_EDGE, look_cut

    size = (1000, 750)
    # a 105 um ring whose box stopped 3 um (21 px) short of the bottom was half a ring (seed 1611)
    assert look_cut((300, 100, 700, 729), size) == (False, False, False, True)
    inner = LOOK_EDGE * 1000 + 1
    assert look_cut((inner, inner, 1000 - inner, 750 - inner), size) == (False, False, False, False)
