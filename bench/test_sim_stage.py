"""Cost of the simulated stage on a scan-like sequence of moves, as a ratio to a bare reference loop.

The sequence: a serpentine 10 x 10 grid of fields 500 um apart on a tilted slide; at each field a
``focus_to_um`` to the local focus, then a 5-plane focus stack (+-2 um) by ``focus_to_um``: 100 XY moves and
600 focus calls. The reference loop does the least any stage model must: for the same targets it rounds to
steps and evaluates the trapezoid formula (pure Python). The ratio says what the full model (validation,
soft limits, backlash, overshoot approach, clock) costs on top; it is gated loosely because the machine is
shared and noisy (docs/bench.md).
"""

from __future__ import annotations

import math

from timing import median_s

from appliance.sim.clock import VirtualClock
from appliance.sim.stage import SimStage, SimStageParams

PITCH_UM = 500.0
N = 10
STACK_UM = (-2.0, -1.0, 0.0, 1.0, 2.0)
MAX_RATIO = 150.0  # measured 35-40x here (about 4 us per call); gates an order-of-magnitude slowdown


def _fields():
    for row in range(N):
        cols = range(N) if row % 2 == 0 else range(N - 1, -1, -1)
        for col in cols:
            x, y = 1000.0 + col * PITCH_UM, 1000.0 + row * PITCH_UM
            yield x, y, 80.0 + 0.002 * x - 0.001 * y  # a tilted slide: the focus drifts across it


FIELDS = list(_fields())


def scan(stage: SimStage) -> float:
    """Run the scan-like sequence; return the virtual seconds it took."""
    t0 = stage.clock.now_s()
    for x, y, z in FIELDS:
        stage.move_to_um(x, y)
        stage.focus_to_um(z)
        for dz in STACK_UM:
            stage.focus_to_um(z + dz)
    return stage.clock.now_s() - t0


def reference(v: float = 2000.0, a: float = 10000.0) -> float:
    """The bare arithmetic of the same sequence: round to steps, trapezoid time, no model."""
    total, px, py = 0.0, 0, 0
    for x, y, z in FIELDS:
        sx, sy = int(math.floor(x + 0.5)), int(math.floor(y + 0.5))
        d = math.hypot(sx - px, sy - py)
        total += d / v + v / a if d >= v * v / a else 2.0 * math.sqrt(d / a)
        px, py = sx, sy
        for dz in (0.0, *STACK_UM):
            total += abs(int(math.floor(z + dz + 0.5))) / 600.0
    return total


def _fresh_scan() -> float:
    with SimStage(VirtualClock(), SimStageParams()) as stage:
        return scan(stage)


def test_scan_sequence_cost(benchmark):
    virtual_s = _fresh_scan()
    benchmark.pedantic(_fresh_scan, rounds=15, warmup_rounds=1)
    t_stage = median_s(_fresh_scan)
    t_ref = median_s(reference)
    ratio = t_stage / t_ref
    calls = len(FIELDS) * (2 + len(STACK_UM))
    benchmark.extra_info.update({
        "virtual_scan_s": virtual_s,
        "calls": calls,
        "us_per_call_median": 1e6 * t_stage / calls,
        "ratio_to_reference": ratio,
    })
    assert ratio < MAX_RATIO, f"stage model {ratio:.1f}x the reference loop (gate {MAX_RATIO}x)"
