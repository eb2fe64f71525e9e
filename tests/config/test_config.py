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
    ("triggers: {socket: {mode: 660}}", "triggers.socket.mode", "write the mode in octal, as 0660"),
    ("stage: {baud: '12345'}", "stage.baud", "115200"),
    ("triggers: {button: {}}", "triggers.button", "unknown key"),
    ("logging: {level: LOUD}", "logging.level", "'INFO'"),
    ("logging: {backups: many}", "logging.backups", "integer"),
    ("- just\n- a list", "top level", "mapping"),
    ("camera: [1, 2]", "camera", ""),
    ("camera: {width: 640\n", "line", "YAML"),
    # sim.set gets --sim-set's checks at load, named by the config key (run retried them every 5 s, forever)
    ("sim: {set: {foo: 1}}", "sim.set.foo:", "SECTION.KEY"),
    ("sim: {set: {lens.x: 1}}", "sim.set.lens.x:", "section must be one of"),
    ("sim: {set: {slide.wobble: 1}}", "sim.set.slide.wobble:", "unknown parameter"),
    ("sim: {set: {slide.debris_per_mm2: abc}}", "sim.set.slide.debris_per_mm2 ", "must be a number"),
    ("sim: {set: {slide.debris_per_mm2: .nan}}", "sim.set.slide.debris_per_mm2 ", "must be a number"),
    ("sim: {set: {camera.preset: pinhole}}", "sim.set.camera.preset:", "cheap_colour"),
    ("camera: {kind: files, folder: /srv/frames}", "camera.kind 'files' with stage.kind 'sim'", "real stage"),
    ("camera: {width: 640}\ncamera: {width: 320}", "line 2", "duplicate key 'camera' (first given on line 1)"),
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


def test_sim_set_messages_name_the_config_key_not_the_option(tmp_path: Path) -> None:
    f = tmp_path / "config.yaml"
    f.write_text("sim: {set: {slide.debris_per_mm2: -4}}")
    with pytest.raises(ConfigError) as err:
        load_config(f)
    assert "sim.set.slide.debris_per_mm2 must be" in str(err.value) and "--sim-set" not in str(err.value)
    f.write_text("sim: {set: {slide.debris_per_mm2: 4e1, camera.preset: cheap_colour, stage.z_mode: stepper}}")
    assert load_config(f).sim.set["slide.debris_per_mm2"] == 40.0


def test_exponent_numbers_are_numbers(tmp_path: Path) -> None:
    f = tmp_path / "config.yaml"
    f.write_text("camera: {exposure_ms: 1e1}\nlogging: {max_bytes: 1e7}")
    cfg = load_config(f)
    assert cfg.camera.exposure_ms == 10.0 and cfg.logging.max_bytes == 10_000_000


def _check(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> tuple[int, str]:
    f = tmp_path / "config.yaml"
    f.write_text(text)
    rc = main(["config", "check", "--config", str(f)])
    return rc, capsys.readouterr().err


@pytest.mark.parametrize(("text", "words"), [
    ("scan: {plan: PLACE/none.yaml}", ["scan.plan", "none.yaml: no such file"]),
    ("scan: {plan: PLACE/bad_plan.yaml}", ["scan.plan", "grid.mode", "zigzag"]),
    ("scan: {plan: PLACE}", ["scan.plan", "is a directory"]),
    ("models: {detector: PLACE/none.onnx}", ["models.detector", "none.onnx: no such file"]),
    ("models: {classifier: PLACE}", ["models.classifier", "is a directory"]),
    ("calibration: {file: PLACE/none.yaml}", ["calibration.file", "no such file", "tppscan calibrate --out",
                                              "calibration.file: null"]),
    ("calibration: {file: PLACE/calibration.json}", ["calibration.file", "no such file",
                                                     "'tppscan calibrate --out PLACE/calibration.yaml'",
                                                     "set calibration.file: PLACE/calibration.yaml"]),
    ("calibration: {file: PLACE}", ["calibration.file", "is a directory"]),
    ("calibration: {file: PLACE/bad_cal.yaml}", ["calibration.file", "invertible"]),
    ("calibration: {file: PLACE/bytes.yaml}", ["calibration.file", "not UTF-8"]),
    ("calibration: {file: PLACE/big_cal.yaml}", ["calibration.file", "1280 x 960 px", "640 x 480"]),
    ("paths: {data_dir: PLACE/bytes.yaml}", ["paths.data_dir", "is a file, not a folder"]),
    ("paths: {log_dir: PLACE/bytes.yaml/logs}", ["paths.log_dir", "is a file, not a folder"]),
    ("paths: {data_dir: data}", ["paths.data_dir", "must be an absolute path"]),
])
def test_check_refuses_the_files_the_service_could_not_use(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           text: str, words: list[str]) -> None:
    """A missing or bad plan, model file or calibration passed the check, and ``run`` refused it (or, for the
    calibration, never read it)."""
    (tmp_path / "bad_plan.yaml").write_text("grid: {mode: zigzag}")
    (tmp_path / "bad_cal.yaml").write_text("matrix: [[1, 1], [1, 1]]\nsize_px: [640, 480]")
    (tmp_path / "bytes.yaml").write_bytes(bytes(range(128, 256)))
    (tmp_path / "big_cal.yaml").write_text("matrix: [[1, 0], [0, 1]]\nsize_px: [1280, 960]")  # camera: 640 x 480
    rc, err = _check(tmp_path, capsys, text.replace("PLACE", str(tmp_path)))
    assert rc == 2 and err.count("\n") == 1, err
    assert all(w.replace("PLACE", str(tmp_path)) in err for w in words), err
    assert "--out" not in err or ".json" not in err.split("--out")[1].split()[0], err  # calibrate refuses .json


def test_check_passes_a_good_plan_and_calibration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from appliance.scan.calibration import Calibration

    Calibration.nominal(0.5, (640, 480)).save(tmp_path / "cal.yaml")
    (tmp_path / "plan.yaml").write_text("grid: {top: 0, left: 0, bottom: 1e3, right: 1e3}")
    rc, err = _check(tmp_path, capsys, f"scan: {{plan: {tmp_path}/plan.yaml}}\n"
                                       f"calibration: {{file: {tmp_path}/cal.yaml}}")
    assert rc == 0, err
    assert Config().calibration.file is None  # unset: each scan calibrates at its start


def test_the_services_default_virtual_slide_is_the_scan_commands() -> None:
    """The config's ``sim.seed`` default was 1 and ``tppscan scan --sim``'s ``--seed`` 0: two default slides."""
    from appliance.scan.cli import DEFAULT_SEED

    assert Config().sim.seed == DEFAULT_SEED == 0


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


def test_the_plan_key_points_to_where_plans_are_described() -> None:
    """``scan.plan``'s comment said 'tppscan scan --help shows the format'; it does not, docs/scan.md does."""
    text = default_yaml()
    assert "scan --help" not in text and "docs/scan.md, section Plans" in text
    assert "## Plans" in (Path(__file__).parents[2] / "docs" / "scan.md").read_text()


def test_values_written_the_way_people_write_them_are_read_as_meant() -> None:
    # an integrator wrote `device: 0` (the docs say "an index"), a quoted baud and an octal mode as text: each
    # was refused ("must be a valid string, got 0")
    cfg = parse_config(yaml.safe_load(
        "camera: {kind: opencv, device: 0}\nstage: {kind: grbl, port: /dev/ttyACM0, baud: '57600'}\n"
        "triggers: {serial: {baud: '9600'}, socket: {mode: '0640'}}\n"))
    assert (cfg.camera.device, cfg.stage.baud, cfg.triggers.serial.baud) == ("0", 57600, 9600)
    assert cfg.triggers.socket.mode == 0o640

def test_a_real_camera_without_a_plan_area_is_refused_by_config_check_and_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``config check`` said ok and the service started; its first START failed with ``plan grid: give top, left,
    bottom, right`` (``tppscan scan --check`` caught it)."""
    base = (f"camera: {{kind: files, folder: {tmp_path}}}\nstage: {{kind: grbl, port: /dev/null}}\n"
            f"paths: {{data_dir: {tmp_path}/d, log_dir: {tmp_path}/l, run_dir: {tmp_path}/r}}\n")
    rc, err = _check(tmp_path, capsys, base)
    assert rc == 2 and "scan.plan: a real camera (camera.kind files) needs a plan with grid top, left" in err
    assert "the default plan (no scan.plan) has none" in err and err.count("\n") == 1
    assert main(["run", "--config", str(tmp_path / "config.yaml")]) == 2  # refused before it starts
    assert "needs a plan with grid top" in capsys.readouterr().err
    plan = tmp_path / "plan.yaml"
    plan.write_text("name: area\ngrid: {top: -3000, left: -3000, bottom: -1000, right: -1000}\n")
    rc, err = _check(tmp_path, capsys, base + f"scan: {{plan: {plan}}}\n")
    assert rc == 0, err
