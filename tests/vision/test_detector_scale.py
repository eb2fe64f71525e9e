"""Frames coarser or finer than the detector's training, read at its scale when their pixel size is known.

The shipped detector was trained on 640 x 480 frames at 0.3-1.2 µm per pixel, read at its 320 x 240 input: 0.6-2.4
µm per input pixel. At 4x a 640 x 480 frame is 1.4 µm per pixel (2.8 per input pixel), at 5x a 1280 x 960 one
4.5: the 20-40 µm prints are 7-14 input pixels there, and on held-out frames at 1.3-1.6 µm per pixel mAP@0.5 was
0.68 read whole and 0.81 in tiles read at 2 µm per input pixel (0.56 and 0.83 at 5x on 1280 x 960). At 40x the
other way round: 0.14 µm per pixel is 0.28 per input pixel, prints three times the size the detector learnt;
padded with bare glass to 0.8 per input pixel, held-out frames at 0.12-0.18 µm per pixel scored 0.84 against 0.50
(docs/detector.md).
"""

from __future__ import annotations

import json

import pytest

from appliance.cli import main
from appliance.scan.adapters import scan_pipeline
from appliance.vision.pipeline import Pipeline
from models.detector.evaluate import evaluate_detector


@pytest.fixture(scope="module")
def coarse_frames(tmp_path_factory):
    out = tmp_path_factory.mktemp("coarse") / "data"
    assert main(["dataset", "detection", "--seed", "43", "--split", "test", "--count", "24", "--per-slide", "4",
                 "--um-per-px", "1.3", "1.6", "--out", str(out), "--jobs", "2"]) == 0
    return out


def test_coarse_frames_read_at_scale_score_higher(coarse_frames):
    plain = evaluate_detector(coarse_frames)
    at_scale = evaluate_detector(coarse_frames, at_scale=True)
    assert at_scale["at_scale"] and not plain["at_scale"]
    assert at_scale["map50"] >= plain["map50"] + 0.05, (plain, at_scale)


@pytest.fixture(scope="module")
def fine_frames(tmp_path_factory):
    out = tmp_path_factory.mktemp("fine") / "data"
    # a 40x field holds few objects: frames centred on prints (36 prints in 40 frames)
    assert main(["dataset", "detection", "--seed", "44", "--split", "test", "--count", "40", "--per-slide", "4",
                 "--um-per-px", "0.12", "0.18", "--p-on-structure", "0.85", "--out", str(out), "--jobs", "2"]) == 0
    return out


def test_fine_frames_read_at_scale_score_higher(fine_frames):
    plain = evaluate_detector(fine_frames)
    at_scale = evaluate_detector(fine_frames, at_scale=True)
    assert at_scale["map50"] >= plain["map50"] + 0.05, (plain, at_scale)  # 0.44 -> 0.57
    assert at_scale["ap50"]["structure"] >= plain["ap50"]["structure"] + 0.1, (plain, at_scale)  # 0.68 -> 0.86


def test_eval_cli_at_scale(coarse_frames, capsys):
    assert main(["models", "eval", "detector", "--data", str(coarse_frames), "--limit", "2", "--at-scale",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["at_scale"] is True
    assert main(["models", "eval", "classifier", "--data", str(coarse_frames), "--at-scale"]) == 2
    assert "--at-scale applies to the detector only" in capsys.readouterr().err


def test_a_frame_without_a_pixel_size_is_a_clear_error_at_scale(coarse_frames, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(coarse_frames, data)
    coco = json.loads((data / "annotations.coco.json").read_text())
    del coco["images"][0]["um_per_px"]
    (data / "annotations.coco.json").write_text(json.dumps(coco))
    with pytest.raises(OSError, match="um_per_px"):
        evaluate_detector(data, limit=1, at_scale=True)


class _Debris:
    """Names every box debris."""

    def classify_boxes(self, image, boxes):
        from types import SimpleNamespace

        import numpy as np

        n = len(boxes)
        return SimpleNamespace(labels=["debris"] * n, scores=np.ones(n, np.float32),
                               probs=np.ones((n, 1), np.float32), classes=("debris",))


class _Recorder:
    """A detector that records the pixel size it is told."""

    def __init__(self) -> None:
        self.told: list[float | None] = []

    def detect(self, frame, um_per_px=None):
        self.told.append(um_per_px)
        return []


def test_a_scan_tells_the_detector_its_pixel_size_and_a_guess_does_not(sim_frame):
    rec = _Recorder()
    scan_pipeline(1.4, rec, _Debris()).run(sim_frame)
    Pipeline(rec, None, um_per_px=1.4).run(sim_frame)  # a guessed scale (`tppscan detect` without --um-per-px)
    assert rec.told == [1.4, None]
    p = scan_pipeline(1.4, rec, _Debris())
    assert p.skip_empty and p.type_uncovered and p.scale_known  # the CLI's scans and the service's alike


def test_detect_cli_reads_at_scale_only_when_told_the_pixel_size(tmp_path, monkeypatch):
    import cv2
    import numpy as np

    from appliance.vision.detector import Detector

    told: list[float | None] = []
    real = Detector.detect
    monkeypatch.setattr(Detector, "detect", lambda self, frame, um_per_px=None: told.append(um_per_px)
                        or real(self, frame, um_per_px))
    cv2.imwrite(str(tmp_path / "a.png"), np.full((480, 640), 160, np.uint8))
    for argv, expect in (([], None), (["--um-per-px", "1.4"], 1.4)):
        out = tmp_path / f"o{len(told)}"
        assert main(["detect", str(tmp_path / "a.png"), "--out", str(out), "--no-classifier", *argv]) == 0
        assert told[-1] == expect
        assert json.loads((out / "detections.json").read_text())["meta"]["um_per_px"] == expect
