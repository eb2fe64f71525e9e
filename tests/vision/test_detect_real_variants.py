"""The seed authors' 15 real frames as other cameras and microscopes would give them, through ``tppscan detect``.

Real frames are a TEST only (never training or tuning data). A lab user's camera differs from the seed
authors' in magnification, resolution, exposure, gamma, white balance, sharpness, compression, noise, evenness
of the lamp and which way up it is mounted. Each variant below is made from the tiles of
``docs/img/seed-frames.png`` (the hand-drawn pentagon boxes carried through the same change) and must keep
issue 15's real-frame bar on the product's verdict (detector and classifier weighed together, the ``verdict``
column): the pentagon a ``structure`` in at least 14 of 15 tiles, at most one false ``structure``, and the
classifier naming it ``pentagon`` in at least 13. The levels are what a bench camera plausibly does, not the
edge of what passes: noise of 5 grey levels RMS on a 256 x 192 tile is about 10 on a 640 x 480 frame shrunk to it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.cli import main
from appliance.vision.decision import iou

ROOT = Path(__file__).resolve().parents[2]
BOXES = json.loads((Path(__file__).parent / "data" / "seed_pentagon_boxes.json").read_text())
TILE_W, TILE_H = BOXES["tile_size"]
Box = list[float]
Variant = Callable[[np.ndarray, Box], tuple[np.ndarray, Box]]


def _pixels(fn: Callable[[np.ndarray], np.ndarray]) -> Variant:
    return lambda img, box: (np.clip(fn(img.astype(np.float32)), 0, 255).astype(np.uint8), box)


def _scaled(f: float) -> Variant:
    """The whole tile resampled by ``f``: a finer or coarser camera over the same field."""
    def apply(img: np.ndarray, box: Box) -> tuple[np.ndarray, Box]:
        size = (int(round(TILE_W * f)), int(round(TILE_H * f)))
        out = cv2.resize(img, size, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC)
        return out, [v * f for v in box]
    return apply


def _zoomed(f: float) -> Variant:
    """A field ``f`` times smaller around the pentagon at the same pixel count: a stronger objective."""
    def apply(img: np.ndarray, box: Box) -> tuple[np.ndarray, Box]:
        w, h = TILE_W / f, TILE_H / f
        x0 = int(np.clip((box[0] + box[2]) / 2 - 0.4 * w, 0, TILE_W - w))
        y0 = int(np.clip((box[1] + box[3]) / 2 - 0.45 * h, 0, TILE_H - h))
        crop = img[y0:y0 + int(h), x0:x0 + int(w)]
        sx, sy = TILE_W / crop.shape[1], TILE_H / crop.shape[0]
        out = cv2.resize(crop, (TILE_W, TILE_H), interpolation=cv2.INTER_CUBIC)
        return out, [(box[0] - x0) * sx, (box[1] - y0) * sy, (box[2] - x0) * sx, (box[3] - y0) * sy]
    return apply


def _jpeg(quality: int) -> Variant:
    def apply(img: np.ndarray, box: Box) -> tuple[np.ndarray, Box]:
        ok, data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert ok
        return cv2.imdecode(data, cv2.IMREAD_COLOR), box
    return apply


def _noisy(sigma: float, seed: int) -> Variant:
    rng = np.random.default_rng(seed)
    return _pixels(lambda t: t + rng.normal(0.0, sigma, t.shape))


def _flipped_vertically(img: np.ndarray, box: Box) -> tuple[np.ndarray, Box]:
    return cv2.flip(img, 0), [box[0], TILE_H - box[3], box[2], TILE_H - box[1]]


def _lamp_gradient(t: np.ndarray) -> np.ndarray:
    return t * np.linspace(0.6, 1.2, t.shape[1], dtype=np.float32)[None, :, None]


VARIANTS: dict[str, Variant] = {
    "objective_2x": _zoomed(2.0),
    "camera_640x480": _scaled(2.5),
    "camera_coarser_0.6": _scaled(0.6),
    "exposure_half": _pixels(lambda t: 0.5 * t),
    "exposure_1.3_clipped": _pixels(lambda t: 1.3 * t),
    "gamma_0.6": _pixels(lambda t: 255.0 * (t / 255.0) ** 0.6),
    "gamma_1.6": _pixels(lambda t: 255.0 * (t / 255.0) ** 1.6),
    "led_white_balance": _pixels(lambda t: t * np.array([1.6, 1.0, 0.62], np.float32)),  # BGR: a cold LED lamp
    "soft_lens_blur_1.5px": lambda img, box: (cv2.GaussianBlur(img, (0, 0), 1.5), box),
    "jpeg_quality_25": _jpeg(25),
    "noise_5": _noisy(5.0, 0),
    "contrast_half": _pixels(lambda t: t.mean() + 0.5 * (t - t.mean())),
    "uneven_lamp": _pixels(_lamp_gradient),
    "mounted_upside_down": _flipped_vertically,
}


def _box(row: dict[str, str]) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(row[c]) for c in ("xmin", "ymin", "xmax", "ymax"))
    return x1, y1, x2, y2


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> tuple[dict[str, Box], list[dict[str, str]]]:
    """Every variant of every tile in one folder, run through ``tppscan detect`` once (one model load)."""
    img = cv2.imread(str(ROOT / "docs" / "img" / "seed-frames.png"), cv2.IMREAD_COLOR)
    assert img is not None and img.shape == (3 * TILE_H, 5 * TILE_W, 3)
    src = tmp_path_factory.mktemp("variants")
    truth: dict[str, Box] = {}
    for name, variant in VARIANTS.items():
        for k in range(15):
            r, c = divmod(k, 5)
            tile = img[r * TILE_H:(r + 1) * TILE_H, c * TILE_W:(c + 1) * TILE_W]
            out, box = variant(tile, [float(v) for v in BOXES["boxes"][k]])
            file = f"{name}__tile{k:02d}.png"
            assert cv2.imwrite(str(src / file), out)
            truth[file] = box
    out_dir = tmp_path_factory.mktemp("variants_out")
    assert main(["detect", str(src), "--out", str(out_dir), "--backend", "onnxruntime"]) == 0
    with open(out_dir / "detections.csv") as fh:
        return truth, list(csv.DictReader(fh))


@pytest.mark.parametrize("name", list(VARIANTS))
def test_the_real_pentagon_survives_another_camera(results, name):
    truth, rows = results
    found = false_structures = named = 0
    for k in range(15):
        file = f"{name}__tile{k:02d}.png"
        mine = [r for r in rows if r["filename"] == file and r["verdict"] == "structure"]
        hits = [r for r in mine if iou(_box(r), tuple(truth[file])) >= 0.5]
        found += bool(hits)
        named += any(r["type"] == "pentagon" for r in hits)
        false_structures += len(mine) - (1 if hits else 0)
    assert found >= 14, f"{name}: pentagon a structure in {found}/15 tiles"
    assert false_structures <= 1, f"{name}: {false_structures} false structures"
    assert named >= 13, f"{name}: classifier named the pentagon in {named}/15 tiles"


def test_each_object_has_its_verdict_on_one_box(results):
    _, rows = results
    objects = {(r["filename"], r["object"]) for r in rows}
    leads = [(r["filename"], r["object"]) for r in rows if r["verdict"]]
    assert sorted(leads) == sorted(objects)   # exactly one row with a verdict per object
    assert all(r["agree"] in ("yes", "no") for r in rows if r["verdict"])
    assert all(r["agree"] == "" for r in rows if not r["verdict"])
