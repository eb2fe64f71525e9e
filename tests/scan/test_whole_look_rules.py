"""The rules of a whole look (:class:`appliance.scan.whole_look.WholeLook`) against fakes: when it looks, what it takes.

Fast: the stitcher and the vision are fakes that paste a blank image and read back what the test says the pasted
region holds; the whole product path at 40x is `tests/scan/test_whole_look.py`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from appliance.hardware.camera.base import Frame
from appliance.hardware.stage.base import Position
from appliance.scan.calibration import Calibration
from appliance.scan.protocols import Detection, VisionResult
from appliance.scan.whole_look import WholeLook

UM_PER_PX = 0.14  # 40x on the default sensor: a 89.6 x 67.2 µm field
SIZE = (640, 480)
CAL = Calibration.nominal(UM_PER_PX, SIZE)
AT = Position(1000.0, 1000.0, 90.0)
BoxUm = tuple[float, float, float, float]


class _Camera:
    size_px = SIZE


class _Stitcher:
    """Joins nothing (a piece is its own box) and pastes a blank image of the region, remembering each region."""

    def __init__(self) -> None:
        self.regions: list[BoxUm] = []

    def pieces_with(self, det: Detection, frame: Frame, any_verdict: bool = False) -> list[Detection]:
        return [det]

    def paste_views(self, region_um: BoxUm) -> tuple[np.ndarray, int]:
        self.regions.append(region_um)
        w, h = (region_um[2] - region_um[0]) / UM_PER_PX, (region_um[3] - region_um[1]) / UM_PER_PX
        return np.full((round(h), round(w)), 170, np.uint8), 6


class _Reader:
    """Sees the slide boxes ``prints`` (µm) in any pasted region, boxed in its pixels, as structures of ``cls``."""

    def __init__(self, stitcher: _Stitcher, prints: Sequence[BoxUm], cls: str = "pentagon") -> None:
        self.stitcher, self.prints, self.cls = stitcher, prints, cls

    def analyse_image(self, image: np.ndarray) -> VisionResult:
        r = self.stitcher.regions[-1]
        dets = []
        for b in self.prints:
            px = [round((b[i] - r[i % 2]) / UM_PER_PX) for i in range(4)]
            box = (max(px[0], 0), max(px[1], 0), min(px[2], image.shape[1]), min(px[3], image.shape[0]))
            dets.append(Detection(box, "structure", self.cls, 0.9, {self.cls: 0.9}))
        return VisionResult(len(dets), dets)


def _frame() -> Frame:
    return Frame(np.zeros(SIZE[::-1], np.uint8), AT, 0.0, 10.0)


def _slide_box(box_px: tuple[int, int, int, int]) -> BoxUm:
    a = CAL.pixel_to_stage(box_px[0] - 0.5, box_px[1] - 0.5, (AT.x_um, AT.y_um))
    b = CAL.pixel_to_stage(box_px[2] - 0.5, box_px[3] - 0.5, (AT.x_um, AT.y_um))
    return (a[0], a[1], b[0], b[1])


def _look(prints: Sequence[BoxUm], largest: float = 150.0, reader: bool = True
          ) -> tuple[WholeLook, _Stitcher, list[tuple[float, float]]]:
    stitcher = _Stitcher()
    moves: list[tuple[float, float]] = []
    look = WholeLook(_Reader(stitcher, prints) if reader else None, stitcher,  # type: ignore[arg-type]
                     CAL, _Camera(), largest, lambda x, y: moves.append((x, y)))  # type: ignore[arg-type]
    return look, stitcher, moves


ARC = Detection((560, 180, 640, 300), "debris", "debris", 0.8, {"debris": 0.8})  # a piece cut by the right edge


def _print_around(piece: Detection, w: float, h: float) -> BoxUm:
    """A print ``w`` x ``h`` µm whose left part is ``piece``."""
    x0, y0, _, y1 = _slide_box(piece.box_px)
    cy = (y0 + y1) / 2
    return (x0 - 2.0, cy - h / 2, x0 - 2.0 + w, cy + h / 2)


def test_a_piece_cut_by_the_frame_is_the_print_larger_than_the_field_the_pasted_image_shows() -> None:
    ring = _print_around(ARC, 120.0, 110.0)
    look, stitcher, moves = _look([ring])
    found = look.find(ARC, _frame(), lambda x, y: False)
    assert found is not None
    det, fp = found
    assert det.cls == "pentagon" and fp.views == 6
    assert fp.box_um == pytest.approx(ring, abs=UM_PER_PX)
    assert len(stitcher.regions) == 1 and moves == []  # one look; the runner focuses it where it is


def test_a_look_that_finds_no_print_goes_back_and_is_not_made_again_for_that_object() -> None:
    look, stitcher, moves = _look([])
    assert look.find(ARC, _frame(), lambda x, y: False) is None
    assert moves == [(AT.x_um, AT.y_um)]  # back where the object was seen, to focus and record it there
    assert look.find(ARC, _frame(), lambda x, y: False) is None
    assert len(stitcher.regions) == 1


def test_a_print_no_larger_than_the_field_is_not_taken_for_one() -> None:
    small = _print_around(ARC, 60.0, 40.0)  # the detector's box for the pasted print fits one field
    look, _, moves = _look([small])
    assert look.find(ARC, _frame(), lambda x, y: False) is None
    assert moves == [(AT.x_um, AT.y_um)]


def test_a_print_reaching_the_first_images_border_is_looked_at_again_past_it() -> None:
    # a whole piece spanning most of the field, the top of a print that runs on below the first region
    cap = Detection((200, 150, 560, 300), "debris", "debris", 0.8, {"debris": 0.8})
    x0, y0, _, _ = _slide_box(cap.box_px)
    tall = (x0 - 30.0, y0 - 2.0, x0 + 90.0, y0 + 138.0)
    look, stitcher, _ = _look([tall])
    found = look.find(cap, _frame(), lambda x, y: False)
    assert len(stitcher.regions) == 2
    assert stitcher.regions[0][3] < tall[3] < stitcher.regions[1][3]  # the second region reaches further down
    assert found is not None and found[1].box_um == pytest.approx(tall, abs=UM_PER_PX)


def test_no_look_where_a_frame_holds_the_largest_print_the_vision_cannot_read_images_or_a_print_is_known() -> None:
    ring = _print_around(ARC, 120.0, 110.0)
    for look, stitcher, _ in (_look([ring], largest=60.0), _look([ring], reader=False)):
        assert not look.active
        assert look.find(ARC, _frame(), lambda x, y: False) is None and stitcher.regions == []
    look, stitcher, _ = _look([ring])
    assert look.find(ARC, _frame(), lambda x, y: True) is None and stitcher.regions == []


def test_a_small_whole_piece_is_not_looked_at() -> None:
    speck = Detection((300, 220, 330, 250), "debris", "debris", 0.9, {"debris": 0.9})  # 4 µm, mid-frame
    look, stitcher, _ = _look([_print_around(speck, 120.0, 110.0)])
    assert look.find(speck, _frame(), lambda x, y: False) is None and stitcher.regions == []


def test_a_stitched_footprint_short_of_its_print_is_looked_at_whole_around_it() -> None:
    # stitching stopped short: a 61 x 59 µm footprint of an 87 µm print (40x, seed 1643's woodpile)
    print_um = (1000.0, 1000.0, 1087.0, 1087.0)
    short = (1000.0, 1000.0, 1061.0, 1059.0)
    look, stitcher, moves = _look([print_um])
    found = look.around(short, (1020.0, 1030.0))
    assert found is not None
    det, fp = found
    assert det.kind == "structure" and fp.box_um == pytest.approx(print_um, abs=UM_PER_PX)
    region = stitcher.regions[0]
    assert (region[0] + region[2]) / 2 == pytest.approx(1030.5) and (region[1] + region[3]) / 2 == pytest.approx(1029.5)
    assert moves == []  # the runner focuses and records it from the look's place


def test_no_print_around_a_footprint_leaves_the_stitched_record_and_goes_back() -> None:
    look, stitcher, moves = _look([])
    assert look.around((1000.0, 1000.0, 1061.0, 1059.0), (1020.0, 1030.0)) is None
    assert len(stitcher.regions) == 1 and moves == [(1020.0, 1030.0)]
    off, off_stitcher, off_moves = _look([(1000.0, 1000.0, 1087.0, 1087.0)], reader=False)
    assert off.around((1000.0, 1000.0, 1061.0, 1059.0), (0.0, 0.0)) is None  # a vision that reads only frames
    assert off_stitcher.regions == [] and off_moves == []


def test_a_faint_ring_in_a_pasted_image_is_checked_against_the_glass_around_it_not_the_images_border() -> None:
    from appliance.scan.whole_look import SHAPE_MARGIN_UM, _shape_check
    from appliance.vision.typeshape import not_its_shape

    rng = np.random.default_rng(0)
    img = rng.normal(170.0, 0.8, (1000, 1300))
    yy, xx = np.mgrid[:1000, :1300]
    r = np.hypot(xx - 650.0, yy - 500.0)
    wall = (np.abs(r - 350.0) < 12) & (np.arctan2(yy - 500.0, xx - 650.0) < 2.6)  # a split ring, 8 levels dark
    img[wall] -= 8.0
    img[wall & (xx > 975)] -= 10.0  # one short arc darker, as the light falls
    band = np.zeros(img.shape, bool)
    band[:4], band[-4:], band[:, :4], band[:, -4:] = True, True, True, True
    img[band] += -2.5 + 3.5 * np.sin((xx + yy)[band] / 30.0)  # the pasted views' seams and shading at its border
    img = np.clip(img, 0, 255).astype(np.uint8)
    box = (288, 138, 1013, 863)
    assert not_its_shape(img, box, "split_ring") is not None  # the whole image: only the darkest arc is seen
    assert _shape_check(img, box, "split_ring", UM_PER_PX) is None  # with 9 µm of glass around it: a ring
    assert round(SHAPE_MARGIN_UM / 0.56) == 16  # a structure crop's margin at 10x
