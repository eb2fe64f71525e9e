"""Speed of the shipped LiteRT models: the classifier per batch of 16 crops, the focus net per crop.

Each case is timed against a reference in the same process, a 5x5 Gaussian blur of a 640 x 480 frame in
OpenCV (a fixed unit of CPU work on this machine), so the gate is a ratio, not an absolute time
(docs/bench.md: absolute timings on the shared 2-core machine move 10-50 %). Absolute medians go into
``extra_info`` and the model cards. Threads: 1, as the scan loop gives these models one core.

Cases: each shipped variant (float, dynamic-range, int8) of the classifier on a batch of 16 and of the focus
net on one crop, and the MobileNetV2-style twin of the focus net for the card's comparison.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from timing import median_s

from appliance.vision.classifier import MODEL_DIR as CLF_DIR
from appliance.vision.classifier import StructureClassifier
from appliance.vision.focusnet import MODEL_DIR as FOCUS_DIR
from appliance.vision.focusnet import FocusNet

# About 3x the slowest variant measured here (int8 runs slower than float on this CPU); ratios in the cards.
MAX_RATIO = {"classifier16": 1500.0, "focus1": 400.0}
CLASSIFIERS = ["classifier.tflite", "classifier_dynamic.tflite", "classifier_int8.tflite"]
FOCUS = ["focusnet.tflite", "focusnet_dynamic.tflite", "focusnet_int8.tflite", "focusnet_mobilenetv2.tflite"]


def _reference() -> Callable[[], object]:
    frame = np.random.default_rng(0).integers(0, 256, size=(480, 640), dtype=np.uint8)
    return lambda: cv2.GaussianBlur(frame, (5, 5), 0)


def _crops(n: int) -> np.ndarray:
    return np.random.default_rng(1).integers(90, 200, size=(n, 64, 64), dtype=np.uint8)


def _record(benchmark: pytest.FixtureRequest, fn: Callable[[], object], key: str, name: str) -> None:
    ref = median_s(_reference(), 30)
    ours = median_s(fn, 30)
    ratio = ours / ref
    benchmark.extra_info.update({"model": name, "median_ms": round(ours * 1e3, 3),
                                 "reference_ms": round(ref * 1e3, 3), "ratio": round(ratio, 2)})
    benchmark(fn)
    assert ratio <= MAX_RATIO[key], f"{name}: {ratio:.1f}x the reference blur (bar {MAX_RATIO[key]}x)"


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_batch_of_16(benchmark, name: str):
    clf = StructureClassifier(Path(CLF_DIR) / name, Path(CLF_DIR) / "labels.txt", num_threads=1, batch=16)
    x = _crops(16)
    _record(benchmark, lambda: clf.predict(x), "classifier16", name)


@pytest.mark.parametrize("name", FOCUS)
def test_focus_net_per_crop(benchmark, name: str):
    net = FocusNet(Path(FOCUS_DIR) / name, num_threads=1, batch=1)
    x = _crops(1)
    _record(benchmark, lambda: net.predict(x), "focus1", name)
