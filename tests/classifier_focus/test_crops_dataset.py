"""Classifier and focus datasets: columns, classes, defocus range, determinism, and the renderer's culling."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.cli import main as cli_main
from models.data.cli import plan
from models.data.crops import CLASSIFIER_COLUMNS, CLASSIFIER_LABELS, FOCUS_COLUMNS, scope_for_crops
from models.data.detection import _scope_for
from models.data.randomise import Ranges, render_frame, sample_shot

pytestmark = pytest.mark.slow


def _rows(d: Path) -> list[dict[str, str]]:
    with open(d / "labels.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_classifier_dataset_columns_and_classes(classifier_data):
    d = classifier_data["train"]
    rows = _rows(d)
    assert list(rows[0]) == list(CLASSIFIER_COLUMNS) and len(rows) == 64
    assert {r["class"] for r in rows} <= set(CLASSIFIER_LABELS)
    assert len({r["class"] for r in rows}) == 6  # drawn evenly: all six in 64 crops
    for r in rows[:8]:
        img = cv2.imread(str(d / r["filename"]), cv2.IMREAD_UNCHANGED)
        assert img.shape == (64, 64) and img.dtype == np.uint8
        assert (r["class"] == "debris") == (r["type"] in {"dust", "fibre", "bubble", "scratch"})


def test_focus_dataset_defocus_range(focus_data):
    rows = _rows(focus_data["train"])
    assert list(rows[0]) == list(FOCUS_COLUMNS)
    dz = np.array([float(r["defocus_um"]) for r in rows])
    assert np.all(np.abs(dz) <= 13.0 + 1e-9) and (np.abs(dz) <= 10).mean() > 0.7
    assert {r["type"] for r in rows} <= set(CLASSIFIER_LABELS[:5])


def test_test_split_never_shares_a_slide_with_train(classifier_data):
    train = {r["slide_seed"] for r in _rows(classifier_data["train"])}
    test = {r["slide_seed"] for r in _rows(classifier_data["test"])}
    assert train and test and not train & test


def test_same_seed_same_crops(classifier_data, tmp_path: Path):
    out = tmp_path / "again"
    assert cli_main(["dataset", "classifier", "--seed", "5", "--count", "8", "--split", "test", "--out", str(out),
                     "--jobs", "1", "--per-slide", "32"]) == 0
    first = _rows(classifier_data["test"])[:8]
    assert _rows(out) == first
    for r in first:
        a = cv2.imread(str(out / r["filename"]), cv2.IMREAD_UNCHANGED)
        b = cv2.imread(str(classifier_data["test"] / r["filename"]), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(a, b)


def test_culling_far_objects_changes_no_pixel(tmp_path: Path):
    job = plan("focus", "train", 3, 8, tmp_path, Ranges(), False, (640, 480))[0]
    full, near = _scope_for(job), scope_for_crops(job)
    shot = sample_shot(np.random.default_rng(0), job.ranges, False, job.size_px)
    for o in [o for o in full.slide.objects if o.kind == "structure"][:3]:
        x, y = o.center_um
        for dz in (-12.0, 0.0, 9.0):
            a = render_frame(full, x, y, o.focus_z_um + dz, shot, 7, window=(200, 140, 240, 200))
            b = render_frame(near, x, y, o.focus_z_um + dz, shot, 7, window=(200, 140, 240, 200))
            assert np.array_equal(a, b)


def test_far_prints_are_drawn_only_when_asked(classifier_data, tmp_path: Path):
    near = [r for r in _rows(classifier_data["train"]) if r["class"] != "debris"]
    assert near and all(abs(float(r["dz_um"])) <= 10.0 for r in near)
    out = tmp_path / "far"
    assert cli_main(["dataset", "classifier", "--seed", "5", "--count", "32", "--out", str(out), "--jobs", "1",
                     "--p-far-print", "1", "--p-bubble-debris", "1"]) == 0
    rows = _rows(out)
    far = [abs(float(r["dz_um"])) for r in rows if r["class"] != "debris"]
    assert far and max(far) > 10.0 and max(far) <= 20.0
    assert all(r["type"] == "bubble" for r in rows if r["class"] == "debris")
    import json

    assert json.loads((out / "meta.json").read_text())["ranges"]["p_far_print"] == 1.0
