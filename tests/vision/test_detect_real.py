"""The shipped detector on the seed authors' 15 real frames (issue 15, Must show 2), through ``tppscan detect``.

The tiles of ``docs/img/seed-frames.png`` are a TEST only: the detector never trained or was tuned on them. The
pentagon's box in each tile was drawn by hand (``data/seed_pentagon_boxes.json``). Bar: the pentagon found as
``structure`` (IoU >= 0.5 with the hand-drawn box) in at least 14 of 15 tiles, and at most one false
``structure`` over all 15. The classifier's share (naming it ``pentagon`` in >= 13) is checked when the shipped
classifier is present.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import pytest

from appliance.cli import main
from appliance.vision.detector import Detector, default_model_path

ROOT = Path(__file__).resolve().parents[2]
BOXES = json.loads((Path(__file__).parent / "data" / "seed_pentagon_boxes.json").read_text())
TILE_W, TILE_H = BOXES["tile_size"]


def iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def tiles(tmp_path_factory) -> Path:
    img = cv2.imread(str(ROOT / "docs" / "img" / "seed-frames.png"), cv2.IMREAD_COLOR)
    assert img is not None and img.shape == (3 * TILE_H, 5 * TILE_W, 3)
    d = tmp_path_factory.mktemp("seed_tiles")
    for k in range(15):
        r, c = divmod(k, 5)
        # Colour PNGs as a user's camera would save them; tppscan detect converts to grey itself.
        cv2.imwrite(str(d / f"tile{k:02d}.png"), img[r * TILE_H:(r + 1) * TILE_H, c * TILE_W:(c + 1) * TILE_W])
    return d


def _score(rows: list[dict[str, str]], boxes: dict | None = None,
           column: str = "class") -> tuple[int, int, list[float]]:
    """Tiles whose pentagon is a ``structure`` in ``column`` (IoU >= 0.5), the other structures, best IoUs."""
    found, false_structures, best = 0, 0, []
    for k in range(15):
        truth = (boxes or BOXES)["boxes"][k]
        mine = [r for r in rows if r["filename"] == f"tile{k:02d}.png" and r[column] == "structure"]
        ious = [iou([float(r[c]) for c in ("xmin", "ymin", "xmax", "ymax")], truth) for r in mine]
        hit = max(ious, default=0.0) >= 0.5
        found += hit
        false_structures += len(mine) - (1 if hit else 0)
        best.append(round(max(ious, default=0.0), 2))
    return found, false_structures, best


def test_detect_finds_the_real_pentagon(tiles, tmp_path):
    assert default_model_path().is_file(), "the shipped detector models/detector/detector.onnx is missing"
    out = tmp_path / "out"
    assert main(["detect", str(tiles), "--out", str(out), "--no-classifier", "--backend", "onnxruntime"]) == 0
    with open(out / "detections.csv") as fh:
        rows = list(csv.DictReader(fh))
    found, false_structures, best = _score(rows)
    assert found >= 14, f"pentagon found in {found}/15 tiles; best IoU per tile {best}"
    assert false_structures <= 1, f"{false_structures} false structure detections; rows {rows}"


def test_opencv_backend_agrees_on_the_real_tiles(tiles):
    ort = Detector(backend="onnxruntime")
    cvd = Detector(backend="opencv")
    for p in sorted(tiles.iterdir()):
        img = cv2.imread(str(p))
        a, b = ort.detect(img), cvd.detect(img)
        assert len(a) == len(b)
        for x, y in zip(sorted(a, key=lambda d: d.box), sorted(b, key=lambda d: d.box), strict=True):
            assert x.label == y.label
            assert max(abs(u - v) for u, v in zip(x.box, y.box, strict=True)) < 1e-4 * TILE_W


def test_classifier_names_the_pentagon(tiles, tmp_path):
    clf_path = ROOT / "models" / "classifier" / "classifier.tflite"
    if not clf_path.is_file():
        pytest.skip("the shipped classifier is not in this tree")
    out = tmp_path / "out"
    assert main(["detect", str(tiles), "--out", str(out), "--backend", "onnxruntime"]) == 0
    with open(out / "detections.csv") as fh:
        rows = list(csv.DictReader(fh))
    named = 0
    for k in range(15):
        truth = BOXES["boxes"][k]
        hits = [r for r in rows if r["filename"] == f"tile{k:02d}.png" and r["class"] == "structure"
                and iou([float(r[c]) for c in ("xmin", "ymin", "xmax", "ymax")], truth) >= 0.5]
        named += any(r["type"] == "pentagon" for r in hits)
    assert named >= 13, f"classifier named the pentagon in {named}/15 tiles"
    found, false_structures, best = _score(rows, column="verdict")
    assert found >= 14, f"verdict: pentagon a structure in {found}/15 tiles; best IoU per tile {best}"
    assert false_structures <= 1, f"verdict: {false_structures} false structures; rows {rows}"


def test_verdict_sets_aside_dust_the_detector_alone_calls_structure(tiles, tmp_path):
    """The tiles upside down (a camera mounted the other way): the detector alone takes a 20-px dust clump for
    a structure at 0.25-0.33 in five tiles; the classifier calls it debris, and the verdict that weighs both
    (as a scan's first look does) keeps the pentagon and sets the clump aside.
    """
    assert (ROOT / "models" / "classifier" / "classifier.tflite").is_file(), "the shipped classifier is missing"
    flipped = tmp_path / "flipped"
    flipped.mkdir()
    for p in sorted(tiles.iterdir()):
        cv2.imwrite(str(flipped / p.name), cv2.flip(cv2.imread(str(p)), 0))
    out = tmp_path / "out"
    assert main(["detect", str(flipped), "--out", str(out), "--backend", "onnxruntime"]) == 0
    with open(out / "detections.csv") as fh:
        rows = list(csv.DictReader(fh))
    flipped_boxes = {"boxes": [[b[0], TILE_H - b[3], b[2], TILE_H - b[1]] for b in BOXES["boxes"]]}
    found, false_structures, best = _score(rows, flipped_boxes, column="verdict")
    assert found >= 14, f"verdict: pentagon a structure in {found}/15 flipped tiles; best IoU per tile {best}"
    assert false_structures <= 1, f"verdict: {false_structures} false structures; rows {rows}"
    detector_found, detector_false, _ = _score(rows, flipped_boxes)
    assert detector_found >= found and detector_false >= false_structures


def test_detect_finds_the_real_pentagon_in_portrait_frames(tiles, tmp_path):
    """The same tiles turned a quarter (a camera on its side, a phone at the eyepiece): 192 x 256 frames.

    Stretched to the 4:3 input, the pentagon became 1.8 times wider than it is and was found in 13 of 15; the
    frame is now padded to 4:3 instead (appliance/vision/tiles.py).
    """
    turned = tmp_path / "turned"
    turned.mkdir()
    for p in sorted(tiles.iterdir()):
        cv2.imwrite(str(turned / p.name), cv2.rotate(cv2.imread(str(p)), cv2.ROTATE_90_CLOCKWISE))
    out = tmp_path / "out"
    assert main(["detect", str(turned), "--out", str(out), "--no-classifier", "--backend", "onnxruntime"]) == 0
    with open(out / "detections.csv") as fh:
        rows = list(csv.DictReader(fh))
    # the hand-drawn boxes turned with the frames: (x, y) -> (H - y, x)
    turned_boxes = {"boxes": [[TILE_H - b[3], b[0], TILE_H - b[1], b[2]] for b in BOXES["boxes"]]}
    found, false_structures, best = _score(rows, turned_boxes)
    assert found >= 14, f"pentagon found in {found}/15 portrait tiles; best IoU per tile {best}"
    assert false_structures <= 1, f"{false_structures} false structure detections; rows {rows}"
