"""Every command's --help: each option explained once, no default contradicting the help, examples that parse."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from appliance.cli import build_parser

#: The commands whose --help ends in one example line (the ones a new user starts with).
WITH_EXAMPLE = ("detect", "dataset", "train detector", "train classifier", "train focus", "models eval",
                "focus bench", "sim slide", "sim field", "sim stack", "sim strip")


def _parsers(p: argparse.ArgumentParser, path: str = "") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, p
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sub in a.choices.items():
                yield from _parsers(sub, f"{path} {name}".strip())


PARSERS = dict(_parsers(build_parser()))


def _options(p: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    return (a for a in p._actions if a.option_strings and a.help is not argparse.SUPPRESS and a.dest != "help")


@pytest.mark.parametrize("command", [c for c in PARSERS if c])
def test_every_option_has_help_and_says_its_default_once(command):
    # 'dataset' said 'default 0.3 1.2; bounds 0.1..5 (default: None)', 'train detector' '(default 4000)
    # (default: 4000)', and 'focus blank --seed/--focus' and 'focus stack --seed' said nothing.
    p = PARSERS[command]
    fmt = p._get_formatter()
    for a in _options(p):
        assert a.help, f"tppscan {command} {a.option_strings[0]}: no help"
        shown = fmt._get_help_string(a) % {**vars(a), "prog": p.prog}
        assert "(default: None)" not in shown, f"tppscan {command} {a.option_strings[0]}: {shown}"
        if "default" in a.help.lower():
            assert "(default: " not in shown.replace(a.help % {**vars(a), "prog": p.prog}, ""), \
                f"tppscan {command} {a.option_strings[0]} says its default twice: {shown}"


@pytest.mark.parametrize("command", WITH_EXAMPLE)
def test_a_main_command_ends_its_help_in_an_example_that_parses(command):
    p = PARSERS[command]
    assert p.epilog and p.epilog.startswith(f"example: tppscan {command} "), command
    assert len(p.epilog) <= 78, "argparse wraps a longer epilog mid-command"
    args = build_parser().parse_args(p.epilog.split()[2:])
    assert callable(args.func)
