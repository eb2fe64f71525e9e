"""Assembles the service from the config: logging, backend, control socket, triggers; runs it."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from appliance.config.schema import Config
from appliance.service.control import ControlError, ControlServer
from appliance.service.daemon import Service
from appliance.service.logs import setup_logging
from appliance.service.trigger_keeper import TriggerKeeper, TriggerSpec

log = logging.getLogger("tppscan.service")


def run_service(cfg: Config) -> int:
    """Run the service until SIGTERM; the process's exit code."""
    from appliance.service.backend import ScanBackend
    from appliance.service.live import LiveServer
    from appliance.service.live_feed import FeedLogHandler, LiveFeed

    setup_logging(cfg.logging.level, cfg.paths.log_dir if cfg.logging.file else None,
                  max_bytes=cfg.logging.max_bytes, backups=cfg.logging.backups)
    feed = LiveFeed()
    logging.getLogger().addHandler(FeedLogHandler(feed))
    backend = ScanBackend(cfg, feed)
    try:  # the plan and the model files: every start-up error before a trigger or a device is touched
        backend.warm()
    except (OSError, ValueError) as exc:
        print(f"tppscan run: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1
    service = Service(backend, connect_retry_s=cfg.stage.connect_retry_s, on_status=lambda st: feed.status(**st),
                      results_db=Path(cfg.paths.data_dir) / "tppscan.db")
    live = None
    if cfg.live.enabled:
        live = LiveServer(cfg.live_socket, feed, Path(cfg.paths.data_dir) / "scans", group=cfg.triggers.socket.group,
                          mode=cfg.triggers.socket.mode)
        try:
            live.start()
        except OSError as exc:
            print(f"tppscan run: live.socket {cfg.live_socket}: cannot serve the live view: {exc.strerror or exc}",
                  file=sys.stderr)
            return 1
    try:
        with _triggers(cfg, service, backend):
            return service.run()
    except ControlError as exc:  # the control socket cannot start: its message names it and why
        print(f"tppscan run: {exc}", file=sys.stderr)
        return 1
    finally:
        if live is not None:
            live.stop()


@contextlib.contextmanager
def _triggers(cfg: Config, service: Service, backend: Any) -> Iterator[None]:
    """Start the control socket and the configured triggers; stop them all on the way out.

    The control socket is the service's own (it cannot start: exit 1); a trigger that cannot start is kept by a
    :class:`TriggerKeeper`, which logs it once, reports it in ``status`` and retries it with back-off.
    """
    t = cfg.triggers
    control = ControlServer(cfg.control_socket, service.handle, group=t.socket.group or None, mode=t.socket.mode)
    control.start()
    specs: list[TriggerSpec] = []
    if t.gpio.enabled:
        def gpio() -> Any:
            from appliance.hardware.triggers.gpio_button import GpioButton

            return GpioButton(service.handle, t.gpio.chip, t.gpio.line, active_low=t.gpio.active_low,
                              debounce_ms=t.gpio.debounce_ms, long_press_s=t.gpio.long_press_s)
        specs.append(TriggerSpec("gpio", f"{t.gpio.chip} line {t.gpio.line}", gpio))
    if t.serial.enabled:
        def serial_console() -> Any:
            from appliance.hardware.triggers.serial_console import SerialConsole

            return SerialConsole(service.serial_reply, t.serial.port, t.serial.baud)
        specs.append(TriggerSpec("serial", t.serial.port, serial_console))
    if t.board_button.enabled and hasattr(backend, "board_messages"):
        def board_button() -> Any:
            from appliance.hardware.triggers.board_button import BoardButton

            return BoardButton(service.handle, backend.board_messages, long_press_s=t.gpio.long_press_s)
        specs.append(TriggerSpec("board_button", "the stage board", board_button))
    keeper = TriggerKeeper(specs)
    service.problems = keeper.problems
    try:
        keeper.start()
        log.info("triggers: %s", ", ".join(["ControlServer", *keeper.running]))
        yield
    finally:
        keeper.stop()
        with contextlib.suppress(Exception):
            control.stop()
