"""The live view: a small read-only web page served on a Unix socket, reached through SSH.

``ssh -L 8080:/run/tppscan/http.sock jetson`` and then http://localhost:8080 on the user's own machine. No network
listener is ever opened (the unit has ``RestrictAddressFamilies=AF_UNIX``), there is no control over HTTP (only
GET; control stays on the group-checked control socket), and the page needs nothing from the internet.

Routes: ``/`` the page; ``/events`` a Server-Sent-Events stream (a ``state`` event with the snapshot whenever it
changed, checked every ``poll_s``); ``/frame.jpg`` the latest frame with its boxes, JPEG-encoded on request and
cached per frame version; ``/reports/`` the finished scans' folders (``report.html`` and its files), read-only.
Runs its own asyncio loop in a thread (aiohttp's ``UnixSite``).
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import os
import threading
from pathlib import Path
from typing import Any

import cv2
from aiohttp import web

from appliance.service.live_feed import FrameRef, LiveFeed

STATIC = Path(__file__).with_name("static")
COLOURS = {"structure": (40, 170, 40), "debris": (40, 40, 220)}


def render_frame(ref: FrameRef, max_width: int = 960) -> bytes:
    """The frame with its boxes as a JPEG (grey frame, coloured boxes), scaled down to ``max_width``."""
    img = cv2.cvtColor(ref.image, cv2.COLOR_GRAY2BGR)
    for x0, y0, x1, y1, label in ref.boxes:
        colour = COLOURS.get(label.split(":")[0], (200, 120, 0))
        cv2.rectangle(img, (int(x0), int(y0)), (int(x1), int(y1)), colour, 2)
        cv2.putText(img, label, (int(x0), max(12, int(y0) - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1,
                    cv2.LINE_AA)
    if img.shape[1] > max_width:
        scale = max_width / img.shape[1]
        img = cv2.resize(img, (max_width, int(round(img.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return bytes(buf)


class LiveServer:
    """Serves the live page for one :class:`LiveFeed` on a Unix socket, in its own thread."""

    def __init__(self, path: str | Path, feed: LiveFeed, reports_dir: str | Path | None = None, *,
                 group: str | None = None, mode: int = 0o660, poll_s: float = 0.25) -> None:
        self.path = Path(path)
        self.feed = feed
        self.reports_dir = Path(reports_dir) if reports_dir else None
        self.group = group
        self.mode = mode
        self.poll_s = poll_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._jpeg: tuple[int, bytes] = (0, b"")
        self.frames_encoded = 0

    # -- lifecycle ------------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Bind the socket and serve; returns once it accepts connections."""
        if self.path.exists() or self.path.is_symlink():
            self.path.unlink()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        ready = threading.Event()
        errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._serve, args=(ready, errors), name="live-view", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        os.chmod(self.path, self.mode)
        if self.group:
            with contextlib.suppress(KeyError, PermissionError):
                os.chown(self.path, -1, grp.getgrnam(self.group).gr_gid)

    def _serve(self, ready: threading.Event, errors: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._start_site())
        except BaseException as exc:  # noqa: BLE001 - handed to start()
            errors.append(exc)
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup() if self._runner else asyncio.sleep(0))
        loop.close()

    async def _start_site(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_get("/events", self._events)
        app.router.add_get("/frame.jpg", self._frame)
        app.router.add_get("/state.json", self._state)
        app.router.add_get("/reports/", self._reports)
        app.router.add_get("/reports/{tail:.+}", self._report_file)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.UnixSite(self._runner, str(self.path)).start()

    def stop(self) -> None:
        """Stop serving and remove the socket; safe twice."""
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    # -- handlers -------------------------------------------------------------------------------------------------

    async def _page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "live.html", headers={"Cache-Control": "no-cache"})

    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response(self._snapshot())

    def _snapshot(self) -> dict[str, Any]:
        snap = self.feed.snapshot()
        snap["reports"] = self._report_list()
        return snap

    async def _events(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        seen = -1
        try:
            while True:
                if self.feed.version != seen:
                    snap = self._snapshot()
                    seen = snap["version"]
                    await resp.write(f"event: state\ndata: {json.dumps(snap)}\n\n".encode())
                await asyncio.sleep(self.poll_s)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return resp

    async def _frame(self, request: web.Request) -> web.Response:
        ref = self.feed.latest_frame()
        if ref is None:
            raise web.HTTPNotFound(text="no frame yet")
        if self._jpeg[0] != ref.version:
            data = await asyncio.get_running_loop().run_in_executor(None, render_frame, ref)
            self._jpeg = (ref.version, data)
            self.frames_encoded += 1
        return web.Response(body=self._jpeg[1], content_type="image/jpeg", headers={"Cache-Control": "no-store"})

    def _report_list(self) -> list[dict[str, str]]:
        if self.reports_dir is None or not self.reports_dir.is_dir():
            return []
        out = []
        for rep in sorted(self.reports_dir.glob("*/report.html")):
            out.append({"scan": rep.parent.name, "href": f"/reports/{rep.parent.name}/report.html"})
        return out

    async def _reports(self, request: web.Request) -> web.Response:
        return web.json_response(self._report_list())

    async def _report_file(self, request: web.Request) -> web.StreamResponse:
        if self.reports_dir is None:
            raise web.HTTPNotFound()
        root = self.reports_dir.resolve()
        target = (root / request.match_info["tail"]).resolve()
        if root not in target.parents or not target.is_file():  # no escape from the reports folder
            raise web.HTTPNotFound()
        return web.FileResponse(target)

