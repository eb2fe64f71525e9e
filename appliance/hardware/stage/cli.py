"""``tppscan stage ...``: talk to the stage (placeholder until the GRBL driver lands)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``stage`` command group."""
    p = sub.add_parser("stage", help="drive the XY stage and focus")
    p.set_defaults(func=lambda a: p.print_help() or 2)
