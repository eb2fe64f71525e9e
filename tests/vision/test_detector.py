"""The detector runtime: detectNet's post-processing, the three backends agreeing, and model-file errors."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest

from appliance.vision.detector import (
    Detection,
    Detector,
    ModelError,
    available_backends,
    load_labels,
    postprocess,
    to_gray,
)
from tests.vision.conftest import FAKE_JETSON

LABELS = ["BACKGROUND", "structure", "debris"]


def _raw(rows):
    """scores/boxes arrays from rows of (bg, structure, debris, x1, y1, x2, y2)."""
    a = np.array(rows, np.float32)
    return a[None, :, :3], a[None, :, 3:]


def test_postprocess_merges_same_class_overlaps_like_detectnet():
    scores, boxes = _raw([
        (0.1, 0.9, 0.0, 0.10, 0.10, 0.30, 0.30),   # structure
        (0.2, 0.8, 0.0, 0.11, 0.10, 0.31, 0.30),   # same class, overlaps > 0.75 of the larger: merged
        (0.3, 0.0, 0.7, 0.10, 0.10, 0.30, 0.30),   # debris over it: kept (no inter-class clustering)
        (0.6, 0.4, 0.0, 0.50, 0.50, 0.60, 0.60),   # below threshold
        (0.4, 0.6, 0.0, 0.70, 0.70, 1.20, 0.90),   # runs off the frame: clamped to width - 1
    ])
    dets = postprocess(scores, boxes, 100, 50, LABELS, threshold=0.5)
    assert [d.label for d in dets] == ["structure", "structure", "debris"]  # sorted by area, largest first
    big, merged, debris = dets
    assert big.box == pytest.approx((70.0, 35.0, 99.0, 45.0))
    assert merged.box == pytest.approx((10.0, 5.0, 31.0, 15.0))  # the union of the two boxes
    assert merged.score == pytest.approx(0.9)
    assert debris.score == pytest.approx(0.7)


def test_postprocess_picks_best_class_above_threshold():
    scores, boxes = _raw([(0.0, 0.45, 0.55, 0.1, 0.1, 0.2, 0.2), (0.1, 0.45, 0.45, 0.5, 0.5, 0.6, 0.6)])
    dets = postprocess(scores, boxes, 10, 10, LABELS, threshold=0.5)
    assert len(dets) == 1 and dets[0].label == "debris"


def test_to_gray_accepts_colour_and_16_bit_and_rejects_junk():
    bgr = np.zeros((20, 30, 3), np.uint8)
    assert to_gray(bgr).shape == (20, 30)
    assert to_gray(np.full((20, 30), 65535, np.uint16)).max() == 255
    with pytest.raises(ValueError, match="frame must be"):
        to_gray(np.zeros((20, 30, 2), np.uint8))
    with pytest.raises(ValueError, match="uint8 or uint16"):
        to_gray(np.zeros((20, 30), np.float64))


def _same(a: list[Detection], b: list[Detection], tol: float = 1e-4) -> None:
    # Equal-area boxes may come in either order (detectNet sorts by area only): compare as sets.
    a = sorted(a, key=lambda d: (round(d.box[0], 2), round(d.box[1], 2), d.label))
    b = sorted(b, key=lambda d: (round(d.box[0], 2), round(d.box[1], 2), d.label))
    assert [d.label for d in a] == [d.label for d in b]
    for x, y in zip(a, b, strict=True):
        assert np.allclose(x.box, y.box, atol=tol * 640), (x, y)  # boxes in px; 1e-4 of the frame
        assert x.score == pytest.approx(y.score, abs=1e-4)


def test_onnxruntime_and_opencv_agree(tiny_detector, sim_frame):
    ort = Detector(tiny_detector, backend="onnxruntime", threshold=0.2)
    cv = Detector(tiny_detector, backend="opencv", threshold=0.2)
    s1, b1 = ort.raw(sim_frame)
    s2, b2 = cv.raw(sim_frame)
    assert s1.shape == s2.shape and b1.shape == b2.shape == (1, s1.shape[1], 4)
    assert np.abs(b1 - b2).max() < 1e-4
    assert np.abs(s1 - s2).max() < 1e-4
    d1, d2 = ort.detect(sim_frame), cv.detect(sim_frame)
    assert d1, "the test needs detections to compare"
    _same(d1, d2)


def test_jetson_backend_matches_onnxruntime_through_the_fake(tiny_detector, sim_frame, monkeypatch):
    monkeypatch.syspath_prepend(str(FAKE_JETSON))
    for mod in ("jetson_inference", "jetson_utils"):
        sys.modules.pop(mod, None)
    assert available_backends()[0] == "jetson"
    jet = Detector(tiny_detector, backend="auto", threshold=0.2)
    assert jet.backend == "jetson"
    ort = Detector(tiny_detector, backend="onnxruntime", threshold=0.2)
    frame = sim_frame.copy()
    d_jet = jet.detect(frame)
    _same(d_jet, ort.detect(sim_frame))
    assert np.array_equal(frame, sim_frame)  # overlay="none": detectNet drew nothing into our frame
    import jetson_inference

    net = jetson_inference.instances[-1]
    assert not net.argv_used and net.calls[-1]["overlay"] == "none"
    assert net.calls[-1]["shape"] == (*jet.input_hw, 3)  # resized by us, so detectNet's nearest-pixel resize is idle
    for mod in ("jetson_inference", "jetson_utils"):
        sys.modules.pop(mod, None)


def test_fake_cuda_from_numpy_is_as_strict_as_the_real_one(monkeypatch):
    monkeypatch.syspath_prepend(str(FAKE_JETSON))
    sys.modules.pop("jetson_utils", None)
    import jetson_utils

    assert jetson_utils.cudaFromNumpy(np.zeros((4, 5), np.uint8)).format == "gray8"
    with pytest.raises(Exception, match="C-contiguous"):
        jetson_utils.cudaFromNumpy(np.zeros((4, 5, 3), np.uint8)[:, ::-1])
    with pytest.raises(Exception, match="unsupported"):
        jetson_utils.cudaFromNumpy(np.zeros((4, 5, 3), np.float64))
    sys.modules.pop("jetson_utils", None)


def test_missing_model_names_the_file(tmp_path):
    with pytest.raises(ModelError, match=r"nothere\.onnx: not found"):
        Detector(tmp_path / "nothere.onnx", backend="onnxruntime")


@pytest.mark.parametrize("backend", ["onnxruntime", "opencv"])
def test_truncated_model_is_a_clear_error(tiny_detector, tmp_path, backend):
    bad = tmp_path / "detector.onnx"
    bad.write_bytes(tiny_detector.read_bytes()[:5000])
    shutil.copy(tiny_detector.with_name("labels.txt"), tmp_path / "labels.txt")
    with pytest.raises(ModelError, match=str(bad)):
        Detector(bad, backend=backend)


def test_wrong_shape_model_is_rejected(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input_0", TensorProto.FLOAT, [1, 3, 32, 32])
    s = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 3, 32, 32])
    b = helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 3, 32, 32])
    g = helper.make_graph([helper.make_node("Identity", ["input_0"], ["scores"]),
                           helper.make_node("Identity", ["input_0"], ["boxes"])], "g", [x], [s, b])
    path = tmp_path / "detector.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    (tmp_path / "labels.txt").write_text("BACKGROUND\nstructure\ndebris\n")
    with pytest.raises(ModelError, match=r"outputs must be scores \[1,N,C\]"):
        Detector(path, backend="onnxruntime")


def test_labels_must_match_the_model(tiny_detector, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("BACKGROUND\nstructure\n")
    with pytest.raises(ModelError, match="2 labels .* 3 classes"):
        Detector(tiny_detector, labels, backend="onnxruntime")
    labels.write_text("structure\ndebris\nBACKGROUND\n")
    with pytest.raises(ModelError, match="first label must be BACKGROUND"):
        load_labels(labels)


def test_bad_backend_and_threshold(tiny_detector):
    with pytest.raises(ValueError, match="backend must be one of"):
        Detector(tiny_detector, backend="tensorflow")
    with pytest.raises(ValueError, match="threshold must be"):
        Detector(tiny_detector, threshold=0.0)


class _StubRunner:
    """Stands in for a backend: records the input it is given and returns fixed raw outputs."""

    def __init__(self, rows):
        self.scores, self.boxes = _raw(rows)
        self.inputs: list[np.ndarray] = []

    def run(self, x):
        self.inputs.append(x)
        return self.scores, self.boxes


def test_a_portrait_frame_is_padded_not_stretched_and_boxes_in_the_padding_are_dropped(tiny_detector):
    det = Detector(tiny_detector, backend="onnxruntime", threshold=0.2)
    ih, iw = det.input_hw  # 240 x 320
    # A 300 x 400 (3:4) frame is padded on the right to 533 x 400 before the resize: its own pixels fill the
    # input's left 180 columns (300 / 533 of 320), glass the rest.
    stub = _StubRunner([
        (0.1, 0.9, 0.0, 0.10, 0.10, 0.30, 0.30),  # inside the frame: kept as it is
        (0.1, 0.0, 0.9, 0.50, 0.50, 0.60, 0.60),  # straddles the frame's right edge, centre inside: clipped
        (0.1, 0.9, 0.0, 0.70, 0.20, 0.90, 0.40),  # centred in the padding: dropped
    ])
    det.runner = stub
    frame = np.full((400, 300), 200, np.uint8)
    frame[100:140, 50:90] = 40  # something dark to find in the input
    dets = sorted(det.detect(frame), key=lambda d: d.box[0])
    x = stub.inputs[-1]
    assert x.shape == (1, 3, ih, iw)
    scale = ih / 400  # both axes scaled alike
    col, row = int((50 + 20) * scale), int((100 + 20) * scale)
    assert x[0, 0, row, col] < -0.5  # the dark square where an unstretched resize puts it
    assert np.allclose(x[0, 0, :, round(300 * scale) + 2:], 200 / 127.5 - 1, atol=1e-3)  # the padding: glass
    assert [d.label for d in dets] == ["structure", "debris"]
    assert dets[0].box == pytest.approx((0.10 * 533, 0.10 * 400, 0.30 * 533, 0.30 * 400), abs=1e-3)
    assert dets[1].box[2] == pytest.approx(300) and dets[1].box[0] == pytest.approx(0.5 * 533, abs=1e-3)
