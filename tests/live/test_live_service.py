"""Issue 13's must-shows on the real service: the page in headless Chromium during a scan, no network sockets.

The service (``tppscan run``) runs in a subprocess on the virtual microscope with its control and page sockets
in a temporary folder; the scan is started with ``tppscan start`` on the control socket; Chromium reaches the page
through a TCP <-> Unix-socket forwarder, as a user does through ``ssh -L``. Waits are generous and no timing is
asserted: the machine may be loaded.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from tests.live.forward import Forwarder
from tests.service_process import (
    ServiceProcess,
    inet_sockets,
    socket_inodes,
    unix_listener_inode,
    write_config,
)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SLIDE = {"slide.width_um": 1400, "slide.height_um": 1000, "slide.n_structures": 4}
MS = 1000


def _assert_no_network(svc: ServiceProcess) -> None:
    pid = svc.proc.pid
    assert inet_sockets(pid) == [], "the service holds a TCP or UDP socket"
    page_inode = unix_listener_inode(pid, svc.http)
    assert page_inode is not None and page_inode in socket_inodes(pid), "the page is not served by the service"


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (scripts/setup.sh installs it where it can)")
def test_page_follows_a_real_service_scan_in_headless_chromium(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    svc = ServiceProcess(tmp_path, write_config(tmp_path, SLIDE, seed=11))
    try:
        svc.wait(lambda s: s["state"] == "idle", 900, "the service to be ready")
        _assert_no_network(svc)
        with Forwarder(svc.http) as fwd, sync_playwright() as p:
            # the check can see a TCP listener where there is one: the forwarder's, in this process
            assert any(f":{fwd.port:04X} " in ln for ln in inet_sockets(os.getpid()) if ln.startswith("tcp"))
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"http://127.0.0.1:{fwd.port}/")
            page.wait_for_function("document.querySelector('#state').textContent === 'idle'", timeout=60 * MS)
            started = svc.cli("start")
            assert started.returncode == 0 and "scan started" in started.stdout, started.stdout + started.stderr
            page.wait_for_function("Number(document.body.dataset.fieldsDone) >= 1", timeout=600 * MS)
            fields0 = int(page.evaluate("document.body.dataset.fieldsDone"))
            frames0 = int(page.evaluate("document.body.dataset.frames"))
            version0 = int(page.evaluate("document.body.dataset.frameVersion || 0"))
            page.wait_for_function(f"Number(document.body.dataset.fieldsDone) >= {fields0 + 2}", timeout=600 * MS)
            page.wait_for_function(f"Number(document.body.dataset.frames) >= {frames0 + 2}", timeout=120 * MS)
            assert int(page.evaluate("document.body.dataset.frameVersion")) > version0
            assert page.text_content("#state") in ("scanning", "idle")  # idle: it finished meanwhile
            done, total = (int(v) for v in re.findall(r"\d+", page.inner_text("#fields"))[:2])
            assert done >= fields0 + 2 and total >= done
            assert page.evaluate("document.querySelector('#frame').naturalWidth") > 0
            _assert_no_network(svc)  # mid-scan, with a browser on the page
            # for the screenshot: something recorded (or the scan over), and a frame after it
            page.wait_for_function("document.querySelector('#types').rows.length > 0 || "
                                   "document.querySelector('#state').textContent === 'idle'", timeout=600 * MS)
            frames1 = int(page.evaluate("document.body.dataset.frames"))
            if page.text_content("#state") != "idle":
                page.wait_for_function(f"Number(document.body.dataset.frames) > {frames1}", timeout=120 * MS)
            shot = Path(os.environ.get("TPPSCAN_LIVE_SCREENSHOT", tmp_path / "live.png"))
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
        assert shot.stat().st_size > 10000
        svc.cli("stop")
        assert svc.terminate() == 0
    finally:
        svc.kill()
