"""Read a shipped ``classifier.tflite`` back into the Keras classifier, so that ``--init`` can fine-tune it.

Only the ``.tflite`` files are shipped (the Keras weights of a run stay in its ``--out`` folder), and the TFLite
converter folds each batch norm into the convolution before it: a conv without bias followed by ``BN`` becomes one
``CONV_2D`` with a scaled kernel and a bias. What this module relies on, checked as it reads:

1. the float file's graph holds exactly three ``CONV_2D`` and two ``FULLY_CONNECTED`` operators in the order
   :func:`models.classifier.train.build_model` lays them out, their weights constant tensors (kernels
   ``[out, kh, kw, in]``, dense matrices ``[out, in]``), so their shapes name the network's ``--width``;
2. a folded conv ``x -> k * x + b`` is the Keras ``Conv2D`` (kernel ``k``) followed by a ``BatchNormalization``
   that adds ``b`` in inference: the batch norm is un-folded to that affine map;
3. in training mode a batch norm normalises with the batch's own statistics, so an identity batch norm would
   start the fine-tune from another function; :func:`calibrate_batchnorms` re-estimates each one's mean and
   variance on training crops and sets its scale and offset so that inference is unchanged and training mode
   agrees on batches with those statistics (what ``models/detector/onnx_init.py`` does for the detector).

:func:`load_tflite_init` then checks that the Keras model reproduces the file on the crops within
:data:`TOLERANCE` and says how far it is; a file that is not this network's (another architecture, an int8 file
whose kernels are not float) is an ``OSError`` naming the file and why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

TOLERANCE = 1e-4
CONVS, DENSES = 3, 2


def _interpreter(path: Path) -> Any:
    """The file in LiteRT's interpreter (one thread), tensors allocated; ``OSError`` naming it when unreadable."""
    from appliance.vision.litert import _interpreter_class, quiet_xnnpack_info

    try:
        with quiet_xnnpack_info():
            it = _interpreter_class()(model_content=Path(path).read_bytes(), num_threads=1)
            it.allocate_tensors()
    except FileNotFoundError:
        raise OSError(f"--init {path}: not found") from None
    except (ValueError, RuntimeError) as exc:
        raise _fail(path, f"not a TFLite model ({exc})") from None
    return it


def _fail(path: Path, why: str) -> OSError:
    return OSError(f"--init {path}: not a classifier this code can train further: {why}")


def read_tflite_weights(path: Path) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[tuple[np.ndarray, np.ndarray]]]:
    """The file's folded conv (kernel, bias) and dense (matrix, bias) pairs, in graph order, as float32 arrays.

    Kernels come back in Keras's layout (``[kh, kw, in, out]``, ``[in, out]``). ``OSError`` naming the file when it
    is missing, not a TFLite model, or not three convolutions and two dense layers with float weights.
    """
    it = _interpreter(path)
    ops = it._get_ops_details()  # noqa: SLF001 - the public API lists tensors, not which operator reads them
    convs, denses = [], []
    for op in ops:
        if op["op_name"] not in ("CONV_2D", "FULLY_CONNECTED"):
            continue
        ins = list(op["inputs"])
        if len(ins) < 3 or ins[2] < 0:
            raise _fail(path, f"a {op['op_name']} without a bias")
        try:
            w, b = it.get_tensor(ins[1]), it.get_tensor(ins[2])
        except ValueError:
            raise _fail(path, f"a {op['op_name']} whose weights are not constant") from None
        if w.dtype != np.float32 or b.dtype != np.float32:
            raise _fail(path, f"{w.dtype} weights (give the float classifier.tflite, not a quantised variant)")
        if op["op_name"] == "CONV_2D":
            convs.append((np.transpose(w, (1, 2, 3, 0)).copy(), b.copy()))
        else:
            denses.append((w.T.copy(), b.copy()))
    if len(convs) != CONVS or len(denses) != DENSES:
        raise _fail(path, f"{len(convs)} convolutions and {len(denses)} dense layers (this network has "
                          f"{CONVS} and {DENSES})")
    return convs, denses


def _layers(model: Any, kind: str) -> list[Any]:
    return [layer for layer in model.layers if type(layer).__name__ == kind]


def load_tflite_weights(model: Any, path: Path) -> None:
    """Put the file's weights into ``model`` (:func:`build_model` of the same width), batch norms un-folded."""
    convs, denses = read_tflite_weights(path)
    kconv, kbn, kdense = _layers(model, "Conv2D"), _layers(model, "BatchNormalization"), _layers(model, "Dense")
    if len(kconv) != CONVS or len(kbn) != CONVS or len(kdense) != DENSES:
        raise ValueError("model is not the classifier of models.classifier.train.build_model")
    width, asked = int(convs[0][0].shape[-1]), int(kconv[0].kernel.shape[-1])
    if width != asked:
        raise OSError(f"--init {path}: a width-{width} classifier; give --width {width} (asked for {asked})")
    for (k, b), conv, bn in zip(convs, kconv, kbn, strict=True):
        if tuple(conv.kernel.shape) != k.shape:
            raise _fail(path, f"a kernel of shape {list(k.shape)} where the model has {list(conv.kernel.shape)}")
        conv.kernel.assign(k)
        eps = float(bn.epsilon)
        n = b.shape[0]
        bn.set_weights([np.ones(n, np.float32), b, np.zeros(n, np.float32), np.full(n, 1.0 - eps, np.float32)])
    for (w, b), dense in zip(denses, kdense, strict=True):
        if tuple(dense.kernel.shape) != w.shape:
            raise _fail(path, f"a dense matrix of shape {list(w.shape)} where the model has {list(dense.kernel.shape)}")
        dense.set_weights([w, b])


def calibrate_batchnorms(keras: Any, model: Any, crops: np.ndarray, batch: int = 64) -> None:
    """Re-estimate each batch norm's statistics on ``crops`` (``[N, 64, 64, 1]`` in [0, 1]), inference unchanged.

    With a layer's per-channel input mean ``m`` and variance ``v`` over the crops (inference mode throughout, so
    earlier layers do not move) and its inference function ``x -> a x + c``: moving mean ``m``, moving variance
    ``v``, scale ``a sqrt(v + eps)`` and offset ``c + a m``.
    """
    for bn in _layers(model, "BatchNormalization"):
        probe = keras.Model(model.inputs[0], bn.input)
        n = int(bn.input.shape[-1])
        s1, s2, count = np.zeros(n), np.zeros(n), 0
        for k in range(0, len(crops), batch):
            x = np.asarray(probe(crops[k:k + batch], training=False), dtype=np.float64).reshape(-1, n)
            s1, s2, count = s1 + x.sum(0), s2 + (x * x).sum(0), count + x.shape[0]
        m = s1 / count
        v = np.maximum(s2 / count - m * m, 0.0)
        gamma, beta, mean, var = (np.asarray(t, np.float64) for t in bn.get_weights())
        eps = float(bn.epsilon)
        a = gamma / np.sqrt(var + eps)
        c = beta - a * mean
        bn.set_weights([(a * np.sqrt(v + eps)).astype(np.float32), (c + a * m).astype(np.float32),
                        m.astype(np.float32), v.astype(np.float32)])


def check_reproduces(model: Any, path: Path, crops: np.ndarray) -> float:
    """The largest difference between ``model``'s softmax and the file's on ``crops``; ``OSError`` past TOLERANCE."""
    from appliance.vision.litert import LiteModel, OutputSpec

    n_classes = int(model.outputs[0].shape[-1])
    ref = LiteModel(path, (64, 64, 1), [OutputSpec("probs", n_classes)]).run(crops)["probs"]
    worst = float(np.abs(np.asarray(model(crops, training=False)) - ref).max())
    if worst > TOLERANCE:
        raise _fail(path, f"the model read back differs from the file by {worst:.2g} (allowed {TOLERANCE:g})")
    return worst


def load_tflite_init(keras: Any, model: Any, path: Path, crops: np.ndarray) -> float:
    """Load ``path`` into ``model``, calibrate its batch norms on ``crops`` and check it; returns the difference."""
    load_tflite_weights(model, path)
    calibrate_batchnorms(keras, model, crops)
    return check_reproduces(model, path, crops[: min(len(crops), 32)])
