"""Checks of an output file named on the command line, made before the work that fills it.

A command that runs for a while (an autofocus, a calibration, a render) and only then finds its ``--out`` is a
folder, or cannot be written, loses the work; one that writes YAML into ``x.png`` leaves a file that no viewer
opens. ``out_file_problem`` is bad input (the commands exit 2); ``out_file_unwritable`` is the file system
refusing (exit 1). Used by ``tppscan sim``, ``focus stack`` and ``calibrate``.
"""

from __future__ import annotations

import stat
from pathlib import Path


def out_file_problem(out: Path, suffixes: tuple[str, ...]) -> str | None:
    """Why ``out`` cannot take the command's file (a folder, another extension), or None when it can.

    ``suffixes`` are the allowed endings, lower case, e.g. ``(".yaml", ".yml")``.
    """
    allowed = " or ".join(suffixes)
    if out.is_dir():
        return f"--out {out} is a folder; give a file name ending in {allowed}"
    name = out.name.lower()
    if not any(name.endswith(s) and len(name) > len(s) for s in suffixes):
        return f"--out must be a file name ending in {allowed}, got {str(out)!r}"
    return None


def out_file_unwritable(path: Path, what: str = "--out") -> str | None:
    """Why ``path`` cannot be written (read-only place, a file where a folder goes, a FIFO...), or None.

    Probes by writing: its missing folders are made, a file that did not exist is created and removed again
    (so a later failure leaves no empty file), one that exists is opened for appending, never truncated.
    ``what`` names the path in the message (``--out``, or a sidecar file the command derives from it).
    """
    try:
        if path.is_dir():
            return f"cannot write {what} {path}: it is a folder"
        if path.exists() and not stat.S_ISREG(path.stat().st_mode):
            return f"cannot write {what} {path}: not a regular file"  # opening a FIFO to write would block
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        with open(path, "ab"):
            pass
        if not existed:
            path.unlink()
    except OSError as e:
        return f"cannot write {what} {path}: {e.strerror or e}"
    return None
