"""Finding the stage's serial port: a configured path, or the first port with a given USB VID:PID."""

from __future__ import annotations

import re

from serial.tools import list_ports

from appliance.hardware.stage.base import StageError

_USB_ID_RE = re.compile(r"^([0-9a-fA-F]{4}):([0-9a-fA-F]{4})$")


class PortNotFound(StageError):
    """No serial port matched the configuration."""


def parse_usb_id(usb_id: str) -> tuple[int, int]:
    """Parse ``"VID:PID"`` (4 hex digits each, e.g. ``"2341:0043"`` for an Arduino Uno).

    Raises
    ------
    ValueError
        If the text is not two 4-digit hex numbers separated by a colon.
    """
    m = _USB_ID_RE.match(usb_id.strip())
    if not m:
        raise ValueError(f"usb_id must be 'VID:PID' with 4 hex digits each (e.g. '2341:0043'), got {usb_id!r}")
    return int(m.group(1), 16), int(m.group(2), 16)


def find_port(port: str | None, usb_id: str | None) -> str:
    """The device path to open.

    Parameters
    ----------
    port : str or None
        A path (``/dev/ttyACM0``, ``/dev/serial/by-id/...``) or pyserial URL; used as is when given.
    usb_id : str or None
        ``"VID:PID"``; the first port listed by ``serial.tools.list_ports`` with that id is used.

    Returns
    -------
    str

    Raises
    ------
    PortNotFound
        If neither is given, or no port has the USB id (the message lists the ports seen).
    """
    if port:
        return port
    if not usb_id:
        raise PortNotFound("no serial port configured: give port (e.g. /dev/ttyACM0) or usb_id (VID:PID)")
    vid, pid = parse_usb_id(usb_id)
    seen = []
    for info in sorted(list_ports.comports(), key=lambda p: p.device):
        if info.vid == vid and info.pid == pid:
            return str(info.device)
        ids = f"{info.vid:04x}:{info.pid:04x}" if info.vid is not None and info.pid is not None else "no USB id"
        seen.append(f"{info.device} ({ids})")
    raise PortNotFound(f"no serial port with USB id {usb_id}; ports seen: {', '.join(seen) or 'none'}. An Uno "
                       "clone has another id (CH340 1a86:7523, FTDI 0403:6001): give its usb_id, or the port itself "
                       "(/dev/tppscan-stage once systemd/99-tppscan-stage.rules is installed)")
