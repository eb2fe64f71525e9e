"""``tppscan dataset detection|classifier|focus``: render training data from the virtual microscope.

The work is planned as slide jobs (one virtual slide each, several items rendered from it) and run in a
process pool, so both cores render; results come back in item order, so the output depends only on the
options, never on scheduling. Slide seeds are ``split code x 10^12 + seed x 10^6 + slide number``: the train,
val and test splits never share a slide, and two datasets with different ``--seed`` never do either.

Each kind is a row of :data:`KINDS`: the module with its slide renderer and its index writer (see
:class:`SlideJob`); heavy modules are imported only when that kind runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from appliance.helpformat import DefaultsHelpFormatter
from models.data.randomise import HARD_BOUNDS, Ranges, check_range, range_knobs
from models.workers import WorkerDied, ordered_results

SPLIT_CODES: dict[str, int] = {"train": 1, "val": 2, "test": 3}
MAX_SEED = 999_999
MAX_SLIDES = 999_999
MAX_COUNT = 1_000_000
#: Augmentation magnitudes: ``randomise.augment_matrix`` draws each within ±HI, so a LO other than 0 would be
#: silently unused (``--zoom 0.1 0.3`` read as "at least 10 %" drew 0.7-1.3, unzoomed frames included).
SYMMETRIC_KNOBS: tuple[str, ...] = ("rotation_deg", "shift", "shear", "zoom")
_FIELDS = frozenset(f.name for f in dataclasses.fields(Ranges))
# Items rendered from one slide: enough to pay back building it (~0.3-1 s), few enough for variety.
ITEMS_PER_SLIDE: dict[str, int] = {"detection": 8, "classifier": 32, "focus": 32}
# kind -> (module, slide renderer, index writer)
KINDS: dict[str, tuple[str, str, str]] = {
    "detection": ("models.data.detection", "render_detection", "write_detection_index"),
    "classifier": ("models.data.crops", "render_classifier", "write_classifier_index"),
    "focus": ("models.data.crops", "render_focus", "write_focus_index"),
}

JobResult = tuple[int, list[dict[str, Any]]]  # what rendering one slide job gives: (items, index rows)


@dataclass(frozen=True)
class SlideJob:
    """One virtual slide's share of a dataset: what a kind's renderer gets (picklable).

    Attributes
    ----------
    kind, split : str
        Dataset kind and split (``train``, ``val``, ``test``).
    seed : int
        The dataset seed (``--seed``).
    slide_seed : int
        Seed of this job's slide; disjoint between splits and dataset seeds.
    first, count : int
        Item numbers ``first .. first + count - 1`` (name output files by item number).
    out_dir : pathlib.Path
        Dataset folder (exists).
    ranges : Ranges
        Randomisation ranges.
    augment : bool
        Whether the seed paper's augmentation is applied.
    size_px : (int, int)
        Frame (width, height) rendered.
    """

    kind: str
    split: str
    seed: int
    slide_seed: int
    first: int
    count: int
    out_dir: Path
    ranges: Ranges
    augment: bool
    size_px: tuple[int, int] = (640, 480)

    def items(self) -> range:
        """Item numbers of this job."""
        return range(self.first, self.first + self.count)

    def slide_rng(self) -> np.random.Generator:
        """Generator for the per-slide draws (scene)."""
        return np.random.default_rng([SPLIT_CODES[self.split], self.seed, self.slide_seed, 0x511DE])

    def rng(self, index: int) -> np.random.Generator:
        """Generator for item ``index``: independent of every other item."""
        return np.random.default_rng([SPLIT_CODES[self.split], self.seed, self.slide_seed, index, 0xDA7A])


def slide_seed(split: str, seed: int, slide: int) -> int:
    """The slide seed of slide number ``slide`` of dataset (split, seed)."""
    return SPLIT_CODES[split] * 10**12 + seed * 10**6 + slide


def plan(kind: str, split: str, seed: int, count: int, out_dir: Path, ranges: Ranges, augment: bool,
         size_px: tuple[int, int], per_slide: int | None = None) -> list[SlideJob]:
    """Split ``count`` items into slide jobs."""
    per = per_slide or ITEMS_PER_SLIDE[kind]
    jobs = []
    for k, first in enumerate(range(0, count, per)):
        jobs.append(SlideJob(kind, split, seed, slide_seed(split, seed, k), first, min(per, count - first),
                             out_dir, ranges, augment, size_px))
    return jobs


def load_kind(kind: str) -> tuple[Callable[[SlideJob], list[dict[str, Any]]],
                                  Callable[[Path, list[dict[str, Any]]], None]]:
    """The renderer and index writer of a kind.

    Raises
    ------
    OSError
        The kind's module is not installed in this version.
    """
    mod_name, render, write = KINDS[kind]
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as exc:
        if exc.name != mod_name:
            raise
        raise OSError(f"dataset kind {kind!r} needs {mod_name}, which this version does not have") from None
    return getattr(mod, render), getattr(mod, write)


class Progress:
    """A progress bar on a terminal, a log line every ~10 % otherwise (CI logs stay short)."""

    def __init__(self, total: int, label: str, stream: Any = None) -> None:
        self.total = max(1, total)
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = time.monotonic()
        self.done = 0
        self._last_decile = -1

    def update(self, n: int) -> None:
        """Count ``n`` more items done."""
        self.done += n
        frac = self.done / self.total
        dt = time.monotonic() - self.t0
        eta = dt / frac - dt if frac > 0 else 0.0
        if self.tty:
            bar = "#" * int(30 * frac)
            self.stream.write(f"\r{self.label} [{bar:<30}] {self.done}/{self.total} {dt:5.0f}s eta {eta:4.0f}s")
            if self.done >= self.total:
                self.stream.write("\n")
            self.stream.flush()
        elif int(frac * 10) > self._last_decile:
            self._last_decile = int(frac * 10)
            print(f"{self.label}: {self.done}/{self.total} items, {dt:.0f} s", file=self.stream, flush=True)


def _run_job(job: SlideJob) -> JobResult:
    render, _ = load_kind(job.kind)
    return job.count, render(job)


def run_jobs(jobs: list[SlideJob], workers: int, progress: Progress | None = None,
             work: Callable[[SlideJob], JobResult] | None = None) -> list[dict[str, Any]]:
    """Run slide jobs (in worker processes when ``workers > 1``); rows come back in item order.

    ``work`` renders one job (default: its kind's renderer); in worker processes it must be importable by name.
    The workers start clean and a dead one ends the run (:mod:`models.workers`).

    Raises
    ------
    OSError
        A worker process died before its job finished.
    """
    rows: list[dict[str, Any]] = []
    preload = [__name__, KINDS[jobs[0].kind][0]] if jobs else []
    try:
        for n, r in ordered_results(work or _run_job, [(job,) for job in jobs], workers, preload):
            rows.extend(r)
            if progress:
                progress.update(n)
    except WorkerDied as exc:
        raise OSError(f"a dataset worker process died (killed, or out of memory?) after {len(rows)} items "
                      f"had come back; no index was written") from exc
    return rows


def register(sub: Any) -> None:
    """Add the ``dataset`` command."""
    p = sub.add_parser("dataset", help="render training data from the virtual microscope",
                       description="Render detection frames, classifier crops or focus crops from the virtual "
                                   "microscope with domain randomisation; deterministic by seed.",
                       epilog="example: tppscan dataset detection --count 200 --split val --out det-val",
                       formatter_class=DefaultsHelpFormatter)
    p.add_argument("kind", choices=sorted(KINDS), help="what to render")
    p.add_argument("--seed", type=int, default=0, help=f"dataset seed, 0..{MAX_SEED}")
    p.add_argument("--count", type=int, required=True, help=f"items to render, 1..{MAX_COUNT}")
    p.add_argument("--out", type=Path, required=True, help="output folder (created; must be empty or absent)")
    p.add_argument("--split", choices=sorted(SPLIT_CODES), default="train",
                   help="which split the slide seeds come from (splits never share a slide)")
    p.add_argument("--jobs", type=int, default=2, help="worker processes, 1..64")
    p.add_argument("--size", default="640x480", help="frame size WxH, 32..2592 x 32..1944")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="the seed paper's augmentation (default: on for train, off for val and test)")
    p.add_argument("--per-slide", type=int, default=None, help="items per virtual slide (default: per kind)")
    d = Ranges()
    g = p.add_argument_group("randomisation ranges (LO HI; see models/data/randomise.py and docs/datasets.md)")
    for name in range_knobs():
        lo, hi = getattr(d, name)
        symmetric = " (drawn within ±HI; LO must be 0)" if name in SYMMETRIC_KNOBS else ""
        g.add_argument("--" + name.replace("_", "-"), type=float, nargs=2, metavar=("LO", "HI"), default=None,
                       help=f"default {lo:g} {hi:g}; bounds {HARD_BOUNDS[name][0]:g}..{HARD_BOUNDS[name][1]:g}"
                            f"{symmetric}")
    for name in ("p_colour", "p_linear", "p_jpeg", "p_hflip", "p_augment", "p_near_focus", "p_on_structure",
                 "p_on_line_debris", "p_far_print", "p_bubble_debris"):
        g.add_argument("--" + name.replace("_", "-"), type=float, default=None,
                       help=f"probability 0..1, default {getattr(d, name):g}")
    p.set_defaults(func=_cmd_dataset)


def _bad(option: str, value: object, allowed: str) -> int:
    print(f"tppscan dataset: error: {option} must be {allowed}, got {value!r}", file=sys.stderr)
    return 2


def parse_size(text: str) -> tuple[int, int] | None:
    """``"640x480"`` -> (640, 480), or None when malformed or out of bounds."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        return None
    return (w, h) if 32 <= w <= 2592 and 32 <= h <= 1944 else None


def ranges_from_args(args: argparse.Namespace) -> Ranges:
    """The :class:`Ranges` the options ask for (``ValueError`` naming the option when one is bad)."""
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(Ranges):
        v = getattr(args, f.name, None)
        if v is None:
            continue
        opt = _option(f.name)
        try:
            changes[f.name] = check_range(f.name, tuple(v)) if isinstance(v, list) else float(v)
        except ValueError as exc:
            raise ValueError(f"{opt}: {exc}") from None
        if f.name in SYMMETRIC_KNOBS and changes[f.name][0] != 0:
            raise ValueError(f"{opt}: the augmentation draws within ±HI and has no lower bound: give 0 {v[1]:g}, "
                             f"got {v[0]:g} {v[1]:g}")
    try:
        return Ranges().with_changes(**changes)
    except ValueError as exc:  # named by field (p_colour): say the option the user typed
        raise ValueError(re.sub(r"\b[a-z]+(?:_[a-z0-9]+)+\b",
                                lambda m: _option(m.group(0)) if m.group(0) in _FIELDS else m.group(0),
                                str(exc))) from None


def _option(field: str) -> str:
    return "--" + field.replace("_", "-")


def _cmd_dataset(args: argparse.Namespace) -> int:
    if not 0 <= args.seed <= MAX_SEED:
        return _bad("--seed", args.seed, f"an integer in [0, {MAX_SEED}]")
    if not 1 <= args.count <= MAX_COUNT:
        return _bad("--count", args.count, f"an integer in [1, {MAX_COUNT}]")
    if not 1 <= args.jobs <= 64:
        return _bad("--jobs", args.jobs, "an integer in [1, 64]")
    if args.per_slide is not None and not 1 <= args.per_slide <= 1000:
        return _bad("--per-slide", args.per_slide, "an integer in [1, 1000]")
    size = parse_size(args.size)
    if size is None:
        return _bad("--size", args.size, "WxH with 32 <= W <= 2592 and 32 <= H <= 1944")
    try:
        ranges = ranges_from_args(args)
    except ValueError as exc:
        print(f"tppscan dataset: error: {exc}", file=sys.stderr)
        return 2
    out: Path = args.out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        # a command-line choice the user fixes, as scan's and detect's refused --out (exit 2), not a file fault
        print(f"tppscan dataset: error: --out {out} exists and is not an empty folder (a dataset is never written "
              "over another): give another --out or remove it", file=sys.stderr)
        return 2
    augment = args.split == "train" if args.augment is None else bool(args.augment)
    render, write = load_kind(args.kind)
    del render
    jobs = plan(args.kind, args.split, args.seed, args.count, out, ranges, augment, size, args.per_slide)
    if len(jobs) > MAX_SLIDES:
        return _bad("--count", args.count, f"at most {MAX_SLIDES} slides' worth of items")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    rows = run_jobs(jobs, args.jobs, Progress(args.count, f"dataset {args.kind}"))
    write(out, rows)
    meta = {"kind": args.kind, "split": args.split, "seed": args.seed, "count": args.count, "augment": augment,
            "size_px": list(size), "items_per_slide": jobs[0].count if jobs else 0,
            "slide_seeds": [j.slide_seed for j in jobs], "ranges": ranges.to_dict(),
            "command": "tppscan " + " ".join(_argv_tail()), "seconds": round(time.monotonic() - t0, 1)}
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    print(f"wrote {args.count} {args.kind} items to {out} in {meta['seconds']} s")
    return 0


def _argv_tail() -> Iterator[str]:
    args = sys.argv[1:]
    return iter(args if args and args[0] == "dataset" else ["dataset", "..."])


def read_meta(data_dir: Path) -> dict[str, Any]:
    """A dataset's ``meta.json`` (``OSError`` naming the folder when it is missing or unreadable).

    A scan's folder or export has no ``meta.json`` but its boxes in ``export_coco.json``: a detection dataset of
    split ``scan`` (``models.data.detection.coco_path``).
    """
    from models.data.detection import EXPORT_COCO

    path = Path(data_dir) / "meta.json"
    if not path.exists() and (Path(data_dir) / EXPORT_COCO).is_file():
        return {"kind": "detection", "split": "scan", "source": str(Path(data_dir) / EXPORT_COCO)}
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise OSError(f"{path}: not a dataset made by `tppscan dataset` ({exc})") from None
    if not isinstance(meta, dict) or "kind" not in meta:
        raise OSError(f"{path}: not a dataset made by `tppscan dataset` (no 'kind')")
    return meta


def repeated_folder(options: str, folders: Iterable[Path]) -> str | None:
    """One line naming a dataset folder given twice (after resolving links and ``..``), or None.

    Training concatenates its folders, so one given twice counts its frames twice: a silently doubled weight,
    and a log claiming more data than there is.
    """
    seen: dict[Path, Path] = {}
    for folder in folders:
        key = folder.resolve()
        if key in seen:
            same = "" if str(seen[key]) == str(folder) else f" (as {str(seen[key])!r} and {str(folder)!r})"
            return f"{options}: the folder {key} is given twice{same}; give each dataset folder once"
        seen[key] = folder
    return None
