"""``tppscan focus bench | stack``: the autofocus bench and focus stacks on the virtual microscope."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

STRATEGY_CHOICES = ("sweep", "classical", "neural", "map")
#: ``focus stack`` writes OME-TIFF, under a name that says so (as ``sim stack`` asks).
OME_SUFFIXES = (".ome.tif", ".ome.tiff", ".tif", ".tiff")


def _int_in(name: str, lo: int, hi: int) -> Any:
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer in [{lo}, {hi}], got {text!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{name} must be an integer in [{lo}, {hi}], got {text!r}")
        return v
    return parse


def _float_in(name: str, lo: float, hi: float) -> Any:
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number in [{lo:g}, {hi:g}], got {text!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{name} must be a number in [{lo:g}, {hi:g}], got {text!r}")
        return v
    return parse


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``focus bench`` and ``focus stack``."""
    p = sub.add_parser("focus", help="autofocus bench and focus stacks on the virtual microscope",
                       description="Autofocus on the virtual microscope (docs/autofocus.md).")
    fs = p.add_subparsers(dest="focus_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])

    b = fs.add_parser("bench", help="autofocus over K fields of virtual slides and print the figures",
                      description="Autofocus over K fields, each centred on a structure of the virtual slide "
                                  "SEED (then SEED+1, ...): frames, |z - true focus|, success (|dz| <= 1 um), "
                                  "virtual time.",
                      epilog="example: tppscan focus bench --fields 50 --focus stepper --strategy map")
    b.add_argument("--seed", type=_int_in("--seed", 0, 2**31 - 1), default=1000,
                   help="first slide seed (default 1000; seeds below 200 were used to tune)")
    b.add_argument("--fields", type=_int_in("--fields", 1, 100000), default=20, help="fields (default 20)")
    b.add_argument("--strategy", choices=STRATEGY_CHOICES, default="classical", help="default classical")
    b.add_argument("--focus", choices=("servo", "stepper"), default="servo",
                   help="servo (1 um per whole degree, the default) or stepper (1/32 um steps)")
    b.add_argument("--offset-um", type=_float_in("--offset-um", 0.0, 80.0), default=10.0,
                   help="start up to this far from the true focus, uniform (default 10)")
    b.add_argument("--range-um", type=_float_in("--range-um", 1.0, 85.0), default=15.0,
                   help="search start ± this (default 15; must exceed --offset-um)")
    b.add_argument("--json", action="store_true", help="print one JSON object")
    b.add_argument("--per-field", action="store_true", help="with --json: add every field's row")
    b.add_argument("--no-net", action="store_true",
                   help="map: do not load the focus net (the map alone, one frame to see the target)")
    b.add_argument("--model", type=Path, default=None, metavar="FILE",
                   help="the focus net to bench (a .tflite `tppscan train focus` wrote; default: the shipped one)")
    b.add_argument("--foci-map", action="store_true",
                   help="fit the focus map to the structures' foci, not to the glass (each structure's "
                        "reference height unknown)")
    b.add_argument("--no-type-bias", action="store_true",
                   help="do not take the classical reading's per-type bias off (appliance/focus/typebias.py; "
                        "measured for the default optics)")
    b.add_argument("--reader", type=Path, default=None, metavar="FILE",
                   help="the learned reading to bench (a reader.onnx `tppscan train reader` wrote; default: the "
                        "shipped one); it moves each classical reading instead of the type's bias, on the optics it "
                        "was trained at")
    b.add_argument("--map-trust", type=_float_in("--map-trust", 0.5, 1.0), default=None, metavar="P",
                   help="map strategy: one frame where the stage lands within 1 um with this probability "
                        "(default 0.9; 1: search every structure)")
    b.add_argument("--no-reader", action="store_true", help="do not load the learned reading (the type's bias instead)")
    b.add_argument("--sim-set", action="append", default=[], metavar="KEY=VALUE",
                   help="set a virtual slide, optics, sensor or stage parameter, as tppscan scan does, e.g. "
                        "optics.magnification=20 optics.na=0.4 for the focus net's objective class "
                        "(repeatable; every value checked; the focus drive is --focus)")
    b.set_defaults(func=run_bench)

    k = fs.add_parser("blank", help="map strategy on fields with nothing in view or only debris",
                      description="Focus three structures of slide SEED (classical), then run the map strategy on "
                                  "N empty and N debris-only fields: frames and how far any frame strays from the "
                                  "map's prediction, in its standard deviations.")
    k.add_argument("--seed", type=_int_in("--seed", 0, 2**31 - 1), default=1000,
                   help="virtual slide seed (default 1000; seeds below 200 were used to tune)")
    k.add_argument("--fields", type=_int_in("--fields", 1, 1000), default=10, help="of each kind (default 10)")
    k.add_argument("--focus", choices=("servo", "stepper"), default="servo",
                   help="servo (1 um per whole degree, the default) or stepper (1/32 um steps)")
    k.add_argument("--json", action="store_true", help="print one JSON object")
    k.add_argument("--no-net", action="store_true", help="do not load the focus net")
    k.add_argument("--model", type=Path, default=None, metavar="FILE",
                   help="the focus net (a .tflite `tppscan train focus` wrote; default: the shipped one)")
    k.set_defaults(func=run_blank)

    s = fs.add_parser("stack", help="autofocus on a structure, then write a focus stack as OME-TIFF",
                      description="Focus on a structure of slide SEED (classical search), then capture a stack "
                                  "around it and write OME-TIFF with each plane's stage z in its metadata.")
    s.add_argument("--seed", type=_int_in("--seed", 0, 2**31 - 1), default=1,
                   help="virtual slide seed (default 1)")
    s.add_argument("--structure", type=_int_in("--structure", 0, 100000), default=0,
                   help="index among the slide's structures (default 0)")
    s.add_argument("--range-um", type=_float_in("--range-um", 0.0, 100.0), default=20.0,
                   help="total z range around the focus (default 20)")
    s.add_argument("--step-um", type=_float_in("--step-um", 0.05, 50.0), default=None,
                   help="default 1 (not with --servo-sweep, whose step is one servo degree)")
    s.add_argument("--servo-sweep", action="store_true",
                   help="the seed's mode: every whole servo degree over the range (servo focus)")
    s.add_argument("--out", type=Path, required=True, help="output file, .ome.tif or .tif(f)")
    s.set_defaults(func=run_stack)


def _estimator(strategy: str, um_per_px: float, model: Path | None = None) -> Any:
    """The focus net for ``neural`` (required) and ``map`` (optional: without it the map uses classical).

    ``um_per_px``: the bench camera's scale, so the net's crops cover the slide it was trained on. ``model``: a
    focus net file to load instead of the shipped one; a file named but not loadable is an error (``OSError``)
    for every strategy, never a bench run without it. The shipped net missing from a ``map`` run is said on
    stderr, and the map runs without it.
    """
    from appliance.focus.netadapter import FocusNetEstimator

    try:
        return FocusNetEstimator(um_per_px, model=model)
    except OSError as exc:
        if strategy == "neural" or model is not None:
            raise
        print(f"NOTE the shipped focus net could not be loaded ({exc}): the map runs without it", file=sys.stderr)
        return None


def _reader(path: Path | None, wanted: bool) -> Any:
    """The learned reading: ``path``, else the shipped one (None when ``wanted`` is False).

    A file named but not loadable is an ``OSError``; the shipped one missing is said on stderr and the bench
    runs without it.
    """
    if not wanted:
        return None
    from appliance.focus.reader import SHIPPED_READER, FocusReader

    try:
        return FocusReader(path or SHIPPED_READER)
    except OSError as exc:
        if path is not None:
            raise
        print(f"NOTE the shipped focus reader could not be loaded ({exc}): the type's bias is used", file=sys.stderr)
        return None


def run_bench(args: argparse.Namespace) -> int:
    """Handler of ``tppscan focus bench``."""
    from appliance.focus.autofocus import MAP_TRUST_P
    from appliance.focus.bench import run_bench as bench
    from appliance.focus.bench import summarise

    if args.no_net and args.strategy == "neural":
        print("tppscan focus bench: error: --no-net with --strategy neural, which is the net; drop one",
              file=sys.stderr)
        return 2
    if args.model is not None and (args.no_net or args.strategy not in ("neural", "map")):
        print(f"tppscan focus bench: error: --model is the focus net, which only --strategy neural and map use "
              f"(without --no-net); got --strategy {args.strategy}{' --no-net' if args.no_net else ''}",
              file=sys.stderr)
        return 2
    if args.per_field and not args.json:  # kept working: measurement commands in docs/ were written so
        print("NOTE --per-field adds every field's row to --json's object; without --json it changes nothing",
              file=sys.stderr)
    if args.offset_um >= args.range_um:
        print(f"tppscan focus bench: error: --offset-um must be below --range-um ({args.range_um:g}), "
              f"got {args.offset_um:g}", file=sys.stderr)
        return 2
    from appliance.focus.bench import bench_sets
    from appliance.sim.overrides import parse_sim_sets, sim_microscope

    try:
        sets = parse_sim_sets(args.sim_set)
        scope0 = sim_microscope(args.seed, bench_sets(args.focus, sets))  # every override checked
        um_per_px = float(scope0.camera.um_per_px)
    except ValueError as exc:
        print(f"tppscan focus bench: error: {exc}", file=sys.stderr)
        return 2
    if args.reader is not None and args.no_reader:
        print("tppscan focus bench: error: --reader FILE with --no-reader; drop one", file=sys.stderr)
        return 2
    want_net = args.strategy == "neural" or (args.strategy == "map" and not args.no_net)
    try:
        est = _estimator(args.strategy, um_per_px, args.model) if want_net else None
        reader = _reader(args.reader, args.strategy != "sweep" and not args.no_reader)
    except OSError as exc:
        print(f"tppscan focus bench: error: {exc}", file=sys.stderr)
        return 2
    from appliance.focus.bench import reader_fits

    if reader is not None and not reader_fits(reader, scope0):
        print(f"NOTE the focus reader was trained at {reader.meta['um_per_px']:.3g} um/px and a depth of field of "
              f"{reader.meta['dof_um']:.3g} um with the default camera chain; these optics or this camera differ, "
              "so the type's bias is used", file=sys.stderr)
        reader = None
    try:
        runs = bench(args.seed, args.fields, args.strategy, args.focus, est, args.offset_um, args.range_um,
                     glass_map=not args.foci_map, type_bias=not args.no_type_bias, sim_sets=sets, reader=reader,
                     map_trust=MAP_TRUST_P if args.map_trust is None else args.map_trust)
    except ValueError as exc:  # slides without a structure to focus on
        print(f"tppscan focus bench: error: {exc}", file=sys.stderr)
        return 2
    out: dict[str, Any] = {"strategy": args.strategy, "focus": args.focus, "seed": args.seed,
                           "sim_set": list(args.sim_set), "um_per_px": um_per_px,
                           "estimator": type(est).__name__ if est is not None else None,
                           "model": None if est is None else str(args.model) if args.model else "shipped",
                           "map_of": "foci" if args.foci_map else "glass", "type_bias": not args.no_type_bias,
                           "reader": None if reader is None else str(args.reader) if args.reader else "shipped",
                           "map_trust": MAP_TRUST_P if args.map_trust is None else args.map_trust,
                           **summarise(runs)}
    if args.strategy == "map":
        later = [r for r in runs if r.map_points >= 3]
        out["after_3_fields"] = summarise(later) if later else None
    if args.json:
        if args.per_field:
            out["per_field"] = [r.to_dict() for r in runs]
        print(json.dumps(out))
        return 0
    print(f"strategy {args.strategy}, {args.focus} focus, slides from seed {args.seed}, {len(runs)} fields")
    rows = [("all fields", out)]
    if out.get("after_3_fields"):
        rows.append(("after 3 focused fields", out["after_3_fields"]))
    print(f"{'':24} {'frames med/p95':>15} {'|dz| med/p95 um':>16} {'success':>8} {'time med s':>10}")
    for name, o in rows:
        print(f"{name:24} {o['frames_median']:>7.1f}/{o['frames_p95']:<7.1f} {o['abs_dz_median_um']:>7.2f}/"
              f"{o['abs_dz_p95_um']:<8.2f} {100 * o['success_rate']:>7.1f}% {o['time_s_median']:>10.2f}")
    return 0


def run_blank(args: argparse.Namespace) -> int:
    """Handler of ``tppscan focus blank``."""
    from appliance.focus.autofocus import MAP_WINDOW_K
    from appliance.focus.bench import run_blank_fields
    from appliance.sim.optics import OpticsParams
    from appliance.sim.sensor import SensorParams

    um_per_px = SensorParams().pixel_um / OpticsParams().magnification  # the default virtual camera's
    if args.model is not None and args.no_net:
        print("tppscan focus blank: error: --model with --no-net: drop one", file=sys.stderr)
        return 2
    try:
        est = None if args.no_net else _estimator("map", um_per_px, args.model)
    except OSError as exc:
        print(f"tppscan focus blank: error: {exc}", file=sys.stderr)
        return 2
    runs = run_blank_fields(args.seed, args.fields, args.focus, est)
    out: dict[str, Any] = {"seed": args.seed, "focus": args.focus, "window_k": MAP_WINDOW_K}
    for kind in ("empty", "debris"):
        rs = [r for r in runs if r.kind == kind]
        out[kind] = {"fields": len(rs), "frames_max": max((r.frames for r in rs), default=0),
                     "frames_median": float(sorted(r.frames for r in rs)[len(rs) // 2]) if rs else 0.0,
                     "max_excursion_sigma": max((r.max_excursion_sigma for r in rs), default=0.0),
                     "max_final_offset_sigma": max((r.final_offset_sigma for r in rs), default=0.0)}
    if args.json:
        print(json.dumps(out))
        return 0
    for kind in ("empty", "debris"):
        o = out[kind]
        print(f"{kind:7} {o['fields']:3} fields: frames median {o['frames_median']:.0f} max {o['frames_max']}, "
              f"furthest frame {o['max_excursion_sigma']:.2f} sigma from the map's prediction, final "
              f"{o['max_final_offset_sigma']:.2f} sigma (window ±{MAP_WINDOW_K:g} sigma)")
    return 0


def run_stack(args: argparse.Namespace) -> int:
    """Handler of ``tppscan focus stack``."""
    from appliance.focus.autofocus import autofocus
    from appliance.focus.bench import scan_order
    from appliance.focus.scores import TARGET_MARGIN_PX, grow_rect
    from appliance.focus.stack import capture_stack, range_planes_um, servo_planes_um, write_ome_stack
    from appliance.outpath import out_file_problem, out_file_unwritable
    from appliance.sim.microscope import VirtualMicroscope

    if problem := out_file_problem(args.out, OME_SUFFIXES):  # before the autofocus, not after it
        print(f"tppscan focus stack: error: {problem}", file=sys.stderr)
        return 2
    if args.servo_sweep and args.step_um is not None:
        print("tppscan focus stack: error: --step-um with --servo-sweep: the sweep steps one servo degree; drop one",
              file=sys.stderr)
        return 2
    scope = VirtualMicroscope(args.seed)
    objs = scan_order(scope)
    if args.structure >= len(objs):
        print(f"tppscan focus stack: error: --structure must be in [0, {len(objs) - 1}] for slide {args.seed}, "
              f"got {args.structure}", file=sys.stderr)
        return 2
    if problem := out_file_unwritable(args.out):  # a refusal after the autofocus would lose it
        print(f"tppscan focus stack: error: {problem}", file=sys.stderr)
        return 1
    o = objs[args.structure]
    with scope.stage, scope.camera:
        scope.stage.move_to_um(x=o.center_um[0], y=o.center_um[1])
        box = next(b for b in scope.boxes_at(*o.center_um) if b.id == o.id)
        w, h = scope.camera.size_px
        roi = grow_rect((box.box_px[0], box.box_px[1], box.box_px[2] - box.box_px[0],
                         box.box_px[3] - box.box_px[1]), TARGET_MARGIN_PX, (h, w))
        z0 = scope.stage.position_um().z_um
        r = autofocus(scope.stage, scope.camera, "classical", z_range_um=(z0 - 30, z0 + 30), roi=roi,
                      now_s=scope.clock.now_s)
        if not r.ok:
            print(f"tppscan focus stack: autofocus failed: {r.reason}", file=sys.stderr)
            return 1
        half = args.range_um / 2
        planes = (servo_planes_um(r.z_um - half, r.z_um + half, scope.stage.params.um_per_servo_degree)
                  if args.servo_sweep else range_planes_um(r.z_um, args.range_um, args.step_um or 1.0))
        stack, zs = capture_stack(scope.stage, scope.camera, planes)
    write_ome_stack(args.out, stack, zs, scope.camera.um_per_px, o.center_um)
    print(f"wrote {args.out}: {len(zs)} planes z {zs[0]:.2f}..{zs[-1]:.2f} um around focus {r.z_um:.2f} um "
          f"({r.frames} autofocus frames; true focus {o.focus_z_um:.2f} um)")
    return 0
