"""A TCP -> Unix-socket forwarder on 127.0.0.1, standing in for ``ssh -L 8080:/run/tppscan/http.sock``."""

from __future__ import annotations

import socket
import socketserver
import threading
from pathlib import Path


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Forwarder:
    def __init__(self, unix_path: Path) -> None:
        target = str(unix_path)

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                up.connect(target)
                t = threading.Thread(target=_pipe, args=(up, self.request), daemon=True)
                t.start()
                _pipe(self.request, up)
                t.join(5)
                up.close()

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    def __enter__(self) -> Forwarder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
