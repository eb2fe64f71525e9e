"""``tppscan train focus``: train the focus net (or its MobileNetV2-style twin) and export it as ``.tflite``.

Input: a 64 x 64 grey crop in [0, 1] cut by :func:`appliance.vision.crops.focus_crop` (48 µm of slide).
The graph first divides the crop by its own mean (so the lamp level does not matter but the contrast,
which carries the defocus, is kept). Three heads share the features while training:

- ``mag``: how far from focus, ``|dz|`` in µm (softplus, Huber loss). Blur and fringe width grow with
  ``|dz|`` whichever the side, so this is the part a net learns first.
- ``sign``: a logit for "above focus" (binary cross-entropy, weighted up from 0 at focus to 1 at
  ``SIGN_RAMP_UM``: at focus the sign means nothing). The phase fringes' polarity carries it.
- ``probs``: softmax over the autofocus paper's 41 classes, cross-entropy against a Gaussian of
  ``SOFT_SIGMA_UM`` around the true defocus (neighbouring classes are near misses, not plain errors).

The exported graph outputs ``defocus_um = mag * (2 sigmoid(sign) - 1)`` (the expected signed defocus; near 0
when the sign is unsure) and ``probs``. A single signed regression (the first version) cannot work here: while
the sign is unknown, the L1/Huber-optimal answer is 0 whatever ``|dz|`` is, so the gradient rewards nothing
but the hardest cue, and the net sat at the mean prediction for every epoch.

Architectures (``--arch``):

- ``small`` (shipped): a strided 5x5 convolution (16 channels, 64 -> 32 px), then 3x3 convolutions of 32
  (pool), 64, 64 (pool) and 128 channels, each with batch norm and ReLU; global average and max pooling; a
  128-unit dense layer. About 20 M multiply-adds per crop.
- ``mobilenetv2``: Keras's MobileNetV2 (inverted residual blocks, width 0.35, no pretrained weights) on the
  same input, pooled, the same two heads: the autofocus paper's choice, trained on the same data the same way
  for the model card's side-by-side comparison.

Writes into ``--out``: ``<stem>.tflite``, ``<stem>_dynamic.tflite``, ``<stem>_int8.tflite`` and
``<stem>.metrics.json`` where ``stem`` is ``focusnet`` or ``focusnet_mobilenetv2``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from appliance.vision.focusnet import DZ_CLASSES_UM, N_CLASSES
from models.data.crops import defocus_labels, load_crops, read_labels
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
ARCHS: dict[str, str] = {"small": "focusnet", "mobilenetv2": "focusnet_mobilenetv2"}
# Width of the soft class target around the true defocus, µm.
SOFT_SIGMA_UM = 0.4
# The sign loss's weight grows from 0 at focus to 1 at this |dz|, µm.
SIGN_RAMP_UM = 1.0


def _normalise(keras: Any, inp: Any) -> Any:
    from keras import layers, ops

    # Relative to the crop's own mean: invariant to the lamp level, keeps the contrast that carries the defocus.
    return layers.Lambda(lambda t: t / (ops.mean(t, axis=(1, 2, 3), keepdims=True) + 0.02) - 1.0,
                         name="normalise")(inp)


def _heads(keras: Any, feats: Any, inp: Any, name: str) -> tuple[Any, Any]:
    """The training model (``mag``, ``sign``, ``probs``) and the exported one (``defocus_um``, ``probs``).

    Both share every layer, so the weights the first learns are the second's.
    """
    from keras import layers, ops

    x = layers.Dense(128, activation="relu")(feats)
    x = layers.Dropout(0.2)(x)
    mag = layers.Dense(1, activation="softplus", name="mag")(x)
    sign = layers.Dense(1, name="sign")(x)
    probs = layers.Dense(N_CLASSES, activation="softmax", name="probs")(x)
    dz = layers.Lambda(lambda t: t[0] * (2.0 * ops.sigmoid(t[1]) - 1.0), name="defocus_um")([mag, sign])
    train_model = keras.Model(inp, {"mag": mag, "sign": sign, "probs": probs}, name=name)
    export_model = keras.Model(inp, {"defocus_um": dz, "probs": probs}, name=name)
    return train_model, export_model


def sign_loss(dz_true: Any, logit: Any) -> Any:
    """Binary cross-entropy of "above focus", weighted by ``min(1, |dz| / SIGN_RAMP_UM)`` (a Keras loss)."""
    from keras import ops

    dz = ops.cast(dz_true, "float32")
    above = ops.cast(dz > 0, "float32")
    weight = ops.clip(ops.abs(dz) / SIGN_RAMP_UM, 0.0, 1.0)
    # log(1 + exp(-|x|)) form: no overflow for large logits.
    bce = ops.maximum(logit, 0.0) - logit * above + ops.log1p(ops.exp(-ops.abs(logit)))
    return ops.mean(weight * bce, axis=-1)


def build_small(keras: Any) -> tuple[Any, Any]:
    """The shipped focus net (see the module doc): training and export models."""
    from keras import layers

    inp = keras.Input((64, 64, 1), name="crop")
    x = _normalise(keras, inp)
    # A strided 5x5 first layer keeps the fringe polarity (it is learnt before the stride) at a quarter of the cost.
    x = layers.Conv2D(16, 5, strides=2, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization(momentum=0.9)(x)
    x = layers.ReLU()(x)
    for filters, pool in ((32, True), (64, False), (64, True), (128, False)):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=0.9)(x)
        x = layers.ReLU()(x)
        if pool:
            x = layers.MaxPooling2D(2)(x)
    feats = layers.Concatenate()([layers.GlobalAveragePooling2D()(x), layers.GlobalMaxPooling2D()(x)])
    return _heads(keras, feats, inp, "focusnet_small")


def build_mobilenetv2(keras: Any) -> tuple[Any, Any]:
    """MobileNetV2 (width 0.35, random init) with the same input normalisation and heads."""
    from keras import layers

    inp = keras.Input((64, 64, 1), name="crop")
    x = _normalise(keras, inp)
    base = keras.applications.MobileNetV2(input_shape=(64, 64, 1), alpha=0.35, include_top=False, weights=None)
    for layer in base.layers:  # Keras's default 0.999 lags far behind a short run's weights; same as ours
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = 0.9
    feats = layers.GlobalAveragePooling2D()(base(x))
    return _heads(keras, feats, inp, "focusnet_mobilenetv2")


def soft_targets(dz_um: np.ndarray) -> np.ndarray:
    """Gaussian class targets around each defocus (clipped to the class range), rows summing to 1."""
    d = np.clip(np.asarray(dz_um, np.float64), DZ_CLASSES_UM[0], DZ_CLASSES_UM[-1])[:, None]
    w = np.exp(-0.5 * ((DZ_CLASSES_UM[None, :] - d) / SOFT_SIGMA_UM) ** 2)
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``tppscan train focus``."""
    add_common_arguments(p, DEFAULT_OUT, default_epochs=40)
    p.add_argument("--arch", choices=sorted(ARCHS), default="small",
                   help="small: the shipped net; mobilenetv2: the autofocus paper's family, for comparison")


def _load(path: Path, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    imgs, rows = load_crops(path, "focus")
    dz = defocus_labels(rows).astype(np.float32)
    if limit is not None:
        imgs, dz = imgs[:limit], dz[:limit]
    return imgs, dz


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Train, export and evaluate; returns what the metrics file holds."""
    from models.focusnet.metrics import evaluate

    t0 = time.monotonic()
    limit = QUICK_CROPS if args.quick else None
    xt, dt = _load(args.data, limit)
    val = _load(args.val, limit) if args.val else None
    if args.test is not None:
        read_labels(args.test, "focus")  # an empty or damaged test set is reported now, not after the run
    tf = setup_tensorflow(args.seed, args.threads)
    import keras

    epochs = 1 if args.quick else args.epochs
    budget_s = 8.0 if args.quick else args.minutes * 60.0
    model, export_model = build_small(keras) if args.arch == "small" else build_mobilenetv2(keras)
    if args.init is not None:
        try:
            model.load_weights(str(args.init))
        except (OSError, ValueError) as exc:
            raise OSError(f"--init {args.init}: cannot load these weights into the model ({exc})") from None
    steps = epochs * int(np.ceil(len(xt) / args.batch))
    # A smoke run of the MobileNetV2 twin trains eagerly: tracing its training graph took 40 of a 90 s quick
    # run. The small net's quick run still traces the same heads and losses in graph mode.
    eager = bool(args.quick) and args.arch == "mobilenetv2"
    model.compile(optimizer=keras.optimizers.Adam(args.lr),
                  loss={"mag": keras.losses.Huber(delta=1.0), "sign": sign_loss,
                        "probs": keras.losses.CategoricalCrossentropy()},
                  metrics={"mag": ["mae"]}, run_eagerly=eager)

    def targets(dz: np.ndarray) -> dict[str, np.ndarray]:
        return {"mag": np.abs(dz)[:, None].astype(np.float32), "sign": dz[:, None].astype(np.float32),
                "probs": soft_targets(dz)}

    ds = make_dataset(tf, xt, targets(dt), args.batch, True, args.seed)
    vds = make_dataset(tf, val[0], targets(val[1]), 256, False, 0) if val else None
    budget = time_budget(budget_s, steps, args.lr)
    callbacks: list[Any] = [budget]
    args.out.mkdir(parents=True, exist_ok=True)
    stem = ARCHS[args.arch]
    best = args.out / f".{stem}.best.weights.h5"
    if vds is not None:
        callbacks.append(keras.callbacks.ModelCheckpoint(str(best), monitor="val_loss", save_best_only=True,
                                                         save_weights_only=True))
    hist = model.fit(ds, validation_data=vds, epochs=epochs, callbacks=callbacks, shuffle=False,
                     verbose=0 if args.quick else 2)
    if vds is not None and best.exists():
        model.load_weights(str(best))
        best.unlink()
    train_s = time.monotonic() - t0
    save_weights(model, args.out / f"{stem}.weights.h5")

    def calibration() -> Any:
        for k in range(0, min(len(xt), 400), 8):
            yield [xt[k:k + 8, :, :, None].astype(np.float32) / 255.0]

    files = export_tflite(tf, export_model, args.out, stem, calibration)
    eval_set = args.test or args.val
    if eval_set is not None and not args.quick:
        for v in files.values():
            m = evaluate(eval_set, args.out / v["file"])
            v["metrics"] = {k: m[k] for k in ("n", "mae_um", "class_accuracy", "within_one_accuracy", "sign_accuracy",
                                              "p90_abs_error_um", "by_band", "n_beyond", "sign_accuracy_beyond")}
    return {"model": stem, "arch": args.arch, "command": "tppscan " + " ".join(sys.argv[1:]), "quick": bool(args.quick),
            "train": data_meta(args.data), "val": data_meta(args.val), "test": data_meta(args.test),
            "evaluated_on": str(eval_set) if eval_set else None, "n_train": int(len(xt)),
            "params": int(model.count_params()), "epochs_run": len(hist.history.get("loss", [])),
            "stopped_by_budget": bool(budget.stopped), "train_seconds": round(train_s, 1),
            "val_loss_by_epoch": [round(float(a), 4) for a in hist.history.get("val_loss", [])],
            "val_abs_dz_mae_by_epoch": [round(float(a), 4) for a in hist.history.get("val_mag_mae", [])],
            "files": files, "seed": args.seed, "threads": args.threads, "lr": args.lr}


def run(args: argparse.Namespace) -> int:
    """Handler of ``tppscan train focus``; returns the exit code."""
    bad = check_common(args)
    if bad:
        print(f"tppscan train focus: error: {bad}", file=sys.stderr)
        return 2
    metrics = train(args)
    (args.out / f"{metrics['model']}.metrics.json").write_text(json.dumps(metrics, indent=1))
    for v in metrics["files"].values():
        m = v.get("metrics")
        extra = (f", MAE {m['mae_um']:.3f} µm, class {m['class_accuracy']:.3f}, within one "
                 f"{m['within_one_accuracy']:.3f}, sign {m['sign_accuracy']:.3f}") if m else ""
        print(f"{args.out / v['file']}: {v['bytes'] / 1e6:.2f} MB{extra}")
    print(f"trained in {metrics['train_seconds']} s ({metrics['epochs_run']} epochs)")
    return 0
