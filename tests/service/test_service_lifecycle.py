"""The service's lifecycle with fakes: connecting, homing, back-off, lost devices, triggers, disk and log faults."""

from __future__ import annotations

import argparse
import io
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from appliance.config.schema import ConfigError, parse_config
from appliance.hardware.triggers.events import Command, TriggerError, TriggerEvent
from appliance.service import daemon
from appliance.service.daemon import Service
from appliance.service.notify import Notifier
from tests.service.test_service_parts import ScriptedBackend, _wait


def _serve(svc: Service) -> threading.Thread:
    t = threading.Thread(target=svc.run, kwargs={"install_signals": False}, daemon=True)
    t.start()
    return t


def _end(svc: Service, t: threading.Thread) -> None:
    svc.request_shutdown()
    t.join(5)
    assert not t.is_alive()


# -- 1: homing after every check that needs no motion; a failed homing is not retried; back-off ------------------


class _FakeStage:
    homes = 0
    alarm: Exception | None = None
    last_position_um = None

    def __init__(self, cfg: object) -> None:
        pass

    def __enter__(self) -> _FakeStage:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def home(self) -> None:
        _FakeStage.homes += 1
        if _FakeStage.alarm is not None:
            raise _FakeStage.alarm


class _FakeCamera(_FakeStage):
    pass


def _grbl_cfg(**stage: Any) -> Any:
    return parse_config({"stage": {"kind": "grbl", "port": "/dev/tppscan-stage", "home_on_start": True, **stage},
                         "camera": {"kind": "opencv", "device": "/dev/video0"}})


def test_a_missing_camera_fails_the_connection_before_the_stage_homes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The camera was opened after $H: a missing camera homed the stage again at every retry."""
    import appliance.hardware.stage.grbl as grbl
    from appliance.hardware.camera.base import CameraError
    from appliance.service import devices

    monkeypatch.setattr(grbl, "GrblStage", _FakeStage)
    monkeypatch.setattr(_FakeStage, "homes", 0)

    def no_camera(*a: object, **k: object) -> object:
        raise CameraError("no camera at /dev/video0")

    monkeypatch.setattr(devices, "open_camera", no_camera)
    with pytest.raises(CameraError):
        devices.open_devices(_grbl_cfg())
    assert _FakeStage.homes == 0
    monkeypatch.setattr(devices, "open_camera", lambda *a, **k: _FakeCamera(None))
    devices.open_devices(_grbl_cfg()).close()
    assert _FakeStage.homes == 1


@pytest.mark.parametrize(("alarm", "says"), [
    ("ALARM:9 (homing fail: limit switch not found) during homing ($H)", "check the limit switches"),
    ("board rejected '$H': error:5; homing is off on this board", "stage.home_on_start: false"),
])
def test_a_failed_homing_needs_attention(monkeypatch: pytest.MonkeyPatch, alarm: str, says: str) -> None:
    import appliance.hardware.stage.grbl as grbl
    from appliance.hardware.stage.base import HomingDisabled, StageAlarm, StageError
    from appliance.service import devices

    monkeypatch.setattr(grbl, "GrblStage", _FakeStage)
    monkeypatch.setattr(devices, "open_camera", lambda *a, **k: _FakeCamera(None))
    monkeypatch.setattr(_FakeStage, "alarm", (StageAlarm if "ALARM" in alarm else HomingDisabled)(alarm))
    with pytest.raises(daemon.NeedsAttention, match="home_on_start") as got:
        devices.open_devices(_grbl_cfg())
    assert says in str(got.value) and alarm in str(got.value)
    assert isinstance(got.value, StageError)  # a StageError: `tppscan scan --config` says it in one line


def test_needs_attention_is_not_retried_until_a_start(caplog: pytest.LogCaptureFixture) -> None:
    """A homing that failed was retried every ~7 s, forever, each $H driving the axes into the frame."""
    from appliance.service.cli import status_text

    class HomingFails(ScriptedBackend):
        def connect(self) -> None:
            self.connects += 1
            if self.connects == 1:
                raise daemon.NeedsAttention("homing at start failed: ALARM:9; check the limit switches")

    backend = HomingFails()
    svc = Service(backend, connect_retry_s=0.01, notifier=Notifier({}))
    t = _serve(svc)
    try:
        assert _wait(lambda: svc.status()["state"] == "needs attention")
        time.sleep(0.3)
        assert backend.connects == 1  # not retried on its own
        text = status_text(svc.status())
        assert "ALARM:9" in text and "'tppscan start' tries once more" in text
        r = svc.handle(TriggerEvent(Command.START, "socket"))
        assert r["ok"] and "ALARM:9" in r["message"]
        assert _wait(lambda: svc.status()["state"] == "idle")
        assert backend.connects == 2 and svc.status()["connect_error"] is None
    finally:
        _end(svc, t)


def test_connect_retries_back_off() -> None:
    backend = ScriptedBackend(fail_connects=5)
    svc = Service(backend, connect_retry_s=1.0, connect_retry_max_s=4.0, notifier=Notifier({}))
    delays: list[float] = []
    svc._sleep = delays.append  # type: ignore[method-assign,assignment]
    assert svc.connect()
    assert delays == [1.0, 2.0, 4.0, 4.0, 4.0]


# -- 2: a lost device sends the service back to connecting ---------------------------------------------------------


def test_a_scan_that_loses_a_device_reconnects(tmp_path: Path) -> None:
    class LosesTheStage(ScriptedBackend):
        lost = False

        def run_scan(self, control: Any) -> str:
            if not self.lost:
                self.lost = True
                self.fail_connects = self.connects + 2  # the board is still away for two tries
                raise daemon.DeviceLost("lost the stage on /dev/ttyACM0; 3 reconnect attempts failed")
            return super().run_scan(control)

    backend = LosesTheStage(fields=3, step_s=0.001)
    svc = Service(backend, connect_retry_s=0.05, notifier=Notifier({}))
    t = _serve(svc)
    try:
        assert _wait(lambda: svc.status()["state"] == "idle")
        assert svc.handle(TriggerEvent(Command.START, "socket"))["ok"]
        assert _wait(lambda: svc.status()["state"] == "starting")
        r = svc.handle(TriggerEvent(Command.START, "socket"))
        assert not r["ok"] and "not connected" in r["message"]
        assert _wait(lambda: svc.status()["state"] == "idle")
        assert backend.connects == 4
        assert svc.handle(TriggerEvent(Command.START, "socket"))["ok"]
        assert _wait(lambda: svc.status()["last_outcome"] == "completed")
    finally:
        _end(svc, t)


def test_the_backend_closes_lost_devices_and_makes_no_folder_unconnected(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from appliance.config.schema import Config
    from appliance.hardware.stage.grbl_link import StageConnectionError
    from appliance.service.backend import ScanBackend

    cfg = Config.model_validate({"paths": {"data_dir": str(tmp_path / "data")}})
    backend = ScanBackend(cfg)
    closed: list[bool] = []
    backend.devices = type("D", (), {"close": lambda self: closed.append(True)})()  # type: ignore[assignment]

    def lost(control: object, dev: object) -> str:
        raise StageConnectionError("lost the stage on /dev/ttyACM0 (gone); 3 reconnect attempts failed")

    monkeypatch.setattr(backend, "_run_scan", lost)
    with pytest.raises(daemon.DeviceLost, match="lost the stage"):
        backend.run_scan(None)  # type: ignore[arg-type]
    assert closed == [True] and backend.devices is None
    with pytest.raises(daemon.DeviceLost, match="not connected"):
        backend.run_scan(None)  # type: ignore[arg-type]
    assert not (tmp_path / "data" / "scans").exists()


def test_a_closed_grbl_stage_says_so_in_users_words() -> None:
    from appliance.hardware.stage.grbl import GrblStage, GrblStageConfig
    from appliance.hardware.stage.grbl_link import StageConnectionError

    with pytest.raises(StageConnectionError) as got:
        GrblStage(GrblStageConfig(port="/dev/tppscan-stage")).link  # noqa: B018
    assert "not connected" in str(got.value) and "call open()" not in str(got.value)


# -- 3: why it is still starting; folders; readiness -------------------------------------------------------------


def test_status_says_why_it_is_still_connecting_and_when_it_tries_again() -> None:
    from appliance.service.cli import status_text

    backend = ScriptedBackend(fail_connects=10_000)
    svc = Service(backend, connect_retry_s=30.0, notifier=Notifier({}))
    t = _serve(svc)
    try:
        assert _wait(lambda: svc.status()["connect_error"] is not None)
        st = svc.status()
        assert st["state"] == "starting" and st["retry_at"] > time.time() + 20
        text = status_text(st)
        assert text.startswith("starting; cannot connect the hardware: no stage at /dev/tppscan-stage; next try ")
        assert "(in 30 s)" in text or "(in 29 s)" in text
        r = svc.handle(TriggerEvent(Command.START, "socket"))
        assert not r["ok"] and "no stage at /dev/tppscan-stage" in r["message"]
        assert "no stage at" in svc.serial_reply(TriggerEvent(Command.STATUS, "serial"))
    finally:
        _end(svc, t)


def test_ready_is_sent_while_the_hardware_is_still_connecting(tmp_path: Path) -> None:
    """Under Type=notify a service still connecting was killed by the start timeout, and restarted."""
    path = tmp_path / "notify"
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(str(path))
    rx.settimeout(5)
    svc = Service(ScriptedBackend(fail_connects=10_000), connect_retry_s=0.05,
                  notifier=Notifier({"NOTIFY_SOCKET": str(path)}))
    t = _serve(svc)
    try:
        got: set[str] = set()
        while "READY=1" not in got:
            got |= set(rx.recv(4096).decode().splitlines())
        assert svc.status()["state"] == "starting"
    finally:
        _end(svc, t)
        rx.close()


def test_the_watchdog_is_fed_during_a_long_connect(tmp_path: Path) -> None:
    """READY=1 comes before connecting, so systemd's watchdog runs during a homing that may outlast WatchdogSec."""
    path = tmp_path / "notify"
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(str(path))
    rx.settimeout(5)

    class SlowConnect(ScriptedBackend):
        def connect(self) -> None:
            time.sleep(1.0)  # homing

    svc = Service(SlowConnect(), notifier=Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "300000"}))
    t = _serve(svc)
    try:
        msgs: list[str] = []
        while "READY=1" not in msgs:
            msgs += rx.recv(4096).decode().splitlines()
        during = 0
        while svc.status()["state"] == "starting":
            got = rx.recv(4096).decode().splitlines()
            during += got.count("WATCHDOG=1") if svc.status()["state"] == "starting" else 0
        assert during >= 3
    finally:
        _end(svc, t)
        rx.close()


def test_a_data_folder_that_cannot_be_written_is_a_configuration_error(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from appliance.service.inputs import check_folders

    ro = tmp_path / "ro"
    ro.mkdir()
    cfg = parse_config({"paths": {"data_dir": str(ro / "tppscan"), "log_dir": str(tmp_path / "log"),
                                  "run_dir": str(tmp_path / "run")}})
    check_folders(cfg)
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == ro else real(p, mode))
    with pytest.raises(ConfigError, match=r"paths\.data_dir .*not writable.*ReadWritePaths="):
        check_folders(cfg)
    # config check may run as another user than the service's: there it is a warning
    assert "ReadWritePaths=" in check_folders(cfg, as_service=False)[0]
    real_statvfs = os.statvfs

    class ReadOnly:
        f_flag = os.ST_RDONLY

    monkeypatch.setattr(os, "statvfs", lambda p: ReadOnly() if Path(p) == ro else real_statvfs(p))
    with pytest.raises(ConfigError, match="read-only file system"):
        check_folders(cfg, as_service=False)


# -- 4: triggers -------------------------------------------------------------------------------------------------


def test_a_trigger_that_cannot_start_is_retried_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    from appliance.service.trigger_keeper import TriggerKeeper, TriggerSpec

    tries: list[int] = []

    class Trigger:
        alive = True

        def start(self) -> None:
            tries.append(1)
            if len(tries) < 3:
                raise TriggerError("serial trigger: cannot open /dev/ttyUSB0: [Errno 2] No such file or directory")

        def stop(self) -> None:
            pass

    keeper = TriggerKeeper([TriggerSpec("serial", "/dev/ttyUSB0", Trigger)], retry_s=0.05, tick_s=0.01)
    with caplog.at_level(logging.DEBUG, logger="tppscan.service"):
        keeper.start()
        try:
            assert keeper.running == [] and "trigger serial (/dev/ttyUSB0) is down" in keeper.problems()[0]
            assert _wait(lambda: keeper.running == ["serial"])
            assert keeper.problems() == []
            errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
            assert len(errors) == 1 and "triggers.serial.enabled: false" in errors[0] and "/dev/ttyUSB0" in errors[0]
            keeper.specs[0].obj.alive = False  # its thread ended: the adapter was unplugged
            assert _wait(lambda: len(tries) == 4 and keeper.running == ["serial"])
        finally:
            keeper.stop()


def test_the_service_runs_without_a_serial_trigger_it_cannot_open(tmp_path: Path) -> None:
    from appliance.service.app import _triggers
    from appliance.service.cli import status_text

    cfg = parse_config({"paths": {"run_dir": str(tmp_path)},
                        "triggers": {"serial": {"enabled": True, "port": str(tmp_path / "ttyUSB9")},
                                     "board_button": {"enabled": False}, "socket": {"group": ""}}})
    svc = Service(ScriptedBackend(), notifier=Notifier({}))
    with _triggers(cfg, svc, None):
        text = status_text(svc.status())
    assert "trigger serial" in text and "is down" in text and "ttyUSB9" in text


def test_a_serial_trigger_on_the_stages_port_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"triggers\.serial\.port .* is the stage's port"):
        parse_config({"stage": {"kind": "grbl", "port": "/dev/ttyACM0"},
                      "triggers": {"serial": {"enabled": True, "port": "/dev/ttyACM0"}}})


def test_stopping_the_serial_console_mid_reply_does_not_crash_its_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    from appliance.hardware.triggers import events
    from appliance.hardware.triggers.serial_console import SerialConsole

    crashes: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda a: crashes.append(a.exc_value))
    release, answering = threading.Event(), threading.Event()

    class Port:
        sent = [b"STATUS\n"]
        written: list[bytes] = []

        def read(self, n: int) -> bytes:
            time.sleep(0.01)
            return self.sent.pop() if self.sent else b""

        def write(self, data: bytes) -> None:
            self.written.append(data)

        def close(self) -> None:
            pass

    def handler(ev: TriggerEvent) -> str:
        answering.set()
        release.wait(5)
        return "STATUS idle"

    orig = events.WatcherThread._stop_thread

    def stop_thread(self: Any) -> None:  # the join gave up (a slow handler): stop() went on to clear the port
        self._stop.set()

    monkeypatch.setattr(events.WatcherThread, "_stop_thread", stop_thread)
    console = SerialConsole(handler, "/dev/ttyTHS1", serial_factory=lambda *a, **k: Port())
    console.start()
    thread = console._thread
    assert answering.wait(5)
    console.stop()
    release.set()
    thread.join(5)
    monkeypatch.setattr(events.WatcherThread, "_stop_thread", orig)
    assert crashes == []


# -- 5: the virtual camera over a real stage ---------------------------------------------------------------------


def test_a_virtual_camera_over_a_real_stage_is_warned_of(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    from appliance.config.cli import _check
    from appliance.service import backend as backend_mod
    from appliance.service.backend import ScanBackend

    path = tmp_path / "c.yaml"
    path.write_text(f"stage: {{kind: grbl, port: /dev/ttyACM0}}\npaths: {{data_dir: {tmp_path}/d, log_dir: "
                    f"{tmp_path}/l, run_dir: {tmp_path}/r}}\n", encoding="utf-8")
    assert _check(argparse.Namespace(config=str(path))) == 0
    out = capsys.readouterr().out
    assert "WARNING camera: the virtual (sim) camera over the real grbl stage" in out and out.endswith(": ok\n")
    from appliance.config.schema import load_config

    b = ScanBackend(load_config(path))
    fake = type("D", (), {"stage": object(), "camera": object(), "close": lambda self: None})()
    monkeypatch.setattr(backend_mod, "open_devices", lambda cfg: fake)
    with caplog.at_level(logging.WARNING):
        b.connect()
    assert any("virtual (sim) camera over the real grbl stage" in r.getMessage() for r in caplog.records)


# -- 6: a full disk ----------------------------------------------------------------------------------------------


def test_a_start_on_a_full_disk_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    from appliance.config.schema import Config
    from appliance.scan.plan import ScanPlan
    from appliance.service.backend import ScanBackend

    backend = ScanBackend(Config.model_validate({"paths": {"data_dir": str(tmp_path / "data")}}))
    backend._plan = ScanPlan.from_yaml("faults: {min_free_mb: 1000000}")
    backend.devices = object()  # type: ignore[assignment]
    svc = Service(backend, notifier=Notifier({}))
    svc._shared.state = svc._shared.state.__class__.IDLE
    r = svc.handle(TriggerEvent(Command.START, "socket"))
    assert not r["ok"] and "faults.min_free_mb" in r["message"] and "\n" not in r["message"]
    assert r["status"]["state"] == "idle" and not (tmp_path / "data").exists()


def test_config_check_warns_of_a_disk_below_min_free_mb(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from appliance.config.cli import _check

    (tmp_path / "plan.yaml").write_text("faults: {min_free_mb: 1000000}\n", encoding="utf-8")
    path = tmp_path / "c.yaml"
    path.write_text(f"scan: {{plan: {tmp_path}/plan.yaml}}\npaths: {{data_dir: {tmp_path}/d, log_dir: {tmp_path}/l, "
                    f"run_dir: {tmp_path}/r}}\n", encoding="utf-8")
    assert _check(argparse.Namespace(config=str(path))) == 0
    out = capsys.readouterr().out
    assert "WARNING paths.data_dir: only " in out and "faults.min_free_mb (1e+06 MB)" in out


def test_a_log_handler_that_cannot_write_says_so_once(capsys: pytest.CaptureFixture[str]) -> None:
    from appliance.service import logs

    class Full(io.StringIO):
        name = "/var/log/tppscan/tppscan.log"

        def write(self, s: str) -> int:
            raise OSError(28, "No space left on device")

    h = logs._StreamHandler(Full())
    lg = logging.getLogger("tppscan.test-full")
    lg.addHandler(h)
    lg.propagate = False
    try:
        for i in range(5):
            lg.error("line %d", i)
    finally:
        lg.removeHandler(h)
        lg.propagate = True
    err = capsys.readouterr().err
    assert "Logging error" not in err and "Traceback" not in err
    assert err.count("\n") == 1 and "No space left on device" in err


# -- 7: the serial console's STATUS --------------------------------------------------------------------------------


def test_the_serial_status_says_what_tppscan_status_says() -> None:
    from appliance.service.cli import status_text

    svc = Service(ScriptedBackend(), notifier=Notifier({}))
    svc._shared.state = svc._shared.state.__class__.IDLE
    reply = svc.serial_reply(TriggerEvent(Command.STATUS, "serial"))
    assert reply == "STATUS " + status_text(svc.status()) == "STATUS idle; no scan since the service started"
