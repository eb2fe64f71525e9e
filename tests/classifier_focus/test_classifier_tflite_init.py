"""``--init classifier.tflite``: the shipped classifier read back into Keras (``models.classifier.tflite_init``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.classifier.tflite_init import TOLERANCE, check_reproduces, read_tflite_weights

pytestmark = pytest.mark.slow

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "classifier" / "classifier.tflite"


def file_width(path: Path) -> int:
    """The ``--width`` of the network in the file (its first convolution's channel count)."""
    return int(read_tflite_weights(path)[0][0][0].shape[-1])


def _crops(data: Path) -> np.ndarray:
    from models.classifier.train import _load

    x, _ = _load(data, None)
    return x[:, :, :, None].astype(np.float32) / 255.0


def _model(width: int):
    from models.classifier.train import build_model
    from models.keras_tflite import setup_tensorflow

    setup_tensorflow(0, 2)
    import keras

    return keras, build_model(keras, width=width)


def test_the_shipped_file_is_read_back_and_reproduced(classifier_data):
    from models.classifier.tflite_init import load_tflite_init

    keras, model = _model(file_width(SHIPPED))
    crops = _crops(classifier_data["train"])
    diff = load_tflite_init(keras, model, SHIPPED, crops)
    assert diff <= TOLERANCE
    # the batch norms were calibrated, not left identity: training mode (less dropout) agrees with inference
    probe = keras.Model(model.inputs[0], model.get_layer(index=-3).output)  # the dense layer before dropout
    train_mode = np.asarray(probe(crops[:32], training=True))
    infer = np.asarray(probe(crops[:32], training=False))
    assert np.abs(train_mode - infer).max() < 0.25 * np.abs(infer).max()


def test_a_model_that_differs_from_the_file_is_caught(classifier_data):
    """The check is real: a read-back with one kernel nudged no longer reproduces the file."""
    from models.classifier.tflite_init import load_tflite_weights

    keras, model = _model(file_width(SHIPPED))
    load_tflite_weights(model, SHIPPED)
    conv = [lay for lay in model.layers if type(lay).__name__ == "Conv2D"][1]
    conv.kernel.assign(np.asarray(conv.kernel) * 1.01)
    with pytest.raises(OSError, match=rf"--init {SHIPPED}: .* differs from the file by"):
        check_reproduces(model, SHIPPED, _crops(classifier_data["train"])[:8])


def test_weights_come_back_in_keras_layout():
    convs, denses = read_tflite_weights(SHIPPED)
    w = convs[0][0].shape[-1]
    assert [k.shape for k, _ in convs] == [(5, 5, 1, w), (3, 3, w, 2 * w), (3, 3, 2 * w, 2 * w)]
    assert [m.shape for m, _ in denses] == [(8 * 8 * 2 * w, 128), (128, 6)]


@pytest.mark.parametrize("content, needle", [
    (None, "not found"),
    (b"not a model at all", "not a TFLite model"),
])
def test_a_bad_file_is_an_os_error_naming_it(content, needle, tmp_path: Path):
    bad = tmp_path / "classifier.tflite"
    if content is not None:
        bad.write_bytes(content)
    with pytest.raises(OSError, match=rf"--init {bad}: .*{needle}"):
        read_tflite_weights(bad)


def test_another_network_is_refused():
    focus = SHIPPED.parents[1] / "focusnet" / "focusnet.tflite"
    with pytest.raises(OSError, match="not a classifier this code can train further: .* convolutions"):
        read_tflite_weights(focus)


def test_a_quantised_variant_is_refused_by_name():
    with pytest.raises(OSError, match="give the float classifier.tflite"):
        read_tflite_weights(SHIPPED.with_name("classifier_int8.tflite"))


def test_another_width_is_refused_naming_the_files():
    from models.classifier.tflite_init import load_tflite_weights

    _, model = _model(16)
    w = file_width(SHIPPED)
    with pytest.raises(OSError, match=rf"a width-{w} classifier; give --width {w} \(asked for 16\)"):
        load_tflite_weights(model, SHIPPED)


def test_train_classifier_goes_on_from_the_shipped_file(classifier_data, tmp_path: Path):
    from tests.classifier_focus.conftest import _train

    w = file_width(SHIPPED)
    assert _train("models.classifier.train", classifier_data["train"], tmp_path, "--init", str(SHIPPED),
                  "--width", str(w), "--lr", "5e-4", "--test", str(classifier_data["test"])) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["init"] == str(SHIPPED) and m["lr"] == 5e-4 and m["init_max_abs_diff"] <= TOLERANCE


def test_a_bad_learning_rate_exits_2_naming_it(tmp_path: Path, capsys):
    import argparse

    import models.classifier.train as mod

    p = argparse.ArgumentParser()
    mod.add_arguments(p)
    assert mod.run(p.parse_args(["--data", str(tmp_path), "--out", str(tmp_path / "o"), "--lr", "0"])) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--lr must be in" in err and "got 0.0" in err
