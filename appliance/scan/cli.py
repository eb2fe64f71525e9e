"""``tppscan scan`` and ``tppscan calibrate``: the appliance's main job from the command line.

``scan`` runs a plan (``--plan``, or the default: the whole virtual slide, snake order) on the virtual
microscope (``--sim``, the default), or with the real stage firmware in simavr (``--stage simavr``) or a GRBL
board (``--stage grbl --port ...``) as the stage and the virtual camera over it (said on a NOTE line), or with
the devices, calibration and plan of the service's YAML config (``--config FILE``). It leaves the scan folder
``--out`` (report, exports, crops, stacks, height maps, ``summary.json``) and the scan's rows in the results
database (``--db``). An interrupted scan into the same folder resumes from its committed fields. On a terminal a
progress bar shows fields done, structures found and the ETA; otherwise one log line per structure and every 5 %
of fields.
Heavy imports happen inside the handlers so ``tppscan --help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

from appliance.hardware.stage.base import focus_travel_of

DEFAULT_SEED = 0  # the config's sim.seed default too: one "default virtual slide"


def _seed(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, 2**32), got {text!r}") from None
    if not 0 <= v < 2 ** 32:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, 2**32), got {v}")
    return v


def _device_options(p: argparse.ArgumentParser, scan: bool = True) -> None:
    """The device options of ``scan`` and (``scan`` False: no plan or calibration from the config) ``calibrate``."""
    g = p.add_argument_group("device")
    g.add_argument("--sim", action="store_true", help="the virtual microscope (the default device)")
    g.add_argument("--seed", type=_seed, default=None,
                   help=f"virtual slide seed, integer in [0, 2**32) (default {DEFAULT_SEED})")
    g.add_argument("--sim-set", action="append", default=[], metavar="KEY=VALUE",
                   help="set a virtual slide, optics, sensor, stage or camera (capture chain) parameter, e.g. "
                        "slide.debris_per_mm2=40, slide.tilt_x_um_per_mm=4, sensor.width_px=1280, "
                        "camera.preset=cheap_colour (repeatable; every value checked)")
    g.add_argument("--stage", choices=("sim", "simavr", "grbl"), default=None,
                   help="sim: the virtual stage (default); simavr: the stage firmware running in simavr; "
                        "grbl: a GRBL board on --port. With simavr or grbl the camera is the virtual one, rendering "
                        "the virtual slide where the stage reports it is (a stage-in-the-loop test); a real camera "
                        "comes from --config")
    g.add_argument("--config", type=Path, default=None, metavar="FILE",
                   help="the devices from the service's YAML config (camera, stage, sim, optics)"
                        + (", and its calibration.file and scan.plan unless --calibration or --plan is given"
                           if scan else "")
                        + "; instead of --stage, --port, --seed, --sim-set and --z-reversed")
    g.add_argument("--port", help="serial port of the GRBL board (with --stage grbl)")
    g.add_argument("--z-reversed", action="store_true",
                   help="the focus drive lowers the focal plane as its z grows (an upright microscope that focuses "
                        "by raising its stage): mirror z so that it rises (the config's stage.z_reversed)")


def register(sub: Any) -> None:
    """Add the ``scan`` and ``calibrate`` commands."""
    p = sub.add_parser("scan", help="scan a slide: find, classify, focus, image and reconstruct every structure",
                       description="Run a scan plan and write the report, exports and results.")
    _device_options(p)
    p.add_argument("--plan", type=Path, metavar="PLAN.yaml", help="scan plan (default: whole slide, snake order)")
    p.add_argument("--out", type=Path, default=Path("out/scan"), metavar="DIR",
                   help="scan folder (default out/scan); a scan left unfinished there is resumed")
    p.add_argument("--db", type=Path, default=None, metavar="FILE",
                   help="results database (default: tppscan.db beside the scan folder)")
    p.add_argument("--calibration", type=Path, metavar="FILE",
                   help="pixel -> um calibration from `tppscan calibrate` (default: measure at the start)")
    p.add_argument("--vision", choices=("auto", "sim-truth"), default="auto",
                   help="auto: the gate, detector and classifier of appliance/vision; sim-truth: name the "
                        "gate's candidates from the virtual slide's ground truth (a TEST DOUBLE, --sim only)")
    p.add_argument("--focus", choices=("auto", "sim-truth"), default="auto",
                   help="auto: appliance/focus autofocus and focus map; sim-truth: the true focus (a TEST "
                        "DOUBLE, --sim only)")
    p.add_argument("--no-resume", action="store_true", help="start a new scan even if one is unfinished in --out")
    p.add_argument("--progress", choices=("auto", "bar", "log", "none"), default="auto",
                   help="progress display (auto: a bar on a terminal, log lines otherwise)")
    p.add_argument("--check", action="store_true",
                   help="only check the inputs (plan, calibration, the models the scan would run, --sim-set, --out "
                        "and --db) and exit: 0 when a scan would start, 2 naming every error of the plan; no device "
                        "is opened, nothing written")
    p.set_defaults(func=_cmd_scan)

    c = sub.add_parser("calibrate", help="measure the camera's pixel -> stage um map by phase correlation",
                       description="Move the stage around its position, track the image shift, fit 2x2 + offset.")
    _device_options(c, scan=False)
    c.add_argument("--x", type=float, default=None, help="stage x to calibrate at, um (default: where it is)")
    c.add_argument("--y", type=float, default=None, help="stage y to calibrate at, um (default: where it is)")
    c.add_argument("--z", type=float, default=None,
                   help="stage z (focus) to calibrate at, um (default: where it is); a high-NA objective's depth of "
                        "field is about a micrometre, so put it where a structure or dust at --x, --y is sharp")
    c.add_argument("--step-um", type=float, default=40.0, help="move size, um in [1, 1000] (default 40)")
    c.add_argument("--out", type=Path, default=Path("calibration.yaml"),
                   help="output file, .yaml or .yml (default calibration.yaml)")
    c.set_defaults(func=_cmd_calibrate)


def _fail(cmd: str, msg: str, code: int = 2) -> int:
    print(f"tppscan {cmd}: error: {msg}", file=sys.stderr)
    return code


def _device_problem(args: argparse.Namespace, cfg: Any = None) -> str | None:
    """Why the device options cannot go together, or None: an option the chosen stage would ignore.

    Fills in ``args.stage`` and ``args.seed``: the options' defaults, or with ``--config`` the config's.
    """
    if cfg is not None:
        return _config_device_problem(args, cfg)
    args.stage = args.stage or "sim"
    args.seed = DEFAULT_SEED if args.seed is None else args.seed
    if args.port is not None and args.stage != "grbl":
        return (f"--port {args.port} is only for --stage grbl (the stage here is {args.stage}); drop it or add "
                "--stage grbl")
    return None


def _out_problem(out: Path, store: Any, plan: Any, plan_file: Path | None, resume: bool) -> str | None:
    """Why a scan cannot go into ``out``, or None: a finished scan there, or a scan to resume of another plan.

    A new scan into a finished scan's folder would overwrite its report and exports; resuming a scan runs its
    stored plan, so a different ``--plan`` would be ignored (docs/scan.md, "Resuming"). ``store``: the open
    results database the scan will use.
    """
    if not out.is_dir():
        return None
    mine = [r for r in store.scans() if Path(r.out_dir) == out.resolve()]
    if not mine:
        meta = out / "scan.json"
        return (f"--out {out} holds another scan ({meta} names it; its database is not {store.path}): give another "
                f"--out, or its --db to resume it") if meta.is_file() else None
    last = mine[-1]
    if last.status == "finished" and last.summary is not None:
        return (f"--out {out} holds finished scan {last.id} ({last.name!r}, {last.finish_reason}); a new scan there "
                f"would overwrite its report and exports: give another --out")
    stored = last.config.get("plan")
    if resume and stored is not None and stored != json.loads(json.dumps(plan.to_mapping())):
        given = f"--plan {plan_file}" if plan_file is not None else "no --plan (the whole slide)"
        return (f"--out {out} holds scan {last.id}, unfinished, of plan {stored.get('name')!r}; {given} is another "
                f"plan. Give the same --plan to resume it, --no-resume to start a new scan there, or another --out")
    return None


def _config_device_problem(args: argparse.Namespace, cfg: Any) -> str | None:
    """Why the device options cannot go with ``--config``, or None; fills in ``args`` from the config.

    The devices are the config's: a device option too would be ignored, and a test double reads the virtual
    slide's truth, which a real camera does not show.
    """
    given = [name for name, value in (("--stage", args.stage), ("--port", args.port), ("--seed", args.seed),
                                      ("--sim-set", args.sim_set or None), ("--z-reversed", args.z_reversed or None))
             if value is not None]
    if given:
        return (f"{', '.join(given)} with --config {args.config}: the devices come from the config (stage, camera, "
                f"sim); drop {'it' if len(given) == 1 else 'them'} or --config")
    doubles = [f"--{k} sim-truth" for k in ("vision", "focus") if getattr(args, k, None) == "sim-truth"]
    if doubles and cfg.camera.kind != "sim":
        return (f"{' and '.join(doubles)}: a test double reads the virtual slide's truth, and --config {args.config} "
                f"has a real camera (camera.kind {cfg.camera.kind}); use --vision auto --focus auto")
    args.stage, args.seed, args.sim_set = cfg.stage.kind, cfg.sim.seed, []
    return None


def _config_of(args: argparse.Namespace) -> Any:
    """``--config``'s validated Config, or None (ConfigError naming the file and the key)."""
    from appliance.config.schema import load_config

    return None if args.config is None else load_config(args.config)


def _camera_note(args: argparse.Namespace, cfg: Any) -> str:
    """What gives the images, for the NOTE line, ``summary.json``'s ``camera`` and the report's header."""
    from appliance.service.devices import camera_description

    return camera_description(args.stage, cfg.camera if cfg is not None else None)


@contextlib.contextmanager
def _devices(args: argparse.Namespace, cfg: Any = None) -> Iterator[tuple[Any, Any, Any]]:
    """(scope, stage, camera), open; without ``cfg`` the camera renders the virtual slide wherever the stage is.

    With ``cfg`` (``--config``) the service's own builder opens what the config names; ``scope`` is None with a
    real camera.
    """
    from appliance.sim.overrides import parse_sim_sets, sim_microscope

    if cfg is not None:
        from appliance.service.devices import open_devices

        dev = open_devices(cfg)
        try:
            yield dev.scope, dev.stage, dev.camera
        finally:
            dev.close()
        return

    scope = sim_microscope(args.seed, parse_sim_sets(args.sim_set))
    if args.stage == "sim":
        with scope.stage, scope.camera:
            yield (scope, *_oriented(scope.stage, scope.camera, args))
        return
    from appliance.hardware.stage.grbl import GrblStage, GrblStageConfig
    from appliance.scan.coupled import ReportedPositionStage
    from appliance.sim.camera import SimCamera

    with contextlib.ExitStack() as stack:
        if args.stage == "simavr":
            from appliance.scan.coupled import simavr_stage

            stage = stack.enter_context(simavr_stage())
        else:
            if not args.port:
                raise ValueError("--stage grbl needs --port DEVICE (e.g. /dev/ttyACM0)")
            stage = stack.enter_context(GrblStage(GrblStageConfig(port=args.port)))
        cam = SimCamera(ReportedPositionStage(stage), scope.slide, scope.camera.optics,  # type: ignore[arg-type]
                        scope.camera.sensor, seed=args.seed, chain=scope.camera.chain_params)
        stack.enter_context(cam)
        yield (scope, *_oriented(stage, cam, args))


def _oriented(stage: Any, camera: Any, args: argparse.Namespace) -> tuple[Any, Any]:
    """``stage`` and ``camera``, z mirrored with ``--z-reversed`` (``stage.reversed.oriented``)."""
    from appliance.hardware.stage.reversed import oriented

    return oriented(stage, camera, bool(getattr(args, "z_reversed", False)))


def _vision_focus(args: argparse.Namespace, scope: Any, stage: Any, um_per_px: float, cfg: Any = None,
                  models: _Models | None = None) -> tuple[Any, Any, Any, list[str]]:
    """The vision pipeline, focuser and focus map asked for; test doubles only by name, and said so.

    ``models``: loaded by :func:`_models_of` before anything opened; None loads them here (the config's, else the
    shipped ones).
    """
    notes = []
    if args.vision == "sim-truth":
        from appliance.scan.testing import SimTruthVision

        vision: Any = SimTruthVision(scope)
        notes.append("vision: sim-truth TEST DOUBLE (candidates from the real gate, named from ground truth)")
    else:
        from appliance.scan.adapters import PipelineVision, configured_models, scan_pipeline

        try:  # --config's models, as the service would run them; else the shipped ones
            if models is not None:
                pipeline = scan_pipeline(um_per_px, models.detector, models.classifier)
            else:
                pipeline = None if cfg is None else scan_pipeline(um_per_px, *configured_models(cfg.models))
            vision = PipelineVision(um_per_px, pipeline)
        except ValueError as exc:
            raise ValueError(f"--vision auto: {exc}; --vision sim-truth runs the scan with a ground-truth "
                             "test double instead") from None
    if args.focus == "sim-truth":
        from appliance.scan.testing import PlaneFocusMap, SimTruthFocuser

        focuser: Any = SimTruthFocuser(scope)
        fmap: Any = PlaneFocusMap()
        notes.append("focus: sim-truth TEST DOUBLE (moves to the true focus)")
    else:
        from appliance.focus.reference import reference_heights
        from appliance.scan.adapters import AutofocusFocuser, FocusMapAdapter, focus_estimator

        travel = focus_travel_of(stage)
        try:
            fmap = FocusMapAdapter()
            net = None if models is None else models.focus_net
            estimator = focus_estimator(args.strategy, um_per_px, net,  # the focus net, for `neural`
                                        None if cfg is None else cfg.models)
            # a virtual camera renders the virtual slide whatever the stage: its catalogue's heights by default
            virtual = scope is not None
            dof = _depth_of_field_um(scope, cfg, um_per_px)
            from appliance.focus.reader import device_reader

            reader = device_reader(scope, um_per_px, dof)
            focuser = AutofocusFocuser(args.strategy, travel, fmap, estimator=estimator,
                                       now_s=scope.clock.now_s if args.stage == "sim" and virtual else None,
                                       reference_heights=reference_heights(
                                           args.reference_heights, virtual=virtual, sigma_um=args.reference_sigma),
                                       reading_bias=virtual,
                                       depth_of_field_um=dof, um_per_px=um_per_px, reader=reader,
                                       map_trust=args.map_trust)
        except ValueError as exc:
            raise ValueError(f"--focus auto: {exc}; --focus sim-truth runs the scan with a ground-truth "
                             "test double instead") from None
    return vision, focuser, fmap, notes


def _depth_of_field_um(scope: Any, cfg: Any, um_per_px: float) -> float:
    """The objective's depth of field: the virtual optics', else the config's ``optics.na`` (as the service)."""
    if scope is not None:
        return float(scope.camera.optics.depth_of_field_um(um_per_px))
    from appliance.sim.optics import depth_of_field_um

    return depth_of_field_um(cfg.optics.na, um_per_px)


class _Progress:
    """A progress bar on a terminal, log lines otherwise (every structure and every 5 % of fields)."""

    def __init__(self, mode: str, planned: int) -> None:
        self.bar = mode == "bar" or (mode == "auto" and sys.stderr.isatty())
        self.quiet = mode == "none"
        self.planned = planned
        self._last_pct = -1
        self._t0 = time.monotonic()

    def __call__(self, event: Any) -> None:
        from appliance.scan.events import FieldDone, FieldFailed, ObjectRecorded, StageFault

        if self.quiet:
            return
        if isinstance(event, FieldFailed):
            print(f"{chr(10) if self.bar else ''}field {event.cell} failed: {event.error}", file=sys.stderr, flush=True)
        if isinstance(event, StageFault):
            print(f"{chr(10) if self.bar else ''}field {event.cell}: stage fault ({event.error}); {event.action}, "
                  "the field is redone", file=sys.stderr, flush=True)
        if isinstance(event, ObjectRecorded) and event.obj.kind == "structure" and not self.bar:
            o = event.obj
            print(f"structure {o.id}: {o.cls} at x={o.x_um:.1f} y={o.y_um:.1f} um, focus z={o.z_um:.1f} um"
                  f"{' (focus unsure)' if o.focus_unsure else ''}", file=sys.stderr, flush=True)
        if isinstance(event, FieldDone):
            s = event.status
            eta = "" if s.eta_s is None else f", ETA {s.eta_s:.0f} s"
            if self.bar:
                frac = s.fields_done / max(1, s.fields_planned)
                n = int(frac * 30)
                print(f"\r[{'#' * n}{'.' * (30 - n)}] {s.fields_done}/{s.fields_planned} fields, "
                      f"{s.structures} structures{eta}   ", end="", file=sys.stderr, flush=True)
            else:
                pct = int(100 * s.fields_done / max(1, s.fields_planned)) // 5 * 5
                if pct != self._last_pct:
                    self._last_pct = pct
                    print(f"fields {s.fields_done}/{s.fields_planned} ({pct}%), {s.structures} structures, "
                          f"{s.debris} debris{eta}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar and not self.quiet:
            print(file=sys.stderr)


def _cmd_scan(args: argparse.Namespace) -> int:
    from appliance.hardware.stage.base import StageError, StageLimitError
    from appliance.hardware.stage.simavr_board import SimavrBoardError
    from appliance.scan.calibration import CalibrationError
    from appliance.scan.session import ScanFolderBusy

    try:
        return _scan(args)
    except ScanFolderBusy as exc:
        return _fail("scan", str(exc), 1)
    except (CalibrationError, SimavrBoardError) as exc:
        return _fail("scan", f"{type(exc).__name__}: {exc}", 1)
    except _model_errors() as exc:  # a model file the scan cannot use: rerunning cannot mend it
        return _fail("scan", f"{exc}; fix the file or the config's models key (tppscan config check)", 2)
    except StageLimitError as exc:  # the plan reaches beyond the board's travel: the plan is what to change
        return _fail("scan", f"{type(exc).__name__}: {exc}", 2)
    except StageError as exc:  # opening the stage, or a fault before the first field (the runner handles the rest)
        return _fail("scan", f"stage: {type(exc).__name__}: {exc}; check the board and its port, then run the same "
                     "command again (a scan left unfinished in --out resumes)", 1)
    except (OSError, sqlite3.Error) as exc:  # a full disk or a broken database file: committed fields are kept
        return _fail("scan", f"{exc}; the committed fields are kept: run the same command again to resume", 1)


def _model_errors() -> tuple[type[Exception], ...]:
    """The model loaders' errors (``OSError``s a rerun cannot mend); none in a build without appliance/vision."""
    try:
        from appliance.vision.detector import ModelError
        from appliance.vision.litert import ModelFileError
    except ImportError:
        return ()
    return ModelError, ModelFileError


class _Refused(Exception):
    """An input the scan cannot use: the one-line message, and the exit code (2 a bad value, 1 a file)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def _plan_of(args: argparse.Namespace, cfg: Any) -> Any:
    """``--plan``'s plan, else the config's ``scan.plan`` (read as the service reads it), else the default."""
    from appliance.config.schema import ConfigError
    from appliance.scan.plan import ScanPlan

    if args.plan is None:
        if cfg is None:
            return ScanPlan()
        from appliance.service.inputs import load_plan

        try:
            return load_plan(cfg)
        except ConfigError as exc:
            raise _Refused(f"--config {args.config}: {exc}") from None
    try:
        return ScanPlan.from_yaml(args.plan.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _Refused(f"--plan {args.plan}: {exc.strerror}", 1) from None
    except ValueError as exc:
        raise _Refused(f"--plan {args.plan}: {exc}") from None


def _calibration_of(args: argparse.Namespace, cfg: Any) -> Any:
    """``--calibration``'s, else the config's ``calibration.file`` (as the service reads it), else None."""
    from appliance.config.schema import ConfigError
    from appliance.scan.calibration import Calibration

    if args.calibration is None:
        if cfg is None:
            return None
        from appliance.service.inputs import load_calibration

        try:
            return load_calibration(cfg)
        except ConfigError as exc:
            raise _Refused(f"--config {args.config}: {exc}") from None
    try:
        return Calibration.load(args.calibration)
    except OSError as exc:
        raise _Refused(f"--calibration {args.calibration}: {exc.strerror}", 1) from None
    except ValueError as exc:
        raise _Refused(f"--calibration {args.calibration}: {exc}") from None


class _Models(NamedTuple):
    """The models a scan runs, loaded before anything opens; None where a test double or strategy needs none."""

    detector: Any
    classifier: Any
    focus_net: Any


def _models_of(args: argparse.Namespace, cfg: Any, plan: Any) -> _Models:
    """The models the scan will run (the config's, else the shipped), loaded as it loads them, before any device.

    A truncated or wrong-shaped file, or labels that do not match, was found only once the devices were open
    (a board homed on start), and was reported as a fault a rerun would resume past (session 50).
    """
    from appliance.config.schema import ConfigError
    from appliance.scan.adapters import configured_focus_net, configured_models, shipped_models

    vision = args.vision == "auto"
    neural = args.focus == "auto" and plan.focus.strategy == "neural"
    if cfg is not None:
        from appliance.service.inputs import check_model_files

        try:  # a missing file named as config check names it, before any loads
            check_model_files(cfg)
        except ConfigError as exc:
            raise _Refused(f"--config {args.config}: {exc}") from None
    where = f"--config {args.config}: " if cfg is not None else ""
    try:
        detector, classifier = ((configured_models(cfg.models) if cfg is not None else shipped_models())
                                if vision else (None, None))
    except ImportError as exc:
        raise _Refused(f"--vision auto: the vision pipeline (appliance/vision) is not installed in this build "
                       f"({exc}); --vision sim-truth runs the scan with a ground-truth test double instead") from None
    except OSError as exc:  # the loaders' ModelError / ModelFileError, naming the file
        raise _Refused(f"{where}{exc}") from None
    try:
        net = configured_focus_net(cfg.models if cfg is not None else None) if neural else None
    except OSError as exc:
        raise _Refused(f"{where}focus.strategy neural: {exc}; or use classical, sweep or map") from None
    return _Models(detector, classifier, net)


def _inputs(args: argparse.Namespace) -> tuple[Any, Any, Any, _Models]:
    """(config or None, plan, calibration or None, models), read, loaded and checked before anything is opened."""
    from appliance.config.schema import ConfigError, ConfigFileError

    try:
        cfg = _config_of(args)
    except ConfigError as exc:
        raise _Refused(f"--config {exc}", 1 if isinstance(exc, ConfigFileError) else 2) from None
    if problem := _device_problem(args, cfg):
        raise _Refused(problem)
    plan = _plan_of(args, cfg)
    if cfg is not None and cfg.camera.kind != "sim" and plan.grid.whole_slide:
        raise _Refused(f"--config {args.config}: a real camera (camera.kind {cfg.camera.kind}) needs a plan with "
                       "grid top, left, bottom and right (--plan, or the config's scan.plan): a real slide's extent "
                       "is not known")
    cal = _calibration_of(args, cfg)
    return cfg, plan, cal, _models_of(args, cfg, plan)


def _scan(args: argparse.Namespace) -> int:
    from appliance.results.store import ResultStore

    try:
        cfg, plan, cal, models = _inputs(args)
    except _Refused as exc:
        return _fail("scan", str(exc), exc.code)
    out: Path = args.out
    if out.exists() and not out.is_dir():
        return _fail("scan", f"--out {out} exists and is not a directory")
    db = args.db if args.db is not None else out.resolve().parent / "tppscan.db"
    try:  # before any device moves: another program's SQLite file or a folder is the user's to fix, not a fault
        if args.check and not db.exists():  # a check makes no database: none holds a scan yet
            problem = _out_problem(out, SimpleNamespace(scans=list, path=db), plan, args.plan, not args.no_resume)
        else:
            with ResultStore(db, read_only=args.check) as store:
                problem = _out_problem(out, store, plan, args.plan, not args.no_resume)
    except OSError as exc:
        return _fail("scan", f"--db: {exc}", 1)
    if problem:
        return _fail("scan", problem)
    if args.check:
        return _checked(args, cfg, plan, cal, out)
    import kernels

    kernels.warmup()
    camera_kind = _camera_note(args, cfg)
    t0 = time.monotonic()
    with _devices(args, cfg) as devices:
        # once the devices are open: a stage that cannot start stays one line
        if camera_kind.startswith("virtual") and args.stage != "sim":  # legitimate, but not a scan of a real slide
            print(f"NOTE camera: {camera_kind}: the images come from the virtual slide at the position the "
                  f"{args.stage} stage reports (a stage-in-the-loop test; scores are against the virtual slide)",
                  file=sys.stderr)
        outcome = _run(args, cfg, plan, cal, out, db, devices, camera_kind, models)
    if isinstance(outcome, int):
        return outcome
    s = outcome.summary
    # the whole command's time, and the fields' share of it (summary.json's wall_time_s_total, the report's
    # "computer time in the fields"): the rest is the calibration, exposure, flat field, checks and outputs
    print(f"scan {outcome.scan_id} {s['status']} ({s['finish_reason']}) in {time.monotonic() - t0:.0f} s "
          f"({s.get('wall_time_s_total') or 0:.0f} s of it in the fields): {s['fields_done']}/{s['fields_planned']} "
          f"fields, {s['structures_recorded']} structures, {s['debris_recorded']} debris")
    if "recall" in s:
        pe = s["position_error_um_median"]
        print(f"against the slide's truth: recall {s['recall']:.3f}, type accuracy {s['type_accuracy']:.3f}, "
              f"debris as structure {s['debris_as_structure']:.4f}, position error median "
              f"{'-' if pe is None else f'{pe:.2f}'} um, duplicates {s['duplicates']}")
        fe, f1, fa = s.get("focus_error_um_median"), s.get("focus_within_1um"), s.get("autofocus_within_1um")
        if fe is not None and f1 is not None and fa is not None:
            print(f"structure focus: within 1 um of the true focus {f1:.3f} (error median {fe:.2f} um; "
                  f"where the autofocus put the stage {fa:.3f})")
    for w in s.get("warnings") or ():
        print(f"warning: {w}", file=sys.stderr)
    print(f"report: {outcome.out_dir / 'report.html'}  (database {outcome.db_path})")
    if outcome.status.error == "interrupted":
        print("interrupted: the stage is stopped; run the same command again to resume", file=sys.stderr)
        return 130
    return 0 if s["status"] == "finished" else 1


def _checked(args: argparse.Namespace, cfg: Any, plan: Any, cal: Any, out: Path) -> int:
    """``--check``: the virtual slide's settings too (read when the devices open), then say what would run."""
    from appliance.sim.overrides import parse_sim_sets, sim_microscope

    sim_microscope(args.seed, parse_sim_sets(args.sim_set))  # a bad --sim-set: ValueError, exit 2, as the scan
    from_cfg = cfg.scan if cfg is not None else None
    where = args.plan or (from_cfg.plan if from_cfg is not None and from_cfg.plan else "the whole slide")
    cal_from = args.calibration or (cfg.calibration.file if cfg is not None else None)
    cal_text = f"calibration {cal_from}" if cal is not None else "calibration measured at the start"
    print(f"inputs ok: plan {plan.name!r} ({where}), {cal_text}, camera {_camera_note(args, cfg)}, --out {out}; "
          "nothing was opened or moved (--check)")
    return 0


def _run(args: argparse.Namespace, cfg: Any, plan: Any, cal: Any, out: Path, db: Path,
         devices: tuple[Any, Any, Any], camera_kind: str, models: _Models | None = None) -> Any:
    """The scan on the open devices: its outcome, or an exit code where the plan's area cannot be scanned."""
    from appliance.scan.session import run_scan, scan_area, sim_height_truth

    scope, stage, camera = devices
    args.strategy = plan.focus.strategy
    args.reference_heights = plan.focus.reference_heights
    args.reference_sigma = plan.focus.reference_height_sigma_um
    args.map_trust = plan.focus.map_trust
    nominal = _nominal_um_per_px(scope, camera, cfg)
    um_px = cal.um_per_px if cal is not None else nominal
    vision, focuser, fmap, notes = _vision_focus(args, scope, stage, um_px, cfg, models)
    for n in notes:
        print(f"NOTE {n}", file=sys.stderr)
    p = scope.slide.params if scope is not None else None
    area = scan_area(plan, None if p is None else (p.width_um, p.height_um))
    if (refused := _travel_problem(args, plan, area, stage, p)) is not None:
        return _fail("scan", refused)
    progress = _Progress(args.progress, 0)
    clock = scope.clock.now_s if args.stage == "sim" and scope is not None else None
    try:
        return run_scan(stage, camera, vision, focuser, fmap, plan, out, db, area, calibration=cal,
                        device_clock=clock, on_event=progress, resume=not args.no_resume,
                        config={"seed": args.seed, "sim_set": list(args.sim_set), "stage": args.stage,
                                "camera": camera_kind, "vision": args.vision, "focus": args.focus,
                                **({"config": str(args.config)} if args.config is not None else {})},
                        truth=scope.slide.truth() if scope is not None else None,
                        height_truth=sim_height_truth(scope) if scope is not None else None,
                        z_start_um=stage.position_um().z_um, nominal_um_per_px=nominal)
    finally:
        progress.close()


def _nominal_um_per_px(scope: Any, camera: Any, cfg: Any) -> float:
    """The objective and camera's nominal scale: the virtual microscope's, a camera's own, else the config's optics."""
    if scope is not None:
        return float(scope.camera.um_per_px)
    own = getattr(camera, "um_per_px", None)
    return float(own) if own else float(cfg.optics.pixel_um / cfg.optics.magnification)


def _travel_problem(args: argparse.Namespace, plan: Any, area: Any, stage: Any, slide: Any) -> str | None:
    """Why the area reaches past the virtual stage's soft limits (a board's are its own: it refuses the move)."""
    from appliance.scan.session import check_area_in_travel

    sp: Any = getattr(stage, "params", None)
    if getattr(sp, "travel_x_um", None) is None:
        return None
    try:
        check_area_in_travel(area, sp.travel_x_um, sp.travel_y_um)
    except ValueError as exc:
        if not plan.grid.whole_slide or slide is None:
            return f"--plan {args.plan}: {exc}"
        return (f"--sim-set slide.width_um / slide.height_um: the whole slide, {slide.width_um:g} x "
                f"{slide.height_um:g} um, reaches past the stage's travel (x {sp.travel_x_um[0]:g}.."
                f"{sp.travel_x_um[1]:g}, y {sp.travel_y_um[0]:g}..{sp.travel_y_um[1]:g} um); scan a part "
                "of it with a --plan grid (top, left, bottom, right) or widen --sim-set "
                "stage.travel_x_um / stage.travel_y_um")
    return None


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from appliance.hardware.stage.base import StageLimitError
    from appliance.hardware.stage.simavr_board import SimavrBoardError
    from appliance.scan.calibration import CalibrationError

    try:
        return _calibrate(args)
    except (CalibrationError, SimavrBoardError, StageLimitError) as exc:
        return _fail("calibrate", f"{type(exc).__name__}: {exc}", 1)


def _backlash_text(backlash_um: tuple[float, float] | None) -> str:
    if backlash_um is None:
        return "backlash not read"
    return f"backlash {backlash_um[0]:.1f} um in x, {backlash_um[1]:.1f} um in y"


def _calibrate(args: argparse.Namespace) -> int:
    from appliance.config.schema import ConfigError, ConfigFileError
    from appliance.outpath import out_file_problem, out_file_unwritable
    from appliance.scan.calibration import calibrate

    try:
        cfg = _config_of(args)
    except ConfigError as exc:
        return _fail("calibrate", f"--config {exc}", 1 if isinstance(exc, ConfigFileError) else 2)
    if problem := out_file_problem(args.out, (".yaml", ".yml")) or _device_problem(args, cfg):  # before it moves
        return _fail("calibrate", problem)
    if not 1.0 <= args.step_um <= 1000.0:
        return _fail("calibrate", f"--step-um must be in [1, 1000], got {args.step_um}")
    for name in ("x", "y", "z"):
        value = getattr(args, name)
        if value is not None and not math.isfinite(value):
            return _fail("calibrate", f"--{name} must be a finite number of um, got {value}")
    if problem := out_file_unwritable(args.out):  # the file system's refusal, before the stage moves
        return _fail("calibrate", problem, code=1)
    with _devices(args, cfg) as (scope, stage, camera):
        if args.z is not None:
            stage.focus_to_um(args.z)
        p = stage.position_um()
        if args.x is not None or args.y is not None:
            stage.move_to_um(x=args.x if args.x is not None else p.x_um, y=args.y if args.y is not None else p.y_um)
        elif args.stage == "sim":
            # the virtual stage powers up at the slide's corner (bare glass); start in the slide's middle
            sp = scope.slide.params
            stage.move_to_um(x=sp.width_um / 2, y=sp.height_um / 2)
        cal = calibrate(stage, camera, step_um=args.step_um)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cal.save(args.out)
    m = cal.matrix
    print(f"calibration: [[{m[0][0]:.5f}, {m[0][1]:.5f}], [{m[1][0]:.5f}, {m[1][1]:.5f}]] um/px, "
          f"{cal.um_per_px:.4f} um/px, field {cal.fov_um[0]:.1f} x {cal.fov_um[1]:.1f} um, "
          f"residual {cal.residual_um:.3f} um, {_backlash_text(cal.backlash_um)}; wrote {args.out}")
    return 0
