"""The real service (``tppscan run``) in a subprocess on Unix sockets in a temporary folder.

Shared by the service's end-to-end tests (`tests/service`) and the live view's (`tests/live`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from appliance.service.control import ControlError, send_command


def write_config(tmp: Path, slide: dict[str, Any], seed: int, *, live: bool = True, **triggers: Any) -> Path:
    """A config for the virtual microscope with every socket and folder under ``tmp``.

    ``triggers`` adds trigger sections (``serial={...}``, ``gpio={...}``) beside the control socket.
    """
    cfg = {
        "sim": {"seed": seed, "set": slide},
        "paths": {"data_dir": str(tmp / "data"), "log_dir": str(tmp / "log"), "run_dir": str(tmp / "run")},
        "triggers": {"socket": {"path": str(tmp / "run" / "control.sock"), "group": ""},
                     "board_button": {"enabled": False}, **triggers},
        "live": {"enabled": live, "socket": str(tmp / "run" / "http.sock")},
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


class ServiceProcess:
    """``python -m appliance.cli run --config FILE``, its output kept in a file."""

    def __init__(self, tmp: Path, config: Path) -> None:
        self.control = tmp / "run" / "control.sock"
        self.http = tmp / "run" / "http.sock"
        self.config = config
        # one file per start: a test may restart the service in the same folder
        self.log = open(tmp / f"service-{time.monotonic_ns()}.out", "w")  # noqa: SIM115 - closed in kill()
        self.proc = subprocess.Popen([sys.executable, "-m", "appliance.cli", "run", "--config", str(config)],
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def cli(self, command: str) -> subprocess.CompletedProcess[str]:
        """``tppscan <command> --socket <control socket>``, as a user types it."""
        return subprocess.run([sys.executable, "-m", "appliance.cli", command, "--socket", str(self.control)],
                              capture_output=True, text=True, timeout=120)

    def status(self) -> dict[str, Any]:
        """The service's ``status`` reply, through the control socket."""
        return send_command(self.control, "status", timeout_s=10)["status"]

    def wait(self, pred: Any, timeout: float, what: str) -> dict[str, Any]:
        """Poll ``status`` on the control socket until ``pred(status)``."""
        end = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < end:
            assert self.proc.poll() is None, f"service exited {self.proc.returncode}: {self.output()[-3000:]}"
            try:
                last = self.status()
                if pred(last):
                    return last
            except ControlError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"timed out waiting for {what}; last status {last}; output: {self.output()[-3000:]}")

    def output(self) -> str:
        """What the service printed so far."""
        if not self.log.closed:
            self.log.flush()
        return Path(self.log.name).read_text()

    def terminate(self, timeout: float = 120) -> int:
        """SIGTERM, as systemd stops it; its exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """Make sure it is gone (after a failed test)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        if not self.log.closed:
            self.log.close()


def socket_inodes(pid: int) -> set[str]:
    """The inodes of every socket process ``pid`` holds (``socket:[N]`` links in /proc/<pid>/fd)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    return inodes


def inet_sockets(pid: int) -> list[str]:
    """The TCP/UDP sockets (v4 and v6) process ``pid`` holds: its socket inodes found in /proc/<pid>/net."""
    inodes = socket_inodes(pid)
    found = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        with open(f"/proc/{pid}/net/{table}") as fh:
            for line in list(fh)[1:]:
                cols = line.split()
                if len(cols) > 9 and cols[9] in inodes:
                    found.append(f"{table}: {line.strip()}")
    return found


def unix_listener_inode(pid: int, path: Path) -> str | None:
    """The inode of the Unix socket bound to ``path``, as /proc/<pid>/net/unix lists it."""
    with open(f"/proc/{pid}/net/unix") as fh:
        for line in list(fh)[1:]:
            cols = line.split()
            if len(cols) >= 8 and cols[7] == str(path):
                return cols[6]
    return None
