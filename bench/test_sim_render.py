"""Rendering speed of the simulated camera, as ratios to a sensor-only reference in the same process.

Scenes: a 640 x 480 and a 2592 x 1944 field centred on structures (the busiest fields of seed 2), rendered
- warm: the same position and focus again (every patch cached: compositing, light and noise only),
- new focus: an autofocus-like sweep from focus - 20 µm up in 0.5 µm steps (Z stepper), so each frame's
  patches are new while the object spectra are cached,
- cold: the renderer cache cleared before every frame (full optics for every object in view).
The reference is what any camera model must do per frame: make the noise for that frame size and convert it to
uint8 (``sensor.expose`` on a blank field). The camera under test is the default one: the colour capture chain.
Absolute medians go into ``extra_info`` and docs/simulator.md; the gates are ratios (docs/bench.md:
absolute timings on this shared machine move 10-50 %).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from timing import median_s

from appliance.sim.microscope import VirtualMicroscope
from appliance.sim.sensor import SensorParams, expose
from appliance.sim.stage import SimStageParams

# Gates: an order-of-magnitude slowdown fails; measured ratios (warm 1.0-1.2, new focus 2.2-3.7, cold 3.2-4.5, with the
# colour capture chain) are in docs/simulator.md.
MAX_RATIO = {"warm": 4.0, "new_focus": 25.0, "cold": 40.0}


def _busy_scope(width: int, height: int) -> tuple[VirtualMicroscope, float, float, float]:
    scope = VirtualMicroscope(seed=2, sensor=SensorParams(width_px=width, height_px=height),
                              stage=SimStageParams(z_mode="stepper"))
    scope.stage.open()
    scope.camera.open()
    # the structure with the most other objects within a frame around it
    best = max((o for o in scope.slide.objects if o.kind == "structure"),
               key=lambda o: len(scope.boxes_at(o.center_um[0], o.center_um[1])))
    x, y = round(best.center_um[0]), round(best.center_um[1])
    scope.stage.move_to_um(x=x, y=y)
    return scope, x, y, round(best.focus_z_um)


def _reference(width: int, height: int) -> Callable[[], object]:
    params = SensorParams(width_px=width, height_px=height)
    bg = np.ones((height, width), dtype=np.float32)
    state = {"i": 0}

    def run() -> object:
        state["i"] += 1
        return expose(np.ones((height, width), dtype=np.float32), bg, params, 10.0,
                      np.random.default_rng([0, state["i"]]))

    return run


@pytest.mark.parametrize(("width", "height"), [(640, 480), (2592, 1944)])
@pytest.mark.parametrize("mode", ["warm", "new_focus", "cold"])
def test_render_speed(benchmark, width, height, mode):
    scope, x, y, zf = _busy_scope(width, height)
    n_view = len(scope.boxes_at(x, y))
    scope.stage.focus_to_um(zf)
    zs = iter(np.arange(zf - 20.0, zf + 200.0, 0.5))  # never repeats within a run

    def frame() -> object:
        if mode == "cold":
            scope.camera.renderer.clear_cache()
        elif mode == "new_focus":
            scope.stage.focus_to_um(float(next(zs)))
        return scope.camera.capture()

    rounds = 15 if width == 640 else 7
    benchmark.pedantic(frame, rounds=rounds, warmup_rounds=1)
    t_frame = median_s(frame, rounds)
    t_ref = median_s(_reference(width, height), rounds)
    ratio = t_frame / t_ref
    benchmark.extra_info.update({"objects_in_view": n_view, "median_ms": t_frame * 1e3,
                                 "reference_median_ms": t_ref * 1e3, "ratio": ratio})
    print(f"\n{width}x{height} {mode}: {n_view} objects, median {t_frame * 1e3:.1f} ms, "
          f"reference {t_ref * 1e3:.2f} ms, ratio {ratio:.1f}")
    assert ratio < MAX_RATIO[mode], f"{mode} render is {ratio:.1f}x the sensor-only reference"
