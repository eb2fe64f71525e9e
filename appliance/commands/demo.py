"""``tppscan demo``: analyse a slide frame with the kernels (the main job until the scan lands).

By default the frame comes from the virtual microscope (``--source sim``): the stage drives to the slide's
first structure, focuses at its true focus and captures; the blobs found are then checked against the
simulator's ground truth. ``--source synthetic`` uses a seeded synthetic frame instead (kernels only). Either
frame goes through the fused per-frame analysis; the command prints a summary and writes ``frame.png``,
``annotated.png`` (each kept blob boxed, colour by focus) and ``blobs.json`` into ``--out``. The analysis
call is the single function :func:`analyse`: the scan loop's candidate gate (:mod:`appliance.vision.gate`)
with its defaults. Heavy imports happen inside the handler so ``tppscan --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from kernels import FrameAnalysis

MIN_SIDE = 16
MAX_SIDE = 8192
#: Scale assumed for synthetic frames: their structures are 6-28 px across at 640x480, as TPP structures of
#: 20-120 µm look through a low-magnification objective (about 3 µm per pixel).
SYNTHETIC_UM_PER_PX = 3.0


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``WxH`` into (width, height), each in [16, 8192]; raise ``argparse.ArgumentTypeError`` if bad."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"size must look like WIDTHxHEIGHT, e.g. 640x480; got {text!r}")
    w, h = int(m.group(1)), int(m.group(2))
    if not (MIN_SIDE <= w <= MAX_SIDE and MIN_SIDE <= h <= MAX_SIDE):
        raise argparse.ArgumentTypeError(
            f"width and height must each be in [{MIN_SIDE}, {MAX_SIDE}] pixels; got {w}x{h}")
    return w, h


def _non_negative_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {v}")
    return v


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``demo`` command."""
    p = sub.add_parser("demo", help="analyse a generated frame with the kernels and print the result",
                       description="Analyse a generated slide frame with the kernels; write PNGs and JSON.")
    p.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="directory for frame.png, annotated.png and blobs.json (created if missing)")
    p.add_argument("--seed", type=_non_negative_int, default=0, help="random seed of the frame (default 0)")
    p.add_argument("--size", type=parse_size, default=(640, 480), metavar="WxH",
                   help="frame size in pixels, each side in [16, 8192] (default 640x480)")
    p.add_argument("--source", choices=("sim", "synthetic"), default="sim",
                   help="sim: a field of the virtual microscope, checked against its ground truth (default); "
                        "synthetic: a generated blob frame")
    p.add_argument("--blobs", type=_non_negative_int, default=120, metavar="N",
                   help="with --source synthetic: structures drawn on the frame (default 120)")
    p.set_defaults(func=run)


def analyse(frame: np.ndarray, um_per_px: float = SYNTHETIC_UM_PER_PX) -> FrameAnalysis:
    """The scan loop's candidate gate with its defaults; the result holds the blobs of its candidates."""
    import dataclasses

    from appliance.vision.gate import gate_frame

    res, cands = gate_frame(frame, um_per_px)
    keep = sorted(r for c in cands for r in c.rows)  # the blobs that make up the candidates
    return dataclasses.replace(res, stats=res.stats[keep], centroids=res.centroids[keep], focus=res.focus[keep])


def _annotate(frame: np.ndarray, result: FrameAnalysis) -> np.ndarray:
    import cv2
    import numpy as np

    img = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if result.n_blobs:
        # Colour by focus per pixel of box: red (soft) .. green (sharp), on a log scale.
        area = (result.stats[:, 2] * result.stats[:, 3]).astype(np.float64)
        score = np.log1p(result.focus / area)
        lo, hi = float(score.min()), float(score.max())
        t = (score - lo) / (hi - lo) if hi > lo else np.ones_like(score)
        for (x, y, w, h, _), s in zip(result.stats.tolist(), t.tolist(), strict=True):
            colour = (0, int(255 * s), int(255 * (1 - s)))
            cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), colour, 1)
    return img


def _blob_records(result: FrameAnalysis) -> list[dict[str, Any]]:
    return [{"x": x, "y": y, "width": w, "height": h, "area_px": a, "centroid_x": cx, "centroid_y": cy,
             "focus": f}
            for (x, y, w, h, a), (cx, cy), f in zip(result.stats.tolist(), result.centroids.tolist(),
                                                   result.focus.tolist(), strict=True)]


def run(args: argparse.Namespace) -> int:
    """Generate, analyse, report and write the outputs; returns the exit code."""
    out: Path = args.out
    if out.exists() and not out.is_dir():
        print(f"tppscan demo: --out {out} exists and is not a directory", file=sys.stderr)
        return 2
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"tppscan demo: cannot create --out {out}: {exc.strerror}", file=sys.stderr)
        return 2
    import dataclasses

    import cv2

    import kernels
    from appliance.vision.gate import GateParams
    from kernels.testing import blob_frame

    width, height = args.size
    truth: list[dict[str, Any]] | None = None
    um_per_px = SYNTHETIC_UM_PER_PX
    if args.source == "sim":
        frame, truth, um_per_px = sim_frame(args.seed, width, height)
    else:
        frame = blob_frame(height, width, n_blobs=args.blobs, seed=args.seed)
    t0 = time.perf_counter()
    kernels.warmup()
    t_warm = time.perf_counter() - t0
    times = []
    for _ in range(5):
        t1 = time.perf_counter()
        result = analyse(frame, um_per_px)
        times.append(time.perf_counter() - t1)
    t_med = sorted(times)[len(times) // 2]
    areas = result.stats[:, 4]
    gate = GateParams()
    print(f"frame {width}x{height}, seed {args.seed}, {um_per_px:.3g} um/px: {result.n_blobs} blobs kept of "
          f"{result.n_components} components (gate: {gate.contrast:g} darker than the glass, "
          f">= {gate.min_area_um2:g} um^2, >= {gate.min_size_um:g} um across)")
    if result.n_blobs:
        print(f"  areas px: min {areas.min()}, median {int(sorted(areas.tolist())[len(areas) // 2])}, "
              f"max {areas.max()}")
        best = sorted(range(result.n_blobs), key=lambda i: -result.focus[i])[:3]
        for i in best:
            x, y, w, h, a = result.stats[i].tolist()
            print(f"  sharpest: box ({x}, {y}, {w}, {h}), area {a} px, focus {result.focus[i]:.4g}")
    print(f"  frame Laplacian variance {result.laplacian_variance:.2f}")
    if truth is not None:
        found = sum(_covered(t["box_px"], result) for t in truth)
        print(f"  ground truth: {len(truth)} objects in view, {found} covered by a blob: "
              + ", ".join(f"{t['cls']}{'*' if _covered(t['box_px'], result) else ''}" for t in truth)
              + " (* = found)")
    print(f"  timing: warm-up {t_warm * 1e3:.0f} ms, analysis median {t_med * 1e3:.2f} ms of 5 runs")
    cv2.imwrite(str(out / "frame.png"), frame)
    cv2.imwrite(str(out / "annotated.png"), _annotate(frame, result))
    doc = {"source": args.source, "width": width, "height": height, "seed": args.seed, "um_per_px": um_per_px,
           "method": "background", "gate": dataclasses.asdict(gate), "level": result.level, "truth": truth,
           "n_components": result.n_components,
           "laplacian_variance": result.laplacian_variance, "analysis_ms_median": t_med * 1e3,
           "blobs": _blob_records(result)}
    (out / "blobs.json").write_text(json.dumps(doc, indent=1))
    print(f"  wrote {out / 'frame.png'}, {out / 'annotated.png'}, {out / 'blobs.json'}")
    return 0


def sim_frame(seed: int, width: int, height: int) -> tuple[np.ndarray, list[dict[str, Any]], float]:
    """Capture the virtual microscope's first structure in focus; return the frame, the truth in view, µm/px."""
    from appliance.sim.microscope import VirtualMicroscope
    from appliance.sim.sensor import SensorParams
    from appliance.sim.stage import SimStageParams

    scope = VirtualMicroscope(seed=seed, sensor=SensorParams(width_px=width, height_px=height),
                              stage=SimStageParams(z_mode="stepper"))
    target = next(o for o in scope.slide.objects if o.kind == "structure")
    with scope.stage, scope.camera:
        scope.stage.move_to_um(x=round(target.center_um[0]), y=round(target.center_um[1]))
        scope.stage.focus_to_um(round(target.focus_z_um, 1))
        frame = scope.camera.capture()
    truth = [{"id": b.id, "kind": b.kind, "cls": b.cls, "box_px": list(b.box_px), "complete": b.complete}
             for b in scope.boxes_in_view(frame)]
    return frame.image, truth, float(scope.camera.um_per_px)


def _covered(box: list[int], result: FrameAnalysis) -> bool:
    """Whether some kept blob's box overlaps the truth box ``xmin, ymin, xmax, ymax`` (exclusive max)."""
    x0, y0, x1, y1 = box
    return any(x < x1 and x + w > x0 and y < y1 and y + h > y0 for x, y, w, h, _ in result.stats.tolist())
