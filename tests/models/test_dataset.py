"""``tppscan dataset``: determinism, disjoint splits, annotations, randomisation ranges, bad options."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from appliance.cli import main
from models.data.cli import SPLIT_CODES, plan, slide_seed
from models.data.detection import _augmented_boxes, _footprint_points, _points_box
from models.data.randomise import Ranges, Shot, _affine_boxes, augment, sample_scene


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "det"
    assert main(["dataset", "detection", "--seed", "3", "--count", "4", "--out", str(out), "--jobs", "2",
                 "--per-slide", "2"]) == 0
    return out


def test_detection_set_has_csv_coco_and_meta(tiny_set):
    meta = json.loads((tiny_set / "meta.json").read_text())
    assert meta["kind"] == "detection" and meta["count"] == 4 and meta["augment"] is True
    coco = json.loads((tiny_set / "annotations.coco.json").read_text())
    assert len(coco["images"]) == 4
    assert [c["name"] for c in coco["categories"]] == ["structure", "debris"]
    with open(tiny_set / "annotations.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax"]
    kept = [a for a in coco["annotations"] if not a["iscrowd"]]
    assert len(rows) == len(kept) > 0
    for r in rows:
        assert r["class"] in ("structure", "debris")
        assert 0 <= int(r["xmin"]) < int(r["xmax"]) <= int(r["width"])
        assert 0 <= int(r["ymin"]) < int(r["ymax"]) <= int(r["height"])
        assert (tiny_set / r["filename"]).is_file()


def test_same_seed_same_bytes(tiny_set, tmp_path):
    again = tmp_path / "again"
    assert main(["dataset", "detection", "--seed", "3", "--count", "4", "--out", str(again), "--jobs", "1",
                 "--per-slide", "2"]) == 0
    assert (again / "annotations.coco.json").read_bytes() == (tiny_set / "annotations.coco.json").read_bytes()
    for p in sorted((tiny_set / "images").iterdir()):
        assert (again / "images" / p.name).read_bytes() == p.read_bytes()


def test_splits_and_seeds_never_share_a_slide(tmp_path):
    seeds = {split: {j.slide_seed for j in plan("detection", split, s, 5000, tmp_path, Ranges(), False, (64, 48))}
             for split in SPLIT_CODES for s in (0, 1)}
    train = {slide_seed("train", s, k) for s in (0, 1) for k in range(1000)}
    val = {slide_seed("val", s, k) for s in (0, 1) for k in range(1000)}
    test = {slide_seed("test", s, k) for s in (0, 1) for k in range(1000)}
    assert not (train & val) and not (train & test) and not (val & test)
    assert seeds  # plan() uses the same rule
    assert slide_seed("train", 0, 999_999) < slide_seed("train", 1, 0)


def test_scene_draws_stay_inside_the_ranges():
    r = Ranges()
    rng = np.random.default_rng(0)
    for _ in range(30):
        sc = sample_scene(rng, r)
        ump = 5.6 / sc.optics.magnification
        assert r.um_per_px[0] - 1e-9 <= ump <= r.um_per_px[1] + 1e-9
        assert r.debris_per_mm2[0] <= sc.slide.debris_per_mm2 <= r.debris_per_mm2[1]
        assert r.vignetting[0] <= sc.sensor.vignetting <= r.vignetting[1]
        assert r.top_roughness_um[0] <= sc.slide.top_roughness_um <= r.top_roughness_um[1]
        assert r.lens_blur_px[0] <= sc.chain.lens_blur_px <= r.lens_blur_px[1]
        assert abs(sc.slide.tilt_x_um_per_mm) <= r.tilt_um_per_mm[1]


def test_rotated_box_stays_tight():
    # A square box rotated 30 degrees: the corner box would grow to 1.37x; the inscribed circle stays 1x.
    a = np.radians(30)
    m = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0]])
    out = _affine_boxes(np.array([[-10.0, -10.0, 10.0, 10.0]]), m)[0]
    assert out[2] - out[0] == pytest.approx(20.0, abs=0.5)


def test_flip_moves_boxes_with_the_image():
    img = np.zeros((40, 60), np.uint8)
    img[5:15, 2:12] = 255
    shot = Shot(augment=None, hflip=True)
    out, boxes, keep = augment(img, np.array([[2.0, 5.0, 12.0, 15.0]]), shot)
    assert keep.all()
    ys, xs = np.nonzero(out)
    assert boxes[0].tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


@pytest.mark.parametrize("argv, needle", [
    (["--count", "0"], "--count must be an integer in [1, 1000000], got 0"),
    (["--count", "2", "--seed", "-1"], "--seed must be"),
    (["--count", "2", "--size", "10x10"], "--size must be"),
    (["--count", "2", "--um-per-px", "1.2", "0.3"], "--um-per-px"),
    (["--count", "2", "--p-jpeg", "1.5"], "--p-jpeg must be a number in [0, 1], got 1.5"),
    (["--count", "2", "--p-on-structure", "0.9", "--p-on-line-debris", "0.5"],
     "--p-on-structure + --p-on-line-debris must be <= 1"),
    (["--count", "2", "--zoom", "0.1", "0.3"], "--zoom: the augmentation draws within ±HI"),
    (["--count", "2", "--rotation-deg", "10", "30"], "--rotation-deg: the augmentation draws within ±HI"),
    (["--count", "2", "--lens-blur-px", "0", "9"], "--lens-blur-px"),
    (["--count", "2", "--jobs", "0"], "--jobs must be"),
])
def test_bad_values_exit_2_with_one_line(argv, needle, tmp_path, capsys):
    assert main(["dataset", "detection", "--out", str(tmp_path / "x"), *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_non_empty_out_is_refused_as_bad_input(tmp_path, capsys):
    """Exit 2, as scan's and detect's refused --out: the user gives another folder."""
    (tmp_path / "junk").write_text("x")
    assert main(["dataset", "detection", "--count", "1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not an empty folder" in err and "give another --out" in err and len(err.strip().splitlines()) == 1


def _line_object(center_um=(0.0, 0.0), size=200, pitch=0.5):
    """A fake slide object: a thin line along its map's diagonal (a fibre), 3 samples thick."""
    hm = np.zeros((size, size), np.float32)
    for d in (-1, 0, 1):
        idx = np.arange(max(0, -d), min(size, size - d))
        hm[idx, idx + d] = 1.0
    return SimpleNamespace(height_um=hm, center_um=center_um, pitch_um=pitch)


def _mask_box(points, size_px, m=None):
    """Box of the pixels the points fall in, after an optional affine warp of that mask (the reference)."""
    w, h = size_px
    mask = np.zeros((h, w), np.uint8)
    mask[points[:, 1].astype(int), points[:, 0].astype(int)] = 255
    if m is not None:
        mask = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_LINEAR)
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], float)


def test_a_cut_diagonal_fibre_gets_the_box_of_its_visible_part():
    size_px = (128, 96)
    # A 100 um diagonal line centred 50 um left of the frame centre: the frame's left edge (-64 um) cuts it,
    # leaving the part from y = -14 um down.
    o = _line_object(center_um=(-50.0, 0.0))
    pts, half = _footprint_points(o, 0.0, 0.0, 1.0, size_px)
    box = np.array(_points_box(pts, half, size_px))
    ref = _mask_box(pts, size_px)
    assert np.abs(box - ref).max() <= 1.5
    # The footprint box clipped to the frame spans the frame's whole height (96 px); the visible part, 62.
    assert box[3] - box[1] == pytest.approx(62.0, abs=1.5)


def test_augmented_boxes_follow_the_object_not_its_old_box():
    size_px = (160, 120)
    o = _line_object(size=120)  # 60 x 60 um diagonal line, in view
    pts, half = _footprint_points(o, 0.0, 0.0, 1.0, size_px)
    old = np.array([_points_box(pts, half, size_px)])
    a = np.radians(30)
    m = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0]])
    c = np.array([(size_px[0] - 1) / 2, (size_px[1] - 1) / 2])
    m[:, 2] = c - m[:, :2] @ c
    shot = Shot(augment=m, hflip=False)
    boxes, moved, keep, kept = _augmented_boxes([(pts, half)], old, shot, size_px)
    assert keep.all() and kept[0] == pytest.approx(1.0)
    ref = _mask_box(pts, size_px, m)
    assert np.abs(boxes[0] - ref).max() <= 2.0
    # A 45-degree line turned by 30 degrees runs at 75 degrees: a narrow box, where the old box's inscribed
    # ellipse (a circle) stays square.
    ellipse = _affine_boxes(old, m)[0]
    assert boxes[0, 2] - boxes[0, 0] < 0.5 * (ellipse[2] - ellipse[0])
    assert len(moved[0]) == len(pts)


def test_an_object_turned_out_of_the_frame_is_dropped():
    size_px = (160, 120)
    o = _line_object(center_um=(70.0, 0.0), size=20)  # a 10 um line at the right edge
    pts, half = _footprint_points(o, 0.0, 0.0, 1.0, size_px)
    m = np.array([[1.0, 0.0, 30.0], [0.0, 1.0, 0.0]])  # shifted 30 px right: out of the frame
    _, _, keep, kept = _augmented_boxes([(pts, half)], np.array([_points_box(pts, half, size_px)]),
                                        Shot(augment=m, hflip=False), size_px)
    assert not keep[0] and kept[0] == 0.0


def test_identity_augmentation_labels_like_no_augmentation(tmp_path):
    # The augmented path (boxes from moved footprint samples) and the plain one (the simulator's boxes) must agree
    # when the augmentation moves nothing: same boxes to a pixel, same ignore regions.
    common = ["dataset", "detection", "--seed", "5", "--count", "4", "--per-slide", "4", "--jobs", "1"]
    still = ["--rotation-deg", "0", "0", "--shift", "0", "0", "--shear", "0", "0", "--zoom", "0", "0",
             "--p-hflip", "0"]
    assert main([*common, "--out", str(tmp_path / "a"), "--augment", *still]) == 0
    assert main([*common, "--out", str(tmp_path / "p"), "--no-augment"]) == 0
    a = json.loads((tmp_path / "a" / "annotations.coco.json").read_text())["annotations"]
    p = json.loads((tmp_path / "p" / "annotations.coco.json").read_text())["annotations"]
    def same(x, y):
        return (x["image_id"], x["type"], x["iscrowd"]) == (y["image_id"], y["type"], y["iscrowd"]) and \
            np.abs(np.array(x["bbox"]) - np.array(y["bbox"])).max() <= 1

    # Every labelled object alike; a speck reaching less than one footprint sample into the frame is an ignore
    # region in the plain set and absent from the augmented one (no sample of it lands in the frame).
    assert sum(not y["iscrowd"] for y in p) > 5
    assert all(any(same(x, y) for y in p) for x in a)
    assert all(any(same(x, y) for x in a) for y in p if not y["iscrowd"])
    assert len(p) - len(a) <= 2
