"""Recall of the candidate gate on the virtual microscope: how many simulated structures it finds.

Usage::

    python scripts/gate_recall.py                      # 10 held-out slides x 20 fields = 200 fields
    python scripts/gate_recall.py --seeds 7001 7002 --fields 5
    python scripts/gate_recall.py --camera cheap_colour          # a camera preset of appliance.sim.capture
    python scripts/gate_recall.py --debris 40                    # dusty glass: debris pieces per mm²

Held-out slides: seeds 7001-7010 by default, used by no test, model or tuning run. On each slide, one field
per structure (in slide order, up to ``--fields``): the stage goes to the structure's centre plus a random
offset that keeps its footprint in view, and z to its true focus plus a random offset within half a depth
of field either way (the scan loop gates frames that autofocus brought near focus). Every structure whose
footprint lies wholly in the frame counts, not only the one aimed at. A structure is found when one
candidate's box overlaps its true box with intersection over union >= 0.5. The gate runs with its defaults
at the camera's µm per pixel. The script also reports candidates per field and, on ``--empty`` fields of
clear glass per slide, candidates where there is nothing.

Exit status 0 when the recall reaches ``--bar`` (default 0.99), else 1.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from appliance.sim.capture import preset  # noqa: E402
from appliance.sim.microscope import ViewBox, VirtualMicroscope  # noqa: E402
from appliance.sim.slide import SlideParams  # noqa: E402
from appliance.sim.stage import SimStageParams  # noqa: E402
from appliance.vision.gate import find_candidates  # noqa: E402

HELD_OUT = tuple(range(7001, 7011))


@dataclass
class Tally:
    """Counts over the fields measured."""

    fields: int = 0
    structures: int = 0
    found: int = 0
    candidates: int = 0
    empty_fields: int = 0
    empty_candidates: int = 0
    missed: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        """Found over structures (1.0 when there were none)."""
        return self.found / self.structures if self.structures else 1.0


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two ``xmin, ymin, xmax, ymax`` boxes (exclusive max)."""
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def _score(boxes: list[ViewBox], cands: list[tuple[int, int, int, int]], seed: int, tally: Tally) -> None:
    for b in boxes:
        if b.kind != "structure" or not b.complete:
            continue
        best = max((iou(b.box_px, c) for c in cands), default=0.0)
        tally.structures += 1
        if best >= 0.5:
            tally.found += 1
        else:
            tally.missed.append(f"seed {seed} id {b.id} {b.cls}: best IoU {best:.2f}")


def measure_slide(seed: int, n_fields: int, n_empty: int, tally: Tally, camera: str | None = None,
                  debris: float | None = None) -> None:
    """Add one slide's fields to ``tally``.

    ``camera`` is a capture-chain preset name and ``debris`` the slide's debris pieces per mm²; None keeps
    the defaults.
    """
    chain = None if camera is None else preset(camera)
    slide = None if debris is None else SlideParams(debris_per_mm2=debris)
    scope = VirtualMicroscope(seed=seed, slide=slide, stage=SimStageParams(z_mode="stepper"), chain=chain)
    rng = np.random.default_rng(seed)
    cam = scope.camera
    s = cam.um_per_px
    w_um, h_um = cam.size_px[0] * s, cam.size_px[1] * s
    dof = cam.optics.depth_of_field_um(s)
    structures = [o for o in scope.slide.objects if o.kind == "structure"][:n_fields]
    with scope.stage, scope.camera:
        for o in structures:
            fw, fh = o.footprint_um
            dx = rng.uniform(-1, 1) * max(0.0, (w_um - fw) / 2 - 2 * s)
            dy = rng.uniform(-1, 1) * max(0.0, (h_um - fh) / 2 - 2 * s)
            scope.stage.move_to_um(x=o.center_um[0] + dx, y=o.center_um[1] + dy)
            scope.stage.focus_to_um(o.focus_z_um + rng.uniform(-0.5, 0.5) * dof)
            frame = scope.camera.capture()
            cands = [(x, y, x + bw, y + bh) for x, y, bw, bh in (c.box_px for c in find_candidates(frame.image, s))]
            tally.fields += 1
            tally.candidates += len(cands)
            _score(scope.boxes_in_view(frame), cands, seed, tally)
        p = scope.slide.params
        tries = 0
        while n_empty > 0 and tries < 200:
            tries += 1
            x, y = rng.uniform(w_um, p.width_um - w_um), rng.uniform(h_um, p.height_um - h_um)
            if scope.boxes_at(x, y):
                continue
            scope.stage.move_to_um(x=x, y=y)
            scope.stage.focus_to_um(float(scope.slide.surface_z_um(x, y)))
            tally.empty_fields += 1
            tally.empty_candidates += len(find_candidates(scope.camera.capture().image, s))
            n_empty -= 1


def main(argv: list[str] | None = None) -> int:
    """Measure and print the recall; exit 1 below the bar."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=list(HELD_OUT), help="slide seeds (default 7001-7010)")
    ap.add_argument("--fields", type=int, default=20, help="fields per slide, one per structure (default 20)")
    ap.add_argument("--empty", type=int, default=5, help="fields of clear glass per slide (default 5)")
    ap.add_argument("--bar", type=float, default=0.99, help="recall needed for exit status 0 (default 0.99)")
    ap.add_argument("--camera", default=None, help="capture-chain preset (appliance.sim.capture.PRESETS)")
    ap.add_argument("--debris", type=float, default=None, help="debris pieces per mm² (default: the slide's)")
    args = ap.parse_args(argv)
    tally = Tally()
    for seed in args.seeds:
        measure_slide(seed, args.fields, args.empty, tally, args.camera, args.debris)
    print(f"fields {tally.fields}: structures {tally.structures}, found {tally.found}, recall {tally.recall:.4f}; "
          f"candidates per field {tally.candidates / max(tally.fields, 1):.2f}")
    print(f"clear-glass fields {tally.empty_fields}: candidates {tally.empty_candidates}")
    for line in tally.missed:
        print("  missed", line)
    return 0 if tally.recall >= args.bar else 1


if __name__ == "__main__":
    raise SystemExit(main())
