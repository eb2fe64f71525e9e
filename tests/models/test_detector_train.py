"""``tppscan train detector --quick`` end to end: render, train, export, check, evaluate, detect."""

from __future__ import annotations

import csv
import json
import resource
import subprocess
import sys

import numpy as np
import pytest

from appliance.cli import main

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("quick")
    data = root / "data"
    assert main(["dataset", "detection", "--seed", "5", "--count", "6", "--out", str(data), "--per-slide", "3",
                 "--split", "val"]) == 0
    # CPU seconds, not wall-clock: on the shared development machine the wall clock ran 3-8x the CPU time.
    # A child process: PyTorch's lazy import of triton crashes in a process that has TensorFlow loaded (the
    # classifier tests run first in the same pytest process).
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-m", "appliance.cli", "train", "detector", "--quick", "--data", str(data),
                           "--val", str(data), "--out", str(root / "model")], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return data, root / "model", cpu


def test_quick_training_writes_a_detectnet_model_in_30_cpu_s(quick_run):
    import onnx

    from models.detector.export import check_exported

    _, model, seconds = quick_run
    assert seconds <= 30.0
    onnx.checker.check_model(str(model / "detector.onnx"), full_check=True)
    assert check_exported(model / "detector.onnx") == []  # only TensorRT-parser operators
    m = onnx.load(str(model / "detector.onnx"))
    dims = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in [*m.graph.input, *m.graph.output]}
    assert dims["input_0"] == [1, 3, 240, 320]
    assert dims["scores"] == [1, 60 * 80, 3] and dims["boxes"] == [1, 60 * 80, 4]
    assert not list(model.glob("*.data"))  # single file
    assert (model / "labels.txt").read_text().split() == ["BACKGROUND", "structure", "debris"]
    log = json.loads((model / "train_log.json").read_text())
    assert log["steps_done"] == log["steps_planned"] and 0.0 <= log["val"]["map50"] <= 1.0


def test_eval_cli_prints_one_json_object(quick_run, capsys):
    data, model, _ = quick_run
    assert main(["models", "eval", "detector", "--data", str(data), "--model", str(model / "detector.onnx"),
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 6 and 0.0 <= out["map50"] <= 1.0 and set(out["ap50"]) == {"structure", "debris"}


def test_eval_cli_rejects_the_wrong_dataset_kind(quick_run, tmp_path, capsys):
    data, _, _ = quick_run
    assert main(["models", "eval", "classifier", "--data", str(data)]) == 2
    assert "'detection' dataset" in capsys.readouterr().err
    assert main(["models", "eval", "detector", "--data", str(tmp_path)]) == 1
    assert "meta.json" in capsys.readouterr().err


def test_detect_cli_writes_csv_json_and_pngs(quick_run, tmp_path, capsys):
    import cv2

    _, model, _ = quick_run
    frame = np.full((300, 400, 3), 160, np.uint8)
    cv2.circle(frame, (200, 150), 30, (60, 60, 60), -1)
    cv2.imwrite(str(tmp_path / "a.jpg"), frame)
    cv2.imwrite(str(tmp_path / "b.tif"), frame[:, :, 0].astype(np.uint16) * 256)
    out = tmp_path / "out"
    assert main(["detect", str(tmp_path), "--out", str(out), "--model", str(model / "detector.onnx"),
                 "--no-classifier", "--threshold", "0.01"]) == 0
    with open(out / "detections.csv") as fh:
        header, *rows = list(csv.reader(fh))
    assert header == ["filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax", "score",
                      "type", "type_score", "object", "verdict", "agree"]
    # without a classifier the detector's call is each object's verdict (on its strongest box), and nothing
    # disputes it
    leads = [r for r in rows if r[header.index("verdict")]]
    assert all(r[header.index("verdict")] == r[header.index("class")] and r[-1] == "yes" for r in leads)
    assert len(leads) == len({(r[0], r[header.index("object")]) for r in rows})
    doc = json.loads((out / "detections.json").read_text())
    assert [im["filename"] for im in doc["images"]] == ["a.jpg", "b.tif"]
    assert sum(len(im["detections"]) for im in doc["images"]) == len(rows)
    assert (out / "a.detections.png").is_file() and (out / "b.detections.png").is_file()


@pytest.mark.parametrize("argv, code, needle", [
    (["--threshold", "2"], 2, "--threshold must be a number in (0, 1]"),
    (["--backend", "cuda"], 2, "--backend must be one of"),
    (["--model", "/nonexistent/detector.onnx"], 1, "/nonexistent/detector.onnx: not found"),
])
def test_detect_cli_bad_values(argv, code, needle, tmp_path, capsys):
    import cv2

    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((50, 50), np.uint8))
    assert main(["detect", str(tmp_path / "a.png"), "--out", str(tmp_path / "o"), "--no-classifier", *argv]) == code
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_train_cli_bad_value(tmp_path, capsys):
    assert main(["train", "detector", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--steps", "0"]) == 2
    assert "--steps must be an integer in [1, 1000000], got 0" in capsys.readouterr().err


@pytest.mark.parametrize("again", ["{d}", "{d}/", "{d}/../data", "{link}"])
def test_train_cli_refuses_a_data_folder_given_twice(again, tmp_path, capsys):
    """Several --data folders are concatenated: one given twice (however spelled) would count its frames twice."""
    d = tmp_path / "data"
    d.mkdir()
    (tmp_path / "link").symlink_to(d)
    second = again.format(d=d, link=tmp_path / "link")
    assert main(["train", "detector", "--data", str(d), second, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"--data: the folder {d} is given twice" in err and "give each dataset folder once" in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


@pytest.mark.parametrize("size, needle", [("320x241", "multiples of 16"), ("wide", "is not WxH"),
                                          ("2048x240", "multiples of 16 in [64, 1024]")])
def test_train_cli_bad_input_size(size, needle, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "detector", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--input-size", size])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--input-size" in err and needle in err and "Traceback" not in err


@pytest.mark.parametrize("model", ["classifier", "focus"])
def test_train_without_out_is_refused_not_written_over_the_shipped_model(model, tmp_path, capsys):
    from appliance.cli import build_parser

    with pytest.raises(SystemExit) as exc:  # parsing only: the old default would train into models/<model>/
        build_parser().parse_args(["train", model, "--data", str(tmp_path), "--quick"])
    assert exc.value.code == 2 and "--out" in capsys.readouterr().err


def test_quick_fine_tuning_of_the_shipped_onnx_detector(quick_run, tmp_path):
    """``--init models/detector/detector.onnx``: read back, re-estimated on the data, trained, exported."""
    import onnx

    from appliance.vision.detector import default_model_path

    data, _, _ = quick_run
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-m", "appliance.cli", "train", "detector", "--quick", "--data", str(data),
                           "--init", str(default_model_path()), "--out", str(tmp_path / "m")], capture_output=True,
                          text=True, timeout=600)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime) <= 30.0
    onnx.checker.check_model(str(tmp_path / "m" / "detector.onnx"), full_check=True)
    log = json.loads((tmp_path / "m" / "train_log.json").read_text())
    assert log["init"] == str(default_model_path()) and log["steps_done"] == log["steps_planned"]
    # the run's own ONNX is an --init too (what a second round of fine-tuning starts from)
    from models.detector.net import DetectorNet
    from models.detector.onnx_init import load_onnx_init

    assert len(load_onnx_init(DetectorNet(width=16), tmp_path / "m" / "detector.onnx", (240, 320))) == 15
