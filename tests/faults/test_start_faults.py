"""Bad config and bad model files at start (issue 12, "Models and config"): ``tppscan run --config FILE``
must exit with ONE line naming the problem (1: a file that cannot be read, 2: a bad value) before it
connects anything or starts the service; never a traceback, never a hang, never a failure mid-scan.

The model checks: the service's scan backend loads the configured model files before it touches a trigger or a
device; the loaders in ``appliance.vision`` name the file and what was expected.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from appliance.cli import main

ROOT = Path(__file__).resolve().parents[2]

# (config text, exit code, fragment the one line must contain)
BAD_CONFIGS = [
    (None, 1, "no such config file"),
    ("stage: {kind: marlin}\n", 2, "stage.kind"),
    ("camera: {width: 70000}\n", 2, "camera.width"),
    ("models: {threads: 0}\n", 2, "models.threads"),
    ("stage: [1, 2\n", 2, "not valid YAML"),
    ("- just\n- a list\n", 2, "mapping"),
    (b"camera: {kind: \xff\xfe}\n", 2, "UTF-8"),
    ("scan: {area_um: [0, 0, .nan, 10]}\n", 2, "scan.area_um"),
]


@pytest.fixture
def no_service(monkeypatch):
    """Make starting the service (which connects the devices) a test failure."""
    import appliance.service.app as app

    def refuse(cfg):
        raise AssertionError("the service started (it would connect the devices) despite a bad config")
    monkeypatch.setattr(app, "run_service", refuse)


@pytest.mark.parametrize(("text", "code", "needle"), BAD_CONFIGS)
def test_bad_config_is_one_line_before_anything_connects(tmp_path, capsys, no_service, text, code, needle):
    path = tmp_path / "config.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    assert main(["run", "--config", str(path)]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err


def test_a_stage_port_that_does_not_exist_is_one_line_at_scan_start(tmp_path, capsys):
    code = main(["scan", "--stage", "grbl", "--port", str(tmp_path / "ttyACM9"), "--out", str(tmp_path / "scan"),
                 "--vision", "sim-truth", "--focus", "sim-truth", "--progress", "none"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert "stage: StageConnectionError: cannot open stage port" in err[0] and "ttyACM9" in err[0]


def test_a_stage_port_another_scan_holds_is_one_line_at_scan_start(tmp_path, capsys):
    from appliance.hardware.stage.grbl import GrblStage, GrblStageConfig
    from tests.stage.fake_grbl import FakeGrbl

    board = FakeGrbl(tmp_path).start()
    try:
        with GrblStage(GrblStageConfig(port=board.path, reply_timeout_s=1.0, handshake_timeout_s=2.0)) as first:
            code = main(["scan", "--stage", "grbl", "--port", board.path, "--out", str(tmp_path / "scan"),
                         "--vision", "sim-truth", "--focus", "sim-truth", "--progress", "none"])
            assert first.position_um() is not None  # the scan that holds the port is not disturbed
    finally:
        board.stop()
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert "StagePortBusy: stage port" in err[0] and "is in use by another program" in err[0]
    assert board.received.count("$I") == 1  # the second scan never spoke on the line


def test_config_directory_and_unreadable_file_exit_1(tmp_path, capsys, no_service):
    assert main(["run", "--config", str(tmp_path)]) == 1
    assert "is a directory" in capsys.readouterr().err


# -- model files --------------------------------------------------------------------------------------

def _tiny_onnx(path: Path, shape: list[int]) -> None:
    """An ONNX graph (identity) whose input has the given shape: a model of the wrong shape for the detector."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "wrong_shape", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


def _run_with_detector(tmp_path: Path, detector: Path) -> subprocess.CompletedProcess[str]:
    """``tppscan run`` with the given detector file; devices that do not exist, so a connect would retry."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"stage: {{kind: grbl, port: {tmp_path / 'no-such-tty'}, connect_retry_s: 0.5}}\n"
                   f"models: {{detector: {detector}}}\n"
                   f"paths: {{data_dir: {tmp_path / 'data'}, log_dir: {tmp_path / 'log'}, "
                   f"run_dir: {tmp_path / 'run'}}}\n"
                   f"triggers: {{socket: {{path: {tmp_path / 'control.sock'}, group: ''}}}}\n"
                   "logging: {file: false}\n")
    try:
        return subprocess.run([sys.executable, "-m", "appliance.cli", "run", "--config", str(cfg)], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("tppscan run kept running with a bad model file (it went on to connect the devices)")


def _bad_detector(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / "detector.onnx"
    if kind == "corrupt":
        path.write_bytes(b"\x08\x07garbage, not a protobuf\xff" * 10)
    elif kind == "wrong-shape":
        _tiny_onnx(path, [1, 7])
    return path   # "missing": never written


@pytest.mark.parametrize("kind", ["missing", "corrupt", "wrong-shape"])
def test_bad_model_file_is_one_line_at_start(tmp_path, kind):
    detector = _bad_detector(tmp_path, kind)
    done = _run_with_detector(tmp_path, detector)
    lines = done.stderr.strip().splitlines()
    assert done.returncode in (1, 2), done.stderr[-2000:]
    assert len(lines) == 1 and str(detector) in lines[0], done.stderr[-2000:]
    assert "Traceback" not in done.stderr


def test_a_trigger_that_cannot_start_is_one_line(tmp_path):
    """The control socket's path is a folder: a ControlError traceback once, one line now (exit 1)."""
    (tmp_path / "adir").mkdir()
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"paths: {{data_dir: {tmp_path / 'data'}, log_dir: {tmp_path / 'log'}, "
                   f"run_dir: {tmp_path / 'run'}}}\n"
                   f"triggers: {{socket: {{path: {tmp_path / 'adir'}, group: ''}}}}\n"
                   "live: {enabled: false}\nlogging: {file: false}\n")
    try:
        res = subprocess.run([sys.executable, "-m", "appliance.cli", "run", "--config", str(cfg)], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("tppscan run kept running with a control socket it cannot serve")
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr and "exists and is not a socket" in res.stderr, res.stderr
