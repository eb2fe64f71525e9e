"""Log lines for people reading over SSH: one line per event, ``key=value`` context, scan and field ids.

On stdout each line starts with the syslog priority (``<6>``), which journald turns into the entry's level
(``SyslogLevelPrefix=`` is on by default), so ``journalctl -u tppscan -p warning`` works. The rotating file under
``/var/log/tppscan`` carries a UTC timestamp. The service's scan sets the context (:func:`log_context`) so every
line logged during a scan names its scan (its results-database id) without each call passing it.

Line format (file)::

    2026-11-30T07:31:45.123Z INFO  tppscan.scan scan=12 field=40 structure found type=pentagon id=3 x_um=5016 ...
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import logging.handlers
import sys
import time
from collections.abc import Iterator
from pathlib import Path

_scan: contextvars.ContextVar[str | None] = contextvars.ContextVar("scan", default=None)
_field: contextvars.ContextVar[str | None] = contextvars.ContextVar("field", default=None)
_SYSLOG = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}
LOG_FILE = "tppscan.log"


@contextlib.contextmanager
def log_context(scan: object | None = None, field: object | None = None) -> Iterator[None]:
    """Within the block, every log line names this scan and/or field."""
    tokens = []
    if scan is not None:
        tokens.append((_scan, _scan.set(str(scan))))
    if field is not None:
        tokens.append((_field, _field.set(str(field))))
    try:
        yield
    finally:
        for var, tok in reversed(tokens):
            var.reset(tok)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        ctx = []
        scan, field = _scan.get(), _field.get()
        if scan is not None:
            ctx.append(f"scan={scan}")
        if field is not None:
            ctx.append(f"field={field}")
        record.ctx = (" ".join(ctx) + " ") if ctx else ""
        record.scan_id = scan
        return True


class _JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        prio = _SYSLOG.get(record.levelno, 6)
        return "\n".join(f"<{prio}>{ln}" for ln in text.splitlines())


class _FileFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{t}.{int(record.msecs):03d}Z"


class ScanFilter(logging.Filter):
    """Passes only the lines of one scan (for the copy of the log kept in the scan's folder)."""

    def __init__(self, scan_id: object) -> None:
        super().__init__()
        self.scan_id = str(scan_id)

    def filter(self, record: logging.LogRecord) -> bool:
        """Only this scan's lines."""
        return getattr(record, "scan_id", None) == self.scan_id


BODY = "%(levelname)-5s %(name)s %(ctx)s%(message)s"


class _QuietOnError:
    """A handler that cannot write (a full disk, a log folder gone) says so once on stderr, then drops its lines.

    logging's default prints a ``--- Logging error ---`` traceback for every line, which buried the one line that
    mattered. The other handlers (the journal) go on.
    """

    _failed = False

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        if self._failed:
            return
        self._failed = True
        exc = sys.exc_info()[1]
        where = getattr(self, "baseFilename", None) or getattr(getattr(self, "stream", None), "name", "a stream")
        try:
            sys.stderr.write(f"tppscan: cannot write the log to {where}: {exc}; its further lines are dropped\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001, S110 - nowhere left to say it
            pass


class _StreamHandler(_QuietOnError, logging.StreamHandler):
    pass


class _RotatingFileHandler(_QuietOnError, logging.handlers.RotatingFileHandler):
    pass


class _FileHandler(_QuietOnError, logging.FileHandler):
    pass


def setup_logging(level: str = "INFO", log_dir: str | Path | None = None, *, max_bytes: int = 10_000_000,
                  backups: int = 5, journal_prefix: bool = True) -> logging.Logger:
    """Configure the root logger: stdout (journald) and, with ``log_dir``, a rotating file.

    Raises
    ------
    OSError
        The log folder cannot be created or written (the message names it).
    """
    root = logging.getLogger()
    for h in list(root.handlers):  # ours from an earlier call only (a test runner's handlers stay)
        if getattr(h, "_tppscan", False):
            root.removeHandler(h)
            h.close()
    root.setLevel(level)
    out = _StreamHandler(sys.stdout)
    out.setFormatter(_JournalFormatter(BODY) if journal_prefix else logging.Formatter(BODY))
    out.addFilter(_ContextFilter())
    out._tppscan = True  # type: ignore[attr-defined]
    root.addHandler(out)
    if log_dir is not None:
        d = Path(log_dir)
        d.mkdir(parents=True, exist_ok=True)
        fh = _RotatingFileHandler(d / LOG_FILE, maxBytes=max_bytes, backupCount=backups,
                                                  encoding="utf-8")
        fh.setFormatter(_FileFormatter("%(asctime)s " + BODY))
        fh.addFilter(_ContextFilter())
        fh._tppscan = True  # type: ignore[attr-defined]
        root.addHandler(fh)
    return root


@contextlib.contextmanager
def scan_log_file(scan_id: object, path: str | Path) -> Iterator[None]:
    """Also write this scan's lines to ``path`` (its folder's ``scan.log``) while the block runs."""
    fh = _FileHandler(path, encoding="utf-8")
    fh.setFormatter(_FileFormatter("%(asctime)s " + BODY))
    fh.addFilter(_ContextFilter())
    fh.addFilter(ScanFilter(scan_id))
    root = logging.getLogger()
    root.addHandler(fh)
    try:
        yield
    finally:
        root.removeHandler(fh)
        fh.close()


def log_files(log_dir: str | Path) -> list[Path]:
    """The rotating log's files, oldest first (``tppscan.log.5`` ... ``tppscan.log``)."""
    d = Path(log_dir)
    rotated = sorted((p for p in d.glob(LOG_FILE + ".*") if p.suffix[1:].isdigit()),
                     key=lambda p: -int(p.suffix[1:]))
    current = d / LOG_FILE
    return [*rotated, *([current] if current.exists() else [])]


def matches(line: str, scan: str | None) -> bool:
    """Whether a log line belongs to ``scan`` (all lines when None)."""
    return scan is None or f" scan={scan} " in line or line.rstrip().endswith(f" scan={scan}")
