"""``config check`` (and ``tppscan run``'s start) load the model files a scan would run, not only look for them.

A truncated ONNX, a .tflite of the wrong shape or labels that do not match passed the check (session 50): it only
asked whether the file existed, and the scan failed once the devices were open.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from appliance.cli import main
from appliance.config.schema import Config, ConfigError, load_config
from appliance.service.inputs import check_inputs

MODELS = Path(__file__).resolve().parents[2] / "models"
DETECTOR = MODELS / "detector" / "detector.onnx"
CLASSIFIER = MODELS / "classifier" / "classifier.tflite"
FOCUSNET = MODELS / "focusnet" / "focusnet.tflite"


def bad_model(tmp_path: Path, kind: str) -> tuple[str, Path]:
    """A model file a scan cannot load, in its own folder with labels beside it: (config key, the file)."""
    d = tmp_path / kind
    d.mkdir()
    if kind == "truncated_onnx":
        (d / "detector.onnx").write_bytes(DETECTOR.read_bytes()[:5000])
        shutil.copy(DETECTOR.with_name("labels.txt"), d / "labels.txt")
        return "models.detector", d / "detector.onnx"
    if kind == "detector_labels":  # a class short of what the model outputs
        shutil.copy(DETECTOR, d / "detector.onnx")
        (d / "labels.txt").write_text("BACKGROUND\nstructure\n")
        return "models.detector", d / "detector.onnx"
    if kind == "classifier_shape":  # a valid .tflite, but the focus net's outputs
        shutil.copy(FOCUSNET, d / "classifier.tflite")
        shutil.copy(CLASSIFIER.with_name("labels.txt"), d / "labels.txt")
        return "models.classifier", d / "classifier.tflite"
    if kind == "classifier_labels":
        shutil.copy(CLASSIFIER, d / "classifier.tflite")
        (d / "labels.txt").write_text("woodpile\nmicrolens\ndebris\n")
        return "models.classifier", d / "classifier.tflite"
    if kind == "focusnet_shape":  # the classifier where the focus net should be
        shutil.copy(CLASSIFIER, d / "focusnet.tflite")
        return "models.focusnet", d / "focusnet.tflite"
    raise AssertionError(kind)


def write_config(tmp_path: Path, key: str, path: Path, strategy: str = "neural") -> Path:
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({"focus": {"strategy": strategy}}))
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"models": {key.split(".")[1]: str(path)}, "scan": {"plan": str(plan)},
                                   "paths": {d: str(tmp_path / d) for d in ("data_dir", "log_dir", "run_dir")}}))
    return cfg


KINDS = ["truncated_onnx", "detector_labels", "classifier_shape", "classifier_labels", "focusnet_shape"]


@pytest.mark.parametrize("kind", KINDS)
def test_config_check_loads_each_model_and_names_the_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                              kind: str) -> None:
    key, path = bad_model(tmp_path, kind)
    rc = main(["config", "check", "--config", str(write_config(tmp_path, key, path))])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert key in err and str(path.parent) in err, err


def test_the_services_start_refuses_a_bad_model_as_the_check_does(tmp_path: Path) -> None:
    key, path = bad_model(tmp_path, "truncated_onnx")
    cfg = write_config(tmp_path, key, path)
    with pytest.raises(ConfigError, match=f"{cfg}: models.detector: model file {path}"):
        check_inputs(load_config(cfg), str(cfg))


def test_the_focus_net_is_loaded_only_for_the_neural_strategy(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    key, path = bad_model(tmp_path, "focusnet_shape")
    assert main(["config", "check", "--config", str(write_config(tmp_path, key, path, "classical"))]) == 0, \
        capsys.readouterr().err


def test_a_missing_focus_net_file_is_refused_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path, "models.focusnet", tmp_path / "none.tflite", "classical")
    assert main(["config", "check", "--config", str(cfg)]) == 2
    assert "models.focusnet" in (err := capsys.readouterr().err) and "none.tflite: no such file" in err, err


def test_the_focus_net_key_defaults_to_the_shipped_file(tmp_path: Path) -> None:
    from appliance.scan.adapters import configured_focus_net

    assert Config().models.focusnet is None
    assert configured_focus_net(Config().models).model.path == FOCUSNET
    mine = tmp_path / "mine.tflite"
    shutil.copy(FOCUSNET, mine)
    models = Config.model_validate({"models": {"focusnet": str(mine)}}).models
    assert configured_focus_net(models).model.path == mine


def test_the_focus_estimator_runs_the_configured_net(tmp_path: Path) -> None:
    """The seam the service's backend calls: ``focus_estimator(strategy, scale, models=cfg.models)``."""
    from appliance.scan.adapters import focus_estimator

    mine = tmp_path / "mine.tflite"
    shutil.copy(FOCUSNET, mine)
    models = Config.model_validate({"models": {"focusnet": str(mine)}}).models
    assert focus_estimator("neural", 0.56, models=models).net.model.path == mine
    assert focus_estimator("neural", 0.56).net.model.path == FOCUSNET
    assert focus_estimator("classical", 0.56, models=models) is None
    bad = Config.model_validate({"models": {"focusnet": str(tmp_path / "none.tflite")}}).models
    with pytest.raises(ValueError, match=r"focus.strategy neural: models.focusnet: .*none\.tflite"):
        focus_estimator("neural", 0.56, models=bad)
