"""``tppscan train reader``: search virtual slides, train the learned reading, export it as one ONNX file.

The data is made by the command itself (:mod:`models.focusreader.gather`): each row is a classical search the
autofocus would make, so the reader learns from the frames it will be shown, at the 4 µm walk and with the
focus drive's own rounding. Training slides start at ``--seed`` (servo first, then the stepper on the next
ones), validation slides at ``--val-seed``; keep both away from the bench's held-out slides (1000 and up). The
network is a two-layer perceptron (64 units) on the standardised features, trained with a Huber loss by
PyTorch on the CPU, and exported with its standardisation inside the graph.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from appliance.focus.reader import FEATURE_VERSION, GRID_UM, N_FEATURES, FocusReader
from models.focusreader.gather import FIELDS_PER_SLIDE, Rows, gather

DEFAULT_OUT = Path(__file__).resolve().parent
#: Slides whose searches stay out of training and validation: the autofocus bench's held-out slides.
HELD_OUT_SEEDS = range(1000, 4000)
#: Readings further than this from the truth (µm) are left out of training: a lobe read far off is a miss the
#: reader cannot mend from frames that centre on the wrong lobe.
TRAIN_MAX_MISS_UM = 8.0
SUCCESS_UM = 1.0
DRIVES = ("servo", "stepper")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``tppscan train reader``."""
    p.add_argument("--out", type=Path, required=True,
                   help=f"output folder for reader.onnx, its metrics and data (created; {DEFAULT_OUT} replaces the "
                        "shipped reader)")
    p.add_argument("--seed", type=int, default=200, help="first training slide, 0..99999 (not 1000-3999)")
    p.add_argument("--fields", type=int, default=3000, help="training searches per focus drive, 20..100000")
    p.add_argument("--val-seed", type=int, default=100, help="first validation slide, 0..99999 (not 1000-3999)")
    p.add_argument("--val-fields", type=int, default=600, help="validation searches per focus drive, 20..100000")
    p.add_argument("--focus", nargs="+", choices=DRIVES, default=list(DRIVES),
                   help="focus drives to search with (each on its own slides)")
    p.add_argument("--epochs", type=int, default=60, help="epochs, 1..1000")
    p.add_argument("--train-seed", type=int, default=0, help="the network's seed, 0..2**31-1")
    p.add_argument("--shifts", type=int, default=4,
                   help="more copies of each search, read about a moved reading, 0..20")
    p.add_argument("--shift-um", type=float, default=3.0, help="the copies' readings move by up to this, 0..8 um")
    p.add_argument("--jobs", type=int, default=2, help="processes searching slides, 1..64")
    p.add_argument("--quick", action="store_true", help="smoke run: one slide each, 2 epochs (for tests)")


def check_args(args: argparse.Namespace) -> str | None:
    """One line naming the first bad option, value and range; None when all are fine."""
    checks = (("--seed", args.seed, 0, 99999), ("--fields", args.fields, 20, 100000),
              ("--val-seed", args.val_seed, 0, 99999), ("--val-fields", args.val_fields, 20, 100000),
              ("--epochs", args.epochs, 1, 1000), ("--train-seed", args.train_seed, 0, 2**31 - 1),
              ("--jobs", args.jobs, 1, 64), ("--shifts", args.shifts, 0, 20), ("--shift-um", args.shift_um, 0.0, 8.0))
    for opt, v, lo, hi in checks:
        if not lo <= v <= hi:
            return f"{opt} must be in [{lo:g}, {hi:g}], got {v!r}"
    spans = _spans(args)
    for name, (a, b) in spans.items():
        if a < HELD_OUT_SEEDS.stop and b > HELD_OUT_SEEDS.start:
            return (f"{name} slides {a}-{b - 1} overlap the autofocus bench's held-out slides "
                    f"{HELD_OUT_SEEDS.start}-{HELD_OUT_SEEDS.stop - 1}; pick other seeds")
    (a, b), (c, d) = spans["training"], spans["validation"]
    if a < d and c < b:
        return f"training slides {a}-{b - 1} and validation slides {c}-{d - 1} overlap; pick other seeds"
    return None


def _fields(args: argparse.Namespace) -> tuple[int, int]:
    return (FIELDS_PER_SLIDE, FIELDS_PER_SLIDE) if args.quick else (args.fields, args.val_fields)


def _spans(args: argparse.Namespace) -> dict[str, tuple[int, int]]:
    """First and past-last slide of the training and validation searches, every drive included."""
    nt, nv = (math.ceil(n / FIELDS_PER_SLIDE) * len(args.focus) for n in _fields(args))
    return {"training": (args.seed, args.seed + nt), "validation": (args.val_seed, args.val_seed + nv)}


def fit(rows: Rows, epochs: int, seed: int, shifts: int = 0, shift_um: float = 0.0) -> Any:
    """The standardised two-layer perceptron, trained on ``rows`` (a torch module in eval mode).

    ``shifts`` more copies of each row are read about its reading moved by up to ``±shift_um`` (the target moved
    with it), so the reader also learns readings that missed further than the search's own misses.
    """
    import torch

    keep = np.abs(rows.y) < TRAIN_MAX_MISS_UM
    rows = Rows(*(getattr(rows, k)[keep] for k in Rows.FIELDS))
    if len(rows) < 2:
        raise ValueError(f"{len(rows)} usable searches to train on; search more slides (--fields)")
    rng = np.random.default_rng(seed)
    xs, ys = [rows.vectors()], [rows.y]
    for _ in range(shifts):
        d = rng.uniform(-shift_um, shift_um, len(rows))
        xs.append(rows.vectors(d))
        ys.append(rows.y - d)
    x, y = np.concatenate(xs).astype(np.float64), np.concatenate(ys)
    torch.manual_seed(seed)
    mu, sd = x.mean(0), x.std(0) + 1e-6
    net = _Net(mu, sd)
    opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=1e-2)
    xt = torch.tensor(x, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(epochs):
        perm = torch.randperm(len(yt), generator=gen)
        for i in range(0, len(perm), 128):
            b = perm[i:i + 128]
            loss = torch.nn.functional.smooth_l1_loss(net(xt[b]).squeeze(1), yt[b], beta=0.5)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def _Net(mu: np.ndarray, sd: np.ndarray) -> Any:  # noqa: N802 - a module factory reads as a class
    import torch

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mu", torch.tensor(mu, dtype=torch.float32))
            self.register_buffer("sd", torch.tensor(sd, dtype=torch.float32))
            self.body = torch.nn.Sequential(
                torch.nn.Dropout(0.1), torch.nn.Linear(len(mu), 64), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))

        def forward(self, x: Any) -> Any:
            return self.body((x - self.mu) / self.sd)

    return Net()


def export(net: Any, path: Path, meta: dict[str, Any]) -> None:
    """One ONNX file: ``features`` [N, N_FEATURES] -> ``correction_um`` [N, 1], with its metadata."""
    import io

    import onnx
    import torch

    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter: see models/detector/export.py
        torch.onnx.export(net, (torch.zeros(1, N_FEATURES),), buf,  # type: ignore[arg-type]
                          input_names=[FocusReader.INPUT],
                          output_names=[FocusReader.OUTPUT], dynamic_axes={FocusReader.INPUT: {0: "n"},
                                                                           FocusReader.OUTPUT: {0: "n"}},
                          opset_version=17, do_constant_folding=True, dynamo=False)
    model = onnx.load_from_string(buf.getvalue())
    model.producer_name = "tppscan"
    onnx.helper.set_model_props(model, {"tppscan_reader": json.dumps(meta)})
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def scores(y: np.ndarray, pred: np.ndarray, rows: Rows) -> dict[str, Any]:
    """Share within 1 µm and median |miss| of the reading and of the reading the reader moved; per type, drive."""
    def one(m: np.ndarray) -> dict[str, Any]:
        return {"n": int(m.sum()), "reading_within_1um": _share(np.abs(y[m]) <= SUCCESS_UM),
                "read_within_1um": _share(np.abs(y[m] - pred[m]) <= SUCCESS_UM),
                "reading_abs_median_um": _median(np.abs(y[m])), "read_abs_median_um": _median(np.abs(y[m] - pred[m])),
                "read_robust_sigma_um": _robust_sigma(y[m] - pred[m])}
    out = {"all": one(np.ones(len(y), bool))}
    out["per_type"] = {c: one(rows.cls == c) for c in sorted(set(rows.cls.tolist()))}
    out["per_drive"] = {d: one(rows.focus == d) for d in sorted(set(rows.focus.tolist()))}
    return out


def _share(b: np.ndarray) -> float | None:
    return float(np.mean(b)) if b.size else None


def _robust_sigma(v: np.ndarray) -> float | None:
    """1.4826 times the median absolute deviation: the standard deviation a Gaussian core would have."""
    return float(1.4826 * np.median(np.abs(v - np.median(v)))) if v.size else None


def _median(v: np.ndarray) -> float | None:
    return float(np.median(v)) if v.size else None


def optics() -> dict[str, float]:
    """µm per pixel and depth of field of the bench's default virtual microscope (what the rows are rendered at)."""
    from appliance.sim.microscope import VirtualMicroscope

    scope = VirtualMicroscope(0)
    um = float(scope.camera.um_per_px)
    return {"um_per_px": um, "dof_um": float(scope.camera.optics.depth_of_field_um(um))}


def run(args: argparse.Namespace) -> int:
    """Search, train, export, measure; exit 0, or 2 with one line for a bad option."""
    bad = check_args(args)
    if bad:
        print(f"tppscan train reader: {bad}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(max(1, min(args.jobs, 4)))
    t0 = time.monotonic()
    nt, nv = _fields(args)
    print(f"searching {nt} training fields per drive from slide {args.seed} ...", flush=True)
    train_rows = gather(args.seed, nt, args.focus, args.jobs, progress=not args.quick)
    print(f"searching {nv} validation fields per drive from slide {args.val_seed} ...", flush=True)
    val_rows = gather(args.val_seed, nv, args.focus, args.jobs, progress=not args.quick)
    t_data = time.monotonic() - t0
    net = fit(train_rows, 2 if args.quick else args.epochs, args.train_seed, args.shifts, args.shift_um)
    xv = val_rows.vectors()
    with torch.no_grad():
        pred = net(torch.tensor(xv, dtype=torch.float32)).squeeze(1).numpy().astype(np.float64)
    meta = {"feature_version": FEATURE_VERSION, **optics(), "grid_um": [float(GRID_UM[0]), float(GRID_UM[-1])],
            "trained_on": {"seed": args.seed, "fields_per_drive": nt, "drives": list(args.focus)}}
    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out / "reader.onnx"
    export(net, onnx_path, meta)
    check = FocusReader(onnx_path).predict(xv[:8]) if len(val_rows) else np.zeros(0)
    if check.size and not np.allclose(check, pred[:8], atol=1e-4):
        raise RuntimeError(f"{onnx_path}: the exported graph gives {check} where the trained one gives {pred[:8]}")
    for name, r in (("train", train_rows), ("val", val_rows)):
        np.savez_compressed(args.out / f"reader-{name}-rows.npz", **{k: getattr(r, k) for k in Rows.FIELDS})
    metrics = {"model": "reader.onnx", "command": "tppscan " + " ".join(sys.argv[1:]), "quick": bool(args.quick),
               "train_searches": len(train_rows), "val_searches": len(val_rows),
               "epochs": 2 if args.quick else args.epochs,
               "data_s": round(t_data, 1), "total_s": round(time.monotonic() - t0, 1), **meta,
               "val": scores(val_rows.y, pred, val_rows)}
    (args.out / "reader.metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    a = scores(val_rows.y, pred, val_rows)["all"]
    print(f"validation ({a['n']} searches): within 1 um {a['reading_within_1um']} as read, "
          f"{a['read_within_1um']} by the reader; {onnx_path} ({metrics['total_s']} s)")
    return 0
