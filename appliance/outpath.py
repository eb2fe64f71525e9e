"""Checks of an output file named on the command line, made before the work that fills it.

A command that runs for a while (an autofocus, a calibration) and only then finds its ``--out`` is a folder
loses the work; one that writes YAML into ``x.png`` leaves a file that no viewer opens. ``sim`` checks its
outputs' extensions with it too (``appliance.sim.cli._check_outputs``, which also probes that they can be written).
"""

from __future__ import annotations

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
