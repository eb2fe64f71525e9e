"""Status-query round trip (``?`` -> ``<...>``) through the real firmware in simavr, as a ratio to a pty echo.

The measured path is the driver's own: ``GrblLink.query_status`` writes ``?`` to the pty, simavr's UART
part feeds it to the simulated ATmega328P (at 115200 baud, paced to real time), the firmware formats its
report and the bytes come back the same way. The reference is the same call against a thread that answers
``?`` on a bare pty with a report of the same length at once: the pty and Python cost without the board.
The ratio says what the simulated board adds (mostly the UART's wire time: 10 bits per byte at 115200
baud is 87 us per byte, about 4 ms for a 45-byte report). Absolute figures go to docs/stage-driver.md.
"""

from __future__ import annotations

import os
import select
import statistics
import threading
import time
import tty

import pytest
import serial

from appliance.hardware.stage.grbl_link import GrblLink

ROUNDS = 200
MAX_RATIO = 400.0  # gates a gross regression only: the shared 2-core machine is noisy


class EchoBoard:
    """Answers every ``?`` on a pty with a fixed status report, immediately (the reference)."""

    def __init__(self, report: bytes) -> None:
        self.report = report
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if ready:
                for b in os.read(self.master, 256):
                    if b == ord("?"):
                        os.write(self.master, self.report)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1)
        os.close(self.master)
        os.close(self.slave)


def _times(fn, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def _percentiles(times: list[float]) -> dict[str, float]:
    q = statistics.quantiles(times, n=100)
    return {"median_ms": statistics.median(times) * 1e3, "p10_ms": q[9] * 1e3, "p90_ms": q[89] * 1e3,
            "p99_ms": q[98] * 1e3, "min_ms": min(times) * 1e3, "max_ms": max(times) * 1e3}


@pytest.fixture(scope="module")
def sim_link():
    from appliance.hardware.stage.simavr_board import SimavrBoard, build_firmware

    elf, runner = build_firmware()
    with SimavrBoard(elf, runner, realtime=True) as board:
        port = serial.Serial(board.pty_path, 115200, timeout=0.02)
        link = GrblLink(port)
        link.drain(quiet_s=0.3, max_s=3.0)  # boot messages, possibly cut by open()'s flush
        link.query_status(5.0)  # the firmware is up and answering
        yield link
        port.close()


def test_status_roundtrip_simavr(benchmark, sim_link):
    report = sim_link.query_status(2.0).raw.encode() + b"\r\n"
    echo = EchoBoard(report)
    port = serial.Serial(echo.path, 115200, timeout=0.02)
    ref_link = GrblLink(port)
    try:
        def sim() -> None:
            sim_link.query_status(2.0)

        def ref() -> None:
            ref_link.query_status(2.0)

        _times(sim, 10)
        _times(ref, 10)
        benchmark.pedantic(sim, rounds=ROUNDS, warmup_rounds=5)
        t_sim = _times(sim, ROUNDS)
        t_ref = _times(ref, ROUNDS)
    finally:
        port.close()
        echo.close()
    ratio = statistics.median(t_sim) / statistics.median(t_ref)
    benchmark.extra_info.update({f"simavr_{k}": round(v, 3) for k, v in _percentiles(t_sim).items()})
    benchmark.extra_info.update({f"pty_echo_{k}": round(v, 3) for k, v in _percentiles(t_ref).items()})
    benchmark.extra_info["ratio_median"] = round(ratio, 2)
    benchmark.extra_info["report_bytes"] = len(report)
    # the UART alone needs 10 bits per byte for '?' and the report at 115200 baud
    benchmark.extra_info["uart_wire_ms"] = round((1 + len(report)) * 10 / 115200 * 1e3, 3)
    print(f"\nstatus round trip: simavr median {statistics.median(t_sim) * 1e3:.2f} ms, pty echo "
          f"{statistics.median(t_ref) * 1e3:.3f} ms, ratio {ratio:.1f} ({len(report)}-byte report)")
    assert ratio < MAX_RATIO
