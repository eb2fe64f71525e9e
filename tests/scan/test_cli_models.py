"""``tppscan scan`` loads its models before any device opens, and a bad one is a bad input (exit 2), not a fault.

A truncated or wrong-shaped model passed ``scan --check``; the scan loaded it only once the devices were open (a
board homed on start) and said "the committed fields are kept: run the same command again to resume", though
nothing had been scanned and a rerun failed the same way (session 50).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pytest
import yaml

from appliance.cli import main
from tests.config.test_model_check import FOCUSNET, KINDS, bad_model, write_config


def _no_devices(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record (and refuse) any device the scan would open."""
    import appliance.service.devices as devices

    opened: list[str] = []

    def refuse(cfg):  # noqa: ANN001, ANN202
        opened.append("devices")
        raise AssertionError("the devices were opened")

    monkeypatch.setattr(devices, "open_devices", refuse)
    return opened


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("check", [True, False])
def test_a_bad_model_is_refused_before_any_device_opens(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch, kind: str,
                                                        check: bool) -> None:
    opened = _no_devices(monkeypatch)
    key, path = bad_model(tmp_path, kind)
    out = tmp_path / "scan"
    rc = main(["scan", "--config", str(write_config(tmp_path, key, path)), "--out", str(out),
               *(["--check"] if check else [])])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert key in err and str(path.parent) in err and "resume" not in err, err
    assert not opened and not out.exists() and not (tmp_path / "tppscan.db").exists()


def test_a_model_the_scan_does_not_run_is_not_loaded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key, path = bad_model(tmp_path, "focusnet_shape")
    cfg = str(write_config(tmp_path, key, path))  # the config's plan: neural
    out = str(tmp_path / "scan")
    assert main(["scan", "--check", "--config", cfg, "--out", out, "--focus", "sim-truth"]) == 0, \
        capsys.readouterr().err
    classical = tmp_path / "classical.yaml"
    classical.write_text(yaml.safe_dump({"focus": {"strategy": "classical"}}))
    assert main(["scan", "--check", "--config", cfg, "--plan", str(classical), "--out", out]) == 0, \
        capsys.readouterr().err
    key, path = bad_model(tmp_path, "classifier_shape")
    cfg = str(write_config(tmp_path, key, path))
    assert main(["scan", "--check", "--config", cfg, "--out", out, "--vision", "sim-truth"]) == 0, \
        capsys.readouterr().err


def test_a_neural_plan_checks_the_shipped_focus_net_without_a_config(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import appliance.vision.focusnet as focusnet

    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({"focus": {"strategy": "neural"}}))
    monkeypatch.setattr(focusnet, "DEFAULT_MODEL", tmp_path / "gone.tflite")
    assert main(["scan", "--check", "--plan", str(plan), "--out", str(tmp_path / "scan")]) == 2
    assert "gone.tflite: model file not found" in capsys.readouterr().err


def test_the_configured_focus_net_is_the_one_the_neural_focuser_runs(tmp_path: Path) -> None:
    from appliance.config.schema import Config
    from appliance.scan.cli import _models_of, _vision_focus
    from appliance.scan.plan import FocusPlan, ScanPlan
    from appliance.sim.microscope import VirtualMicroscope

    mine = tmp_path / "mine.tflite"
    shutil.copy(FOCUSNET, mine)
    cfg = Config.model_validate({"models": {"focusnet": str(mine)}})
    args = argparse.Namespace(vision="sim-truth", focus="auto", config=tmp_path / "c.yaml", stage="sim",
                              strategy="neural", reference_heights={}, reference_sigma=None,
                              map_trust=0.9)
    models = _models_of(args, cfg, ScanPlan(focus=FocusPlan(strategy="neural")))
    assert models.focus_net.model.path == mine and models.detector is None
    scope = VirtualMicroscope(5)
    _, focuser, _, _ = _vision_focus(args, scope, scope.stage, scope.camera.um_per_px, cfg, models)
    assert focuser.estimator.net is models.focus_net


def test_a_model_error_met_later_gives_no_resume_advice(capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import appliance.scan.cli as cli
    from appliance.vision.litert import ModelFileError

    def fail(args):  # noqa: ANN001, ANN202
        raise ModelFileError("/m/classifier.tflite: LiteRT cannot load it")

    monkeypatch.setattr(cli, "_scan", fail)
    assert main(["scan", "--out", "x"]) == 2
    err = capsys.readouterr().err
    assert "classifier.tflite" in err and "resume" not in err, err
