"""The LiteRT loader and the classifier / focus-net runtime, on real .tflite files from --quick trainings."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from appliance.vision.classifier import StructureClassifier, crops_to_batch
from appliance.vision.focusnet import DZ_CLASSES_UM, N_CLASSES, FocusNet, confidence, dz_to_class
from appliance.vision.litert import LiteModel, ModelFileError, OutputSpec, read_labels

pytestmark = pytest.mark.slow


def _crops(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 64, 64), dtype=np.uint8)


def test_classifier_batches_match_single_crops(quick_classifier: Path):
    clf = StructureClassifier(quick_classifier / "classifier.tflite", num_threads=1, batch=16)
    x = _crops(37)
    batch = clf.predict(x)  # 16 + 16 + 5: two resizes
    single = np.concatenate([clf.predict(x[i:i + 1]).probs for i in range(len(x))])
    assert batch.probs.shape == (37, 6)
    np.testing.assert_allclose(batch.probs, single, atol=1e-5)
    np.testing.assert_allclose(batch.probs.sum(axis=1), 1.0, atol=1e-4)
    assert batch.labels == [clf.classes[i] for i in batch.probs.argmax(axis=1)]
    assert len(clf.predict(np.zeros((0, 64, 64), np.uint8)).labels) == 0


@pytest.mark.parametrize("variant", ["classifier_dynamic.tflite", "classifier_int8.tflite"])
def test_small_variants_load_and_stay_close_to_float(quick_classifier: Path, variant: str):
    f = StructureClassifier(quick_classifier / "classifier.tflite", quick_classifier / "labels.txt")
    q = StructureClassifier(quick_classifier / variant, quick_classifier / "labels.txt")
    x = _crops(16, 1)
    assert np.abs(f.predict(x).probs - q.predict(x).probs).max() < 0.25
    assert (quick_classifier / variant).stat().st_size < (quick_classifier / "classifier.tflite").stat().st_size


def test_classify_boxes_cuts_the_same_crops_as_box_crop(quick_classifier: Path):
    from appliance.vision.crops import box_crop

    clf = StructureClassifier(quick_classifier / "classifier.tflite")
    frame = np.random.default_rng(3).integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
    boxes = [(10, 10, 40, 50), (100, 60, 170, 130)]
    a = clf.classify_boxes(frame, boxes)
    b = clf.predict(np.stack([box_crop(frame, bx) for bx in boxes]))
    np.testing.assert_allclose(a.probs, b.probs, atol=1e-6)
    assert clf.classify_boxes(frame, []).probs.shape == (0, 6)


def test_focus_net_outputs_and_confidence(quick_focus: Path):
    net = FocusNet(quick_focus / "focusnet.tflite", num_threads=2)
    p = net.predict(_crops(5))
    assert p.defocus_um.shape == (5,) and p.probs.shape == (5, N_CLASSES) and p.confidence.shape == (5,)
    assert np.all((p.confidence >= 0) & (p.confidence <= 1))
    np.testing.assert_allclose(p.confidence, confidence(p.defocus_um, p.probs), atol=1e-6)
    for v in ("focusnet_dynamic.tflite", "focusnet_int8.tflite"):
        assert FocusNet(quick_focus / v).predict(_crops(2)).probs.shape == (2, N_CLASSES)


def test_focus_classes_and_confidence_by_hand():
    assert len(DZ_CLASSES_UM) == 41 and DZ_CLASSES_UM[0] == -10.0 and DZ_CLASSES_UM[20] == 0.0
    assert list(dz_to_class([-12.0, -10.0, -0.2, 0.3, 9.8, 15.0])) == [0, 0, 20, 21, 40, 40]
    probs = np.zeros((2, 41), np.float32)
    probs[0, 24] = 0.5   # +2.0 µm
    probs[0, 26] = 0.5   # +3.0 µm
    probs[1, 0] = 1.0    # -10 µm
    # Regressed +2.0: +3.0 is exactly 1 µm away, inside the band. Regressed -14: clipped to -10, all mass there.
    np.testing.assert_allclose(confidence(np.array([2.0, -14.0]), probs), [1.0, 1.0])
    np.testing.assert_allclose(confidence(np.array([5.0, 0.0]), probs), [0.0, 0.0])


def _copy(src: Path, dst: Path) -> Path:
    shutil.copy(src, dst)
    return dst


def test_load_errors_name_the_file_and_what_was_expected(quick_classifier: Path, quick_focus: Path, tmp_path: Path):
    good = quick_classifier / "classifier.tflite"
    labels = quick_classifier / "labels.txt"
    with pytest.raises(ModelFileError, match=r"missing\.tflite: model file not found; expected a TFLite model"):
        StructureClassifier(tmp_path / "missing.tflite", labels)
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ModelFileError, match="truncated.tflite: LiteRT cannot load it"):
        StructureClassifier(truncated, labels)
    onnx = tmp_path / "model.tflite"
    onnx.write_bytes(b"\x08\x07\x12\x07pytorch" + bytes(100))
    with pytest.raises(ModelFileError, match="not a TFLite flatbuffer"):
        StructureClassifier(onnx, labels)
    # The focus net is a valid model, but not a classifier: its outputs are [N, 1] and [N, 41].
    with pytest.raises(ModelFileError, match=r"outputs \[1, 1\], \[1, 41\]; expected probs \[N, K\]"):
        StructureClassifier(quick_focus / "focusnet.tflite", labels)
    with pytest.raises(ModelFileError, match=r"expected defocus_um \[N, 1\], probs \[N, 41\]"):
        FocusNet(good)
    with pytest.raises(ModelFileError, match=r"input shape \[N, 64, 64, 1\]; expected a TFLite model with input "
                                             r"\[N, 32, 32, 1\]"):
        LiteModel(good, (32, 32, 1), [OutputSpec("probs", 6)])


def test_labels_that_do_not_match_the_model(quick_classifier: Path, tmp_path: Path):
    good = quick_classifier / "classifier.tflite"
    five = tmp_path / "five.txt"
    five.write_text("woodpile\nmicrolens\nscaffold\npentagon\nsplit_ring\n")
    with pytest.raises(ModelFileError, match=r"five.txt: 5 labels, but .*classifier.tflite gives 6 class"):
        StructureClassifier(good, five)
    renamed = tmp_path / "renamed.txt"
    renamed.write_text("woodpile\nmicrolens\nscaffold\npentagon\nsplit_ring\nfluff\n")
    with pytest.raises(ModelFileError, match=r"renamed.txt: labels .* lack \['debris'\]"):
        StructureClassifier(good, renamed)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(ModelFileError, match="empty"):
        read_labels(empty)
    dup = tmp_path / "dup.txt"
    dup.write_text("a\nb\na\n")
    with pytest.raises(ModelFileError, match="repeats"):
        read_labels(dup)
    with pytest.raises(ModelFileError, match="cannot read labels"):
        read_labels(tmp_path / "nope.txt")


def test_bad_crops_and_options_are_value_errors(quick_classifier: Path):
    with pytest.raises(ValueError, match="64 x 64"):
        crops_to_batch(np.zeros((2, 32, 32), np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        crops_to_batch(np.full((1, 64, 64), 2.0, np.float32))
    with pytest.raises(ValueError, match="num_threads"):
        StructureClassifier(quick_classifier / "classifier.tflite", num_threads=0)
    np.testing.assert_allclose(crops_to_batch([np.full((64, 64), 255, np.uint8)]), 1.0)


def test_flip_averaging_is_the_mean_over_the_flipped_crops(quick_classifier: Path):
    one = StructureClassifier(quick_classifier / "classifier.tflite", views=1)
    x = _crops(5, 4)
    views = [x, x[:, :, ::-1], x[:, ::-1, :], x[:, ::-1, ::-1]]
    each = [one.predict(np.ascontiguousarray(v)).probs for v in views]
    for n in (2, 4):
        got = StructureClassifier(quick_classifier / "classifier.tflite", views=n).predict(x)
        np.testing.assert_allclose(got.probs, np.mean(each[:n], axis=0), atol=1e-6)
        np.testing.assert_allclose(got.probs.sum(axis=1), 1.0, atol=1e-4)
    # a crop and its mirror image get the same answer once both views are averaged
    two = StructureClassifier(quick_classifier / "classifier.tflite", views=2)
    np.testing.assert_allclose(two.predict(x).probs, two.predict(np.ascontiguousarray(x[:, :, ::-1])).probs, atol=1e-6)
    with pytest.raises(ValueError, match=r"views must be one of \(1, 2, 4\), got 3"):
        StructureClassifier(quick_classifier / "classifier.tflite", views=3)
