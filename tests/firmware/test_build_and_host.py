"""The firmware's build gates: host-native unit tests under ASan/UBSan, the parser fuzzer, and flash/RAM size."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
FLASH_LIMIT = 28 * 1024
RAM_LIMIT = 1536


def make(*args: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["make", "-C", str(FIRMWARE), *args], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, **env}, check=False)
    except FileNotFoundError:
        pytest.fail("make is not installed: run scripts/setup.sh")


def test_host_native_unit_tests_pass_under_sanitizers():
    done = make("test")
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    results = re.findall(r"(\d+) checks, (\d+) failed", out)
    assert len(results) == 5, out[-2000:]                      # line, gcode, planner, settings, offsets
    assert all(int(failed) == 0 and int(checks) > 20 for checks, failed in results)
    assert "-fsanitize=address,undefined" in (FIRMWARE / "Makefile").read_text()


@pytest.mark.slow
def test_parser_fuzzer_runs_clean():
    seconds = os.environ.get("TPPSCAN_FUZZ_SECONDS", "10")
    done = make("fuzz-run", f"FUZZ_SECONDS={seconds}", timeout=int(seconds) + 300)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    runs = re.search(r"Done (\d+) runs in (\d+) second", out)
    assert runs and int(runs.group(1)) > 1000, out[-2000:]


def test_size_within_bars():
    done = make("size")
    assert done.returncode == 0, done.stdout + done.stderr
    flash = int(re.search(r"flash: (\d+) bytes", done.stdout).group(1))
    ram = int(re.search(r"ram: (\d+) bytes", done.stdout).group(1))
    assert 4096 < flash <= FLASH_LIMIT
    assert 256 < ram <= RAM_LIMIT


def test_size_gate_fails_when_over():
    done = make("size", "FLASH_LIMIT=4096")
    assert done.returncode != 0 and "OVER LIMIT" in done.stdout
    done = make("size", "RAM_LIMIT=256")
    assert done.returncode != 0 and "OVER LIMIT" in done.stdout


def test_hex_and_flash_command():
    done = make("all")
    assert done.returncode == 0, done.stderr[-2000:]
    hexfile = FIRMWARE / "build" / "tppscan-stage.hex"
    first = hexfile.read_text().splitlines()[0]
    assert first.startswith(":10000000")   # Intel HEX from address 0 (the reset vector)
    dry = make("-n", "flash", "PORT=/dev/ttyUSB7", "FLASH_BAUD=57600")
    assert "avrdude -p atmega328p -c arduino -P /dev/ttyUSB7 -b 57600" in dry.stdout
