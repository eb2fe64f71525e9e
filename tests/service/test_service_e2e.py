"""The service as a user meets it: a subprocess started from a config, triggered, stopped, restarted.

A small virtual slide keeps each scan short. Checks: each trigger starts a real (simulated) scan; status is
reported; SIGTERM mid-scan leaves the scan interrupted; after a restart START resumes it and no field is lost or
done twice; the service never opens a TCP or UDP socket.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import tty
from pathlib import Path
from typing import Any

import pytest

from appliance.service.control import send_command
from tests.service_process import ServiceProcess, inet_sockets, write_config

SLIDE = {"slide.width_um": 1400, "slide.height_um": 1000, "slide.n_structures": 3}


def _config(tmp: Path, **triggers: Any) -> Path:
    return write_config(tmp, SLIDE, seed=11, live=False, **triggers)


def _db_fields(tmp: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    db = sqlite3.connect(tmp / "data" / "tppscan.db")
    try:
        scans = db.execute("SELECT id, status, fields_planned, out_dir FROM scan").fetchall()
        fields = db.execute("SELECT scan_id, cell FROM field").fetchall()
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()
    return scans, fields


@pytest.mark.slow
def test_serial_start_sigterm_mid_scan_then_socket_resumes(tmp_path: Path) -> None:
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    cfg = _config(tmp_path, serial={"enabled": True, "port": os.ttyname(slave)})
    svc = ServiceProcess(tmp_path, cfg)
    try:
        svc.wait(lambda s: s["state"] == "idle", 300, "the service to be ready")
        assert inet_sockets(svc.proc.pid) == []
        os.write(master, b"START\r\n")
        reply = b""
        end = time.monotonic() + 30
        while not reply.endswith(b"\r\n") and time.monotonic() < end:
            reply += os.read(master, 256)
        assert reply.startswith(b"OK scan started"), reply
        st = svc.wait(lambda s: s["fields_done"] >= 2, 600, "two fields")
        planned = st["fields_total"]
        assert svc.terminate() == 0
    finally:
        svc.kill()
        os.close(master)
        os.close(slave)
    scans, fields = _db_fields(tmp_path)
    assert len(scans) == 1 and scans[0][1] != "finished"
    done_before = len(fields)
    assert 2 <= done_before < planned

    svc = ServiceProcess(tmp_path, _config(tmp_path))
    try:
        svc.wait(lambda s: s["state"] == "idle", 300, "the restarted service")
        started = send_command(svc.control, "start")
        assert started["ok"] and started["message"] == f"scan resumed (scan 1, {done_before} of {planned} fields done)"
        st = svc.wait(lambda s: s["state"] == "idle" and s["last_outcome"] is not None, 900, "the scan to finish")
        assert st["last_outcome"] == "completed", svc.output()[-3000:]
        assert inet_sockets(svc.proc.pid) == []
        assert svc.terminate() == 0
    finally:
        svc.kill()
    scans, fields = _db_fields(tmp_path)
    assert len(scans) == 1 and scans[0][1] == "finished"  # resumed, not started again
    cells = [c for _, c in fields]
    assert len(cells) == scans[0][2] == len(set(cells))  # every planned field once: none lost, none twice
    folder = Path(scans[0][3])
    assert (folder / "report.html").is_file() and (folder / "summary.json").is_file()
    summary = json.loads((folder / "summary.json").read_text())  # scored against the virtual slide as a CLI scan is
    assert summary["recall"] is not None and "height_rmse_um_by_type" in summary
    sid = scans[0][0]  # the id status gave: the log lines name the scan by it, not by its folder
    end = f"scan={sid} scan {sid} completed: {len(cells)} of {len(cells)} fields, "
    own = (folder / "scan.log").read_text()
    assert f"scan={sid} scan {sid} started" in own and f"scan={sid} scan {sid} resumed" in own and end in own, own
    assert own.count("structure found type=") >= summary["structures_recorded"] >= 1, own  # merged pieces: fewer
    logs = subprocess.run([sys.executable, "-m", "appliance.cli", "logs", "--log-dir", str(tmp_path / "log"),
                           "--scan", str(sid)], capture_output=True, text=True, timeout=60)
    assert logs.returncode == 0 and end in logs.stdout and f"; report {folder / 'report.html'}" in logs.stdout


def _in_process_service(tmp: Path, **triggers: Any) -> tuple[Any, threading.Thread, Any]:
    from appliance.config.schema import load_config
    from appliance.service.app import _triggers
    from appliance.service.backend import ScanBackend
    from appliance.service.daemon import Service
    from appliance.service.notify import Notifier

    cfg = load_config(_config(tmp, **triggers))
    backend = ScanBackend(cfg)
    svc = Service(backend, notifier=Notifier({}))
    ctx = _triggers(cfg, svc, backend)
    ctx.__enter__()
    t = threading.Thread(target=svc.run, kwargs={"install_signals": False}, daemon=True)
    t.start()
    return svc, t, ctx


def _until(pred: Any, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_gpio_button_starts_and_long_press_stops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.triggers.fake_gpiod import Chip, make_gpiod

    chip = Chip("/dev/gpiochip0")
    monkeypatch.setitem(sys.modules, "gpiod", make_gpiod({chip.path: chip}))
    svc, t, ctx = _in_process_service(tmp_path, gpio={"enabled": True, "chip": chip.path, "line": 7})
    try:
        assert _until(lambda: svc.status()["state"] == "idle", 300)
        now = time.monotonic_ns()
        chip.requests[7].drive(7, 0, now)
        chip.requests[7].drive(7, 1, now + 100_000_000)  # a short press: start
        assert _until(lambda: (svc.status()["fields_done"] or 0) >= 1, 600)
        chip.requests[7].drive(7, 0, now + 10**9)
        chip.requests[7].drive(7, 1, now + 4 * 10**9)  # held 3 s: stop
        assert _until(lambda: svc.status()["state"] == "idle", 300)
        assert svc.status()["last_outcome"] == "cancelled"
    finally:
        svc.request_shutdown()
        t.join(120)
        ctx.__exit__(None, None, None)


@pytest.mark.slow
@pytest.mark.simavr
def test_board_button_on_the_real_firmware_starts_a_scan(tmp_path: Path) -> None:
    from appliance.hardware.stage.grbl import GrblStage, GrblStageConfig
    from appliance.hardware.stage.simavr_board import SimavrBoard, build_firmware
    from appliance.hardware.triggers.board_button import BoardButton

    svc, t, ctx = _in_process_service(tmp_path)
    elf, runner = build_firmware()
    try:
        with SimavrBoard(elf, runner) as board, GrblStage(GrblStageConfig(port=board.pty_path)) as button_board:
            watcher = BoardButton(svc.handle, button_board.pending_messages, poll_s=0.05)
            assert _until(lambda: svc.status()["state"] == "idle", 300)
            watcher.start()
            try:
                board.set_button(True)
                time.sleep(0.3)
                board.set_button(False)
                assert _until(lambda: svc.status()["state"] == "scanning", 30), svc.status()
            finally:
                watcher.stop()
            assert json.dumps(svc.status())
    finally:
        svc.request_shutdown()
        t.join(300)
        ctx.__exit__(None, None, None)
