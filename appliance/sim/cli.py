"""``tppscan sim slide|field|stack``: look at the virtual microscope.

- ``sim slide``: an overview map of the whole slide (PNG) and its ground truth (JSON beside it).
- ``sim field``: one camera frame at x, y, z (PNG) and the boxes of what is in view (JSON beside it).
- ``sim stack``: a focus stack at x, y as OME-TIFF (Fiji and napari read it), boxes as JSON beside it.
- ``sim strip``: a through-focus strip of one structure or debris type (PNG), for judging the optics by eye.

Without ``--x/--y`` a field or stack is centred on the slide's first structure, and without ``--z`` (or a z
range) focused on it, so the default output shows something. Heavy imports happen inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    """Add the ``sim`` command group and its subcommands."""
    p = sub.add_parser("sim", help="inspect the virtual microscope",
                       description="Render the virtual microscope's slide, fields and focus stacks.")
    p.set_defaults(func=lambda a: p.print_help() or 2)
    ss = p.add_subparsers(dest="sim_command", metavar="SUBCOMMAND")

    def common(q: argparse.ArgumentParser, out_default: str) -> None:
        q.add_argument("--seed", type=int, default=0, help="slide and camera seed (default 0)")
        q.add_argument("--out", type=Path, default=Path(out_default), help=f"output file (default {out_default})")
        q.add_argument("--slice-um", type=float, default=None,
                       help="propagate through slices of at most this thickness, µm (default: thin screens)")

    s = ss.add_parser("slide", help="overview map of the slide (PNG) + ground truth (JSON)",
                      description="Write an overview map of the slide and its ground truth JSON beside it.")
    common(s, "slide.png")
    s.add_argument("--um-per-px", type=float, default=10.0, help="map scale, µm per pixel (default 10)")
    s.set_defaults(func=_cmd_slide)

    def position(q: argparse.ArgumentParser) -> None:
        q.add_argument("--x", type=float, default=None, help="stage x, µm (default: first structure)")
        q.add_argument("--y", type=float, default=None, help="stage y, µm (default: first structure)")
        q.add_argument("--width", type=int, default=640, help="frame width, px (16..2592, default 640)")
        q.add_argument("--height", type=int, default=480, help="frame height, px (16..1944, default 480)")
        q.add_argument("--exposure-ms", type=float, default=10.0, help="exposure, ms (default 10)")

    f = ss.add_parser("field", help="one frame at x, y, z (PNG) + boxes in view (JSON)",
                      description="Capture one frame at a stage position; write PNG and boxes JSON.")
    common(f, "field.png")
    position(f)
    f.add_argument("--z", type=float, default=None, help="stage z, µm (default: the structure's focus)")
    f.set_defaults(func=_cmd_field)

    k = ss.add_parser("stack", help="a focus stack at x, y (OME-TIFF)",
                      description="Capture frames from z-from to z-to at x, y; write an OME-TIFF (ZYX).")
    common(k, "stack.ome.tif")
    position(k)
    k.add_argument("--z-from", type=float, default=None, help="first z, µm (default: focus - 10)")
    k.add_argument("--z-to", type=float, default=None, help="last z, µm (default: focus + 10)")
    k.add_argument("--z-step", type=float, default=1.0, help="z step, µm (> 0, default 1)")
    k.set_defaults(func=_cmd_stack)

    t = ss.add_parser("strip", help="through-focus strip of one structure or debris type (PNG)",
                      description="Crops around the first object of a class, at focus offsets side by side.")
    common(t, "strip.png")
    t.add_argument("--cls", required=True, help="a structure type (woodpile, microlens, scaffold, pentagon, "
                                                 "split_ring) or debris type (dust, fibre, bubble, scratch)")
    t.add_argument("--dz", type=float, nargs="+", default=[-10.0, -5.0, -2.0, 0.0, 2.0, 5.0, 10.0],
                   help="focus offsets from the object's true focus, µm (default -10 -5 -2 0 2 5 10)")
    t.add_argument("--index", type=int, default=0, help="which object of that class (default 0, the first)")
    t.add_argument("--crop", type=int, default=240, help="crop size, px (default 240)")
    t.set_defaults(func=_cmd_strip)


def _fail(msg: str) -> int:
    print(f"tppscan sim: error: {msg}", file=sys.stderr)
    return 2


def _scope(args: argparse.Namespace) -> Any:
    from appliance.sim.microscope import VirtualMicroscope
    from appliance.sim.optics import OpticsParams
    from appliance.sim.sensor import SensorParams
    from appliance.sim.stage import SimStageParams

    sensor = None
    if hasattr(args, "width"):
        sensor = SensorParams(width_px=args.width, height_px=args.height, exposure_ms=args.exposure_ms)
    # A Z stepper (not the 1-degree servo) so any requested z is reached to 1/32 µm.
    optics = OpticsParams(slice_um=getattr(args, "slice_um", None))
    return VirtualMicroscope(seed=args.seed, sensor=sensor, optics=optics, stage=SimStageParams(z_mode="stepper"))


def _target(scope: Any, args: argparse.Namespace) -> tuple[float, float, float]:
    first = next((o for o in scope.slide.objects if o.kind == "structure"), scope.slide.objects[0])
    x = first.center_um[0] if args.x is None else args.x
    y = first.center_um[1] if args.y is None else args.y
    return float(x), float(y), float(first.focus_z_um)


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=1, default=float))


def _cmd_slide(args: argparse.Namespace) -> int:
    import cv2

    try:
        scope = _scope(args)
        img = scope.overview(args.um_per_px)
    except ValueError as e:
        return _fail(str(e))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.out), img):
        return _fail(f"could not write {args.out} (use a .png name)")
    _write_json(args.out.with_suffix(".json"), scope.truth())
    print(f"wrote {args.out} ({img.shape[1]}x{img.shape[0]}, {args.um_per_px} um/px) and "
          f"{args.out.with_suffix('.json')} ({len(scope.slide.objects)} objects)")
    return 0


def _cmd_field(args: argparse.Namespace) -> int:
    import cv2

    try:
        scope = _scope(args)
        x, y, zf = _target(scope, args)
        z = zf if args.z is None else float(args.z)
        with scope.stage, scope.camera:
            scope.stage.move_to_um(x=x, y=y)
            scope.stage.focus_to_um(z)
            frame = scope.camera.capture()
    except ValueError as e:
        return _fail(str(e))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.out), frame.image):
        return _fail(f"could not write {args.out} (use a .png name)")
    boxes = [b.to_dict() for b in scope.boxes_in_view(frame)]
    _write_json(args.out.with_suffix(".json"), {"seed": args.seed, "position_um": list(frame.position),
                                                "true_position_um": list(frame.meta["true_position_um"]),
                                                "um_per_px": scope.camera.um_per_px, "boxes": boxes})
    print(f"wrote {args.out} at x={x:.1f} y={y:.1f} z={z:.2f} um ({len(boxes)} objects in view)")
    return 0


def _cmd_stack(args: argparse.Namespace) -> int:
    import numpy as np
    import tifffile

    try:
        scope = _scope(args)
        x, y, zf = _target(scope, args)
        z0 = zf - 10.0 if args.z_from is None else float(args.z_from)
        z1 = zf + 10.0 if args.z_to is None else float(args.z_to)
        if not args.z_step > 0:
            raise ValueError(f"z-step must be > 0, got {args.z_step}")
        if z1 < z0:
            raise ValueError(f"z-to must be >= z-from, got {z1} < {z0}")
        n = int(np.floor((z1 - z0) / args.z_step + 1e-9)) + 1
        if n > 1000:
            raise ValueError(f"a stack has at most 1000 planes, got {n} (z-from, z-to, z-step)")
        frames = []
        with scope.stage, scope.camera:
            scope.stage.move_to_um(x=x, y=y)
            for i in range(n):
                scope.stage.focus_to_um(z0 + i * args.z_step)
                frames.append(scope.camera.capture())
    except ValueError as e:
        return _fail(str(e))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    s = scope.camera.um_per_px
    tifffile.imwrite(args.out, np.stack([f.image for f in frames]), ome=True, photometric="minisblack",
                     metadata={"axes": "ZYX", "PhysicalSizeX": s, "PhysicalSizeXUnit": "µm",
                               "PhysicalSizeY": s, "PhysicalSizeYUnit": "µm",
                               "PhysicalSizeZ": args.z_step, "PhysicalSizeZUnit": "µm"})
    boxes = [b.to_dict() for b in scope.boxes_in_view(frames[0])]
    _write_json(Path(str(args.out) + ".json"),
                {"seed": args.seed, "z_um": [list(f.position)[2] for f in frames], "um_per_px": s,
                 "true_position_um": list(frames[0].meta["true_position_um"]), "boxes": boxes})
    print(f"wrote {args.out}: {n} planes z={z0:.2f}..{z0 + (n - 1) * args.z_step:.2f} um at x={x:.1f} y={y:.1f}")
    return 0


def _cmd_strip(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from appliance.sim.slide import DEBRIS_TYPES, STRUCTURE_TYPES

    if args.cls not in STRUCTURE_TYPES + DEBRIS_TYPES:
        return _fail(f"cls must be one of {STRUCTURE_TYPES + DEBRIS_TYPES}, got {args.cls!r}")
    if not 16 <= args.crop <= 480:
        return _fail(f"crop must be in [16, 480] px, got {args.crop}")
    try:
        scope = _scope(argparse.Namespace(seed=args.seed, slice_um=args.slice_um))
    except ValueError as e:
        return _fail(str(e))
    objs = [o for o in scope.slide.objects if o.cls == args.cls]
    if not 0 <= args.index < len(objs):
        return _fail(f"index must be in [0, {len(objs) - 1}] for {args.cls} on seed {args.seed}, got {args.index}")
    o = objs[args.index]
    c = args.crop
    tiles = []
    with scope.stage, scope.camera:
        scope.stage.move_to_um(x=o.center_um[0], y=o.center_um[1])
        for dz in args.dz:
            try:
                scope.stage.focus_to_um(o.focus_z_um + dz)
            except ValueError as e:
                return _fail(str(e))
            img = scope.camera.capture().image
            h, w = img.shape
            tile = img[h // 2 - c // 2:h // 2 + c - c // 2, w // 2 - c // 2:w // 2 + c - c // 2].copy()
            cv2.putText(tile, f"{dz:+g} um", (4, c - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 255, 1, cv2.LINE_AA)
            tiles.append(np.pad(tile, ((0, 0), (0, 2)), constant_values=255))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.out), np.hstack(tiles)):
        return _fail(f"could not write {args.out} (use a .png name)")
    print(f"wrote {args.out}: {args.cls} id {o.id}, {o.max_height_um:.1f} um tall, dz {args.dz}")
    return 0
