"""Firmware under random and mutated lines (issue 12, "Firmware"), the real ``.elf`` in simavr.

Every line must get exactly one reply; an ``error:N`` line must leave the step pulses and the reported MPos
where they were; the chip must never be reset by its watchdog (the runner's ``RESETS?``). The CI sample is
``CHUNKS x LINES_PER_CHUNK`` seeded lines; ``TPPSCAN_FAULT_RUNS=N`` runs N times as many (the long run and its
figures: ``docs/reliability.md``). Each chunk starts on a fresh board with a blank EEPROM, so a setting one
chunk wrote cannot slow the next.
"""

from __future__ import annotations

import os

import pytest

from tests.faults.conftest import scale
from tests.faults.lines import LineStats, make_lines, run_lines
from tests.firmware.conftest import open_link

LINES_PER_CHUNK = 400
CHUNKS = 2


def _run_chunk(firmware_build, seed: int) -> LineStats:
    from appliance.hardware.stage.simavr_board import SimavrBoard

    with SimavrBoard(*firmware_build, realtime=False) as board:
        link = open_link(board)
        try:
            stats = run_lines(board, link, make_lines(seed, LINES_PER_CHUNK))
            resets = board.resets()
        finally:
            link.port.close()
    if resets:
        stats.failures.append(f"seed {seed}: {resets} watchdog reset(s)")
    return stats


@pytest.mark.slow
def test_random_and_mutated_lines_one_reply_no_motion_on_error(firmware_build):
    first = int(os.environ.get("TPPSCAN_FAULT_SEED", "12000"))
    total = LineStats()
    for seed in range(first, first + CHUNKS * scale()):
        total.add(_run_chunk(firmware_build, seed))
        if scale() > 1:   # a long run: progress (with -s), so a stopped run still has its figures
            print(f"chunk {seed}: {total.lines} lines, {sum(total.errors.values())} error, {total.moved} moved, "
                  f"{len(total.failures)} failures", flush=True)
    print(f"\nfirmware lines: {total.lines} sent, {total.ok} ok, {sum(total.errors.values())} error "
          f"({dict(sorted(total.errors.items()))}), {total.moved} ok lines moved, "
          f"{total.recoveries} soft resets for long moves, {len(total.failures)} failures")
    assert total.lines == CHUNKS * scale() * LINES_PER_CHUNK
    assert sum(total.errors.values()) > total.lines // 3, "the generator should mostly produce bad lines"
    assert total.moved > 0, "the generator should also produce lines that move (else 'no motion' is vacuous)"
    assert not total.failures, "\n".join(total.failures[:20])
