"""Frames off the detector's 4:3: padded to it, or read in tiles shaped like its input (appliance/vision/tiles.py).

A 1280 x 240 frame stretched to the 320 x 240 input is four times narrower than it is, and the prints on it were
lost (2 of 8, seeds 1759 and 1760; a 320 x 960 sensor 6 of 8, session 17). A 3:4 frame stretched makes every
object 1.8 times wider (the real pentagon turned to portrait: 13 of 15 found; session 36).
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.vision.tiles import (
    PAD_TARGET_UM_PER_PX,
    TRAINED_INPUT_UM_PER_PX,
    ZOOM_TARGET_UM_PER_PX,
    canvas_size,
    detect_in_tiles,
    layout,
    padded_size,
    read_scale,
    tiles,
)

INPUT_HW = (240, 320)


@dataclass(frozen=True)
class _Det:
    label: str
    score: float
    box: tuple[float, float, float, float]


def test_frames_near_the_inputs_shape_are_read_whole() -> None:
    for size in ((640, 480), (1920, 1080), (480, 640), (320, 240)):
        assert tiles(size, INPUT_HW) == [(0, 0, size[0], size[1])]


def test_a_wide_or_tall_frame_is_cut_into_input_shaped_tiles_half_a_tile_apart() -> None:
    wide = tiles((1280, 240), INPUT_HW)
    assert [t[0] for t in wide] == [0, 160, 320, 480, 640, 800, 960]
    assert all(t[1:] == (0, 320, 240) for t in wide)
    tall = tiles((320, 1000), INPUT_HW)
    assert [t[1] for t in tall] == [0, 120, 240, 360, 480, 600, 720, 760]  # the last flush with the end
    assert all((t[0], t[2], t[3]) == (0, 320, 240) for t in tall)


def test_one_object_seen_in_two_tiles_is_one_box_and_a_cut_box_gives_way_to_a_whole_one() -> None:
    def detect_tile(t: tuple[int, int, int, int]) -> list[_Det]:
        x = t[0]
        out = []
        if x in (160, 320):  # a print at 400-460 px, whole in the tiles from 160 and 320
            out.append(_Det("structure", 0.8 if x == 160 else 0.7, (400.0 + x / 1000, 60.0, 460.0, 120.0)))
        # a second print at 600-700 px: cut by the right border of the tile from 320, whole in the one from 480,
        # cut by the left border of the one from 640
        cut_or_whole = {320: (600.0, 640.0, 0.9), 480: (600.0, 700.0, 0.6), 640: (640.0, 700.0, 0.95)}
        if x in cut_or_whole:
            x0, x1, score = cut_or_whole[x]
            out.append(_Det("structure", score, (x0, 50.0, x1, 110.0)))
        if x == 960:  # a speck at the frame's own right edge: cut by the frame, not by a tile
            out.append(_Det("debris", 0.5, (1270.0, 10.0, 1280.0, 20.0)))
        return out

    dets = detect_in_tiles((1280, 240), INPUT_HW, detect_tile)
    assert sorted((d.label, d.score) for d in dets) == [("debris", 0.5), ("structure", 0.6), ("structure", 0.8)]


def test_a_frame_read_whole_is_passed_through() -> None:
    seen: list[tuple[int, int, int, int]] = []
    dets = detect_in_tiles((640, 480), INPUT_HW, lambda t: seen.append(t) or [_Det("structure", 0.5, (0, 0, 9, 9))])
    assert seen == [(0, 0, 640, 480)] and len(dets) == 1


def test_frames_off_the_inputs_shape_are_padded_to_it_and_near_ones_are_not() -> None:
    assert padded_size((640, 480), INPUT_HW) == (640, 480)
    assert padded_size((720, 480), INPUT_HW) == (720, 480)  # 3:2, within the limit
    assert padded_size((1280, 1024), INPUT_HW) == (1280, 1024)  # 5:4
    assert padded_size((480, 640), INPUT_HW) == (853, 640)  # 3:4: padded on the right
    assert padded_size((1920, 1080), INPUT_HW) == (1920, 1440)  # 16:9: padded at the bottom
    assert padded_size((512, 512), INPUT_HW) == (683, 512)


def test_a_frame_within_the_trained_scale_or_of_unknown_scale_is_read_as_its_shape_says() -> None:
    for size, upp in (((640, 480), 0.56), ((640, 480), 1.2), ((1280, 960), 0.56), ((1280, 240), 1.4)):
        assert layout(size, INPUT_HW, upp) == tiles(size, INPUT_HW)  # 1.12, 2.4, 2.24, 1.4 um per input px
    assert layout((2592, 1944), INPUT_HW) == [(0, 0, 2592, 1944)]  # no pixel size: no zoom


def test_a_frame_coarser_than_the_training_is_read_in_input_shaped_tiles_at_the_target_scale() -> None:
    # 4x on a 640 x 480 sensor (1.4 um/px: 2.8 um per input pixel whole), 5x on 1280 x 960 (1.12: 4.5), 5x on a
    # portrait 480 x 640 (padded to 853 x 640: 3.0)
    for size, upp in (((640, 480), 1.4), ((1280, 960), 1.12), ((480, 640), 1.12)):
        assert read_scale(tiles(size, INPUT_HW)[0], INPUT_HW, upp) > TRAINED_INPUT_UM_PER_PX[1]
        parts = layout(size, INPUT_HW, upp)
        assert len(parts) > 1
        for t in parts:
            x, y, w, h = t
            assert 0 <= x and 0 <= y and x + w <= size[0] and y + h <= size[1]
            assert read_scale(t, INPUT_HW, upp) <= ZOOM_TARGET_UM_PER_PX * 1.01  # within the training now
        # covered, half a tile apart: every point of the frame lies in a tile, and every object up to half a
        # tile long lies whole in one
        w, h = parts[0][2], parts[0][3]
        xs, ys = sorted({t[0] for t in parts}), sorted({t[1] for t in parts})
        assert xs[0] == 0 and xs[-1] + w == size[0] and ys[0] == 0 and ys[-1] + h == size[1]
        assert all(b - a <= w // 2 for a, b in zip(xs, xs[1:], strict=False))
        assert all(b - a <= h // 2 for a, b in zip(ys, ys[1:], strict=False))
    assert [t[2:] for t in layout((640, 480), INPUT_HW, 1.4)][:1] == [(457, 343)]  # 320 x 240 input at 2.0 / 1.4


def test_a_coarse_frame_is_read_in_zoomed_tiles_and_one_object_in_two_of_them_is_one_box() -> None:
    seen: list[tuple[int, int, int, int]] = []

    def detect_tile(t: tuple[int, int, int, int]) -> list[_Det]:
        seen.append(t)
        x, y, w, h = t
        if x <= 300 and x + w >= 340 and y <= 200 and y + h >= 230:  # a print at 300-340 x 200-230 px
            return [_Det("structure", 0.5 + x / 10000, (300.0, 200.0, 340.0, 230.0))]
        return []

    dets = detect_in_tiles((640, 480), INPUT_HW, detect_tile, um_per_px=1.4)
    assert len(seen) == 4 and all(t[2:] == (457, 343) for t in seen)
    assert len(dets) == 1 and dets[0].score == max(0.5 + t[0] / 10000 for t in seen)


def test_a_frame_finer_than_the_training_is_padded_until_it_is_read_at_the_target_scale() -> None:
    assert canvas_size((640, 480), INPUT_HW) == (640, 480)  # no pixel size: as before
    assert canvas_size((640, 480), INPUT_HW, 0.56) == (640, 480)  # 10x: 1.12 um per input pixel, trained
    assert canvas_size((480, 640), INPUT_HW, 0.56) == padded_size((480, 640), INPUT_HW)
    for size, upp in (((640, 480), 0.14), ((640, 480), 0.28), ((800, 600), 0.14), ((480, 640), 0.14)):
        pw, ph = canvas_size(size, INPUT_HW, upp)
        assert pw >= size[0] and ph >= size[1]
        assert abs((pw / ph) / (4 / 3) - 1) < 0.01  # the input's shape: both axes scale alike
        assert abs(upp * pw / 320 - PAD_TARGET_UM_PER_PX) < 0.01  # read at the target
    assert canvas_size((640, 480), INPUT_HW, 0.14) == (1829, 1371)  # 40x: 0.28 um per input pixel -> 0.8
