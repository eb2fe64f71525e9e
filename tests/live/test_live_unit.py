"""The page is on by default and fits the hardened unit as shipped: exposure <= 2.0, Unix sockets only."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from appliance.config.schema import Config

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "tppscan.service"


def _unit_lines() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for ln in UNIT.read_text().splitlines():
        if "=" in ln and not ln.lstrip().startswith("#"):
            key, value = ln.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_default_config_serves_the_page_inside_the_units_runtime_directory() -> None:
    cfg = Config()
    unit = _unit_lines()
    assert cfg.live.enabled
    sock = Path(cfg.live_socket)
    assert sock.parent == Path("/run") / unit["RuntimeDirectory"][0]  # created and owned by systemd for the service
    assert sock.parent == Path(cfg.paths.run_dir)
    assert unit["RestrictAddressFamilies"] == ["AF_UNIX"] and unit["PrivateNetwork"] == ["yes"]
    assert unit["IPAddressDeny"] == ["any"]


def test_security_exposure_with_the_page_on_at_most_2(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("tppscan")
    if not exe.exists():  # a venv without the console script: any executable stands in for the path check
        exe = Path(shutil.which("true") or "/bin/true")
    unit = tmp_path / "tppscan.service"
    unit.write_text(UNIT.read_text().replace("/opt/tppscan/.venv/bin/tppscan", str(exe)))
    res = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
                         capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for tppscan.service: (\d+\.\d+)", res.stdout + res.stderr)
    assert m, res.stdout[-2000:] + res.stderr
    assert float(m.group(1)) <= 2.0, res.stdout
    # the lines that keep the page's socket from ever being a network listener are scored as met
    for check in ("RestrictAddressFamilies=~AF_(INET|INET6)", "PrivateNetwork="):
        row = next((ln for ln in res.stdout.splitlines() if check in ln), None)
        assert row is not None and row.lstrip().startswith("✓"), row
