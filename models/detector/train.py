"""``tppscan train detector``: train the detector on a ``tppscan dataset detection`` folder (or a scan's export).

Frames are loaded once, resized to the network input (``--input-size``) and their targets encoded once; each step
draws a batch, flips it at random (both axes: bright field has no up or down) and jitters brightness,
contrast and noise a little more. AdamW with a short warm-up and a cosine decay over ``--steps``; ``--minutes``
stops early if the wall clock runs out (the log says so). The result: ``detector.onnx`` (single file, detectNet's
contract), ``labels.txt``, ``detector.pt`` (weights) and ``train_log.json`` (command, steps, losses, time,
held-out mAP when ``--val`` is given). Deterministic for a given seed, data and thread count. ``--init`` starts
from an earlier run's ``detector.pt`` or from a ``detector.onnx``, the shipped one included
(``models.detector.onnx_init`` reads it back and un-folds its batch norms).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from models.detector.spec import INPUT_H, INPUT_W, STRIDE

QUICK_STEPS = 8
QUICK_IMAGES = 16


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``tppscan train detector``."""
    p.add_argument("--data", type=Path, nargs="+", required=True,
                   help="training set(s) from `tppscan dataset detection` (several folders are concatenated)")
    p.add_argument("--val", type=Path, default=None, help="held-out set for the final mAP (optional)")
    p.add_argument("--out", type=Path, required=True, help="output folder (created)")
    p.add_argument("--steps", type=int, default=4000, help="optimizer steps, 1..1000000 (default 4000)")
    p.add_argument("--minutes", type=float, default=60.0, help="wall-clock cap, 0.1..600 minutes (default 60)")
    p.add_argument("--batch", type=int, default=16, help="batch size, 1..256 (default 16)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate, (0, 1] (default 2e-3)")
    p.add_argument("--width", type=int, default=16, help="channel multiplier, 4..64 (default 16)")
    p.add_argument("--input-size", type=_size, default=(INPUT_W, INPUT_H), metavar="WxH",
                   help=f"network input, width x height, multiples of 16 from 64 to 1024 (default "
                        f"{INPUT_W}x{INPUT_H})")
    p.add_argument("--seed", type=int, default=0, help="initialisation and batch-order seed (default 0)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads, 1..64 (default 1: on a shared 2-core machine two threads spent 4x the "
                        "CPU time waiting on each other)")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bfloat16 autocast for the convolutions (default: on where the CPU has native bf16, "
                        "AVX512-BF16 or AMX: 2.8x faster here)")
    p.add_argument("--init", type=Path, default=None,
                   help="start from these weights instead of random ones: an earlier run's detector.pt (same "
                        "--width) or a detector.onnx, the shipped one included (same --width and --input-size; "
                        "its folded batch norms are un-folded and re-estimated on --data)")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke run: {QUICK_STEPS} steps on at most {QUICK_IMAGES} frames (tests)")


def _size(text: str) -> tuple[int, int]:
    """``WxH`` -> (W, H); argparse turns the ValueError into a one-line usage error (exit 2)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WxH (e.g. {INPUT_W}x{INPUT_H})") from None
    if not (64 <= w <= 1024 and 64 <= h <= 1024 and w % 16 == 0 and h % 16 == 0):
        raise argparse.ArgumentTypeError(f"{text!r}: width and height must be multiples of 16 in [64, 1024]")
    return w, h


def check_arguments(args: argparse.Namespace) -> str | None:
    """One line naming the first bad option, or None."""
    for name, lo, hi in (("steps", 1, 1_000_000), ("batch", 1, 256), ("width", 4, 64), ("threads", 1, 64)):
        v = getattr(args, name)
        if not lo <= v <= hi:
            return f"--{name} must be an integer in [{lo}, {hi}], got {v}"
    if not 0.1 <= args.minutes <= 600:
        return f"--minutes must be in [0.1, 600], got {args.minutes}"
    if not 0 < args.lr <= 1:
        return f"--lr must be in (0, 1], got {args.lr}"
    if args.out.exists() and not args.out.is_dir():
        return f"--out {args.out} exists and is not a folder; give a folder (it is created if missing)"
    from models.data.cli import repeated_folder

    return repeated_folder("--data", args.data)


def load_frames(data_dir: Path, input_hw: tuple[int, int] = (INPUT_H, INPUT_W),
                limit: int | None = None) -> tuple[np.ndarray, list[dict[str, np.ndarray]], list[dict[str, Any]]]:
    """Frames resized to the network input, their encoded targets, and the COCO image records.

    Raises
    ------
    OSError
        Not a detection dataset, or a frame file missing or unreadable.
    """
    import cv2

    from models.data.detection import coco_path, load_coco
    from models.detector.targets import encode

    coco = load_coco(data_dir)
    images = coco["images"][:limit] if limit else coco["images"]
    by_img: dict[int, list[dict[str, Any]]] = {}
    for a in coco["annotations"]:
        by_img.setdefault(a["image_id"], []).append(a)
    h, w = input_hw
    frames = np.zeros((len(images), h, w), np.uint8)
    targets = []
    for k, im in enumerate(images):
        path = Path(data_dir) / im["file_name"]
        img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise OSError(f"{path}: missing or not an image (listed in {coco_path(data_dir)})")
        frames[k] = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
        sx, sy = w / img.shape[1], h / img.shape[0]
        anns = by_img.get(im["id"], [])
        boxes = np.array([[a["bbox"][0] * sx, a["bbox"][1] * sy, (a["bbox"][0] + a["bbox"][2]) * sx,
                           (a["bbox"][1] + a["bbox"][3]) * sy] for a in anns], np.float32).reshape(-1, 4)
        labels = np.array([a["category_id"] - 1 for a in anns], np.int64)
        ignore = np.array([bool(a.get("iscrowd", 0)) for a in anns], bool)
        anchors = None
        if anns and all("anchor" in a for a in anns):
            anchors = np.array([[a["anchor"][0] * sx, a["anchor"][1] * sy] for a in anns], np.float32)
        targets.append(encode(boxes, labels, ignore, (h // STRIDE, w // STRIDE), anchors=anchors))
    return frames, targets, images


def load_sets(data_dirs: list[Path], limit: int | None = None,
              input_hw: tuple[int, int] = (INPUT_H, INPUT_W)) -> tuple[np.ndarray, list[dict[str, np.ndarray]]]:
    """The frames and targets of several dataset folders, concatenated (``limit`` applies to the whole).

    Raises
    ------
    OSError
        A folder is not a detection dataset or has no frames.
    """
    frames: list[np.ndarray] = []
    targets: list[dict[str, np.ndarray]] = []
    for d in data_dirs:
        left = None if limit is None else limit - sum(f.shape[0] for f in frames)
        if left is not None and left <= 0:
            break
        f, t, _ = load_frames(d, input_hw, limit=left)
        if len(f) == 0:
            raise OSError(f"{d}: the dataset has no frames")
        frames.append(f)
        targets.extend(t)
    return np.concatenate(frames), targets


def _batch(frames: np.ndarray, targets: list[dict[str, np.ndarray]], idx: np.ndarray,
           rng: np.random.Generator) -> tuple[Any, dict[str, Any]]:
    """One training batch as torch tensors, flipped and jittered."""
    import torch

    from models.detector.targets import flip_targets

    h, w = frames.shape[1:]
    xs, ts = [], []
    for i in idx:
        img = frames[i].astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)
        t = targets[i]
        if rng.random() < 0.5:
            img, t = img[:, ::-1], flip_targets(t, w, h, horizontal=True)
        if rng.random() < 0.5:
            img, t = img[::-1, :], flip_targets(t, w, h, horizontal=False)
        # Photometric jitter about the frame's mean: contrast, brightness, a little extra noise.
        m = float(img.mean())
        img = (img - m) * rng.uniform(0.8, 1.25) + m + rng.uniform(-0.15, 0.15)
        img = img + rng.normal(0.0, rng.uniform(0.0, 0.03), img.shape).astype(np.float32)
        xs.append(np.ascontiguousarray(img))
        ts.append(t)
    x = torch.from_numpy(np.stack(xs)).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    tt = {k: torch.from_numpy(np.stack([t[k] for t in ts])) for k in ts[0]}
    return x, tt


def load_init(net: Any, path: Path, width: int, input_hw: tuple[int, int] = (INPUT_H, INPUT_W)) -> list[str]:
    """Load ``--init`` weights into ``net``, or raise ``OSError`` naming the file and what it must be.

    An ``.onnx`` file is read back by :func:`models.detector.onnx_init.load_onnx_init` (un-folding its batch
    norms); the names of the batch norms it un-folded are returned, for :func:`calibrate_batchnorms` once the
    frames are loaded (none for a ``detector.pt``). ``torch.load`` of a file that is not a state dict fails in many
    ways (``EOFError`` for an empty file, ``UnpicklingError`` for random bytes or an ONNX file, ``KeyError`` for
    text): all mean the same to the user.
    """
    import pickle

    import torch

    if path.suffix.lower() == ".onnx":  # the file a user has of the shipped model: batch norms folded
        from models.detector.onnx_init import load_onnx_init

        return load_onnx_init(net, path, input_hw)
    what = f"--init {path}: not the detector.pt of a width-{width} detector (`tppscan train detector` writes it)"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except (EOFError, KeyError, RuntimeError, ValueError, TypeError, AttributeError, pickle.UnpicklingError) as exc:
        # torch's own text suggests weights_only=False, which would run code from an unknown file: not repeated
        raise OSError(f"{what}: it cannot be read as PyTorch weights ({type(exc).__name__})") from None
    if not isinstance(state, dict):
        raise OSError(f"{what}: it holds a {type(state).__name__}, not a state dict")
    try:
        net.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise OSError(f"{what}: {_first_line(exc)}") from None
    return []


def _first_line(exc: BaseException) -> str:
    """An exception's first line (torch's load and state-dict errors run to many lines of hints)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), from ``/proc/cpuinfo``."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Train, export and (with ``--val``) evaluate; returns the training log."""
    import torch

    from models.detector.export import check_exported, export_onnx, write_labels
    from models.detector.net import DetectorNet, count_parameters
    from models.detector.targets import losses

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    steps = QUICK_STEPS if args.quick else args.steps
    batch = min(args.batch, 4) if args.quick else args.batch
    t0 = time.monotonic()
    input_hw = (args.input_size[1], args.input_size[0])
    net = DetectorNet(width=args.width)
    unfolded = load_init(net, args.init, args.width, input_hw) if args.init is not None else []
    if args.val is not None:
        from models.data.detection import load_coco

        load_coco(args.val)  # a damaged or empty held-out set, too
    frames, targets = load_sets(args.data, limit=QUICK_IMAGES if args.quick else None, input_hw=input_hw)
    if unfolded:  # an ONNX --init: its identity batch norms re-estimated, so training mode starts where eval is
        from models.detector.onnx_init import calibrate_batchnorms

        calibrate_batchnorms(net, frames, unfolded)
    load_s = time.monotonic() - t0
    args.out.mkdir(parents=True, exist_ok=True)  # before training: a bad --out fails now, not after the run
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    warm = max(1, min(200, steps // 10))
    budget_s = args.minutes * 60.0
    deadline = t0 + budget_s
    bf16 = cpu_has_bf16() if args.bf16 is None else bool(args.bf16)

    def lr_at(step: int) -> float:
        # Progress is steps done or clock used, whichever is further: a run the clock cuts short still
        # anneals (its result then depends on the machine's speed; the log says when that happened).
        prog = min(1.0, max(step / steps, (time.monotonic() - t0) / budget_s))
        return args.lr * min(1.0, (step + 1) / warm) * 0.5 * (1 + math.cos(math.pi * prog))

    history: list[dict[str, float]] = []
    run = {"heat": 0.0, "box": 0.0}
    done = 0
    net.train()
    order = rng.permutation(len(frames))
    pos = 0
    for step in range(steps):
        if time.monotonic() > deadline:
            break
        if pos + batch > len(order):
            order, pos = rng.permutation(len(frames)), 0
        idx = order[pos:pos + batch]
        pos += batch
        x, t = _batch(frames, targets, idx, rng)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            heat_raw, box_raw = net(x)
        parts = losses(heat_raw.float(), box_raw.float(), t)
        loss = parts["heat"] + parts["box"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
        opt.step()
        done = step + 1
        for k in run:
            v = float(parts[k].detach())
            run[k] = 0.9 * run[k] + 0.1 * v if step else v
        if done % 50 == 0 or done == steps:
            history.append({"step": done, "heat": round(run["heat"], 4), "box": round(run["box"], 4),
                            "s": round(time.monotonic() - t0, 1)})
            print(f"step {done}/{steps} heat {run['heat']:.3f} box {run['box']:.3f} "
                  f"{time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
    train_s = time.monotonic() - t0
    torch.save(net.state_dict(), args.out / "detector.pt")
    onnx_path = export_onnx(net, args.out / "detector.onnx", input_hw)
    write_labels(args.out / "labels.txt")
    log: dict[str, Any] = {
        "command": "tppscan train detector " + " ".join(sys.argv[3:] if len(sys.argv) > 3 else []),
        "data": [str(d) for d in args.data], "frames": len(frames), "steps_planned": steps, "steps_done": done,
        "stopped_by_clock": done < steps, "bf16": bf16, "batch": batch, "lr": args.lr, "width": args.width,
        "input_size": list(args.input_size),
        "seed": args.seed, "threads": args.threads, "init": str(args.init) if args.init else None,
        "parameters": count_parameters(net), "load_s": round(load_s, 1),
        "train_s": round(train_s, 1), "history": history, "onnx_bytes": onnx_path.stat().st_size,
        "ops_outside_tensorrt": check_exported(onnx_path),
    }
    if args.val is not None:
        from models.detector.evaluate import evaluate_detector

        log["val"] = evaluate_detector(args.val, onnx_path, limit=QUICK_IMAGES if args.quick else None)
    (args.out / "train_log.json").write_text(json.dumps(log, indent=1))
    return log


def run(args: argparse.Namespace) -> int:
    """Handler of ``tppscan train detector``."""
    bad = check_arguments(args)
    if bad:
        print(f"tppscan train detector: error: {bad}", file=sys.stderr)
        return 2
    log = train(args)
    val = log.get("val", {})
    print(f"detector: {log['steps_done']} steps in {log['train_s']} s -> {args.out / 'detector.onnx'}"
          + (f"; val mAP@0.5 {val['map50']:.3f}" if val else ""))
    return 0
