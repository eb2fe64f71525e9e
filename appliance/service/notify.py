"""systemd's readiness protocol (``Type=notify``): datagrams to ``$NOTIFY_SOCKET``, as sd_notify(3) documents.

Messages are ``KEY=VALUE`` lines: ``READY=1`` once warm and connected, ``STATUS=...`` for ``systemctl status``,
``WATCHDOG=1`` at least every half of ``$WATCHDOG_USEC``, ``STOPPING=1`` on the way out. Outside systemd
(no ``$NOTIFY_SOCKET``) every call is a no-op. A socket path starting with ``@`` is in the abstract namespace.
"""

from __future__ import annotations

import os
import socket


class Notifier:
    """Sends sd_notify messages; silent and cheap when the service does not run under systemd."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        e = os.environ if env is None else env
        path = e.get("NOTIFY_SOCKET", "")
        self._addr: str | None = None
        if path.startswith("@"):
            self._addr = "\0" + path[1:]
        elif path.startswith("/"):
            self._addr = path
        usec = e.get("WATCHDOG_USEC", "")
        pid = e.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.watchdog_s: float | None = int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 and mine else None
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        """Whether a notify socket was given."""
        return self._addr is not None

    def send(self, **fields: object) -> None:
        """Send one message; keys are upper-cased (``send(ready=1, status="idle")``)."""
        if self._addr is None:
            return
        msg = "\n".join(f"{k.upper()}={str(v).replace(chr(10), ' ')}" for k, v in fields.items()).encode()
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self._sock.sendto(msg, self._addr)
        except OSError:
            pass  # systemd gone (shutdown): nothing to tell

    def close(self) -> None:
        """Close the socket; safe twice."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
