"""Damaged detection datasets and ``train detector`` inputs: one clear error naming the file, before any work.

Every COCO file here is written by hand; the checks run before a frame is read or a model is loaded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
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


def _dataset(root: Path, coco: dict[str, Any], frame_wh: tuple[int, int] = (64, 48)) -> Path:
    """A dataset folder with ``coco`` and ``images/a.png`` (``frame_wh`` pixels: the COCO's own size by default)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "meta.json").write_text(json.dumps({"kind": "detection", "split": "val"}))
    (root / "annotations.coco.json").write_text(json.dumps(coco))
    (root / "images").mkdir(exist_ok=True)
    cv2.imwrite(str(root / "images" / "a.png"), np.full((frame_wh[1], frame_wh[0]), 128, np.uint8))
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


def test_train_detector_init_with_the_shipped_onnx_is_read_then_the_data_checked(tmp_path: Path, capsys):
    """The shipped ONNX is an --init now (tests/models/test_detector_onnx_init.py); the empty --data is what fails."""
    pytest.importorskip("torch")
    from appliance.vision.detector import default_model_path

    assert main(["train", "detector", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--init",
                 str(default_model_path()), "--quick"]) == 1
    err = capsys.readouterr().err
    assert "--init" not in err and str(tmp_path) in err
    assert "UnpicklingError" not in err and "Traceback" not in err


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


# -- a frame whose file is not the size its COCO entry gives (session 48) --------------------------------

def test_models_eval_detector_refuses_a_frame_of_another_size(tmp_path: Path, capsys):
    data = _dataset(tmp_path / "d", _coco(), frame_wh=(80, 60))
    assert main(["models", "eval", "detector", "--data", str(data)]) == 1
    err = capsys.readouterr().err
    assert (f"{data / 'images' / 'a.png'}: 80 x 60 pixels, but {data / 'annotations.coco.json'} gives 64 x 48 "
            "(images[0])") in err and "Traceback" not in err


def test_train_detector_refuses_a_frame_of_another_size_before_training(tmp_path: Path, capsys):
    pytest.importorskip("torch")
    good = _dataset(tmp_path / "good", _coco())
    val = _dataset(tmp_path / "val", _coco(), frame_wh=(64, 49))
    for argv, bad in ((["--data", str(val)], val), (["--data", str(good), "--val", str(val)], val)):
        assert main(["train", "detector", *argv, "--out", str(tmp_path / "o"), "--quick"]) == 1
        err = capsys.readouterr().err
        assert f"{bad / 'images' / 'a.png'}: 64 x 49 pixels, but" in err and "gives 64 x 48" in err, err
        assert not (tmp_path / "o").exists()


def test_frame_sizes_are_read_from_the_headers_only(tmp_path: Path, monkeypatch):
    """Thousands of frames: the check opens each file's header and never decodes its pixels."""
    from PIL import Image

    from models.data.detection import load_coco

    data = _dataset(tmp_path / "d", _coco())
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("decoded a frame's pixels"))
    assert load_coco(data)["images"][0]["width"] == 64


@pytest.mark.parametrize("make, needle", [
    (lambda p: None, "missing or not a regular file"),
    (lambda p: os.mkfifo(p), "missing or not a regular file"),   # opening it would block
    (lambda p: p.write_text("not a png"), "not an image"),
])
def test_a_frame_that_is_not_an_image_file_is_named(make, needle, tmp_path: Path):
    from models.data.detection import load_coco

    data = _dataset(tmp_path / "d", _coco())
    frame = data / "images" / "a.png"
    frame.unlink()
    make(frame)
    with pytest.raises(OSError, match=rf"{frame}: {needle}"):
        load_coco(data)


def _export(root: Path, categories: list[dict[str, Any]], category_ids: list[int]) -> Path:
    """A folder as ``tppscan results export`` writes it: ``export_coco.json`` and ``frames/``, no ``meta.json``."""
    (root / "frames").mkdir(parents=True)
    cv2.imwrite(str(root / "frames" / "a.png"), np.full((48, 64), 128, np.uint8))
    anns = [{"id": k + 1, "image_id": 1, "category_id": c, "bbox": [2 + k, 3, 10, 12], "area": 120, "iscrowd": 0,
             "segmentation": []} for k, c in enumerate(category_ids)]
    coco = {"info": {"description": "tppscan scan 1"}, "licenses": [],
            "images": [{"id": 1, "file_name": "frames/a.png", "width": 64, "height": 48, "um_per_px": 0.56}],
            "annotations": anns, "categories": categories}
    (root / "export_coco.json").write_text(json.dumps(coco))
    return root


SCAN_CATEGORIES = [{"id": 1, "name": "woodpile", "supercategory": "structure"},
                   {"id": 2, "name": "debris", "supercategory": "debris"},
                   {"id": 3, "name": "pentagon", "supercategory": "structure"}]


def test_a_scan_export_reads_as_a_detection_dataset(tmp_path: Path):
    from models.data.cli import read_meta
    from models.data.detection import load_coco

    data = _export(tmp_path / "exp", SCAN_CATEGORIES, [1, 2, 3])
    coco = load_coco(data)
    assert coco["categories"] == [{"id": 1, "name": "structure"}, {"id": 2, "name": "debris"}]
    assert [(a["category_id"], a["type"]) for a in coco["annotations"]] == [(1, "woodpile"), (2, "debris"),
                                                                            (1, "pentagon")]
    assert read_meta(data)["kind"] == "detection"


def test_a_scan_export_with_an_unknown_supercategory_is_named(tmp_path: Path, capsys):
    cats = [{"id": 1, "name": "woodpile", "supercategory": "thing"}]
    data = _export(tmp_path / "exp", cats, [1])
    assert main(["models", "eval", "detector", "--data", str(data)]) == 1
    err = capsys.readouterr().err
    assert f"{data / 'export_coco.json'}: category 'woodpile' has supercategory 'thing'" in err
    assert "Traceback" not in err


def test_models_eval_detector_on_a_scan_export_at_scale(tmp_path: Path, capsys):
    pytest.importorskip("pycocotools")
    data = _export(tmp_path / "exp", SCAN_CATEGORIES, [1, 2, 3])
    assert main(["models", "eval", "detector", "--data", str(data), "--at-scale", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["objects"] == {"structure": 2, "debris": 1} and out["n"] == 1 and out["split"] == "scan"


def test_train_detector_on_a_scan_export(tmp_path: Path, capsys):
    pytest.importorskip("torch")
    data = _export(tmp_path / "exp", SCAN_CATEGORIES, [1, 2, 3])
    out = tmp_path / "out"
    assert main(["train", "detector", "--data", str(data), "--val", str(data), "--out", str(out), "--quick",
                 "--input-size", "64x64"]) == 0
    assert (out / "detector.onnx").is_file()


def test_train_detector_on_a_classifier_dataset_says_what_it_is(tmp_path: Path, capsys):
    data = tmp_path / "crops"
    data.mkdir()
    (data / "meta.json").write_text(json.dumps({"kind": "classifier", "split": "train"}))
    assert main(["train", "detector", "--data", str(data), "--out", str(tmp_path / "o"), "--quick"]) == 1
    err = capsys.readouterr().err
    assert f"{data}: a 'classifier' dataset; expected one made by `tppscan dataset detection`" in err


def test_an_old_scan_export_without_pixel_size_at_scale_says_to_export_again(tmp_path: Path, capsys):
    data = _export(tmp_path / "exp", SCAN_CATEGORIES, [1])
    coco = json.loads((data / "export_coco.json").read_text())
    del coco["images"][0]["um_per_px"]
    (data / "export_coco.json").write_text(json.dumps(coco))
    assert main(["models", "eval", "detector", "--data", str(data), "--at-scale"]) == 1
    err = capsys.readouterr().err
    assert "has no pixel size 'um_per_px'" in err and "`tppscan results export SCAN_DIR` run again" in err


def test_models_eval_on_a_training_split_says_the_figures_are_not_held_out(tmp_path: Path, capsys):
    pytest.importorskip("pycocotools")
    data = _dataset(tmp_path / "d", _coco())
    (data / "meta.json").write_text(json.dumps({"kind": "detection", "split": "train"}))
    assert main(["models", "eval", "detector", "--data", str(data), "--json"]) == 0
    out = capsys.readouterr()
    assert "is a training split; its figures are not held-out" in out.err
    assert json.loads(out.out)["split"] == "train"  # stdout stays one JSON object
