"""The live view: a small read-only web page served on a Unix socket, reached through SSH.

``ssh -L 8080:/run/tppscan/http.sock jetson`` and then http://localhost:8080 on the user's own machine. No network
listener is ever opened (the unit has ``RestrictAddressFamilies=AF_UNIX``), there is no control over HTTP (only
GET; control stays on the group-checked control socket), and the page needs nothing from the internet.

Routes: ``/`` the page; ``/events`` a Server-Sent-Events stream (a ``state`` event with the snapshot whenever it
changed, checked every ``poll_s``, carrying only the slide map's new entries); ``/frame.jpg`` the latest frame with
its boxes and classes drawn, JPEG-encoded on request (so never while nobody watches), at most once per
``frame_interval_s`` and shared by every client (``X-Frame-Version`` says which frame it is); ``/reports/`` the
finished scans' folders (``report.html`` and its files), read-only. Runs its own asyncio loop in a thread
(aiohttp's ``UnixSite``).
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import cv2
from aiohttp import web

from appliance.service.live_feed import FrameRef, LiveFeed

STATIC = Path(__file__).with_name("static")
COLOURS = {"structure": (40, 170, 40), "debris": (40, 40, 220)}  # BGR
KEEPALIVE_S = 15.0


def render_frame(ref: FrameRef, max_width: int = 960) -> bytes:
    """The frame with its boxes and classes drawn as a JPEG, scaled down to ``max_width``.

    Runs in the server's executor, never in the scan's thread: the drawing goes on a new colour image, so the
    scan's frame is only read.
    """
    img = cv2.cvtColor(ref.image, cv2.COLOR_GRAY2BGR) if ref.image.ndim == 2 else ref.image.copy()
    for det in ref.detections:
        x0, y0, x1, y1 = (int(v) for v in det.box_px)
        colour = COLOURS.get(det.kind, (200, 120, 0))
        label = det.cls if det.kind == "structure" else "debris"
        cv2.rectangle(img, (x0, y0), (x1 - 1, y1 - 1), colour, 2)
        cv2.putText(img, label, (x0, max(12, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    if img.shape[1] > max_width:
        scale = max_width / img.shape[1]
        img = cv2.resize(img, (max_width, int(round(img.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return bytes(buf)


class LiveServer:
    """Serves the live page for one :class:`LiveFeed` on a Unix socket, in its own thread.

    Parameters
    ----------
    path : path
        The Unix socket to create (an old one is replaced).
    feed : LiveFeed
        What the scan publishes.
    reports_dir : path, optional
        The scans' folders; ``report.html`` files under it are linked and served read-only.
    group, mode : str, int
        The socket's group and permissions (who may open the page: SSH users in that group).
    poll_s : float
        How often the event stream looks for a change (the page's refresh rate at most).
    frame_interval_s : float
        At most one frame is encoded per this interval, however many frames arrive or clients ask.
    """

    def __init__(self, path: str | Path, feed: LiveFeed, reports_dir: str | Path | None = None, *,
                 group: str | None = None, mode: int = 0o660, poll_s: float = 0.25,
                 frame_interval_s: float = 0.25) -> None:
        self.path = Path(path)
        self.feed = feed
        self.reports_dir = Path(reports_dir) if reports_dir else None
        self.group = group
        self.mode = mode
        self.poll_s = poll_s
        self.frame_interval_s = frame_interval_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._jpeg: tuple[int, float, bytes] = (0, float("-inf"), b"")  # frame version, monotonic time, JPEG
        self._encode_lock: asyncio.Lock | None = None
        self._stopping: asyncio.Event | None = None
        self._reports: tuple[float, list[dict[str, str]]] = (-1e9, [])
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
        if not ready.wait(30):
            raise RuntimeError(f"live view: the server on {self.path} did not start within 30 s")
        if errors:
            raise errors[0]
        os.chmod(self.path, self.mode)
        if self.group:
            with contextlib.suppress(KeyError, PermissionError):
                os.chown(self.path, -1, grp.getgrnam(self.group).gr_gid)

    def _serve(self, ready: threading.Event, errors: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main(loop, ready))
        except BaseException as exc:  # noqa: BLE001 - handed to start()
            errors.append(exc)
            ready.set()
        finally:
            loop.close()

    async def _main(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        """Serve until :meth:`stop`; then close the site and end the open event streams."""
        stopping = asyncio.Event()
        await self._start_site()
        self._loop, self._stopping = loop, stopping
        ready.set()
        await stopping.wait()
        if self._runner is not None:
            await self._runner.cleanup()
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in rest:  # event streams still open (aiohttp does not cancel a handler whose client left)
            t.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    async def _start_site(self) -> None:
        self._encode_lock = asyncio.Lock()
        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_get("/events", self._events)
        app.router.add_get("/frame.jpg", self._frame)
        app.router.add_get("/state.json", self._state)
        app.router.add_get("/reports/", self._reports_json)
        app.router.add_get("/reports/{tail:.+}", self._report_file)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.UnixSite(self._runner, str(self.path)).start()

    def stop(self) -> None:
        """Stop serving and remove the socket; safe twice."""
        loop, self._loop = self._loop, None
        if loop is not None and self._stopping is not None:
            loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):  # never made (a failed start)
            self.path.unlink()

    # -- handlers -------------------------------------------------------------------------------------------------

    async def _page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "live.html", headers={"Cache-Control": "no-cache"})

    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response(self._snapshot(0, 0))

    def _snapshot(self, fields_from: int, objects_from: int) -> dict[str, Any]:
        snap = self.feed.snapshot(fields_from, objects_from)
        snap["reports"] = self._report_list()
        return snap

    async def _events(self, request: web.Request) -> web.StreamResponse:
        """The state as Server-Sent Events: one ``state`` event per change, the map's new entries only."""
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        seen, epoch, n_fields, n_objects = -1, -1, 0, 0
        quiet = 0.0
        try:
            while request.transport is not None and not request.transport.is_closing():
                if self.feed.version == seen:
                    quiet += self.poll_s
                    if quiet >= KEEPALIVE_S:  # a comment line: finds a client that left without a word
                        await resp.write(b": keep-alive\n\n")
                        quiet = 0.0
                else:
                    quiet = 0.0
                    snap = self._snapshot(n_fields, n_objects)
                    if snap["map"]["epoch"] != epoch:  # a new scan (or a new client): the whole map
                        snap = self._snapshot(0, 0)
                    m = snap["map"]
                    seen, epoch = snap["version"], m["epoch"]
                    n_fields, n_objects = m["fields_from"] + len(m["fields"]), m["objects_from"] + len(m["objects"])
                    await resp.write(f"event: state\ndata: {json.dumps(snap)}\n\n".encode())
                await asyncio.sleep(self.poll_s)
        except ConnectionResetError:  # the client left
            pass
        return resp

    async def _frame(self, request: web.Request) -> web.Response:
        """The latest frame as JPEG, encoded here on request, at most once per ``frame_interval_s``."""
        ref = self.feed.latest_frame()
        if ref is None:
            raise web.HTTPNotFound(text="no frame yet")
        assert self._encode_lock is not None
        async with self._encode_lock:  # concurrent requests share one encoding
            version, when, _ = self._jpeg
            loop = asyncio.get_running_loop()
            if version != ref.version and loop.time() - when >= self.frame_interval_s:
                data = await loop.run_in_executor(None, render_frame, ref)
                self._jpeg = (ref.version, loop.time(), data)
                self.frames_encoded += 1
        return web.Response(body=self._jpeg[2], content_type="image/jpeg",
                            headers={"Cache-Control": "no-store", "X-Frame-Version": str(self._jpeg[0])})

    def _report_list(self) -> list[dict[str, str]]:
        """The finished scans' reports, looked up at most every 2 s (a glob per event would cost the disk)."""
        now = time.monotonic()
        if now - self._reports[0] < 2.0:
            return self._reports[1]
        out = []
        if self.reports_dir is not None and self.reports_dir.is_dir():
            for rep in sorted(self.reports_dir.glob("*/report.html")):
                out.append({"scan": rep.parent.name, "href": f"/reports/{rep.parent.name}/report.html"})
        self._reports = (now, out)
        return out

    async def _reports_json(self, request: web.Request) -> web.Response:
        return web.json_response(self._report_list())

    async def _report_file(self, request: web.Request) -> web.StreamResponse:
        if self.reports_dir is None:
            raise web.HTTPNotFound()
        root = self.reports_dir.resolve()
        target = (root / request.match_info["tail"]).resolve()
        if root not in target.parents or not target.is_file():  # no escape from the reports folder
            raise web.HTTPNotFound()
        return web.FileResponse(target)
