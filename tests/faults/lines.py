"""Random and mutated G-code / ``$`` lines for the firmware fault test, and the checker that runs them.

The generator never emits the bytes the board takes out of the stream before the line parser sees them
(``?``, ``!``, ``~``, 0x18 and 0x80..0xFF are real-time commands, ``docs/protocol.md``) nor a line ending
inside a line: everything else, control bytes and over-long lines included, is fair game.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass, field

from tests.firmware.conftest import Link

# Lines a host really sends, the seeds the mutations start from.
SEEDS = (
    "G0 X1", "G0 X0.5 Y0.5", "G1 X1 Y1 F300", "G1 Z0.2 F100", "G91 G0 X0.1", "G90", "G91", "G21", "G17",
    "G54", "G55", "G92 X0 Y0", "G92.1", "G10 L2 P1 X0.5", "G10 L20 P2 Y1", "G4 P0.01", "M280 P0 S90",
    "$J=G91 X0.1 F500", "$J=G90 X1 Y1 F600", "$$", "$#", "$G", "$I", "$N", "$X", "$C", "$100=80",
    "$110=3000", "$130=70", "$20=1", "G53 G0 X0", "G28", "G30", "F500", "S0", "N10 G0 X1", "G0 X1 ; note",
    "(comment) G0 Y1", "G43.1 Z0", "G49", "M0", "G20", "T1", "G38.2 Z-1 F10", "$SLP", "$I=abc",
)
# Lines that would make a run unbounded in time or poison every later line of the chunk: homing searches
# the whole travel for a switch the runner never closes, and startup lines run on every later reset.
_SKIP = re.compile(r"^\s*\$\s*(h|rst|n\s*\d)", re.IGNORECASE)
# Any report the $10 mask allows (a fuzzed `$10=N` line may change it): state, then MPos or WPos.
_NUM = r"(-?\d+\.\d{3})"
STATUS_RE = re.compile(rf"^<(Idle|Run|Hold:[01]|Home|Alarm|Jog|Check)\|[MW]Pos:{_NUM},{_NUM},{_NUM}(\|[^>]*)?>$")
_REALTIME = frozenset(b"?!~\x18\r\n")
_PRINTABLE = bytes(b for b in range(0x20, 0x7F) if b not in _REALTIME)
_CONTROL = bytes(b for b in list(range(0x01, 0x20)) + [0x7F] if b not in _REALTIME)


def _random_byte(rng: random.Random) -> int:
    return rng.choice(_CONTROL) if rng.random() < 0.03 else rng.choice(_PRINTABLE)


def random_line(rng: random.Random) -> bytes:
    """A line of random bytes: mostly printable, a few control bytes, lengths 0..120 (over the 80 limit)."""
    n = rng.choice((rng.randint(0, 12), rng.randint(0, 40), rng.randint(70, 120)))
    return bytes(_random_byte(rng) for _ in range(n))


def mutated_line(rng: random.Random) -> bytes:
    """A real line with 1..4 byte flips, inserts, deletes, duplications or numbers swapped for odd ones."""
    data = bytearray(rng.choice(SEEDS).encode("ascii"))
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        pos = rng.randint(0, len(data))
        if op == 0 and data:
            data[min(pos, len(data) - 1)] = _random_byte(rng)
        elif op == 1:
            data[pos:pos] = bytes([_random_byte(rng)])
        elif op == 2 and data:
            del data[min(pos, len(data) - 1)]
        elif op == 3:
            data[pos:pos] = rng.choice((b"1e9", b"-", b"..", b"99999999999", b"NaN", b"X", b"=", b"$", b"G",
                                        b"(", b")", b";", b" ", b"\t", b"-0", b"0.0000001"))
        elif op == 4 and data:
            start = rng.randint(0, len(data) - 1)
            data[pos:pos] = data[start:start + rng.randint(1, 8)]
        else:
            data = data * 2
    return bytes(data)


def make_lines(seed: int, count: int) -> list[bytes]:
    """``count`` lines, half random and half mutated, reproducible from ``seed``; never a homing/startup line."""
    rng = random.Random(seed)
    out: list[bytes] = []
    while len(out) < count:
        line = random_line(rng) if rng.random() < 0.5 else mutated_line(rng)
        if not _SKIP.match(line.decode("ascii", "replace")):
            out.append(line)
    return out


@dataclass
class LineStats:
    """What a run of lines did."""

    lines: int = 0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    moved: int = 0        # ok lines after which the step counts changed (legal)
    recoveries: int = 0   # soft resets the checker sent because motion outlasted its budget
    failures: list[str] = field(default_factory=list)

    def add(self, other: LineStats) -> None:
        self.lines += other.lines
        self.ok += other.ok
        self.moved += other.moved
        self.recoveries += other.recoveries
        self.failures += other.failures
        for k, v in other.errors.items():
            self.errors[k] = self.errors.get(k, 0) + v


def _sync(link: Link, timeout_s: float = 3.0) -> tuple[re.Match[str], list[str]]:
    """Ask for status; return it and every ok/error reply that arrived before it (there must be none)."""
    link.write(b"?")
    extra: list[str] = []
    end = time.monotonic() + timeout_s
    for text in link._lines(timeout_s):
        if text.startswith("<"):
            m = STATUS_RE.match(text)
            if m is None:
                raise AssertionError(f"malformed status report {text!r}")
            return m, extra
        if text in ("ok",) or text.startswith("error:"):
            extra.append(text)
        if time.monotonic() > end:
            break
    raise AssertionError(f"no status report within {timeout_s} s")


def _settle(board, link: Link, budget_s: float,
            stats: LineStats) -> tuple[tuple[int, int, int], tuple[str, ...]]:
    """Wait until the stage stands still; past ``budget_s`` soft-reset and unlock. Return steps and MPos."""
    end = time.monotonic() + budget_s
    while True:
        m, extra = _sync(link)
        if extra:
            stats.failures.append(f"reply with no line while settling: {extra}")
        if m.group(1) in ("Idle", "Alarm", "Check"):
            break
        if time.monotonic() > end:
            stats.recoveries += 1
            link.reset()
            link.command("$X")
            end = time.monotonic() + budget_s
        time.sleep(0.02)
    return board.step_counts(), m.group(2, 3, 4)


def run_lines(board, link: Link, lines: list[bytes], move_budget_s: float = 3.0) -> LineStats:
    """Send each line, check one reply, no motion on an error reply, and no reply left over.

    The board is brought to rest before each line, so the step counts before it are final; after an
    ``error:N`` reply they must be the same (the runner counts the step pulses on the pins). A reply too
    many shows up as the reply of the next line (its own then stays unread) and, at the end, in the drain.
    """
    stats = LineStats()
    link.command("$X")
    steps, mpos = _settle(board, link, move_budget_s, stats)
    for line in lines:
        stats.lines += 1
        try:
            steps, mpos = _one_line(board, link, line, steps, mpos, move_budget_s, stats)
        except AssertionError as exc:   # the board stopped answering as the protocol says: note it, go on
            stats.failures.append(f"{line!r}: {exc}")
            if len(stats.failures) > 20:
                break
            link.reset()
            link.command("$X")
            steps, mpos = _settle(board, link, move_budget_s, stats)
    surplus = [t for t in link.drain(0.5) if t == "ok" or t.startswith("error:")]
    if surplus:
        stats.failures.append(f"{len(surplus)} more replies than lines: {surplus[:5]}")
    m, _ = _sync(link)
    if board.step_counts() == steps and m.group(2, 3, 4) != mpos:
        stats.failures.append(f"MPos {mpos} -> {m.group(2, 3, 4)} with no step taken")
    return stats


#: An ``M0`` / ``M00`` word (not ``M05``, ``M0.5``): the program pause, answered only after the cycle start ``~``.
PAUSE_WORD = re.compile(rb"M0+(?![0-9.])")


def _through_pause(link: Link, line: bytes) -> str:
    """Send a line with an ``M0`` word; return its reply.

    A refused line (or an ``M0`` inside a comment) is answered at once. An accepted one holds the board
    (``Hold:0``, docs/protocol.md) with no reply until ``~``: that is checked, then the ``~`` sent.
    """
    link.write(line + b"\n")
    try:
        return link.reply(timeout_s=2.0)[0]
    except AssertionError:
        pass
    end = time.monotonic() + 10.0  # the line's own move, if any, runs first
    while True:
        link.write(b"?")
        state = link.expect_line(r"^<", 3.0)
        if state.startswith("<Hold:0|"):
            break
        assert state.startswith("<Run|") and time.monotonic() < end, f"no reply and not held after M0: {state}"
        time.sleep(0.05)
    link.write(b"~")
    return link.reply(timeout_s=5.0)[0]


def _one_line(board, link: Link, line: bytes, steps: tuple[int, int, int], mpos: tuple[str, ...],
              move_budget_s: float, stats: LineStats) -> tuple[tuple[int, int, int], tuple[str, ...]]:
    """Send one line and check it; return the step counts and MPos the next line starts from."""
    # G4 answers after its dwell (docs/protocol.md): a fuzzed `G4 P00101` is 101 s of simulated time, which
    # a loaded host may need well over 5 s of wall time to simulate
    words = line.upper().replace(b" ", b"").replace(b"\t", b"")
    dwell = b"G4" in words
    if PAUSE_WORD.search(words):
        reply = _through_pause(link, line)
    else:
        reply, _ = link.command(line, timeout_s=600.0 if dwell else 5.0)
    if reply == "ok":
        stats.ok += 1
        after, mpos = _settle(board, link, move_budget_s, stats)
        stats.moved += after != steps
        return after, mpos
    stats.errors[reply] = stats.errors.get(reply, 0) + 1
    # MPos is the step count over $10x: the runner's counters (read off the simulated pins, no UART time)
    # are the stricter check. A second reply to this line is caught by the next line or the final drain.
    after = board.step_counts()
    if after != steps:
        stats.failures.append(f"{line!r}: {reply} but the stage moved: steps {steps} -> {after}")
        return _settle(board, link, move_budget_s, stats)
    return steps, mpos
