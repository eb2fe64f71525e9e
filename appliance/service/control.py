"""The local control socket: ``/run/tppscan/control.sock``, mode 0660, group tppscan (docs/design.md §8).

Protocol: the client sends one JSON object on one line, ``{"command": "start"|"stop"|"pause"|"status"}``, and
reads one JSON line back: ``{"ok": true|false, "message": "...", "status": {...}}``. Requests are bounded (4 KiB);
anything else gets ``ok: false`` and the reason. Access control is the file's group and mode, so only members of
group tppscan (and root) can connect; nothing listens on a network.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import socket
import socketserver
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance.hardware.triggers.events import Command, TriggerEvent

MAX_REQUEST = 4096
Reply = dict[str, Any]
RequestHandler = Callable[[TriggerEvent], Reply]


class ControlError(RuntimeError):
    """The control socket could not be reached or answered badly (message says what to do)."""



#: Where a service that stopped (a bad config exits 2 and stays down) said why: its own log may hold only the run
#: before, since a config it could not read never opened that log.
WHY_STOPPED = "; if it stopped, 'journalctl -u tppscan -n 20' says why"

def _parse(raw: bytes) -> TriggerEvent | str:
    if len(raw) > MAX_REQUEST:
        return f"request longer than {MAX_REQUEST} bytes"
    try:
        req = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "request is not one JSON object on one line"
    if not isinstance(req, dict) or not isinstance(req.get("command"), str):
        return 'request must be {"command": "start"|"stop"|"pause"|"status"}'
    try:
        cmd = Command(req["command"].lower())
    except ValueError:
        cmd = None
    if cmd not in (Command.START, Command.STOP, Command.PAUSE, Command.STATUS):
        return f"unknown command {req['command'][:32]!r} (allowed: start, stop, pause, status)"
    args = req.get("args") or {}
    if not isinstance(args, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in args.items()):
        return "args must be an object of strings"
    return TriggerEvent(cmd, "socket", args)


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    handler_fn: RequestHandler


class _Conn(socketserver.StreamRequestHandler):
    timeout = 5.0

    def handle(self) -> None:
        try:
            raw = self.rfile.readline(MAX_REQUEST + 1)
        except OSError:
            return
        parsed = _parse(raw.strip() if len(raw) <= MAX_REQUEST else raw)
        if isinstance(parsed, str):
            reply: Reply = {"ok": False, "message": parsed}
        else:
            try:
                reply = self.server.handler_fn(parsed)  # type: ignore[attr-defined]
            except Exception as exc:  # noqa: BLE001 - one bad request must not kill the server
                reply = {"ok": False, "message": f"internal error: {exc}"}
        with contextlib.suppress(OSError):
            self.wfile.write(json.dumps(reply).encode() + b"\n")


class ControlServer:
    """Serves the control socket in a thread."""

    def __init__(self, path: str | Path, handler: RequestHandler, *, group: str | None = "tppscan",
                 mode: int = 0o660) -> None:
        self.path = Path(path)
        self.handler = handler
        self.group = group
        self.mode = mode
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind (replacing a stale socket file), set mode and group, serve.

        Raises
        ------
        ControlError
            Another service answers on the path, the group does not exist, or the folder is not writable.
        """
        self._remove_stale()
        gid = None
        if self.group:
            try:
                gid = grp.getgrnam(self.group).gr_gid
            except KeyError:
                raise ControlError(f"control socket: group {self.group!r} does not exist (systemd/install.sh "
                                   "creates it; or set triggers.socket.group)") from None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            server = _Server(str(self.path), _Conn)
        except OSError as exc:
            raise ControlError(f"control socket: cannot bind {self.path}: {exc.strerror or exc}") from None
        server.handler_fn = self.handler
        os.chmod(self.path, self.mode)
        if gid is not None and os.stat(self.path).st_gid != gid:
            try:
                os.chown(self.path, -1, gid)
            except PermissionError:
                server.server_close()
                raise ControlError(f"control socket: cannot give {self.path} to group {self.group!r} (the service "
                                   "user must be in that group)") from None
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="control-socket", daemon=True)
        self._thread.start()

    def _remove_stale(self) -> None:
        if not self.path.exists() and not self.path.is_symlink():
            return
        if not stat.S_ISSOCK(os.lstat(self.path).st_mode):
            raise ControlError(f"control socket: {self.path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.settimeout(1.0)
            probe.connect(str(self.path))
        except OSError:
            self.path.unlink()  # nobody listens: a leftover of a killed service
            return
        finally:
            probe.close()
        raise ControlError(f"control socket: another tppscan service already answers on {self.path}")

    def stop(self) -> None:
        """Stop serving and remove the socket file; safe twice."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def send_command(path: str | Path, command: str, *, timeout_s: float = 10.0,
                 args: dict[str, str] | None = None) -> Reply:
    """Send one command to the service and return its reply.

    Raises
    ------
    ControlError
        No service on the socket, no permission, no answer within ``timeout_s``, or a reply not of the shape
        this version sends.
    """
    p = Path(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout_s)
    try:
        s.connect(str(p))
        s.sendall(json.dumps({"command": command, "args": args or {}}).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    except FileNotFoundError:
        raise ControlError(f"the tppscan service is not running (no socket at {p}); "
                           f"start it with: systemctl start tppscan{WHY_STOPPED}") from None
    except ConnectionRefusedError:
        raise ControlError(f"the tppscan service is not running (nothing answers on {p}){WHY_STOPPED}") from None
    except PermissionError:
        raise ControlError(f"no permission to use {p}: add yourself to group tppscan "
                           "(sudo usermod -aG tppscan $USER, then log in again)") from None
    except TimeoutError:
        raise ControlError(f"the tppscan service did not answer within {timeout_s:g} s") from None
    except OSError as exc:  # e.g. a path longer than a Unix socket's 107 bytes: say which path
        raise ControlError(f"cannot use the control socket {p}: {exc.strerror or exc}") from None
    finally:
        s.close()
    try:
        reply = json.loads(buf.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ControlError(f"the service sent a reply that is not JSON: {buf[:80]!r}") from None
    if not _understood(reply):
        raise ControlError(f"the service sent a reply this version of tppscan does not understand (is the service "
                           f"another version? restart it after an update): {str(reply)[:80]}")
    return reply


#: The status fields ``tppscan status`` prints, and the types the service sends them as.
STATUS_FIELDS: dict[str, tuple[type, ...]] = {
    "state": (str,), "scan_id": (str, type(None)), "fields_done": (int,), "fields_total": (int,),
    "structures": (int,), "last_outcome": (str, type(None))}


def _understood(reply: object) -> bool:
    """Whether ``reply`` has the shape this version's service gives (else: another program or another version).

    That is ``ok`` and ``message``, and ``status`` with :data:`STATUS_FIELDS` unless the request was refused.
    """
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool) \
            or not isinstance(reply.get("message"), str):
        return False
    status = reply.get("status")
    if status is None:
        return not reply["ok"]  # only a refused request comes without a status
    return isinstance(status, dict) and all(_of_type(status.get(k), t) for k, t in STATUS_FIELDS.items())


def _of_type(value: object, types: tuple[type, ...]) -> bool:
    return isinstance(value, types) and not isinstance(value, bool)  # JSON true is not a count
