"""Is defocus in the focus crop at all? ``python -m models.focusnet.visibility --um-per-px 0.56 --na-factor 1``.

Renders through-focus sweeps of a few structures on randomised slides of one objective class and compares
how much the focus crop (:func:`appliance.vision.crops.focus_crop`) changes between two defocus values with
how much it changes between two exposures at the same defocus (shot and read noise, the camera chain):

``visibility(a, b) = mean |crop(a) - crop(b)| / mean |crop(0, exposure 1) - crop(0, exposure 2)|``.

1.0 means the two defocus values look the same as two noisy frames of one: no single-crop net can tell them
apart. This is the check that showed the shipped dataset's objective range matters: at 10x / NA 0.25 a print's
crop barely changes over ±2 µm, at 20x / NA 0.4 it does. ``--sheet`` writes the sweeps as a picture.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from appliance.vision.crops import FOCUS_CROP_UM, focus_crop, focus_points
from models.data.cli import plan
from models.data.crops import WINDOW_FACTOR, _window_around, scope_for_crops
from models.data.randomise import Ranges

SHEET_DZ_UM: tuple[float, ...] = (-10.0, -6.0, -3.0, -1.0, 0.0, 1.0, 3.0, 6.0, 10.0)
# Defocus pairs whose visibility is reported, µm.
PAIRS_UM: tuple[tuple[float, float], ...] = ((0.0, 0.5), (0.0, 2.0), (-2.0, 2.0), (-10.0, 10.0))


def sweep(ranges: Ranges, seed: int, slides: int, per_slide: int,
          dz_um: tuple[float, ...]) -> list[tuple[str, dict[tuple[float, int], np.ndarray]]]:
    """Focus crops of ``per_slide`` structures on each of ``slides`` slides, at each defocus and two exposures.

    Returns
    -------
    list of (type, {(dz, exposure): crop})
        Crops as float32 grey, cut at the structure's first :func:`focus_points` point.
    """
    out = []
    for k in range(slides):
        job = plan("focus", "test", seed, 1, Path("."), ranges, False, (640, 480))[0]
        job = type(job)(**{**job.__dict__, "slide_seed": job.slide_seed + k})
        scope = scope_for_crops(job)
        s = scope.camera.um_per_px
        fw, fh = scope.camera.size_px
        side = int(np.ceil(FOCUS_CROP_UM / s * WINDOW_FACTOR)) + 4
        centre = ((fw - 1) / 2.0, (fh - 1) / 2.0)
        for obj in [o for o in scope.slide.objects if o.kind == "structure"][:per_slide]:
            (ox, oy), (w, h) = obj.center_um, obj.footprint_um
            pts = focus_points((ox - w / 2, oy - h / 2, ox + w / 2, oy + h / 2), 1.0)
            x, y = pts[0][0] + 0.5 * (len(pts) > 1), pts[0][1]
            crops = {}
            for dz in dz_um:
                for exposure in (1, 2):
                    win, (u0, v0) = _window_around(scope, x, y, obj.focus_z_um + dz, None, exposure, centre, side)  # type: ignore[arg-type]
                    crops[(dz, exposure)] = focus_crop(win, (centre[0] - u0, centre[1] - v0), s).astype(np.float32)
            out.append((str(obj.cls), crops))
    return out


def visibility(crops: dict[tuple[float, int], np.ndarray], a: float, b: float) -> float:
    """Mean change between defocus ``a`` and ``b`` over the mean change between two exposures at 0."""
    noise = float(np.abs(crops[(0.0, 1)] - crops[(0.0, 2)]).mean())
    return float(np.abs(crops[(a, 1)] - crops[(b, 2)]).mean()) / max(noise, 1e-6)


def sheet(sweeps: list[tuple[str, dict[tuple[float, int], np.ndarray]]], tile: int = 96) -> np.ndarray:
    """One row per structure, one column per ``SHEET_DZ_UM``, labelled."""
    rows = []
    for cls, crops in sweeps:
        tiles = []
        for dz in SHEET_DZ_UM:
            grey = np.clip(crops[(dz, 1)], 0, 255).astype(np.uint8)
            t = cv2.resize(grey, (tile, tile), interpolation=cv2.INTER_NEAREST)
            t = cv2.cvtColor(t, cv2.COLOR_GRAY2BGR)
            cv2.putText(t, f"{dz:+g}", (2, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 255), 1)
            tiles.append(t)
        cv2.putText(tiles[0], cls, (2, tile - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (0, 200, 255), 1)
        rows.append(np.hstack(tiles))
    return np.vstack(rows)


def main(argv: list[str] | None = None) -> int:
    """Command line: print the visibility of each structure's sweep; optionally write the sheet."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--um-per-px", type=float, nargs=2, default=(0.56, 0.56), metavar=("LO", "HI"))
    p.add_argument("--na-factor", type=float, nargs=2, default=(1.0, 1.0), metavar=("LO", "HI"))
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--slides", type=int, default=2, help="slides, 1..20")
    p.add_argument("--per-slide", type=int, default=3, help="structures per slide, 1..10")
    p.add_argument("--sheet", type=Path, default=None, help="write the sweeps as a PNG")
    a = p.parse_args(argv)
    if not (1 <= a.slides <= 20 and 1 <= a.per_slide <= 10):
        print(f"--slides must be in [1, 20] and --per-slide in [1, 10], got {a.slides} and {a.per_slide}",
              file=sys.stderr)
        return 2
    try:
        ranges = Ranges().with_changes(um_per_px=tuple(a.um_per_px), na_factor=tuple(a.na_factor))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    dz = tuple(sorted(set(SHEET_DZ_UM) | {v for pair in PAIRS_UM for v in pair}))
    sweeps = sweep(ranges, a.seed, a.slides, a.per_slide, dz)
    print("type        " + "  ".join(f"{x:+g}/{y:+g}" for x, y in PAIRS_UM))
    for cls, crops in sweeps:
        print(f"{cls:10s}  " + "  ".join(f"{visibility(crops, x, y):7.2f}" for x, y in PAIRS_UM))
    if a.sheet is not None and not cv2.imwrite(str(a.sheet), sheet(sweeps)):
        print(f"cannot write {a.sheet}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
