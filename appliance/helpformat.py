"""Help text formatting shared by the commands that show option defaults."""

from __future__ import annotations

import argparse


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``(default: X)`` after an option's help, where that says something its help does not already say.

    argparse's own formatter adds it to every option: ``(default: None)`` to options whose default is "not
    given" (``--count``, required) or is described in words (``default 0.3 1.2; ... (default: None)`` contradicted
    itself), and a second default to help that names its own (``(default 4000) (default: 4000)``).
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, argparse.SUPPRESS) or action.nargs == 0 or "default" in text.lower():
            return text  # not given, a flag, or the help says it: nothing to add
        return super()._get_help_string(action) or text
