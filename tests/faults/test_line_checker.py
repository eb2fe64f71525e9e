"""The firmware line checker must be able to fail: run against the stock-GRBL fake made to misbehave."""

from __future__ import annotations

import re

import pytest

from tests.faults.lines import run_lines
from tests.firmware.conftest import open_link
from tests.stage.fake_grbl import FakeGrbl


class _Board:
    """What run_lines needs of a SimavrBoard, from the fake: its pty, step counts (um of MPos), resets."""

    def __init__(self, fake: FakeGrbl, moves_on: str | None = None) -> None:
        self.fake = fake
        self.moves_on = moves_on

    @property
    def pty_path(self) -> str:
        return self.fake.path

    def step_counts(self) -> tuple[int, int, int]:
        x, y, z = (round(v * 1000) for v in self.fake.mpos)
        if self.moves_on is not None and self.moves_on in self.fake.received:
            x += 1   # a board that stepped on that line although it answered error
        return x, y, z


@pytest.mark.parametrize(("override", "moves_on", "needle"), [
    (["error:20", "error:20"], None, r"more replies than lines|reply with no line"),
    (["error:20"], "M7", "the stage moved"),
])
def test_checker_catches_a_second_reply_and_motion_on_error(fake_grbl, override, moves_on, needle):
    fake_grbl.reply_override["M7"] = override
    board = _Board(fake_grbl, moves_on)
    link = open_link(board)
    try:
        stats = run_lines(board, link, [b"G90", b"M7", b"G91", b"G90"])
    finally:
        link.port.close()
    assert any(re.search(needle, f) for f in stats.failures), stats.failures


def test_checker_passes_the_honest_fake(fake_grbl):
    board = _Board(fake_grbl)
    link = open_link(board)
    try:
        stats = run_lines(board, link, [b"G90", b"M7", b"G91", b"G0X-1", b"G90", b"G4P-1"])
    finally:
        link.port.close()
    assert not stats.failures and stats.moved == 1 and stats.errors, stats
