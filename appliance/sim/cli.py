"""``tppscan sim slide|field|stack|strip``: look at the virtual microscope.

- ``sim slide``: an overview map of the whole slide (PNG, structures marked) and its ground truth (JSON beside it).
- ``sim field``: one camera frame at x, y, z (PNG) and the boxes of what is in view (JSON beside it).
- ``sim stack``: a focus stack at x, y as OME-TIFF (Fiji and napari read it), boxes as JSON beside it.
- ``sim strip``: a through-focus strip of one structure or debris type (PNG), for judging the optics by eye.

Every subcommand takes ``--sim-set SECTION.KEY=VALUE`` (repeatable), read and checked by the parser ``tppscan scan``
uses (:mod:`appliance.sim.overrides`), so the slide a scan will see can be looked at first.

Without ``--x/--y`` a field or stack is centred on the slide's first structure. Without ``--z`` (or a z range)
it is focused on what is in view: the structure nearest the frame's centre, else the nearest debris, else the
glass. Every option value is checked before anything is rendered: a bad value exits 2 with one line naming the
option, the value and what is allowed; an output that cannot be written exits 1 with one line, also before
rendering. Heavy imports happen inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from appliance.outpath import out_file_problem, out_file_unwritable

# Limits of the options: the sensor (OV5647 full frame), the overview's scale, exposure, slicing, crops.
WIDTH_PX = (16, 2592)
HEIGHT_PX = (16, 1944)
UM_PER_PX = (1.0, 200.0)
EXPOSURE_MS = (0.01, 10000.0)
SLICE_UM = (0.5, 50.0)
CROP_PX = (16, 480)
DZ_UM = 100.0
# The names of appliance.sim.capture.PRESETS, spelled out so --help needs no heavy import (a test keeps them equal).
CAMERA_PRESETS = ("cheap_colour", "default", "mono_raw")
MAX_PLANES = 1000
#: A stack is held in memory before it is written; refuse one larger than this up front.
STACK_BUDGET_BYTES = 2 * 1024**3
PNG_SUFFIXES = (".png",)
TIFF_SUFFIXES = (".ome.tif", ".ome.tiff", ".tif", ".tiff")


class _Parser(argparse.ArgumentParser):
    """A bad option value ends in one line (command, option, value, what is allowed) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:  # argparse overloads it
        """Refuse an unknown option here, naming this subcommand: left to ``tppscan``, it came under its usage."""
        parsed, extra = super().parse_known_args(args, namespace)
        if extra:
            self.error(f"unrecognized arguments: {' '.join(extra)} (see {self.prog} --help)")
        return parsed, extra


def _allowed(lo: float | None, hi: float | None, unit: str, open_lo: bool = False) -> str:
    if hi is None:
        return f">= {lo}{unit}"
    return f"in {'(' if open_lo else '['}{lo}, {hi}]{unit}"


def _int_in(lo: int, hi: int | None = None, unit: str = "") -> Callable[[str], int]:
    """An argparse type: an integer in ``[lo, hi]`` (``hi`` None: unbounded)."""
    def conv(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer {_allowed(lo, hi, unit)}, got {text!r}") from None
        if v < lo or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(f"must be an integer {_allowed(lo, hi, unit)}, got {text}")
        return v
    return conv


def _number(text: str, allowed: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number {allowed}, got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number {allowed}, got {text}")
    return v


def _float_in(lo: float, hi: float, unit: str = "", open_lo: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number in ``[lo, hi]`` (``(lo, hi]`` with ``open_lo``)."""
    allowed = _allowed(lo, hi, unit, open_lo)

    def conv(text: str) -> float:
        v = _number(text, allowed)
        if v < lo or v > hi or (open_lo and v == lo):
            raise argparse.ArgumentTypeError(f"must be a number {allowed}, got {text}")
        return v
    return conv


def _travel(axis: str) -> tuple[float, float]:
    # the default stage's travel: the options are read before --sim-set, so a stage.travel_* set there is not used
    from appliance.sim.stage import SimStageParams

    lo, hi = getattr(_stage_params(SimStageParams), f"travel_{axis}_um")
    return float(lo), float(hi)


def _stage_params(cls: Any) -> Any:
    # A Z stepper (not the 1-degree servo) so any requested z is reached to 1/32 µm.
    return cls(z_mode="stepper")


def _on_stage(axis: str) -> Callable[[str], float]:
    """An argparse type: a finite stage coordinate inside the CLI stage's travel on ``axis``."""
    def conv(text: str) -> float:
        lo, hi = _travel(axis)
        allowed = f"in [{lo:g}, {hi:g}] µm (the stage's {axis} travel)"
        v = _number(text, allowed)
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"must be a number {allowed}, got {text}")
        return v
    return conv


def register(sub: Any) -> None:
    """Add the ``sim`` command group and its subcommands."""
    p = sub.add_parser("sim", help="inspect the virtual microscope",
                       description="Render the virtual microscope's slide, fields and focus stacks.")
    p.set_defaults(func=lambda a: p.print_help() or 2)
    ss = p.add_subparsers(dest="sim_command", metavar="SUBCOMMAND", parser_class=_Parser)

    def common(q: argparse.ArgumentParser, out_default: str, suffixes: tuple[str, ...]) -> None:
        q.add_argument("--seed", type=_int_in(0, 2**32 - 1), default=0,
                       help="slide and camera seed, 0..4294967295 (default 0)")
        q.add_argument("--out", type=Path, default=Path(out_default),
                       help=f"output file, {' or '.join(suffixes)} (default {out_default})")
        q.add_argument("--slice-um", type=_float_in(*SLICE_UM, " µm"), default=None,
                       help="propagate through slices of at most this thickness, µm, 0.5..50 (default: thin screens)")
        q.add_argument("--camera", choices=CAMERA_PRESETS, default=None,
                       help="the camera's capture chain, a preset of appliance.sim.capture.PRESETS: default (colour "
                            "USB/CSI camera), cheap_colour (softer lens, stronger JPEG), mono_raw (monochrome, "
                            "linear, no ISP) (default: default)")
        q.add_argument("--sim-set", action="append", default=[], metavar="KEY=VALUE",
                       help="set a virtual slide, optics, sensor, stage or camera parameter as tppscan scan --sim-set "
                            "does, to look at the slide a scan would see, e.g. slide.debris_per_mm2=40 "
                            "(repeatable; every value checked)")
        q.set_defaults(out_suffixes=suffixes)

    s = ss.add_parser("slide", epilog="example: tppscan sim slide --seed 7 --sim-set slide.debris_per_mm2=40",
                      help="overview map of the slide (PNG) + ground truth (JSON)",
                      description="Write an overview map of the slide, structures marked, and its ground truth "
                                  "JSON beside it.")
    common(s, "slide.png", PNG_SUFFIXES)
    s.add_argument("--um-per-px", type=_float_in(*UM_PER_PX, " µm/px"), default=10.0,
                   help="map scale, µm per pixel, 1..200 (default 10)")
    s.add_argument("--markers", action=argparse.BooleanOptionalAction, default=True,
                   help="mark each structure with a red box and its id (default: on)")
    s.set_defaults(func=_cmd_slide)

    def position(q: argparse.ArgumentParser) -> None:
        q.add_argument("--x", type=_on_stage("x"), default=None, help="stage x, µm (default: first structure)")
        q.add_argument("--y", type=_on_stage("y"), default=None, help="stage y, µm (default: first structure)")
        q.add_argument("--width", type=_int_in(*WIDTH_PX, " px"), default=None, help="frame width, px (16..2592, "
                                                                                     "default 640)")
        q.add_argument("--height", type=_int_in(*HEIGHT_PX, " px"), default=None,
                       help="frame height, px (16..1944, default 480)")
        q.add_argument("--exposure-ms", type=_float_in(*EXPOSURE_MS, " ms"), default=None,
                       help="exposure, ms (0.01..10000, default 10)")

    f = ss.add_parser("field", epilog="example: tppscan sim field --sim-set sensor.width_px=1280 --out f.png",
                      help="one frame at x, y, z (PNG) + boxes in view (JSON)",
                      description="Capture one frame at a stage position; write PNG and boxes JSON.")
    common(f, "field.png", PNG_SUFFIXES)
    position(f)
    f.add_argument("--z", type=_on_stage("z"), default=None,
                   help="stage z, µm (default: focus of the structure nearest the centre of the view)")
    f.set_defaults(func=_cmd_field)

    k = ss.add_parser("stack", epilog="example: tppscan sim stack --seed 7 --z-step 0.5 --out s.ome.tif",
                      help="a focus stack at x, y (OME-TIFF)",
                      description="Capture frames from z-from to z-to at x, y; write an OME-TIFF (ZYX).")
    common(k, "stack.ome.tif", TIFF_SUFFIXES)
    position(k)
    k.add_argument("--z-from", type=_on_stage("z"), default=None, help="first z, µm (default: focus - 10)")
    k.add_argument("--z-to", type=_on_stage("z"), default=None, help="last z, µm (default: focus + 10)")
    k.add_argument("--z-step", type=_float_in(0.0, 180.0, " µm", open_lo=True), default=1.0,
                   help="z step, µm (0 < step <= 180, default 1)")
    k.set_defaults(func=_cmd_stack)

    t = ss.add_parser("strip", epilog="example: tppscan sim strip --cls pentagon --sim-set optics.na=0.4",
                      help="through-focus strip of one structure or debris type (PNG)",
                      description="Crops around the first object of a class, at focus offsets side by side.")
    common(t, "strip.png", PNG_SUFFIXES)
    t.add_argument("--cls", required=True, help="a structure type (woodpile, microlens, scaffold, pentagon, "
                                                 "split_ring) or debris type (dust, fibre, bubble, scratch)")
    t.add_argument("--dz", type=_float_in(-DZ_UM, DZ_UM, " µm"), nargs="+",
                   default=[-10.0, -5.0, -2.0, 0.0, 2.0, 5.0, 10.0],
                   help="focus offsets from the object's true focus, µm, each in [-100, 100] "
                        "(default -10 -5 -2 0 2 5 10)")
    t.add_argument("--index", type=_int_in(0), default=0, help="which object of that class (default 0, the first)")
    t.add_argument("--crop", type=_int_in(*CROP_PX, " px"), default=240, help="crop size, px, 16..480 (default 240)")
    t.set_defaults(func=_cmd_strip)


def _fail(msg: str) -> int:
    """A bad value: one line, exit status 2."""
    print(f"tppscan sim: error: {msg}", file=sys.stderr)
    return 2


def _file_error(msg: str) -> int:
    """An output that cannot be written: one line, exit status 1."""
    print(f"tppscan sim: error: {msg}", file=sys.stderr)
    return 1


def _check_outputs(out: Path, suffixes: tuple[str, ...], sidecar: Path) -> int | None:
    """Check ``out`` and its JSON sidecar before rendering; None when both can be written, else the exit code.

    A folder or another extension is bad input (exit 2), a place the file system refuses is exit 1
    (``appliance.outpath``); either prints one line.
    """
    if problem := out_file_problem(out, suffixes):  # a folder or another extension: bad input
        return _fail(problem)
    for path, what in ((out, "--out"), (sidecar, "--out's sidecar")):
        if problem := out_file_unwritable(path, what):
            return _file_error(problem)
    return None


#: The options that set a simulator parameter --sim-set can set too: (option, section, key).
OPTION_KEYS: tuple[tuple[str, str, str], ...] = (
    ("--width", "sensor", "width_px"), ("--height", "sensor", "height_px"), ("--exposure-ms", "sensor", "exposure_ms"),
    ("--slice-um", "optics", "slice_um"), ("--camera", "camera", "preset"))


def sim_sets(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The simulator's overrides: ``--sim-set`` (read and checked as ``tppscan scan`` does) and the options.

    ``ValueError`` naming both where an option and a ``--sim-set`` set one parameter. The stage is a Z stepper
    unless ``stage.z_mode`` is set, so any requested z is reached to 1/32 µm (the scan's default servo: 1 µm).
    Sets ``args.width`` and ``args.height`` to the frame's size (the stack's budget needs it).
    """
    from appliance.sim.overrides import parse_sim_sets, sim_params

    sets = parse_sim_sets(args.sim_set)
    for option, section, key in OPTION_KEYS:
        value = getattr(args, option[2:].replace("-", "_"), None)
        if value is None:
            continue
        if key in sets[section]:
            raise ValueError(f"{option} {value} and --sim-set {section}.{key}={sets[section][key]} set the same "
                             f"parameter; give one")
        sets[section][key] = value
    sets["stage"].setdefault("z_mode", "stepper")
    sensor = sim_params(sets)[2]  # every value checked here, before any output is touched
    if hasattr(args, "width"):
        args.width, args.height = sensor.width_px, sensor.height_px
    return sets


def _scope(args: argparse.Namespace) -> Any:
    from appliance.sim.overrides import sim_microscope

    return sim_microscope(args.seed, args.sets)


def _prepared(args: argparse.Namespace) -> int | None:
    """Read the overrides into ``args.sets``; None, or exit 2 after one line naming the bad one."""
    try:
        args.sets = sim_sets(args)
    except ValueError as exc:
        return _fail(str(exc))
    return None


def _target(scope: Any, args: argparse.Namespace) -> tuple[float, float, float, str]:
    """Stage x, y (default: the first structure's centre) and the focus of what is in view there.

    Returns (x, y, z, what z is the focus of): the structure nearest the frame's centre, else the nearest
    other object, else the glass surface.
    """
    first = next((o for o in scope.slide.objects if o.kind == "structure"), None)
    p = scope.slide.params
    cx, cy = first.center_um if first is not None else (p.width_um / 2, p.height_um / 2)
    x = float(cx if args.x is None else args.x)
    y = float(cy if args.y is None else args.y)
    w, h = scope.camera.size_px
    in_view = scope.boxes_at(x, y)

    def off_centre(b: Any) -> float:
        return math.hypot((b.box_px[0] + b.box_px[2]) / 2 - w / 2, (b.box_px[1] + b.box_px[3]) / 2 - h / 2)

    for kind in ("structure", "debris"):
        near = sorted((b for b in in_view if b.kind == kind), key=off_centre)
        if near:
            return x, y, float(near[0].focus_z_um), f"{near[0].cls} id {near[0].id}"
    return x, y, float(scope.slide.surface_z_um(x, y)), "the glass"


def _z_in_travel(option: str, z: float) -> str | None:
    """A message when ``z`` lies outside the stage's z travel (``option`` says where z came from), else None."""
    lo, hi = _travel("z")
    if not lo <= z <= hi:
        return f"{option} {z:.2f} µm, outside the stage's z travel [{lo:g}, {hi:g}] µm"
    return None


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=1, default=float))


def _mark_structures(img: Any, scope: Any, um_per_px: float) -> Any:
    """The overview in colour with a red box and the id beside each structure (they are faint at map scale)."""
    import cv2

    out = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    for o in scope.slide.objects:
        if o.kind != "structure":
            continue
        x0, y0, x1, y1 = (v / um_per_px for v in o.bbox_um)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        half = max((x1 - x0) / 2 + 3, (y1 - y0) / 2 + 3, 5.0)  # visible even when the structure is a dot
        a = (int(round(cx - half)), int(round(cy - half)))
        b = (int(round(cx + half)), int(round(cy + half)))
        cv2.rectangle(out, a, b, (0, 0, 255), 1)
        cv2.putText(out, str(o.id), (b[0] + 2, a[1] + 8), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (0, 0, 255), 1, cv2.LINE_AA)
    return out


def _cmd_slide(args: argparse.Namespace) -> int:
    import cv2

    if (code := _prepared(args)) is not None:
        return code
    sidecar = args.out.with_suffix(".json")
    if (code := _check_outputs(args.out, args.out_suffixes, sidecar)) is not None:
        return code
    scope = _scope(args)
    img = scope.overview(args.um_per_px)
    if args.markers:
        img = _mark_structures(img, scope, args.um_per_px)
    if not cv2.imwrite(str(args.out), img):
        return _file_error(f"could not write --out {args.out}")
    _write_json(sidecar, scope.truth())
    n_struct = sum(o.kind == "structure" for o in scope.slide.objects)
    print(f"wrote {args.out} ({img.shape[1]}x{img.shape[0]}, {args.um_per_px} um/px, {n_struct} structures "
          f"{'marked' if args.markers else 'unmarked'}) and {sidecar} ({len(scope.slide.objects)} objects)")
    return 0


def _cmd_field(args: argparse.Namespace) -> int:
    import cv2

    if (code := _prepared(args)) is not None:
        return code
    sidecar = args.out.with_suffix(".json")
    if (code := _check_outputs(args.out, args.out_suffixes, sidecar)) is not None:
        return code
    scope = _scope(args)
    x, y, zf, what = _target(scope, args)
    z = zf if args.z is None else float(args.z)
    if args.z is None and (msg := _z_in_travel("the focus of what is in view is at", z)):
        return _fail(f"{msg}; give --z")
    with scope.stage, scope.camera:
        scope.stage.move_to_um(x=x, y=y)
        scope.stage.focus_to_um(z)
        frame = scope.camera.capture()
    if not cv2.imwrite(str(args.out), frame.image):
        return _file_error(f"could not write --out {args.out}")
    boxes = [b.to_dict() for b in scope.boxes_in_view(frame)]
    _write_json(sidecar, {"seed": args.seed, "position_um": list(frame.position),
                          "true_position_um": list(frame.meta["true_position_um"]),
                          "um_per_px": scope.camera.um_per_px, "camera": args.sets["camera"].get("preset", "default"),
                          "sim_set": list(args.sim_set), "boxes": boxes})
    focus = "" if args.z is not None else f" (focus of {what})"
    print(f"wrote {args.out} at x={x:.1f} y={y:.1f} z={z:.2f} um{focus} ({len(boxes)} objects in view)")
    return 0


def _n_planes(z0: float, z1: float, step: float) -> int:
    return int(math.floor((z1 - z0) / step + 1e-9)) + 1


def _check_stack(z0: float, z1: float, args: argparse.Namespace) -> int | None:
    """None when the z range is ordered and the stack fits the plane count and memory budget, else exit 2."""
    if z1 < z0:
        return _fail(f"--z-to must be >= --z-from, got --z-from {z0:g} and --z-to {z1:g} µm")
    n = _n_planes(z0, z1, args.z_step)
    if n > MAX_PLANES:
        return _fail(f"a stack has at most {MAX_PLANES} planes, --z-from {z0:g} --z-to {z1:g} --z-step "
                     f"{args.z_step:g} µm gives {n if n < 10**9 else format(n, '.3g')}")
    need = n * args.width * args.height
    if need > STACK_BUDGET_BYTES:
        return _fail(f"a stack of {n} planes of {args.width}x{args.height} needs {need / 1e9:.2f} GB, more than "
                     f"the {STACK_BUDGET_BYTES / 1e9:.2f} GB allowed (--width, --height or --sim-set "
                     f"sensor.width_px, height_px; --z-from, --z-to, --z-step)")
    return None


def _cmd_stack(args: argparse.Namespace) -> int:
    import numpy as np
    import tifffile

    if (code := _prepared(args)) is not None:
        return code
    sidecar = Path(str(args.out) + ".json")
    if (code := _check_outputs(args.out, args.out_suffixes, sidecar)) is not None:
        return code
    if args.z_from is not None and args.z_to is not None:  # refuse a bad range before building the slide
        if (code := _check_stack(args.z_from, args.z_to, args)) is not None:
            return code
    scope = _scope(args)
    x, y, zf, _ = _target(scope, args)
    z0 = zf - 10.0 if args.z_from is None else float(args.z_from)
    z1 = zf + 10.0 if args.z_to is None else float(args.z_to)
    for option, z, given in (("--z-from (focus - 10)", z0, args.z_from), ("--z-to (focus + 10)", z1, args.z_to)):
        if given is None and (msg := _z_in_travel(f"{option} is at", z)):
            return _fail(f"{msg}; give {option.split()[0]}")
    if (code := _check_stack(z0, z1, args)) is not None:
        return code
    n = _n_planes(z0, z1, args.z_step)
    stack = np.empty((n, args.height, args.width), np.uint8)
    z_um: list[float] = []
    true_xy: list[float] = []
    with scope.stage, scope.camera:
        scope.stage.move_to_um(x=x, y=y)
        for i in range(n):
            scope.stage.focus_to_um(z0 + i * args.z_step)
            frame = scope.camera.capture()
            stack[i] = frame.image
            z_um.append(float(list(frame.position)[2]))
            if i == 0:
                true_xy = [float(v) for v in frame.meta["true_position_um"]]
    s = scope.camera.um_per_px
    tifffile.imwrite(args.out, stack, ome=True, photometric="minisblack",
                     metadata={"axes": "ZYX", "PhysicalSizeX": s, "PhysicalSizeXUnit": "µm",
                               "PhysicalSizeY": s, "PhysicalSizeYUnit": "µm",
                               "PhysicalSizeZ": args.z_step, "PhysicalSizeZUnit": "µm"})
    boxes = [b.to_dict() for b in scope.boxes_at(true_xy[0], true_xy[1])]
    _write_json(sidecar, {"seed": args.seed, "z_um": z_um, "um_per_px": s, "true_position_um": true_xy,
                          "boxes": boxes})
    print(f"wrote {args.out}: {n} planes z={z0:.2f}..{z0 + (n - 1) * args.z_step:.2f} um at x={x:.1f} y={y:.1f}")
    return 0


def _cmd_strip(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from appliance.sim.slide import DEBRIS_TYPES, STRUCTURE_TYPES

    if args.cls not in STRUCTURE_TYPES + DEBRIS_TYPES:
        return _fail(f"--cls must be one of {', '.join(STRUCTURE_TYPES + DEBRIS_TYPES)}, got {args.cls!r}")
    if (code := _prepared(args)) is not None:
        return code
    if (code := _check_outputs(args.out, args.out_suffixes, args.out)) is not None:
        return code
    scope = _scope(args)
    objs = [o for o in scope.slide.objects if o.cls == args.cls]
    if not 0 <= args.index < len(objs):
        return _fail(f"--index must be in [0, {len(objs) - 1}] for {args.cls} on seed {args.seed}, got {args.index}")
    o = objs[args.index]
    for dz in args.dz:
        if msg := _z_in_travel(f"--dz {dz:+g} puts z at", o.focus_z_um + dz):
            return _fail(msg)
    c = args.crop
    tiles = []
    with scope.stage, scope.camera:
        scope.stage.move_to_um(x=o.center_um[0], y=o.center_um[1])
        for dz in args.dz:
            scope.stage.focus_to_um(o.focus_z_um + dz)
            img = scope.camera.capture().image
            h, w = img.shape
            tile = img[h // 2 - c // 2:h // 2 + c - c // 2, w // 2 - c // 2:w // 2 + c - c // 2].copy()
            cv2.putText(tile, f"{dz:+g} um", (4, c - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 255, 1, cv2.LINE_AA)
            tiles.append(np.pad(tile, ((0, 0), (0, 2)), constant_values=255))
    if not cv2.imwrite(str(args.out), np.hstack(tiles)):
        return _file_error(f"could not write --out {args.out}")
    print(f"wrote {args.out}: {args.cls} id {o.id}, {o.max_height_um:.1f} um tall, dz {args.dz}")
    return 0
