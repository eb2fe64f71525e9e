"""Bad crop-dataset labels (``labels.csv``): one clear error naming file, row, column and value, in eval and train.

The datasets are written here by hand (``meta.json`` and ``labels.csv`` only): every check runs before an image
is read or TensorFlow is imported.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.cli import main

CLASSIFIER_HEADER = "filename,class,type,dz_um,um_per_px,slide_seed\n"
FOCUS_HEADER = "filename,defocus_um,type,um_per_px,slide_seed\n"


def _dataset(root: Path, kind: str, labels: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "meta.json").write_text(json.dumps({"kind": kind, "split": "val"}))
    (root / "labels.csv").write_text(labels)
    return root


def _focus_row(dz: str) -> str:
    return f"images/a.png,{dz},woodpile,0.5,1\n"


CASES = [
    ("classifier", "", "no crops"),
    ("classifier", CLASSIFIER_HEADER, "no crops"),
    ("classifier", CLASSIFIER_HEADER + "images/a.png,woodpile,woodpile,0,0.5,1\nimages/b.png,banana,x,0,0.5,1\n",
     "row 3: column 'class' is 'banana', not one of woodpile, microlens"),
    ("focus", FOCUS_HEADER, "no crops"),
    ("focus", FOCUS_HEADER + _focus_row("abc"),
     "row 2: column 'defocus_um' is 'abc'; it must be a number in [-33, 33]"),
    ("focus", FOCUS_HEADER + _focus_row("nan"), "row 2: column 'defocus_um' is 'nan'"),
    ("focus", FOCUS_HEADER + _focus_row("1e308"), "row 2: column 'defocus_um' is '1e308'"),
    ("focus", "filename,type\nimages/a.png,woodpile\n", "row 2: column 'defocus_um' is missing or empty"),
]


@pytest.mark.parametrize("kind, labels, needle", CASES)
def test_models_eval_names_the_file_row_and_value(kind, labels, needle, tmp_path: Path, capsys):
    data = _dataset(tmp_path / "d", kind, labels)
    assert main(["models", "eval", kind, "--data", str(data)]) == 1
    err = capsys.readouterr().err
    assert f"{data / 'labels.csv'}: {needle}" in err and "Traceback" not in err


@pytest.mark.parametrize("kind, labels, needle", CASES)
def test_train_refuses_before_training(kind, labels, needle, tmp_path: Path):
    from tests.classifier_focus.conftest import _train

    module = "models.classifier.train" if kind == "classifier" else "models.focusnet.train"
    with pytest.raises(OSError, match="labels.csv: " + needle.replace("[", r"\[").replace("(", r"\(")):
        _train(module, _dataset(tmp_path / "d", kind, labels), tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option", ["--val", "--test"])
def test_an_empty_val_or_test_set_is_refused_before_training(option, tmp_path: Path):
    import cv2
    import numpy as np

    from tests.classifier_focus.conftest import _train

    good = _dataset(tmp_path / "good", "focus", FOCUS_HEADER + _focus_row("1.5"))
    (good / "images").mkdir()
    cv2.imwrite(str(good / "images" / "a.png"), np.full((64, 64), 100, np.uint8))
    empty = _dataset(tmp_path / "empty", "focus", FOCUS_HEADER)
    with pytest.raises(OSError, match="empty/labels.csv: no crops"):
        _train("models.focusnet.train", good, tmp_path / "out", option, str(empty))
    assert not (tmp_path / "out").exists()
