"""The live server on its own: read-only, confined to the reports, frames drawn and encoded only on request."""

from __future__ import annotations

import http.client
import json
import os
import socket
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.scan.protocols import Detection
from appliance.service.live import LiveServer, render_frame
from appliance.service.live_feed import FrameRef, LiveFeed


class UnixConn(http.client.HTTPConnection):
    """HTTP over a Unix socket."""

    def __init__(self, path: Path, timeout: float = 10) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def _get(path: Path, url: str, method: str = "GET") -> tuple[int, bytes]:
    status, body, _ = _get_full(path, url, method)
    return status, body


def _get_full(path: Path, url: str, method: str = "GET") -> tuple[int, bytes, http.client.HTTPResponse]:
    c = UnixConn(path)
    c.request(method, url)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body, r


@pytest.fixture
def served(tmp_path: Path):  # noqa: ANN201
    reports = tmp_path / "scans"
    (reports / "3").mkdir(parents=True)
    (reports / "3" / "report.html").write_text("<html><body>report 3</body></html>")
    (tmp_path / "secret.txt").write_text("not for the web")
    feed = LiveFeed()
    server = LiveServer(tmp_path / "http.sock", feed, reports, poll_s=0.05, frame_interval_s=3600)
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


def _frame_with_a_box() -> tuple[np.ndarray, tuple[Detection, ...]]:
    img = np.full((240, 320), 200, np.uint8)
    return img, (Detection((40, 50, 140, 150), "structure", "woodpile", 0.93),
                 Detection((200, 60, 230, 90), "debris", "debris", 0.8))


def test_boxes_and_classes_are_drawn_at_encode_time_without_touching_the_frame() -> None:
    img, dets = _frame_with_a_box()
    before = img.copy()
    jpeg = render_frame(FrameRef(img, dets, 1))
    assert np.array_equal(img, before)  # the scan's frame is only read
    out = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert out.shape == (240, 320, 3)
    b, g, r = (int(v) for v in out[100, 40])  # the structure's box edge: green
    assert g > 120 and g - r > 60 and g - b > 60, (b, g, r)
    b, g, r = (int(v) for v in out[75, 200])  # the debris box edge: red
    assert r > 150 and r - g > 80, (b, g, r)
    assert np.abs(out[100, 90].astype(int) - 200).max() < 25  # inside the box: the frame itself
    plain = cv2.imdecode(np.frombuffer(render_frame(FrameRef(img, (), 1)), np.uint8), cv2.IMREAD_COLOR)
    assert np.abs(plain[100, 40].astype(int) - 200).max() < 25  # no detections, no box


def test_frame_encoded_once_per_interval_and_only_when_asked(served) -> None:  # noqa: ANN001
    server, feed, tmp = served
    sock = tmp / "http.sock"
    img, dets = _frame_with_a_box()
    for _ in range(50):  # the scan hands frames over; nobody watches
        feed.frame(img, dets)
    assert server.frames_encoded == 0
    status, body, resp = _get_full(sock, "/frame.jpg")
    assert status == 200 and body[:2] == b"\xff\xd8" and resp.getheader("X-Frame-Version") == "50"
    feed.frame(img, dets)
    status, body2, resp = _get_full(sock, "/frame.jpg")  # within the interval: the same encoding again
    assert status == 200 and body2 == body and resp.getheader("X-Frame-Version") == "50"
    assert server.frames_encoded == 1
    server.frame_interval_s = 0.0
    _, _, resp = _get_full(sock, "/frame.jpg")
    assert resp.getheader("X-Frame-Version") == "51" and server.frames_encoded == 2


def test_event_stream_sends_the_map_in_pieces(served) -> None:  # noqa: ANN001
    server, feed, tmp = served
    feed.reset_map()
    feed.field(0, 0, 1, 1, 90.0)
    feed.field(1, 0, 1, 1, 91.0)
    c = UnixConn(tmp / "http.sock")
    c.request("GET", "/events")
    r = c.getresponse()

    def next_event() -> dict:
        while True:
            line = r.fp.readline()
            assert line, "the stream ended"
            if line.startswith(b"data: "):
                return json.loads(line[6:])

    first = next_event()
    assert first["map"]["fields_from"] == 0 and len(first["map"]["fields"]) == 2
    assert first["reports"] == [{"scan": "3", "href": "/reports/3/report.html"}]
    feed.field(2, 0, 1, 1, 92.0)
    second = next_event()
    assert second["map"]["fields_from"] == 2 and [f["x"] for f in second["map"]["fields"]] == [2]
    feed.reset_map()
    feed.field(9, 0, 1, 1, None)
    third = next_event()
    assert third["map"]["epoch"] == first["map"]["epoch"] + 1
    assert third["map"]["fields_from"] == 0 and [f["x"] for f in third["map"]["fields"]] == [9]
    c.close()


@pytest.mark.parametrize("where", ["under-a-file", "too-long"])
def test_a_socket_that_cannot_be_made_is_an_os_error_not_a_hang(tmp_path: Path, where: str) -> None:
    (tmp_path / "file").write_text("")
    path = tmp_path / "file" / "http.sock" if where == "under-a-file" else tmp_path / ("x" * 120) / "http.sock"
    server = LiveServer(path, LiveFeed())
    with pytest.raises(OSError):
        server.start()
    server.stop()
