"""What the two Keras trainers share: TensorFlow set-up, on-line augmentation, a time budget, TFLite export.

TensorFlow (``tensorflow-cpu``, the ``train`` extra) is needed only to train and convert; the appliance runs
the resulting ``.tflite`` files through LiteRT alone. It is imported inside the functions here, so importing
this module (and ``tppscan --help``) stays fast.

Export: the float model is converted as is; two smaller variants are made beside it and reported, never
silently swapped in: *dynamic-range* (int8 weights, float activations) and *int8* (weights and
activations, calibrated on training crops; float input and output kept, so the same runtime code loads all
three).
"""

from __future__ import annotations

import contextlib
import io
import os
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

VARIANTS: tuple[str, ...] = ("float", "dynamic", "int8")


def setup_tensorflow(seed: int, threads: int) -> Any:
    """Import TensorFlow quietly, seed everything and fix its thread pools; returns the ``tf`` module.

    Raises
    ------
    OSError
        TensorFlow is not installed (the message says which extra to install).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    try:
        import tensorflow as tf
    except ImportError:
        raise OSError("training needs TensorFlow: pip install 'tppscan[train]' (tensorflow-cpu)") from None
    import keras

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised in this process (a second training in one test run)
        pass
    keras.utils.set_random_seed(seed)
    return tf


def augment_batch(tf: Any, x: Any) -> Any:
    """Random quarter-turns and flips of a batch of square crops (both labels are invariant to them)."""
    k = tf.random.uniform([], 0, 4, dtype=tf.int32)
    x = tf.image.rot90(x, k)
    return tf.image.random_flip_left_right(x)


def make_dataset(tf: Any, x: np.ndarray, targets: Any, batch: int, shuffle: bool, seed: int) -> Any:
    """A ``tf.data`` pipeline of uint8 crops -> float [0, 1] crops, augmented when ``shuffle``."""
    ds = tf.data.Dataset.from_tensor_slices((x[..., None], targets))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch)

    def prep(img: Any, y: Any) -> Any:
        img = tf.cast(img, tf.float32) / 255.0
        return (augment_batch(tf, img) if shuffle else img), y

    return ds.map(prep, num_parallel_calls=1).prefetch(2)


def time_budget(seconds: float, total_steps: int, peak_lr: float, floor: float = 0.02) -> Any:
    """A Keras callback: cosine learning-rate decay over steps *or* time, and a stop when ``seconds`` pass.

    The schedule follows whichever of the two is further along, so a run cut short by the clock (a busy
    machine) still ends at a low learning rate instead of stopping mid-descent. Its ``stopped`` attribute
    says whether the budget, not the epoch count, ended training.
    """
    import math

    import keras

    class _Budget(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.t0 = time.monotonic()
            self.step = 0
            self.stopped = False

        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            frac = min(1.0, max(self.step / max(1, total_steps), (time.monotonic() - self.t0) / seconds))
            lr = peak_lr * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * frac)))
            self.model.optimizer.learning_rate.assign(lr)

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.step += 1
            if time.monotonic() - self.t0 > seconds:
                self.model.stop_training = True
                self.stopped = True

    return _Budget()


def save_weights(model: Any, path: Path) -> None:
    """``model.save_weights`` without the NumPy 2 ``__array__(copy=...)`` deprecation Keras's h5 writer triggers."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model.save_weights(str(path))


def export_tflite(tf: Any, model: Any, out: Path, stem: str,
                  calibration: Callable[[], Iterator[list[np.ndarray]]]) -> dict[str, dict[str, Any]]:
    """Write ``<stem>.tflite`` (float), ``<stem>_dynamic.tflite`` and ``<stem>_int8.tflite`` into ``out``.

    Parameters
    ----------
    tf : module
        TensorFlow.
    model : keras.Model
        The trained model.
    out : Path
        Folder (exists).
    stem : str
        File name stem.
    calibration : callable
        Yields ``[batch]`` float32 input samples for int8 calibration (a few hundred crops).

    Returns
    -------
    dict
        Per variant: ``file`` and ``bytes``.
    """
    import tempfile

    files: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="tflite-export-") as saved:
        # One SavedModel for the three conversions: ``from_keras_model`` writes the same one again for each
        # (a MobileNetV2 took 27 s a conversion, two thirds of it that export)
        with _quiet():
            _saved_model(tf, model, saved)
        for variant in VARIANTS:
            data = _convert(tf, saved, variant, calibration)
            name = f"{stem}.tflite" if variant == "float" else f"{stem}_{variant}.tflite"
            (out / name).write_bytes(data)
            files[variant] = {"file": name, "bytes": len(data)}
    return files


def _saved_model(tf: Any, model: Any, folder: str) -> None:
    """Write ``model``'s inference call (``training=False``) as a SavedModel, as ``from_keras_model`` does."""
    import functools

    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    signature = [tf.TensorSpec(x.shape, dtype=x.dtype, name=x.name) for x in model.inputs]
    if len(signature) > 1:
        signature = [signature]
    archive.add_endpoint("serve", functools.partial(model.__call__, training=False), signature)
    archive.write_out(folder, verbose=False)


def _convert(tf: Any, saved: str, variant: str, calibration: Callable[[], Iterator[list[np.ndarray]]]) -> bytes:
    """One variant's ``.tflite`` bytes from the SavedModel in ``saved``."""
    conv = tf.lite.TFLiteConverter.from_saved_model(saved)
    if variant != "float":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "int8":
        conv.representative_dataset = calibration
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    with _quiet():
        return bytes(conv.convert())


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No warnings, no stdout: the converter warns about float I/O (what we ask for), Keras prints endpoints."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


#: Adam's first learning rate (``--lr``) and the range the option takes.
LR = 2e-3
LR_RANGE = (1e-6, 1e-1)


def add_common_arguments(p: Any, default_out: Path, default_epochs: int) -> None:
    """Options every trainer has: data, output, epochs, batch, seed, threads, time budget, --init, --lr, --quick."""
    p.add_argument("--data", type=Path, required=True, help="training set (`tppscan dataset ... --split train`)")
    p.add_argument("--val", type=Path, default=None, help="validation set: picks the best epoch")
    p.add_argument("--test", type=Path, default=None,
                   help="held-out test set: every exported variant is evaluated on it (metrics.json)")
    # required: a run without --out once wrote into the shipped model's folder, replacing the model every scan
    # loads by default with a smoke run's
    p.add_argument("--out", type=Path, required=True,
                   help=f"output folder for the .tflite files (created; {default_out} replaces the shipped model)")
    p.add_argument("--epochs", type=int, default=default_epochs, help="epochs, 1..500")
    p.add_argument("--batch", type=int, default=64, help="batch size, 8..1024")
    p.add_argument("--seed", type=int, default=0, help="training seed, 0..2**31-1")
    p.add_argument("--threads", type=int, default=2, help="TensorFlow threads, 1..64")
    p.add_argument("--minutes", type=float, default=60.0, help="time budget for training, 0.1..600 minutes")
    p.add_argument("--init", type=Path, default=None,
                   help="start from these Keras weights (a .weights.h5 an earlier run wrote) instead of random")
    p.add_argument("--lr", type=float, default=LR,
                   help=f"Adam's first learning rate, decayed by a cosine, {LR_RANGE[0]:g}..{LR_RANGE[1]:g} (default "
                        f"{LR:g}; a fine-tune from --init takes a smaller one, e.g. 5e-4)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: at most 512 crops, 1 epoch, 8 s budget (for tests)")


def check_common(args: Any) -> str | None:
    """One line naming the first bad option, value and range; None when all are fine."""
    checks = (("--epochs", args.epochs, 1, 500), ("--batch", args.batch, 8, 1024), ("--seed", args.seed, 0, 2**31 - 1),
              ("--threads", args.threads, 1, 64), ("--minutes", args.minutes, 0.1, 600.0),
              ("--lr", args.lr, *LR_RANGE))
    for opt, v, lo, hi in checks:
        if not lo <= v <= hi:
            return f"{opt} must be in [{lo:g}, {hi:g}], got {v!r}"
    return None


def data_meta(path: Path | None) -> dict[str, Any] | None:
    """What a metrics file records of a dataset: folder, kind, split, seed, count and the command."""
    if path is None:
        return None
    from models.data.cli import read_meta

    m = read_meta(path)
    return {"dir": str(path), **{k: m.get(k) for k in ("kind", "split", "seed", "count", "command")}}
