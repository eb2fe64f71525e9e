"""Detector latency per 640 x 480 frame, as a ratio to a reference in the same process.

What is timed: :meth:`appliance.vision.detector.Detector.detect` with the shipped model on a busy frame of
the virtual microscope (grey conversion, resize to the model input, inference, detectNet's post-processing),
through ONNX Runtime (one thread, and its default) and OpenCV DNN. The reference is OpenCV's Gaussian
adaptive threshold (block 31) on the same frame, about 1 ms on this 2-core machine: a fixed amount of
per-frame image work that scales with the machine. Absolute medians go into ``extra_info``; the gate is the
ratio (the issue's target, 20 ms per frame, is about 20x the reference on the development machine).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from timing import median_s

from appliance.vision.detector import Detector, default_model_path

pytest.importorskip("onnxruntime")
# 20 ms target / ~1 ms reference, with room for a noisy shared machine.
MAX_RATIO = 30.0


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    from appliance.sim.microscope import VirtualMicroscope

    scope = VirtualMicroscope(seed=2)
    best = max((o for o in scope.slide.objects if o.kind == "structure"),
               key=lambda o: len(scope.boxes_at(o.center_um[0], o.center_um[1])))
    with scope.stage, scope.camera:
        scope.stage.move_to_um(x=best.center_um[0], y=best.center_um[1], z=best.focus_z_um)
        return scope.camera.capture().image


@pytest.mark.parametrize("backend, threads", [("onnxruntime", 1), ("onnxruntime", 0), ("opencv", 0)])
def test_detector_per_frame(benchmark, frame, backend, threads):
    det = Detector(default_model_path(), backend=backend, threads=threads)

    def reference() -> object:
        return cv2.adaptiveThreshold(frame, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY_INV, 31, 5)

    ref_s = median_s(reference)
    ours_s = median_s(lambda: det.detect(frame))
    benchmark.pedantic(det.detect, args=(frame,), rounds=10, warmup_rounds=1)
    ratio = ours_s / ref_s
    benchmark.extra_info.update({"median_ms": round(ours_s * 1e3, 3), "reference_ms": round(ref_s * 1e3, 3),
                                 "ratio": round(ratio, 2), "fps_median": round(1.0 / ours_s, 1)})
    print(f"\ndetector {backend} threads={threads}: {ours_s * 1e3:.2f} ms per 640x480 frame, "
          f"reference {ref_s * 1e3:.2f} ms, ratio {ratio:.1f}")
    assert ratio <= MAX_RATIO


#: Read at its scale (appliance/vision/tiles.py), a 4x frame is four tiles and a 40x frame one padded canvas: the
#: time against the same frame read as it is, in the same process.
MAX_SCALE_RATIO = {1.4: 8.0, 0.14: 4.0}


@pytest.mark.parametrize("um_per_px", [1.4, 0.14], ids=["4x-tiles", "40x-padded"])
def test_detector_at_scale_against_the_frame_read_as_it_is(benchmark, frame, um_per_px):
    det = Detector(default_model_path(), backend="onnxruntime", threads=1)
    plain_s = median_s(lambda: det.detect(frame))
    ours_s = median_s(lambda: det.detect(frame, um_per_px))
    benchmark.pedantic(det.detect, args=(frame, um_per_px), rounds=10, warmup_rounds=1)
    ratio = ours_s / plain_s
    benchmark.extra_info.update({"median_ms": round(ours_s * 1e3, 3), "plain_ms": round(plain_s * 1e3, 3),
                                 "ratio": round(ratio, 2)})
    print(f"\ndetector at {um_per_px} um/px: {ours_s * 1e3:.2f} ms per 640x480 frame, read as it is "
          f"{plain_s * 1e3:.2f} ms, ratio {ratio:.1f}")
    assert ratio <= MAX_SCALE_RATIO[um_per_px]
