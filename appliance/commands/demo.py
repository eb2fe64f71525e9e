"""``tppscan demo``: the main job until the scan runner lands (placeholder)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``demo`` command."""
    p = sub.add_parser("demo", help="analyse a generated frame with the kernels and print the result")
    p.set_defaults(func=lambda a: print("kernels not built yet") or 0)
