"""Re-measure the realism table: the real tiles against matched simulated pentagons (appliance.sim.realism).

Run: ``.venv/bin/python scripts/measure_realism.py [--camera default|cheap_colour|mono_raw] [--seeds 0 1 2 3]
[--json] [--picture side-by-side.png]``. Prints one row per measure: real value, simulated value, their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402

from appliance.sim import capture, realism  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Measure and print; exit 2 on a bad option."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--camera", default="default", choices=sorted(capture.PRESETS),
                        help="capture-chain preset of the simulated camera")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3], help="matched pentagons (>= 0)")
    parser.add_argument("--tiles", type=Path, default=realism.REAL_TILES, help="the real 5x3 tile grid")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--picture", type=Path, help="also write real vs simulated tiles through focus (PNG)")
    args = parser.parse_args(argv)
    if any(s < 0 for s in args.seeds):
        parser.error(f"--seeds must be >= 0, got {args.seeds}")
    if args.picture is not None and args.picture.suffix.lower() != ".png":
        parser.error(f"--picture must be a .png name, got {str(args.picture)!r}")
    if args.picture is not None and not os.access(args.picture.parent if str(args.picture.parent) else ".", os.W_OK):
        print(f"error: cannot write {args.picture}: folder missing or not writable", file=sys.stderr)
        return 1
    try:
        real, area = realism.real_table(args.tiles)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    setup = realism.SimSetup(seeds=tuple(args.seeds), chain=capture.PRESETS[args.camera])
    sim = realism.simulated_table(setup, area)
    if args.picture is not None:
        rows = {f"sim {name}": realism.SimSetup(chain=capture.PRESETS[name]) for name in ("default", "cheap_colour")}
        if not cv2.imwrite(str(args.picture), realism.side_by_side(rows, area, seed=args.seeds[0])):
            print(f"error: could not write {args.picture} (use a .png name in a writable folder)", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps({"camera": args.camera, "seeds": args.seeds, "real_area_px": area,
                          "real": real, "sim": sim}, indent=1))
        return 0
    print(f"camera preset: {args.camera}; seeds {args.seeds}; real footprint {area:.0f} px")
    print(f"{'measure':<52} {'real':>8} {'sim':>8} {'sim/real':>8}")
    for key, label in realism.ROWS:
        r, s = real.get(key, float("nan")), sim.get(key, float("nan"))
        ratio = s / r if r else float("nan")
        print(f"{label:<52} {r:8.3f} {s:8.3f} {ratio:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
