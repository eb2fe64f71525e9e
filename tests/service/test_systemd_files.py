"""The systemd unit, tmpfiles.d entry, udev rule and install script, checked by systemd's own tools."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.config.schema import load_config

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "tppscan.service"
INSTALLED_EXEC = "/opt/tppscan/.venv/bin/tppscan"


def _unit_with_local_exec(tmp_path: Path) -> Path:
    """The unit as shipped, with ExecStart pointing at this checkout's tppscan (systemd-analyze checks it exists)."""
    exe = Path(sys.executable).with_name("tppscan")
    if not exe.exists():  # a venv without the console script: any executable stands in for the path check
        exe = Path(shutil.which("true") or "/bin/true")
    text = UNIT.read_text()
    assert INSTALLED_EXEC in text
    out = tmp_path / "tppscan.service"
    out.write_text(text.replace(INSTALLED_EXEC, str(exe)))
    return out


def test_unit_verifies_with_nothing_on_stderr(tmp_path: Path) -> None:
    unit = _unit_with_local_exec(tmp_path)
    res = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stderr == "", res.stderr


def test_security_exposure_at_most_2(tmp_path: Path) -> None:
    unit = _unit_with_local_exec(tmp_path)
    res = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
                         capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for tppscan.service: (\d+\.\d+)", res.stdout + res.stderr)
    assert m, res.stdout[-2000:] + res.stderr
    assert float(m.group(1)) <= 2.0


def test_unit_opens_no_network_and_notifies() -> None:
    text = UNIT.read_text()
    for line in ("Type=notify", "RestrictAddressFamilies=AF_UNIX", "PrivateNetwork=yes", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "User=tppscan", "DevicePolicy=closed",
                 "DeviceAllow=char-ttyACM rw", "DeviceAllow=char-video4linux rw", "DeviceAllow=char-gpiochip rw",
                 "RuntimeDirectory=tppscan", "StateDirectory=tppscan", "LogsDirectory=tppscan", "WatchdogSec="):
        assert any(ln.startswith(line) for ln in text.splitlines()), line


def test_tmpfiles_create_the_folders(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("tppscan:x:990:990::/var/lib/tppscan:/usr/sbin/nologin\n")
    (tmp_path / "etc/group").write_text("tppscan:x:990:\n")
    res = subprocess.run(["systemd-tmpfiles", "--create", f"--root={tmp_path}",
                          str(ROOT / "systemd/tppscan.tmpfiles.conf")], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    for d in ("var/lib/tppscan/scans", "var/log/tppscan"):
        st = (tmp_path / d).stat()
        assert (st.st_uid, st.st_mode & 0o777) == (990, 0o750)


def test_udev_rule_names_the_stage_link() -> None:
    rules = [ln for ln in (ROOT / "systemd/99-tppscan-stage.rules").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert rules
    for ln in rules:
        keys = [k.strip() for k in ln.split(",")]
        assert all(re.fullmatch(r'[A-Z]+(\{\w+\})?(==|\+=|=)"[^"]*"', k) for k in keys), ln
    assert sum('SYMLINK+="tppscan-stage"' in ln for ln in rules) >= 1


def test_install_script_dry_run_writes_every_file(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "PYTHONPATH": str(ROOT)}
    res = subprocess.run(["bash", str(ROOT / "systemd/install.sh"), "--destdir", str(tmp_path)],
                         capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    for f in ("etc/systemd/system/tppscan.service", "etc/udev/rules.d/99-tppscan-stage.rules",
              "etc/tmpfiles.d/tppscan.conf", "etc/tppscan/config.yaml"):
        assert (tmp_path / f).is_file(), f
    cfg = load_config(tmp_path / "etc/tppscan/config.yaml")
    assert cfg.models.detector is None  # the shipped model
    (tmp_path / "etc/tppscan/config.yaml").write_text("camera: {width: 800}\n")  # a user's edit survives a rerun
    subprocess.run(["bash", str(ROOT / "systemd/install.sh"), "--destdir", str(tmp_path)], check=True,
                   capture_output=True, timeout=120, env=env)
    assert load_config(tmp_path / "etc/tppscan/config.yaml").camera.width == 800


def test_install_script_links_the_command_and_adds_the_jetson_drop_in_on_a_jetson(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "PYTHONPATH": str(ROOT)}
    drop_in = "etc/systemd/system/tppscan.service.d/jetson.conf"
    res = subprocess.run(["bash", str(ROOT / "systemd/install.sh"), "--destdir", str(tmp_path / "pc")],
                         capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    link = tmp_path / "pc/usr/local/bin/tppscan"
    assert link.is_symlink() and link.readlink() == ROOT / ".venv/bin/tppscan"
    assert "usermod -aG tppscan" in res.stderr
    assert not (tmp_path / "pc" / drop_in).exists() or Path("/etc/nv_tegra_release").exists()
    res = subprocess.run(["bash", str(ROOT / "systemd/install.sh"), "--destdir", str(tmp_path / "jetson")],
                         capture_output=True, text=True, timeout=120, env={**env, "TPPSCAN_JETSON": "1"})
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "jetson" / drop_in).read_text() == (ROOT / "systemd/tppscan-jetson.conf").read_text()


def test_the_jetson_drop_in_verifies_with_the_unit_and_lifts_only_what_the_jetson_needs(tmp_path: Path) -> None:
    unit = _unit_with_local_exec(tmp_path)
    (tmp_path / "tppscan.service.d").mkdir()
    (tmp_path / "tppscan.service.d/jetson.conf").write_text((ROOT / "systemd/tppscan-jetson.conf").read_text())
    res = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    keys = {ln.split("=", 1)[0] for ln in (ROOT / "systemd/tppscan-jetson.conf").read_text().splitlines()
            if ln and not ln.startswith(("#", "["))}
    assert keys == {"DeviceAllow", "DevicePolicy", "PrivateTmp", "PrivateIPC", "ProcSubset"}  # the network stays shut


@pytest.mark.parametrize("args", [["--bogus"], ["--destdir"]])
def test_install_script_bad_options_exit_2(args: list[str]) -> None:
    res = subprocess.run(["bash", str(ROOT / "systemd/install.sh"), *args], capture_output=True, text=True,
                         timeout=30)
    assert res.returncode == 2 and res.stderr.count("\n") == 1
