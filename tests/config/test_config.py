"""The YAML config: defaults round-trip, and every bad value exits 2 with one line naming its key path."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from appliance.cli import main
from appliance.config.schema import Config, ConfigError, default_yaml, load_config, parse_config

# (yaml text, the key path the one error line must name, a fragment of what is allowed)
BAD = [
    ("camera: {width: 70000}", "camera.width", "at most 8192"),
    ("camera: {width: 12.5}", "camera.width", "integer"),
    ("camera: {kind: usb}", "camera.kind", "'opencv'"),
    ("camera: {kind: files}", "camera.folder", "required"),
    ("camera: {exposure_ms: .inf}", "camera.exposure_ms", "at most"),
    ("camera: {fps: .nan}", "camera.fps", ""),
    ("camera: {timeout_s: 0}", "camera.timeout_s", "above 0"),
    ("camra: {}", "camra", "unknown key"),
    ("camera: {widht: 640}", "camera.widht", "unknown key"),
    ("stage: {kind: marlin}", "stage.kind", "'grbl'"),
    ("stage: {usb_id: 2341-0043}", "stage.usb_id", "VID:PID"),
    ("stage: {baud: 12345}", "stage.baud", "115200"),
    ("stage: {um_per_degree: -1}", "stage.um_per_degree", "above 0"),
    ("sim: {seed: -3}", "sim.seed", "at least 0"),
    ("optics: {na: 2.0}", "optics.na", "at most 1.6"),
    ("scan: {order: zigzag}", "scan.order", "unknown key"),
    ("scan: {plan: 5}", "scan.plan", "string"),
    ("live: {enabled: maybe}", "live.enabled", "bool"),
    ("models: {detector_backend: tensorrt}", "models.detector_backend", "'jetson'"),
    ("models: {detector_threshold: 1.5}", "models.detector_threshold", "below 1"),
    ("models: {threads: 0}", "models.threads", "at least 1"),
    ("triggers: {gpio: {line: -1}}", "triggers.gpio.line", "at least 0"),
    ("triggers: {gpio: {long_press_s: 0}}", "triggers.gpio.long_press_s", "above 0"),
    ("triggers: {serial: {baud: 300}}", "triggers.serial.baud", "9600"),
    ("triggers: {socket: {mode: 01777}}", "triggers.socket.mode", "at most"),
    ("triggers: {button: {}}", "triggers.button", "unknown key"),
    ("logging: {level: LOUD}", "logging.level", "'INFO'"),
    ("logging: {backups: many}", "logging.backups", "integer"),
    ("- just\n- a list", "top level", "mapping"),
    ("camera: [1, 2]", "camera", ""),
    ("camera: {width: 640\n", "line", "YAML"),
]


@pytest.mark.parametrize(("text", "key", "allowed"), BAD, ids=[b[1] + ":" + b[0][:20] for b in BAD])
def test_bad_value_exits_2_with_one_line_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         text: str, key: str, allowed: str) -> None:
    f = tmp_path / "config.yaml"
    f.write_text(text)
    assert main(["config", "check", "--config", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"{f}: " in err and key in err and allowed in err


def test_defaults_round_trip_through_the_commented_yaml() -> None:
    assert parse_config(yaml.safe_load(default_yaml())) == Config()


def test_a_valid_file_is_read_into_typed_sections(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("camera: {kind: opencv, device: /dev/video2, width: 1280, height: 720}\nstage: {kind: grbl}\n")
    cfg = load_config(f)
    assert (cfg.camera.kind, cfg.camera.width, cfg.stage.kind) == ("opencv", 1280, "grbl")
    with pytest.raises(ValidationError):  # frozen: parts cannot change the config they were given
        cfg.camera.width = 5  # type: ignore[misc]


@pytest.mark.parametrize("name", ["missing.yaml", "."])
def test_file_errors_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    assert main(["config", "check", "--config", str(tmp_path / name)]) == 1
    assert capsys.readouterr().err.count("\n") == 1


def test_binary_garbage_is_a_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(f)


def test_show_defaults_from_a_real_process() -> None:
    out = subprocess.run([sys.executable, "-m", "appliance.cli", "config", "show", "--defaults"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stderr == ""
    assert parse_config(yaml.safe_load(out.stdout)) == Config()
