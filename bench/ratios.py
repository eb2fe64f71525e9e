"""Print each kernel's time over its OpenCV twin's, per frame size; exit 1 when a gated ratio misses its bar.

Run: ``.venv/bin/python bench/ratios.py`` (``--rounds N`` for steadier figures, ``--only NAME`` for one
kernel). Both sides run in this process on the same frame, in alternating rounds; medians are compared.
Bars (issue 2): every kernel <= 1.0x OpenCV, the fused analysis <= 0.5x OpenCV's chain; at 640x480 a ratio
is gated only where OpenCV needs >= 50 us.
"""

from __future__ import annotations

import argparse
import sys

import kernels
from kernels.benchcases import CASES, SIZES, make_case_frame, time_pair


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table, return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="alternating timing rounds per case (>= 3)")
    parser.add_argument("--only", action="append", choices=[c.name for c in CASES],
                        help="measure only this kernel (repeatable)")
    args = parser.parse_args(argv)
    if args.rounds < 3:
        parser.error(f"--rounds must be >= 3, got {args.rounds}")
    kernels.warmup()
    failed = []
    print(f"{'kernel':<20} {'size':>9} {'ours ms':>9} {'OpenCV ms':>10} {'ratio':>7} {'bar':>5}  verdict")
    for h, w in SIZES:
        frame = make_case_frame(h, w)
        for case in CASES:
            if args.only and case.name not in args.only:
                continue
            ours, opencv = case.setup(frame)
            t = time_pair(ours, opencv, (h, w), rounds=args.rounds)
            if not t.gated:
                verdict = "not gated (OpenCV < 50 us)"
            elif t.ratio <= case.bar:
                verdict = "ok"
            else:
                verdict = "MISSES BAR"
                failed.append(f"{case.name} {w}x{h}")
            print(f"{case.name:<20} {f'{w}x{h}':>9} {t.ours_s * 1e3:9.3f} {t.opencv_s * 1e3:10.3f} "
                  f"{t.ratio:7.2f} {case.bar:5.2f}  {verdict}", flush=True)
    if failed:
        print(f"\n{len(failed)} ratio(s) miss their bar: {', '.join(failed)}")
        return 1
    print("\nall gated ratios meet their bars")
    return 0


if __name__ == "__main__":
    sys.exit(main())
