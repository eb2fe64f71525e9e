"""The service's parts in one process: control socket, sd_notify, the state machine, the log reader."""

from __future__ import annotations

import grp
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from appliance.hardware.triggers.events import Command, TriggerEvent
from appliance.service.control import ControlError, ControlServer, send_command
from appliance.service.daemon import ScanControl, Service
from appliance.service.logs import log_context, scan_log_file, setup_logging
from appliance.service.notify import Notifier

MY_GROUP = grp.getgrgid(os.getgid()).gr_name


class ScriptedBackend:
    """A test double for the scan side: a scan of ``fields`` steps that honours pause and stop."""

    def __init__(self, fields: int = 50, step_s: float = 0.02, fail_connects: int = 0) -> None:
        self.fields = fields
        self.step_s = step_s
        self.fail_connects = fail_connects
        self.connects = 0
        self.done_fields = 0
        self.closed = False

    def connect(self) -> None:
        self.connects += 1
        if self.connects <= self.fail_connects:
            raise OSError("no stage at /dev/tppscan-stage")

    def warm(self) -> None:
        pass

    def next_scan(self) -> object:
        from types import SimpleNamespace

        return SimpleNamespace(scan_id=1, resumed=self.done_fields > 0, fields_done=self.done_fields,
                               fields_total=self.fields)

    def run_scan(self, control: ScanControl) -> str:
        control.report(scan_id="1", fields_total=self.fields)
        while self.done_fields < self.fields:
            if control.checkpoint():
                return "cancelled"
            time.sleep(self.step_s)
            self.done_fields += 1
            control.report(fields_done=self.done_fields)
        return "completed"

    def close(self) -> None:
        self.closed = True


def _wait(pred, timeout: float = 5.0) -> bool:  # noqa: ANN001
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return False


@pytest.fixture
def running(tmp_path: Path):  # noqa: ANN201
    backend = ScriptedBackend()
    svc = Service(backend, connect_retry_s=0.05, notifier=Notifier({}))
    server = ControlServer(tmp_path / "control.sock", svc.handle, group=MY_GROUP)
    server.start()
    t = threading.Thread(target=svc.run, kwargs={"install_signals": False}, daemon=True)
    t.start()
    assert _wait(lambda: svc.status()["state"] == "idle")
    yield svc, backend, tmp_path / "control.sock"
    svc.request_shutdown()
    t.join(5)
    server.stop()


def test_socket_start_pause_resume_stop(running) -> None:  # noqa: ANN001
    svc, backend, sock = running
    assert oct(os.stat(sock).st_mode & 0o777) == "0o660"
    r = send_command(sock, "start")
    assert r["ok"] and r["status"]["state"] == "scanning"
    assert not send_command(sock, "start")["ok"]  # one scan at a time
    assert send_command(sock, "pause")["status"]["state"] == "paused"
    time.sleep(0.1)
    held = backend.done_fields
    time.sleep(0.2)
    assert backend.done_fields <= held + 1  # at most the field in progress
    assert send_command(sock, "pause")["status"]["state"] == "scanning"
    assert send_command(sock, "stop")["ok"]
    assert _wait(lambda: svc.status()["state"] == "idle")
    st = send_command(sock, "status")["status"]
    assert st["last_outcome"] == "cancelled" and 0 < st["fields_done"] < backend.fields


def test_button_starts_then_pauses(running) -> None:  # noqa: ANN001
    svc, _, _ = running
    assert svc.handle(TriggerEvent(Command.BUTTON, "gpio"))["status"]["state"] == "scanning"
    assert _wait(lambda: svc.status()["scan_id"] == "1")
    assert svc.handle(TriggerEvent(Command.BUTTON, "gpio"))["status"]["state"] == "paused"
    assert svc.serial_reply(TriggerEvent(Command.STATUS, "serial")).startswith("STATUS paused: scan 1, ")
    assert svc.serial_reply(TriggerEvent(Command.STOP, "serial")).startswith("OK stopping")


@pytest.mark.parametrize(("raw", "msg"), [
    (b"start\n", "not one JSON object"),
    (b'{"command": "launch"}\n', "unknown command 'launch'"),
    (b'{"cmd": "start"}\n', 'must be {"command"'),
    (b'{"command": "start", "args": [1]}\n', "args must be"),
    (b"x" * 5000 + b"\n", "longer than 4096"),
])
def test_bad_requests_get_an_error_reply(running, raw: bytes, msg: str) -> None:  # noqa: ANN001
    _, _, sock = running
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(sock))
    s.sendall(raw)
    reply = json.loads(s.makefile("rb").readline())
    s.close()
    assert reply["ok"] is False and msg in reply["message"]


def test_client_errors_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match="not running.*journalctl -u tppscan"):  # where a stopped one said why
        send_command(tmp_path / "none.sock", "status")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(tmp_path / "stale.sock"))
    stale.close()  # a socket file nobody listens on, as a killed service leaves it
    with pytest.raises(ControlError, match="not running.*journalctl -u tppscan"):
        send_command(tmp_path / "stale.sock", "status")
    server = ControlServer(tmp_path / "stale.sock", lambda ev: {"ok": True}, group=MY_GROUP)
    server.start()  # replaces the stale file
    try:
        with pytest.raises(ControlError, match="already answers"):
            ControlServer(tmp_path / "stale.sock", lambda ev: {"ok": True}, group=MY_GROUP).start()
    finally:
        server.stop()
    with pytest.raises(ControlError, match="group 'no-such-group-x'"):
        ControlServer(tmp_path / "g.sock", lambda ev: {"ok": True}, group="no-such-group-x").start()


def test_missing_hardware_is_retried_not_replaced(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    backend = ScriptedBackend(fail_connects=3)
    svc = Service(backend, connect_retry_s=0.01, notifier=Notifier({}))
    t = threading.Thread(target=svc.run, kwargs={"install_signals": False}, daemon=True)
    with caplog.at_level(logging.ERROR):
        t.start()
        assert _wait(lambda: svc.status()["state"] == "idle")
    svc.request_shutdown()
    t.join(5)
    assert backend.connects == 4 and backend.closed
    assert sum("no stage at /dev/tppscan-stage" in r.message for r in caplog.records) == 3


def test_sd_notify_messages(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(str(path))
    rx.settimeout(5)
    n = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())})
    assert n.enabled and n.watchdog_s == 2.0
    backend = ScriptedBackend()
    svc = Service(backend, notifier=n)
    t = threading.Thread(target=svc.run, kwargs={"install_signals": False}, daemon=True)
    t.start()
    got = set()
    while not {"READY=1", "WATCHDOG=1"} <= got:
        got |= set(rx.recv(4096).decode().splitlines())
    svc.request_shutdown()
    t.join(5)
    rx.close()
    assert any(m.startswith("STATUS=") for m in got)
    assert not Notifier({}).enabled and Notifier({"WATCHDOG_USEC": "5", "WATCHDOG_PID": "1"}).watchdog_s is None


def test_logs_of_one_scan_without_a_terminal(tmp_path: Path) -> None:
    logdir = tmp_path / "log"
    setup_logging("INFO", logdir, journal_prefix=True)
    lg = logging.getLogger("tppscan.test")
    try:
        with scan_log_file(7, tmp_path / "scan7.log"):
            with log_context(scan=7):
                lg.info("scan seven starts")
                with log_context(field=3):
                    lg.warning("field three blurry")
            with log_context(scan=8):
                lg.info("scan eight")
        lg.info("no scan")
    finally:
        setup_logging("WARNING", None)
    out = subprocess.run([sys.executable, "-m", "appliance.cli", "logs", "--log-dir", str(logdir), "--scan", "7"],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 2 and "scan=7 scan seven starts" in lines[0] and "scan=7 field=3 field three" in lines[1]
    assert lines[0][:4].isdigit() and lines[0][23] == "Z"  # a UTC timestamp
    own = (tmp_path / "scan7.log").read_text().splitlines()
    assert len(own) == 2 and all("scan=7" in ln for ln in own)
    bad = subprocess.run([sys.executable, "-m", "appliance.cli", "logs", "--log-dir", str(logdir), "--scan", "7;x"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


@pytest.mark.parametrize("cmd", ["start", "stop", "pause", "status"])
def test_control_cli_without_a_service_exits_1_with_one_line(tmp_path: Path, cmd: str) -> None:
    out = subprocess.run([sys.executable, "-m", "appliance.cli", cmd, "--socket", str(tmp_path / "c.sock")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "not running" in out.stderr


def test_failed_fields_and_stage_faults_reach_the_log(caplog: pytest.LogCaptureFixture) -> None:
    """Read over SSH, the journal must say when a field failed or the stage had to be brought back."""
    from appliance.scan.events import FieldFailed, StageFault
    from appliance.scan.runner import ScanState, ScanStatus
    from appliance.service.backend import _EventBridge
    from appliance.service.daemon import ScanControl

    st = ScanStatus(ScanState.RUNNING, None, 1, 3, 10, 0, 0, 4, 1.0, None)
    bridge = _EventBridge(ScanControl(lambda **_: None), None, (0.0, 0.0, 1.0, 1.0))
    with caplog.at_level("WARNING", logger="tppscan.scan"):
        bridge(FieldFailed(4, "CameraError: no frame", st))
        bridge(StageFault(5, "StageTimeout: no reply to ?", "resynchronised", st))
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["field failed cell=4 error=CameraError: no frame",
                     "stage fault cell=5 error=StageTimeout: no reply to ? recovered=resynchronised; "
                     "the field is redone"]


def test_a_finished_scans_warnings_reach_the_log(caplog: pytest.LogCaptureFixture) -> None:
    """A scan whose structures' focus could not be trusted says so in the journal, where it is read over SSH."""
    from appliance.service.backend import log_summary_warnings

    with caplog.at_level("WARNING", logger="tppscan.scan"):
        log_summary_warnings("20261203-150000", {"warnings": ["the focus of 5 of 8 structures could not be trusted"]})
        log_summary_warnings("20261203-160000", {"warnings": []})
    assert [r.getMessage() for r in caplog.records] == [
        "scan 20261203-150000: the focus of 5 of 8 structures could not be trusted"]


def test_the_autofocus_follows_the_objectives_depth_of_field() -> None:
    """The service's autofocus steps and ranges follow the configured objective, as `tppscan scan`'s do."""
    from types import SimpleNamespace

    from appliance.config.schema import Config, OpticsConfig
    from appliance.service.backend import ScanBackend
    from appliance.sim.optics import OpticsParams

    def dof(na: float, scope: object = None) -> float:
        backend = ScanBackend(Config(optics=OpticsConfig(na=na)))
        return backend._depth_of_field_um(SimpleNamespace(scope=scope), 0.5)  # type: ignore[arg-type]

    assert dof(0.25) == pytest.approx(0.55 / 0.25**2 + 0.5 / 0.25)
    assert dof(0.1) > 5 * dof(0.25)  # a 5x objective searches in far coarser steps
    sim = SimpleNamespace(camera=SimpleNamespace(optics=OpticsParams(na=0.4)))
    assert dof(0.1, sim) == pytest.approx(OpticsParams(na=0.4).depth_of_field_um(0.5))  # the virtual optics win


def test_the_services_scans_see_and_time_as_the_command_lines_do() -> None:
    """The service builds its vision with the CLI's recipe (types what the detector left out, tells the detector
    the pixel size) and, on the virtual microscope, times the stage on its virtual clock as `tppscan scan` does."""
    from types import SimpleNamespace

    from appliance.config.schema import Config
    from appliance.service.backend import ScanBackend
    from appliance.service.inputs import load_plan
    from appliance.sim.microscope import VirtualMicroscope

    scope = VirtualMicroscope(seed=1)
    backend = ScanBackend(Config())
    backend._plan = load_plan(backend.cfg)
    backend._models = (object(), object())  # loaded models stand-ins: only their wiring is checked
    dev = SimpleNamespace(scope=scope, stage=scope.stage, camera=scope.camera)
    vision, _, _ = backend._pipeline(dev)  # type: ignore[arg-type]
    p = vision.pipeline
    assert p.skip_empty and p.type_uncovered and p.scale_known and p.um_per_px == pytest.approx(scope.camera.um_per_px)
    assert backend._device_clock(dev) == scope.clock.now_s  # type: ignore[arg-type]


def test_the_services_neural_focus_gets_the_focus_net_as_the_command_lines_does() -> None:
    """A plan with ``focus.strategy: neural`` focuses with the focus net in the service too (it got none, and every
    focus raised for want of an estimator)."""
    from types import SimpleNamespace

    from appliance.config.schema import Config
    from appliance.focus.netadapter import FocusNetEstimator
    from appliance.scan.plan import ScanPlan
    from appliance.service.backend import ScanBackend
    from appliance.sim.microscope import VirtualMicroscope

    scope = VirtualMicroscope(seed=1)
    backend = ScanBackend(Config())
    backend._plan = ScanPlan.from_yaml("focus: {strategy: neural}")
    backend._models = (object(), object())
    _, focuser, _ = backend._pipeline(SimpleNamespace(scope=scope, stage=scope.stage,  # type: ignore[arg-type]
                                                      camera=scope.camera))
    assert focuser.strategy == "neural" and isinstance(focuser.estimator, FocusNetEstimator)


def test_a_configuration_error_is_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    """A config the devices cannot use (a real camera on the simulated stage, a bad sim.set) ends the run with
    exit 2; it was retried every 5 s, forever, as if hardware were missing."""
    from appliance.config.schema import ConfigError

    class BadConfigBackend(ScriptedBackend):
        def connect(self) -> None:
            self.connects += 1
            raise ConfigError("camera.kind 'files' with stage.kind 'sim': a real camera cannot follow")

    backend = BadConfigBackend()
    svc = Service(backend, connect_retry_s=0.01, notifier=Notifier({}))
    codes: list[int] = []
    t = threading.Thread(target=lambda: codes.append(svc.run(install_signals=False)), daemon=True)
    with caplog.at_level(logging.ERROR):
        t.start()
        t.join(5)
    svc.request_shutdown()  # ends a run that retries
    t.join(5)
    assert codes == [2] and backend.connects == 1 and backend.closed
    assert any("not retrying" in r.getMessage() and "camera.kind 'files'" in r.getMessage() for r in caplog.records)


def test_open_devices_raises_config_errors_for_the_config(tmp_path: Path) -> None:
    from appliance.config.schema import CameraConfig, Config, ConfigError, SimConfig
    from appliance.service.devices import open_devices

    with pytest.raises(ConfigError, match="simulated stage"):  # built past load_config's check
        open_devices(Config.model_construct(camera=CameraConfig(kind="files", folder=str(tmp_path)),
                                            stage=Config().stage, sim=Config().sim))
    with pytest.raises(ConfigError, match=r"sim\.set\.slide\.debris_per_mm2 must be a number"):
        open_devices(Config.model_construct(camera=Config().camera, stage=Config().stage,
                                            sim=SimConfig(set={"slide.debris_per_mm2": "abc"})))


def test_the_services_scans_use_the_configured_calibration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``calibration.file`` reaches the scan as ``tppscan scan --calibration`` gives it: to the runner (no calibration
    measured) and as the pixel size the vision is told. The service read the key nowhere."""
    from types import SimpleNamespace

    import appliance.scan.session as session
    from appliance.config.schema import Config
    from appliance.scan.calibration import Calibration
    from appliance.service.backend import ScanBackend
    from appliance.service.daemon import ScanControl
    from appliance.service.inputs import load_calibration, load_plan
    from appliance.sim.microscope import VirtualMicroscope

    cal = Calibration(((0.61, 0.0), (0.0, 0.61)), (640, 480))
    cal.save(tmp_path / "cal.yaml")
    cfg = Config.model_validate({"calibration": {"file": str(tmp_path / "cal.yaml")},
                                 "paths": {"data_dir": str(tmp_path / "data")}})
    backend = ScanBackend(cfg)
    backend._plan, backend._calibration = load_plan(cfg), load_calibration(cfg)
    backend._models = (object(), object())
    scope = VirtualMicroscope(seed=1)
    backend.devices = SimpleNamespace(scope=scope, stage=scope.stage, camera=scope.camera)  # type: ignore[assignment]
    seen: dict[str, object] = {}

    def fake_run_scan(*args: object, **kwargs: object) -> object:
        seen.update(kwargs, vision=args[2])
        return SimpleNamespace(scan_id=1, summary={}, status=SimpleNamespace(reason=None))

    monkeypatch.setattr(session, "run_scan", fake_run_scan)
    backend.run_scan(ScanControl(lambda **_: None))
    assert seen["calibration"] == cal
    assert seen["vision"].pipeline.um_per_px == pytest.approx(0.61)  # type: ignore[attr-defined]


def _one_reply(path: Path, reply: bytes) -> threading.Thread:
    """A socket that answers one request with ``reply`` (another program, or another version of the service)."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(1)

    def serve() -> None:
        conn, _ = srv.accept()
        conn.recv(65536)
        conn.sendall(reply)
        conn.close()
        srv.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("reply", [b'{"ok": true, "status": "running"}\n', b'{"ok": true}', b'{"ok": 1}\n',
                                   b'{"ok": true, "message": "idle", "status": {"state": "idle"}}\n'])
def test_a_reply_of_another_shape_is_said_to_be_not_understood(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                              reply: bytes) -> None:
    from appliance.cli import main

    t = _one_reply(tmp_path / "c.sock", reply)
    assert main(["status", "--socket", str(tmp_path / "c.sock"), "--timeout", "5"]) == 1
    t.join(5)
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "does not understand" in err, err


def test_a_refused_request_prints_its_message_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from appliance.cli import main

    t = _one_reply(tmp_path / "c.sock", b'{"ok": false, "message": "request is not one JSON object"}\n')
    assert main(["status", "--socket", str(tmp_path / "c.sock"), "--timeout", "5"]) == 1
    t.join(5)
    assert capsys.readouterr().out == "request is not one JSON object\n"


def test_status_says_why_the_last_scan_failed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from appliance.cli import main

    st = {"state": "idle", "scan_id": None, "fields_done": 0, "fields_total": 0, "structures": 0, "eta_s": None,
          "last_outcome": "failed", "message": "scan failed: the calibration was made at a frame size of 1280 x 960"}
    t = _one_reply(tmp_path / "c.sock", (json.dumps({"ok": True, "message": "idle", "status": st}) + "\n").encode())
    assert main(["status", "--socket", str(tmp_path / "c.sock"), "--timeout", "5"]) == 0
    t.join(5)
    assert capsys.readouterr().out == ("idle; last scan failed: scan failed: the calibration was made at a frame "
                                       "size of 1280 x 960\n")


def test_a_scan_refusing_its_inputs_is_logged_as_one_line() -> None:
    from appliance.scan.calibration import CalibrationError
    from appliance.service.daemon import _refusal

    assert _refusal(CalibrationError("made at 1280 x 960 px")) and _refusal(ValueError("grid.fov_width"))
    assert not _refusal(RuntimeError("a bug")) and not _refusal(KeyError("x"))


def test_a_socket_path_too_long_is_named(tmp_path: Path) -> None:
    path = tmp_path / ("s" * 200)
    with pytest.raises(ControlError, match=f"cannot use the control socket {path}: "):
        send_command(path, "status")


def _logs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "appliance.cli", "logs", *args], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def test_logs_say_where_they_looked_when_there_is_nothing(tmp_path: Path) -> None:
    """A wrong --log-dir, an unknown scan and no log at all printed nothing with exit 0."""
    (tmp_path / "file.txt").write_text("x")
    for bad, what in ((tmp_path / "none", "does not exist"), (tmp_path / "file.txt", "is not a folder")):
        out = _logs("--log-dir", str(bad))
        assert out.returncode == 2 and out.stderr == f"tppscan logs: error: --log-dir {bad} {what}\n"
    logdir = tmp_path / "log"
    logdir.mkdir()
    (logdir / "tppscan.log").write_text("2026-12-06T06:23:17.400Z INFO  tppscan.scan scan=7 scan seven\n")
    out = _logs("--log-dir", str(logdir), "--scan", "nope")
    assert out.returncode == 0 and out.stdout == ""
    assert out.stderr == f"tppscan logs: no lines of scan nope in {logdir / 'tppscan.log'}\n"
    fake = tmp_path / "bin" / "journalctl"  # a journal with no lines of the unit
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    empty = tmp_path / "empty"
    empty.mkdir()
    out = subprocess.run([sys.executable, "-m", "appliance.cli", "logs", "--log-dir", str(empty)], capture_output=True,
                         text=True, timeout=60, env={**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}"})
    assert out.returncode == 0 and out.stdout == ""
    assert out.stderr == f"tppscan logs: no log lines: no log file in {empty}, and journald has none (unit tppscan)\n"


def test_the_sockets_live_in_paths_run_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``paths.run_dir`` is documented as the sockets' folder; changing it moved neither socket, and ``tppscan
    status`` looked in /run/tppscan whatever the config said."""
    import yaml

    from appliance.cli import main
    from appliance.config.schema import Config

    cfg = Config.model_validate({"paths": {"run_dir": "/srv/run"}})
    assert (cfg.control_socket, cfg.live_socket) == ("/srv/run/control.sock", "/srv/run/http.sock")
    assert (Config().control_socket, Config().live_socket) == ("/run/tppscan/control.sock", "/run/tppscan/http.sock")
    named = Config.model_validate({"triggers": {"socket": {"path": "/x/c.sock"}}, "live": {"socket": "/x/h.sock"}})
    assert (named.control_socket, named.live_socket) == ("/x/c.sock", "/x/h.sock")
    conf = tmp_path / "config.yaml"
    conf.write_text(yaml.safe_dump({"paths": {"run_dir": str(tmp_path)}}))
    st = {"state": "idle", "scan_id": None, "fields_done": 0, "fields_total": 0, "structures": 0, "eta_s": None,
          "last_outcome": None, "message": ""}
    t = _one_reply(tmp_path / "control.sock", (json.dumps({"ok": True, "message": "idle", "status": st}) + "\n")
                   .encode())
    assert main(["status", "--config", str(conf), "--timeout", "5"]) == 0
    t.join(5)
    assert capsys.readouterr().out.startswith("idle")
    conf.write_text("paths: {run_dir: 3}")
    assert main(["status", "--config", str(conf)]) == 2
    assert capsys.readouterr().err.startswith(f"tppscan status: {conf}: paths.run_dir")


def _service_scan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: object) -> tuple[object, list[dict]]:
    """The service's backend on the virtual microscope, ``run`` standing in for the scan runner; its reports."""
    from types import SimpleNamespace

    import appliance.scan.session as session
    from appliance.config.schema import Config
    from appliance.service.backend import ScanBackend
    from appliance.service.inputs import load_plan
    from appliance.sim.microscope import VirtualMicroscope

    cfg = Config.model_validate({"paths": {"data_dir": str(tmp_path / "data"), "log_dir": str(tmp_path / "log")}})
    backend = ScanBackend(cfg)
    backend._plan, backend._models = load_plan(cfg), (object(), object())
    scope = VirtualMicroscope(seed=0)
    backend.devices = SimpleNamespace(scope=scope, stage=scope.stage, camera=scope.camera)  # type: ignore[assignment]
    monkeypatch.setattr(session, "run_scan", run)
    return backend, []


def test_one_scan_id_names_the_scan_in_status_logs_and_scan_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """``tppscan status`` said ``scan 1`` while the log lines said ``scan=20261206-091612``, so ``logs --scan 1``
    found nothing; no line said which structures were found, nor how the scan ended and where its report is."""
    from types import SimpleNamespace

    from appliance.cli import main
    from appliance.results.store import ObjectRecord
    from appliance.scan.events import ObjectRecorded
    from appliance.scan.runner import FinishReason
    from appliance.service.daemon import ScanControl

    def fake_run_scan(*args: object, **kwargs: object) -> object:
        logging.getLogger("tppscan.scan.session").info("exposure: the glass is grey 170")
        o = ObjectRecord(cell=40, kind="structure", cls="pentagon", confidence=0.9, x_um=5016.2, y_um=7161.0,
                         z_um=72.0, width_um=30.0, height_um=30.0, extra={"focus_ok": False}, id=7)
        kwargs["on_event"](ObjectRecorded(o))  # type: ignore[operator]
        kwargs["on_event"](ObjectRecorded(ObjectRecord(40, "debris", "debris", 0.8, 1.0, 2.0, None, 5.0, 5.0)))
        summary = {"fields_done": 130, "fields_planned": 130, "structures_recorded": 1, "debris_recorded": 4}
        return SimpleNamespace(scan_id=1, summary=summary, status=SimpleNamespace(reason=FinishReason.COMPLETED))

    backend, reports = _service_scan(tmp_path, monkeypatch, fake_run_scan)
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    setup_logging("INFO", tmp_path / "log", journal_prefix=False)
    try:
        backend.run_scan(ScanControl(lambda **kw: reports.append(kw)))  # type: ignore[attr-defined]
    finally:
        # the root logger as it was: a stdout handler left on capsys's stream, closed after this test, made every
        # later log line in this worker a '--- Logging error ---' on stderr (a one-line-error test failed on it)
        for h in [h for h in root.handlers if h not in before[0]]:
            root.removeHandler(h)
            h.close()
        root.setLevel(before[1])
    assert reports[0]["scan_id"] == "1"  # the status names it from the start, as the lines do
    folder = next((tmp_path / "data" / "scans").iterdir())
    want = ["scan=1 scan 1 started: plan 'scan', folder", "scan=1 exposure: the glass is grey 170",
            "scan=1 field=40 structure found type=pentagon id=7 x_um=5016 y_um=7161 z_um=72.0 focus=unsure",
            f"scan=1 scan 1 completed: 130 of 130 fields, 1 structure, 4 debris; report {folder / 'report.html'}"]
    for text in ((tmp_path / "log" / "tppscan.log").read_text(), (folder / "scan.log").read_text()):
        assert all(w in text for w in want), text
        assert text.count("\n") == 4, text  # no line for the piece of dust
    capsys.readouterr()  # the lines the stdout handler printed
    assert main(["logs", "--scan", "1", "--log-dir", str(tmp_path / "log")]) == 0
    assert capsys.readouterr().out.count("\n") == 4


def test_the_next_scan_is_the_unfinished_one_or_the_databases_next_id(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from appliance.results.store import FieldRecord, ResultStore

    backend, _ = _service_scan(tmp_path, monkeypatch, None)
    nxt = backend.next_scan()  # type: ignore[attr-defined]
    assert (nxt.scan_id, nxt.resumed) == (1, False)
    with ResultStore(tmp_path / "data" / "tppscan.db") as store:
        done = store.create_scan("a", tmp_path / "a", {}, 4)
        store.finish_scan(done, "finished", "completed", {"fields_done": 4})
        (tmp_path / "b").mkdir()
        left = store.create_scan("b", tmp_path / "b", {}, 130)
        store.commit_field(left, FieldRecord(3, 0, 0.0, 0.0, 0.0, "map", 0, 0, 0, 0.1, 0.1, {}), [], [])
    nxt = backend.next_scan()  # type: ignore[attr-defined]
    assert (nxt.scan_id, nxt.resumed, nxt.fields_done, nxt.fields_total, nxt.out_dir) == (2, True, 1, 130,
                                                                                          tmp_path / "b")
    with ResultStore(tmp_path / "data" / "tppscan.db") as store:
        store.finish_scan(left, "finished", "completed")  # every field done; stopped before its summary's row
    nxt = backend.next_scan()  # type: ignore[attr-defined]
    assert (nxt.scan_id, nxt.resumed) == (2, True)  # was a new scan 3: the report of 2 was never written
    with ResultStore(tmp_path / "data" / "tppscan.db") as store:
        store.set_summary(left, {"fields_done": 1})
    assert backend.next_scan().scan_id == 3  # type: ignore[attr-defined]


def test_starts_reply_and_status_name_the_scan_row_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """START answered with the id the database would give (the largest plus one) a few ms before the worker wrote
    the row: a row written between (another program on the database) made the answer and the scan differ."""
    from types import SimpleNamespace

    from appliance.results.store import ResultStore
    from appliance.scan.runner import FinishReason
    from appliance.service.daemon import State

    go, ran = threading.Event(), []

    def held_scan(*args: object, **kwargs: object) -> object:
        with ResultStore(args[7]) as store:  # type: ignore[arg-type]
            ran.append(store.unfinished_scan(args[6]).id)  # type: ignore[arg-type, union-attr]
        go.wait(5)
        return SimpleNamespace(scan_id=ran[0], summary={}, status=SimpleNamespace(reason=FinishReason.COMPLETED))

    backend, _ = _service_scan(tmp_path, monkeypatch, held_scan)
    forecast = backend.next_scan  # type: ignore[attr-defined]

    def another_writer_between(new: bool = False) -> object:
        nxt = forecast(new=new)
        with ResultStore(tmp_path / "data" / "tppscan.db") as store:  # e.g. tppscan scan --db on the same file
            store.create_scan("other", tmp_path / "other", {}, 1)
        return nxt

    monkeypatch.setattr(backend, "next_scan", another_writer_between)
    svc = Service(backend, notifier=Notifier({}))  # type: ignore[arg-type]
    svc._shared.state = State.IDLE
    reply = svc.handle(TriggerEvent(Command.START, "serial"))
    with ResultStore(tmp_path / "data" / "tppscan.db", read_only=True) as store:
        ours = [r for r in store.scans() if r.name != "other"]
    assert [r.id for r in ours] == [2] and reply["message"] == "scan started (scan 2)"  # the row, there at once
    assert svc.status()["scan_id"] == "2"
    go.set()
    assert _wait(lambda: svc.status()["state"] == "idle", 30), svc.status()
    assert ran == [2] and svc.status()["scan_id"] == "2"


def test_a_board_lost_mid_field_sends_the_service_to_reconnect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner ends a scan whose board was lost mid-field as any failure and returns: the service stayed idle on
    the closed port (the docs promise a reconnect), and every later START failed on it."""
    from types import SimpleNamespace

    from appliance.hardware.stage.grbl_link import StageConnectionError
    from appliance.scan.runner import FinishReason
    from appliance.service.daemon import DeviceLost

    lost = "StageConnectionError: lost the stage on /dev/tppscan-stage (gone); 3 reconnect attempts failed"

    def failed_scan(*args: object, **kwargs: object) -> object:
        return SimpleNamespace(scan_id=1, summary={"fields_done": 3, "fields_planned": 9},
                               status=SimpleNamespace(reason=FinishReason.FAILED, error=lost))

    backend, reports = _service_scan(tmp_path, monkeypatch, failed_scan)
    assert backend.run_scan(ScanControl(lambda **kw: reports.append(kw))) == "failed"  # type: ignore[attr-defined]

    def gone() -> None:
        raise StageConnectionError("the stage is not connected")

    monkeypatch.setattr(backend.devices.stage, "position_um", gone)  # type: ignore[attr-defined]
    with pytest.raises(DeviceLost, match="lost the stage"):
        backend.run_scan(ScanControl(lambda **kw: reports.append(kw)))  # type: ignore[attr-defined]
    assert backend.next_scan().resumed  # type: ignore[attr-defined]


def test_start_new_abandons_the_interrupted_scan_and_starts_another(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A resume onto another slide stops (its first print is not there); ``start --new`` was missing, so the only
    way on was to delete the database or the folder."""
    from types import SimpleNamespace

    from appliance.hardware.triggers.events import Command, TriggerEvent
    from appliance.results.store import ABANDONED, ResultStore
    from appliance.scan.runner import FinishReason
    from appliance.service.daemon import _wants_new

    ran: list[Path] = []

    def fake_run_scan(*args: object, **kwargs: object) -> object:
        ran.append(Path(args[6]))  # type: ignore[arg-type]
        summary = {"fields_done": 0, "fields_planned": 4, "structures_recorded": 0}
        return SimpleNamespace(scan_id=2, summary=summary, status=SimpleNamespace(reason=FinishReason.COMPLETED))

    backend, reports = _service_scan(tmp_path, monkeypatch, fake_run_scan)
    (tmp_path / "left").mkdir()
    with ResultStore(tmp_path / "data" / "tppscan.db") as store:
        left = store.create_scan("a", tmp_path / "left", {}, 130)
    assert backend.next_scan().resumed  # type: ignore[attr-defined]
    nxt = backend.next_scan(new=True)  # type: ignore[attr-defined]
    assert (nxt.scan_id, nxt.resumed, nxt.abandons) == (left + 1, False, left)
    control = ScanControl(lambda **kw: reports.append(kw))
    control.new_scan = True
    backend.run_scan(control)  # type: ignore[attr-defined]
    assert ran[0] != tmp_path / "left"
    with ResultStore(tmp_path / "data" / "tppscan.db") as store:
        rec = store.scan(left)
    assert (rec.status, rec.finish_reason) == ("cancelled", ABANDONED)
    after = backend.next_scan()  # type: ignore[attr-defined]
    assert after.scan_id == left + 1 and after.abandons is None  # the new one (its row left open here), not 1
    assert _wants_new(TriggerEvent(Command.START, "socket", {"new": "yes"}))
    assert not _wants_new(TriggerEvent(Command.START, "socket"))


def test_start_new_reaches_the_service_and_says_what_it_abandoned(running, monkeypatch, capsys) -> None:  # noqa: ANN001
    from types import SimpleNamespace

    from appliance.cli import main

    svc, backend, sock = running
    seen: list[bool] = []
    monkeypatch.setattr(backend, "next_scan", lambda new=False: seen.append(new) or SimpleNamespace(
        scan_id=3, resumed=False, fields_done=0, fields_total=50, abandons=2 if new else None))
    assert main(["start", "--new", "--socket", str(sock), "--timeout", "5"]) == 0
    assert seen == [True]
    assert capsys.readouterr().out == "scan started (scan 3; scan 2 abandoned, marked cancelled)\n"
    send_command(sock, "stop")
    assert _wait(lambda: svc.status()["state"] == "idle")


def test_a_scan_cut_off_in_its_preparation_keeps_its_id_and_folder(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The id was guessed and the row written after the calibration: a scan killed before that left a folder and
    ``scan=1`` lines without a row, and the next START gave id 1 again, to a new folder."""
    from appliance.results.store import ResultStore

    class Killed(BaseException):
        pass

    seen: list[tuple[int, Path]] = []

    def killed_in_preparation(*args: object, **kwargs: object) -> object:
        with ResultStore(args[7]) as store:  # type: ignore[arg-type]
            rec = store.unfinished_scan(args[6])  # type: ignore[arg-type]
        assert rec is not None  # the row is there before the scan prepares anything
        seen.append((rec.id, Path(rec.out_dir)))
        raise Killed

    backend, reports = _service_scan(tmp_path, monkeypatch, killed_in_preparation)
    for _ in range(2):
        with pytest.raises(Killed):
            backend.run_scan(ScanControl(lambda **kw: reports.append(kw)))  # type: ignore[attr-defined]
    assert seen[0] == seen[1] and seen[0][0] == 1  # the same scan, in the same folder, prepared again
    assert reports[0]["scan_id"] == "1"
    with ResultStore(tmp_path / "data" / "tppscan.db") as store:
        (rec,) = store.scans()
        assert rec.status == "preparing"
    nxt = backend.next_scan()  # type: ignore[attr-defined]
    assert (nxt.scan_id, nxt.resumed, nxt.out_dir) == (1, True, seen[0][1])
    assert backend.next_scan(new=True).scan_id == 2  # type: ignore[attr-defined]


def test_stop_and_pause_reach_the_scans_preparation_and_status_says_its_step(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from appliance.scan.session import PreparationStopped
    from appliance.service.cli import status_text

    said: list[str] = []

    def preparing(*args: object, **kwargs: object) -> object:
        check = kwargs["checkpoint"]
        assert check("calibration") is False  # type: ignore[operator]
        said.append(status_text({"state": "scanning", "scan_id": "1", **reports[-1]}))
        control.stop_requested.set()  # tppscan stop, or SIGTERM, while the slide is looked for
        if check(None):  # type: ignore[operator]
            raise PreparationStopped("stopped in the scan's preparation; the scan stays resumable")
        raise AssertionError("the stop was not heard")

    backend, reports = _service_scan(tmp_path, monkeypatch, preparing)
    control = ScanControl(lambda **kw: reports.append(kw))
    assert backend.run_scan(control) == "cancelled"  # type: ignore[attr-defined]
    assert said == ["scanning: scan 1, preparing: calibration"]  # was "0 of 0 fields" for minutes
    assert reports[-1]["message"] == "stopped in its preparation (scan 1 stays resumable)"
    assert backend.next_scan().resumed  # type: ignore[attr-defined]


def test_status_reads_as_a_person_writes_it() -> None:
    """Idle it said ``scan None: 0/0 fields, 0 structures; last scan: None``; ``1 structures``; no report path;
    ``done`` and ``interrupted`` where the report says ``completed`` and ``cancelled``."""
    from appliance.service.cli import status_text

    base = {"state": "idle", "scan_id": None, "fields_done": 0, "fields_total": 0, "structures": 0, "eta_s": None,
            "last_outcome": None, "message": "", "report": None, "finished_at": None}
    assert status_text(base) == "idle; no scan since the service started"
    at = 1796548320.0  # 2026-12-06 09:12 UTC
    done = {**base, "scan_id": "3", "fields_done": 130, "fields_total": 130, "structures": 20,
            "last_outcome": "completed", "report": "/d/scans/x/report.html", "finished_at": at}
    assert status_text(done) == ("idle; last scan 3 completed 2026-12-06 09:12 UTC: 20 structures, 130 of 130 "
                                 "fields, report /d/scans/x/report.html")
    assert "1 structure," in status_text({**done, "structures": 1})
    stopped = {**done, "last_outcome": "cancelled", "fields_done": 59, "structures": 4}
    assert status_text(stopped).endswith("4 structures, 59 of 130 fields, report /d/scans/x/report.html; "
                                         "'tppscan start' resumes it")
    running = {**base, "state": "scanning", "scan_id": "3", "fields_done": 59, "fields_total": 130, "structures": 1,
               "eta_s": 120.4}
    assert status_text(running) == "scanning: scan 3, 59 of 130 fields, 1 structure, ETA 120 s"
    assert status_text({**running, "state": "paused", "eta_s": None}) == "paused: scan 3, 59 of 130 fields, 1 structure"


def _idle_status() -> dict:
    return {"state": "idle", "scan_id": None, "fields_done": 0, "fields_total": 0, "structures": 0, "eta_s": None,
            "last_outcome": None, "message": "", "report": None, "finished_at": None}


def test_status_after_a_restart_reads_the_last_scan_from_the_database(tmp_path: Path) -> None:
    """After a reboot ``status`` only named the database (``earlier scans: tppscan results list --db ...``): a lab
    user wants the last scan, and gets it from the database in the words status gives a scan it ran itself."""
    from appliance.results.store import FieldRecord, ObjectRecord, ResultStore
    from appliance.service.cli import status_text

    base, db = _idle_status(), tmp_path / "data" / "tppscan.db"
    since = "idle; no scan since the service started; "
    assert status_text(base, db) == since + f"no scans yet (no results database at {db})"
    with ResultStore(db):
        pass
    assert status_text(base, db) == since + f"no scans yet in {db}"

    def field(cell: int) -> FieldRecord:
        return FieldRecord(cell, cell, 0.0, 0.0, 0.0, "map", 1, 1, 0, 0.1, 0.1, {})

    def structure(cell: int) -> ObjectRecord:
        return ObjectRecord(cell, "structure", "pentagon", 0.9, 1.0, 2.0, 3.0, 30.0, 30.0)

    at = 1796548320.0  # 2026-12-06 09:12 UTC
    folder = tmp_path / "data" / "scans" / "a"
    folder.mkdir(parents=True)
    (folder / "report.html").write_text("<html></html>")
    with ResultStore(db) as store:
        sid = store.create_scan("scan", folder, {}, 130)
        for cell in range(3):
            store.commit_field(sid, field(cell), [structure(cell)] if cell else [], [])
        store.commit_field(sid, field(3), [ObjectRecord(3, "debris", "debris", 0.8, 1.0, 2.0, None, 5.0, 5.0)], [])
        store.db.execute("UPDATE scan SET started_at=? WHERE id=?", (at - 600, sid))
    # killed in the middle (a power cut, a reboot): the row still says running
    assert status_text(base, db) == since + (f"last scan {sid} interrupted, started 2026-12-06 09:02 UTC: 2 "
                                             "structures, 4 of 130 fields, report "
                                             f"{folder / 'report.html'}; 'tppscan start' resumes it")
    with ResultStore(db) as store:
        store.finish_scan(sid, "cancelled", "cancelled")
        store.db.execute("UPDATE scan SET finished_at=? WHERE id=?", (at, sid))
    assert status_text(base, db) == since + (f"last scan {sid} cancelled 2026-12-06 09:12 UTC: 2 structures, 4 of "
                                             f"130 fields, report {folder / 'report.html'}; 'tppscan start' resumes it")
    with ResultStore(db) as store:
        store.finish_scan(sid, "finished", "completed", {"fields_done": 4})  # complete: with its summary
        store.db.execute("UPDATE scan SET finished_at=? WHERE id=?", (at, sid))
        new = store.create_scan("scan", tmp_path / "data" / "scans" / "b", {}, 9)  # the newest is the last
        store.commit_field(new, field(0), [structure(0)], [])
        store.finish_scan(new, "failed", "failed: CameraError: no frame in 5 s")
        store.db.execute("UPDATE scan SET finished_at=? WHERE id=?", (at, new))
    assert status_text(base, db) == since + f"last scan {new} failed 2026-12-06 09:12 UTC: CameraError: no frame in 5 s"
    with ResultStore(db) as store:
        store.db.execute("DELETE FROM field WHERE scan_id=?", (new,))
        store.db.execute("DELETE FROM object WHERE scan_id=?", (new,))
        store.db.execute("DELETE FROM scan WHERE id=?", (new,))
    assert status_text(base, db) == since + (f"last scan {sid} completed 2026-12-06 09:12 UTC: 2 structures, 4 of "
                                             f"130 fields, report {folder / 'report.html'}")
    # a database that cannot be read is one clause, never a traceback
    for bad, why in ((tmp_path / "folder.db", "is a folder"), (tmp_path / "text.db", "not a tppscan results database"),
                     (tmp_path / "empty.db", "an empty file")):
        if bad.name == "folder.db":
            bad.mkdir()
        else:
            bad.write_bytes(b"" if bad.name == "empty.db" else b"not a database at all, " * 100)
        text = status_text(base, bad)
        assert text.startswith(since + "cannot read the results database: ") and why in text and "\n" not in text


def test_status_reads_the_config_once_and_socket_alone_as_before(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """``status`` loaded the config for its socket, then again for the database's path."""
    import yaml

    import appliance.config.schema as schema
    from appliance.cli import main
    from appliance.results.store import ResultStore

    conf = tmp_path / "config.yaml"
    conf.write_text(yaml.safe_dump({"paths": {"run_dir": str(tmp_path), "data_dir": str(tmp_path / "data")}}))
    with ResultStore(tmp_path / "data" / "tppscan.db") as store:
        store.finish_scan(store.create_scan("scan", tmp_path / "gone", {}, 9), "finished", "completed")
    loads: list[object] = []
    real = schema.load_config
    monkeypatch.setattr(schema, "load_config", lambda path=None: loads.append(path) or real(path))
    reply = (json.dumps({"ok": True, "message": "idle", "status": _idle_status()}) + "\n").encode()
    t = _one_reply(tmp_path / "control.sock", reply)
    assert main(["status", "--config", str(conf), "--timeout", "5"]) == 0
    t.join(5)
    assert loads == [str(conf)]
    out = capsys.readouterr().out
    assert out.startswith("idle; no scan since the service started; last scan 1 completed ") and "report" not in out
    # --socket alone: the installed config read for the database only, and one that does not load costs only that
    monkeypatch.setattr(schema, "DEFAULT_CONFIG_PATH", conf)
    for n, (text, want) in enumerate(((conf.read_text(), "; last scan 1 completed "), ("paths: {run_dir: 3}", None))):
        conf.write_text(text)
        t = _one_reply(tmp_path / f"other{n}.sock", reply)
        assert main(["status", "--socket", str(tmp_path / f"other{n}.sock"), "--timeout", "5"]) == 0
        t.join(5)
        out = capsys.readouterr().out
        assert want in out if want else out == "idle; no scan since the service started\n"


def test_status_json_after_a_restart_carries_the_last_scan_of_the_database(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Plain ``status`` said the database's last scan after a restart; ``status --json`` left it out."""
    import yaml

    from appliance.cli import main
    from appliance.results.store import ResultStore

    conf = tmp_path / "config.yaml"
    conf.write_text(yaml.safe_dump({"paths": {"run_dir": str(tmp_path), "data_dir": str(tmp_path / "data")}}))
    folder = tmp_path / "data" / "scans" / "a"
    folder.mkdir(parents=True)
    with ResultStore(tmp_path / "data" / "tppscan.db") as store:
        sid = store.create_scan("scan", folder, {}, 9)
        store.finish_scan(sid, "finished", "completed")  # every field done, cut off before its summary's row
        store.db.execute("UPDATE scan SET finished_at=? WHERE id=?", (1796548320.0, sid))  # 2026-12-06 09:12 UTC
    reply = (json.dumps({"ok": True, "message": "idle", "status": _idle_status()}) + "\n").encode()
    said = {}
    for n, flags in enumerate(((), ("--json",))):
        t = _one_reply(tmp_path / f"s{n}.sock", reply)
        assert main(["status", "--socket", str(tmp_path / f"s{n}.sock"), "--config", str(conf), "--timeout", "5",
                     *flags]) == 0
        t.join(5)
        said[flags] = capsys.readouterr().out
    plain = said[()].strip()
    assert plain == (f"idle; no scan since the service started; last scan {sid} completed 2026-12-06 09:12 UTC: 0 "
                     "structures, 0 of 9 fields; its report was not written (stopped while writing it): 'tppscan "
                     "start' writes it")
    last = json.loads(said[("--json",)])["status"]["database_last_scan"]
    assert plain.endswith(last["text"]) and "; last scan" in plain
    assert (last["scan_id"], last["last_outcome"], last["fields_total"], last["resumable"]) == (sid, "completed", 9,
                                                                                                True)
    busy = {**_idle_status(), "state": "scanning", "scan_id": "2"}  # plain status says this scan, not the database's
    t = _one_reply(tmp_path / "s2.sock", (json.dumps({"ok": True, "message": "", "status": busy}) + "\n").encode())
    assert main(["status", "--socket", str(tmp_path / "s2.sock"), "--config", str(conf), "--timeout", "5",
                 "--json"]) == 0
    t.join(5)
    assert "database_last_scan" not in json.loads(capsys.readouterr().out)["status"]


def test_start_after_a_stop_says_it_resumed(running) -> None:  # noqa: ANN001
    """``start`` answered ``scan started`` where it resumed the stopped scan."""
    svc, backend, sock = running
    assert send_command(sock, "start")["message"] == "scan started (scan 1)"
    assert _wait(lambda: backend.done_fields >= 2)
    send_command(sock, "stop")
    assert _wait(lambda: svc.status()["state"] == "idle")
    st = svc.status()
    assert st["last_outcome"] == "cancelled" and st["finished_at"] is not None
    reply = send_command(sock, "start")
    assert reply["message"] == f"scan resumed (scan 1, {backend.done_fields} of 50 fields done)"
    assert reply["status"]["scan_id"] == "1"


def test_the_services_scans_run_the_focus_net_its_config_names(tmp_path: Path) -> None:
    # models.focusnet was checked at start but the backend loaded the shipped net for its scans
    import shutil

    from appliance.config.schema import Config
    from appliance.service.backend import ScanBackend

    root = Path(__file__).resolve().parents[2]
    mine = tmp_path / "mine" / "focusnet.tflite"
    mine.parent.mkdir()
    shutil.copy(root / "models" / "focusnet" / "focusnet.tflite", mine)
    plan = tmp_path / "plan.yaml"
    plan.write_text("focus: {strategy: neural}\n", encoding="utf-8")
    backend = ScanBackend(Config.model_validate({"paths": {"data_dir": str(tmp_path / "data")},
                                                 "scan": {"plan": str(plan)}, "models": {"focusnet": str(mine)}}))
    backend.warm()
    assert backend._focus_net is not None and backend._focus_net.model.path == mine
