"""Damaged detection datasets and ``train detector`` inputs: one clear error naming the file, before any work.

Every COCO file here is written by hand; the checks run before a frame is read or a model is loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from appliance.cli import main


def _coco(**change: Any) -> dict[str, Any]:
    coco: dict[str, Any] = {
        "images": [{"id": 1, "file_name": "images/a.png", "width": 64, "height": 48}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 3, 10, 12], "area": 120,
                         "iscrowd": 0}],
        "categories": [{"id": 1, "name": "structure"}, {"id": 2, "name": "debris"}]}
    coco.update(change)
    return coco


def _ann(**change: Any) -> list[dict[str, Any]]:
    return [{**_coco()["annotations"][0], **change}]


def _dataset(root: Path, coco: dict[str, Any]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "meta.json").write_text(json.dumps({"kind": "detection", "split": "val"}))
    (root / "annotations.coco.json").write_text(json.dumps(coco))
    return root


@pytest.mark.parametrize("coco, needle", [
    (_coco(images=[1, 2]), "'images' must be a list of objects, got [1, 2]"),
    (_coco(images=[]), "'images' is empty"),
    (_coco(images=[{"id": "1", "file_name": "a.png"}]), "images[0] needs an integer 'id'"),
    (_coco(annotations=_ann(bbox="x")), "annotations[0]: 'bbox' must be [x, y, width, height]"),
    (_coco(annotations=_ann(bbox=[1, 1, -5, 4])), "got [1, 1, -5, 4]"),
    (_coco(annotations=_ann(bbox=[float("nan"), 1, 5, 4])), "got [nan, 1, 5, 4]"),
    (_coco(annotations=_ann(category_id=99)), "'category_id' is 99, not one of 1 (structure), 2 (debris)"),
    (_coco(annotations=_ann(image_id=99)), "'image_id' is 99, not the id of an image"),
    (_coco(annotations=_ann(iscrowd=7)), "'iscrowd' must be 0 or 1"),
    (_coco(categories=[{"id": 1, "name": "structure"}]), "'categories' must be"),
    (_coco(annotations=[]), "no annotated objects in the 1 frames evaluated"),
])
def test_models_eval_detector_refuses_a_damaged_coco_file(coco, needle, tmp_path: Path, capsys):
    data = _dataset(tmp_path / "d", coco)
    assert main(["models", "eval", "detector", "--data", str(data)]) == 1
    err = capsys.readouterr().err
    assert f"{data / 'annotations.coco.json'}: " in err and needle in err and "Traceback" not in err


def test_load_coco_fills_the_optional_fields(tmp_path: Path):
    from models.data.detection import load_coco

    ann = {k: v for k, v in _coco()["annotations"][0].items() if k not in ("area", "iscrowd")}
    coco = load_coco(_dataset(tmp_path, _coco(annotations=[ann])))
    assert coco["annotations"][0]["iscrowd"] == 0 and coco["annotations"][0]["area"] == 120


@pytest.mark.parametrize("content", [b"", b"hello\n", bytes(range(256)) * 4])
def test_train_detector_init_that_is_not_weights(content, tmp_path: Path, capsys):
    pytest.importorskip("torch")
    init = tmp_path / "init.pt"
    init.write_bytes(content)
    out = tmp_path / "out"
    assert main(["train", "detector", "--data", str(tmp_path), "--out", str(out), "--init", str(init),
                 "--quick"]) == 1
    err = capsys.readouterr().err
    assert f"--init {init}: not the detector.pt of a width-16 detector" in err and "Traceback" not in err
    assert not out.exists()


def test_train_detector_init_of_another_width(tmp_path: Path, capsys):
    torch = pytest.importorskip("torch")
    from models.detector.net import DetectorNet

    init = tmp_path / "w8.pt"
    torch.save(DetectorNet(width=8).state_dict(), init)
    assert main(["train", "detector", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--init", str(init),
                 "--quick"]) == 1
    err = capsys.readouterr().err
    assert "width-16 detector" in err and "RuntimeError" in err and "Traceback" not in err


def test_train_detector_out_that_is_a_file_is_refused_first(tmp_path: Path, capsys):
    out = tmp_path / "regular.txt"
    out.write_text("x")
    assert main(["train", "detector", "--data", str(tmp_path), "--out", str(out), "--quick"]) == 2
    assert f"--out {out} exists and is not a folder" in capsys.readouterr().err


def test_train_detector_empty_val_set_is_refused_before_training(tmp_path: Path, capsys):
    pytest.importorskip("torch")
    val = _dataset(tmp_path / "val", _coco(images=[], annotations=[]))
    assert main(["train", "detector", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--val", str(val),
                 "--quick"]) == 1
    assert "'images' is empty" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
