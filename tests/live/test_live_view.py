"""The live view in a real browser (headless Chromium) through a TCP <-> Unix-socket forwarder, as over SSH."""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from appliance.service.live import LiveServer
from appliance.service.live_feed import LiveFeed
from tests.live.forward import Forwarder

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _feed_virtual_scan(feed: LiveFeed, stop: threading.Event, fields: int = 40) -> None:
    """Frames from the virtual microscope over a small grid, published as a scan would."""
    from appliance.sim.microscope import VirtualMicroscope

    scope = VirtualMicroscope(seed=4)
    with scope.stage, scope.camera:
        w_um, h_um = 358.0, 269.0
        for i in range(fields):
            if stop.is_set():
                return
            x, y = 2000 + (i % 8) * w_um, 2000 + (i // 8) * h_um
            scope.stage.move_to_um(x=x, y=y)
            frame = scope.camera.capture()
            boxes = [(*b.box_px, f"{b.cls}") for b in scope.boxes_in_view(frame)]
            feed.frame(frame.image, boxes)
            feed.field(x - w_um / 2, y - h_um / 2, w_um, h_um, 90.0 + 0.1 * i)
            for b in scope.boxes_in_view(frame):
                feed.obj(x, y, "structure" if b.kind == "structure" else "debris", b.cls)
            feed.status(state="scanning", scan_id="1", fields_done=i + 1, fields_total=fields, structures=i // 3,
                        eta_s=(fields - i) * 0.3)
            feed.log_line(f"field {i} done")
            time.sleep(0.3)


def _get(path: Path, url: str, method: str = "GET") -> tuple[int, bytes]:
    class UnixConn(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(str(path))

    c = UnixConn("localhost", timeout=5)
    c.request(method, url)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


@pytest.fixture
def served(tmp_path: Path):  # noqa: ANN201
    reports = tmp_path / "scans"
    (reports / "3").mkdir(parents=True)
    (reports / "3" / "report.html").write_text("<html><body>report 3</body></html>")
    (tmp_path / "secret.txt").write_text("not for the web")
    feed = LiveFeed()
    server = LiveServer(tmp_path / "http.sock", feed, reports)
    server.start()
    yield server, feed, tmp_path
    server.stop()


def test_read_only_and_confined(served) -> None:  # noqa: ANN001
    server, feed, tmp = served
    sock = tmp / "http.sock"
    assert oct(os.stat(sock).st_mode & 0o777) == "0o660"
    assert _get(sock, "/")[0] == 200
    assert _get(sock, "/frame.jpg")[0] == 404  # no frame yet
    assert _get(sock, "/", "POST")[0] == 405
    assert _get(sock, "/events", "DELETE")[0] == 405
    assert _get(sock, "/reports/3/report.html") == (200, b"<html><body>report 3</body></html>")
    assert _get(sock, "/reports/../secret.txt")[0] == 404
    assert _get(sock, "/reports/%2e%2e/secret.txt")[0] == 404
    assert server.frames_encoded == 0  # nothing encoded while nobody asked


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (scripts/setup.sh installs it)")
def test_page_updates_in_headless_chromium(served, tmp_path: Path) -> None:  # noqa: ANN001
    from playwright.sync_api import sync_playwright

    server, feed, tmp = served
    stop = threading.Event()
    feeder = threading.Thread(target=_feed_virtual_scan, args=(feed, stop), daemon=True)
    feeder.start()
    try:
        with Forwarder(tmp / "http.sock") as fwd, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"http://127.0.0.1:{fwd.port}/")
            page.wait_for_function("Number(document.body.dataset.frames) >= 2", timeout=30000)
            first = int(page.evaluate("document.body.dataset.fieldsDone"))
            page.wait_for_function(f"Number(document.body.dataset.fieldsDone) >= {first + 2}", timeout=30000)
            assert int(page.evaluate("document.body.dataset.updates")) >= 3
            assert page.text_content("#state") == "scanning"
            assert "scan 3" in page.inner_text("#reports")
            shot = Path(os.environ.get("TPPSCAN_LIVE_SCREENSHOT", tmp_path / "live.png"))
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
        assert shot.stat().st_size > 10000
        assert server.frames_encoded >= 2
    finally:
        stop.set()
        feeder.join(10)
