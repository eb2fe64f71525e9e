"""The trainers' --quick smoke runs end to end (dataset -> train -> .tflite -> LiteRT), and their option errors."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from models.classifier import metrics as clf_metrics
from models.focusnet import metrics as focus_metrics

pytestmark = pytest.mark.slow


def test_quick_classifier_run_writes_models_labels_and_metrics(quick_classifier: Path, classifier_data):
    m = json.loads((quick_classifier / "metrics.json").read_text())
    assert m["quick"] and m["n_train"] == 64 and m["epochs_run"] == 1
    assert set(m["files"]) == {"float", "dynamic", "int8"}
    for v in m["files"].values():
        assert (quick_classifier / v["file"]).stat().st_size == v["bytes"] < 2_000_000
        assert 0.0 <= v["accuracy"] <= 1.0
    assert (quick_classifier / "labels.txt").read_text().split() == m["labels"]
    ev = clf_metrics.evaluate(classifier_data["test"], quick_classifier / "classifier.tflite")
    assert ev["n"] == 32 and sum(map(sum, ev["confusion"])) == 32
    assert ev["accuracy"] == pytest.approx(m["files"]["float"]["accuracy"])


def test_quick_focus_run_and_eval(quick_focus: Path, focus_data):
    m = json.loads((quick_focus / "focusnet.metrics.json").read_text())
    assert m["arch"] == "small" and m["epochs_run"] == 1
    ev = focus_metrics.evaluate(focus_data["test"], quick_focus / "focusnet.tflite")
    assert 0 < ev["n"] <= 32 and ev["n"] + ev["n_beyond"] == 32
    for k in ("mae_um", "class_accuracy", "within_one_accuracy", "sign_accuracy"):
        assert ev[k] == ev[k]  # not NaN


def bytes_crop():
    import numpy as np

    return np.full((64, 64), 120, np.uint8)


def test_quick_mobilenetv2_twin_builds_and_exports(focus_data, tmp_path: Path):
    from tests.classifier_focus.conftest import _train

    assert _train("models.focusnet.train", focus_data["train"], tmp_path, "--arch", "mobilenetv2") == 0
    from appliance.vision.focusnet import FocusNet

    # The comparison twin, not shipped: its float file may pass 2 MB (MobileNetV2's 1280-channel head).
    for v in ("focusnet_mobilenetv2.tflite", "focusnet_mobilenetv2_int8.tflite"):
        assert FocusNet(tmp_path / v).predict([bytes_crop()]).probs.shape == (1, 41)


@pytest.mark.parametrize("module", ["models.classifier.train", "models.focusnet.train"])
@pytest.mark.parametrize("opt, value", [("--epochs", "0"), ("--batch", "4"), ("--threads", "0"), ("--minutes", "0"),
                                        ("--seed", "-1"), ("--lr", "0")])
def test_bad_option_values_exit_2_naming_them(module, opt, value, tmp_path: Path, capsys):
    import importlib

    mod = importlib.import_module(module)
    p = argparse.ArgumentParser()
    mod.add_arguments(p)
    rc = mod.run(p.parse_args(["--data", str(tmp_path), "--out", str(tmp_path), opt, value]))
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and opt in err and value in err


def test_wrong_dataset_kind_is_an_os_error(classifier_data, tmp_path: Path):
    from tests.classifier_focus.conftest import _train

    with pytest.raises(OSError, match="expected one made by `tppscan dataset focus`"):
        _train("models.focusnet.train", classifier_data["train"], tmp_path)


def test_more_data_is_appended_to_the_training_set(classifier_data, tmp_path: Path):
    from tests.classifier_focus.conftest import _train

    d = classifier_data["train"]
    more = [tmp_path / "more1", tmp_path / "more2"]  # copies: one folder given twice is refused
    for m in more:
        shutil.copytree(d, m)
    assert _train("models.classifier.train", d, tmp_path, "--more-data", *map(str, more)) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["n_train"] == 3 * 64 and [x["dir"] for x in m["more_train"]] == list(map(str, more))


def test_a_training_folder_given_twice_is_refused(tmp_path: Path, capsys):
    """--data and --more-data are concatenated: one folder twice would count its crops twice."""
    import models.classifier.train as mod

    d = tmp_path / "train"
    d.mkdir()
    (tmp_path / "link").symlink_to(d)
    p = argparse.ArgumentParser()
    mod.add_arguments(p)
    for more in ([str(d)], [str(tmp_path / "other"), str(tmp_path / "link")], [f"{d}/../train/"]):
        rc = mod.run(p.parse_args(["--data", str(d), "--more-data", *more, "--out", str(tmp_path / "o")]))
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1, err
        assert f"--data and --more-data: the folder {d} is given twice" in err
    assert not (tmp_path / "o").exists()
