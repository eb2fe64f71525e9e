"""``tppscan sim ...``: look at the virtual microscope (placeholder until the simulator lands)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``sim`` command group."""
    p = sub.add_parser("sim", help="inspect the virtual microscope")
    p.set_defaults(func=lambda a: p.print_help() or 2)
