"""``tppscan train classifier``: train the LeNet-style structure classifier and export it as ``.tflite``.

Network (the seed paper's LeNet-like 64 x 64 grey classifier, with batch norm): per-crop standardisation
(so the lamp level and the camera's gain do not matter), three 5x5/3x3/3x3 convolution blocks of 16, 32 and
32 channels each followed by 2x2 max pooling (8.7 M multiply-adds per crop), a 128-unit dense layer with
dropout, softmax over :data:`models.data.crops.CLASSIFIER_LABELS`. About 0.3 M parameters, ~1.1 MB as float
TFLite.

Training: Adam with a cosine learning-rate decay over the epochs or the time budget, whichever ends first,
cross-entropy with 0.05 label smoothing, on-line quarter-turns and flips; the epoch with the best validation
accuracy is kept. Writes into ``--out``:
``classifier.tflite`` (the shipped model), ``classifier_dynamic.tflite``, ``classifier_int8.tflite``,
``labels.txt`` and ``metrics.json`` (command, data, time, size and test accuracy of each variant).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from models.data.crops import CLASSIFIER_LABELS, load_crops
from models.keras_tflite import (
    add_common_arguments,
    check_common,
    data_meta,
    export_tflite,
    make_dataset,
    save_weights,
    setup_tensorflow,
    time_budget,
)

DEFAULT_OUT = Path(__file__).resolve().parent
QUICK_CROPS = 512


WIDTHS = (8, 64)
#: Training crops the batch norms of a ``--init classifier.tflite`` are calibrated on (``tflite_init``).
CALIBRATION_CROPS = 1024


def build_model(keras: Any, n_classes: int = len(CLASSIFIER_LABELS), width: int = 16) -> Any:
    """The LeNet-style classifier: ``[N, 64, 64, 1]`` in [0, 1] -> softmax ``[N, n_classes]``.

    ``width`` is the first block's channel count; the second and third have twice as many.
    """
    from keras import layers, ops

    inp = keras.Input((64, 64, 1), name="crop")
    # Per-crop standardisation inside the graph: the input contract stays "grey in [0, 1]".
    x = layers.Lambda(lambda t: (t - ops.mean(t, axis=(1, 2, 3), keepdims=True))
                      / (ops.std(t, axis=(1, 2, 3), keepdims=True) + 0.02), name="standardise")(inp)
    for filters, k in ((width, 5), (2 * width, 3), (2 * width, 3)):
        x = layers.Conv2D(filters, k, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=0.9)(x)
        x = layers.ReLU()(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dropout(0.3)(x)
    out = layers.Dense(n_classes, activation="softmax", name="probs")(x)
    return keras.Model(inp, out, name="lenet_classifier")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``tppscan train classifier``."""
    add_common_arguments(p, DEFAULT_OUT, default_epochs=30)
    p.add_argument("--more-data", type=Path, nargs="+", default=[], metavar="DIR",
                   help="further training sets, appended to --data (e.g. one rendered with another draw)")
    p.add_argument("--width", type=int, default=16,
                   help=f"channels of the first convolution block (the others have twice as many), "
                        f"{WIDTHS[0]}..{WIDTHS[1]} (default 16, the seed paper's size)")


def _load(path: Path, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    imgs, rows = load_crops(path, "classifier")  # checks every class is one of CLASSIFIER_LABELS
    idx = {c: k for k, c in enumerate(CLASSIFIER_LABELS)}
    y = np.array([idx[r["class"]] for r in rows], dtype=np.int64)
    if limit is not None:
        imgs, y = imgs[:limit], y[:limit]
    return imgs, y


def _accuracy(model_path: Path, labels_path: Path, x: np.ndarray, y: np.ndarray) -> float:
    from appliance.vision.classifier import StructureClassifier

    clf = StructureClassifier(model_path, labels_path, num_threads=2, batch=64)
    pred = clf.predict(x).probs.argmax(axis=1)
    order = [clf.classes.index(c) for c in CLASSIFIER_LABELS]
    return float((pred == np.array(order)[y]).mean())


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Train, export and evaluate; returns what ``metrics.json`` holds."""
    t0 = time.monotonic()
    limit = QUICK_CROPS if args.quick else None
    parts = [_load(d, limit) for d in [args.data, *args.more_data]]
    xt, yt = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    val = _load(args.val, limit) if args.val else None
    eval_set = args.test or args.val
    # Loaded before training: an empty or damaged test set is reported now, not after the run.
    test = _load(args.test, limit) if args.test else val
    tf = setup_tensorflow(args.seed, args.threads)
    import keras

    epochs = 1 if args.quick else args.epochs
    budget_s = 8.0 if args.quick else args.minutes * 60.0
    model = build_model(keras, width=args.width)
    init_diff = _load_init(keras, model, args.init, xt) if args.init is not None else None
    steps = epochs * int(np.ceil(len(xt) / args.batch))
    model.compile(optimizer=keras.optimizers.Adam(args.lr),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.05), metrics=["accuracy"])
    n = len(CLASSIFIER_LABELS)
    ds = make_dataset(tf, xt, np.eye(n, dtype=np.float32)[yt], args.batch, True, args.seed)
    vds = make_dataset(tf, val[0], np.eye(n, dtype=np.float32)[val[1]], 256, False, 0) if val else None
    budget = time_budget(budget_s, steps, args.lr)
    callbacks: list[Any] = [budget]
    best = args.out / ".best.weights.h5"
    args.out.mkdir(parents=True, exist_ok=True)
    if vds is not None:
        callbacks.append(keras.callbacks.ModelCheckpoint(str(best), monitor="val_accuracy", save_best_only=True,
                                                         save_weights_only=True))
    hist = model.fit(ds, validation_data=vds, epochs=epochs, callbacks=callbacks, shuffle=False,
                     verbose=0 if args.quick else 2)
    if vds is not None and best.exists():
        model.load_weights(str(best))
        best.unlink()
    train_s = time.monotonic() - t0
    save_weights(model, args.out / "classifier.weights.h5")

    def calibration() -> Any:
        for k in range(0, min(len(xt), 400), 8):
            yield [xt[k:k + 8, :, :, None].astype(np.float32) / 255.0]

    files = export_tflite(tf, model, args.out, "classifier", calibration)
    labels_path = args.out / "labels.txt"
    labels_path.write_text("\n".join(CLASSIFIER_LABELS) + "\n")
    if test is not None:
        xe, ye = test
        for v in files.values():
            v["accuracy"] = _accuracy(args.out / v["file"], labels_path, xe, ye)
    return {"model": "classifier", "command": "tppscan " + " ".join(sys.argv[1:]), "quick": bool(args.quick),
            "train": data_meta(args.data), "more_train": [data_meta(d) for d in args.more_data],
            "val": data_meta(args.val), "test": data_meta(args.test),
            "evaluated_on": str(eval_set) if eval_set else None, "n_train": int(len(xt)),
            "params": int(model.count_params()), "epochs_run": len(hist.history.get("loss", [])),
            "stopped_by_budget": bool(budget.stopped), "train_seconds": round(train_s, 1),
            "val_accuracy_by_epoch": [round(float(a), 4) for a in hist.history.get("val_accuracy", [])],
            "files": files, "labels": list(CLASSIFIER_LABELS), "seed": args.seed, "threads": args.threads,
            "width": args.width, "lr": args.lr, "init": str(args.init) if args.init else None,
            "init_max_abs_diff": init_diff}


def _load_init(keras: Any, model: Any, path: Path, xt: np.ndarray) -> float | None:
    """Start ``model`` from ``path``, a shipped ``.tflite`` or a ``.weights.h5`` an earlier run wrote.

    A ``.tflite`` is read back with its batch norms un-folded and checked against the file
    (:mod:`models.classifier.tflite_init`): returns the largest difference; None for Keras weights.
    """
    if path.suffix == ".tflite":
        from models.classifier.tflite_init import load_tflite_init

        crops = xt[:CALIBRATION_CROPS, :, :, None].astype(np.float32) / 255.0
        return load_tflite_init(keras, model, path, crops)
    try:
        model.load_weights(str(path))
    except (OSError, ValueError) as exc:
        raise OSError(f"--init {path}: cannot load these weights into the model ({exc})") from None
    return None


def run(args: argparse.Namespace) -> int:
    """Handler of ``tppscan train classifier``; returns the exit code."""
    bad = check_common(args)
    if bad is None and not WIDTHS[0] <= args.width <= WIDTHS[1]:
        bad = f"--width must be in [{WIDTHS[0]}, {WIDTHS[1]}], got {args.width!r}"
    if bad is None:
        from models.data.cli import repeated_folder

        bad = repeated_folder("--data and --more-data", [args.data, *args.more_data])
    if bad:
        print(f"tppscan train classifier: error: {bad}", file=sys.stderr)
        return 2
    metrics = train(args)
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    for v in metrics["files"].values():
        acc = f", accuracy {v['accuracy']:.4f}" if "accuracy" in v else ""
        print(f"{args.out / v['file']}: {v['bytes'] / 1e6:.2f} MB{acc}")
    print(f"trained in {metrics['train_seconds']} s ({metrics['epochs_run']} epochs)")
    return 0
