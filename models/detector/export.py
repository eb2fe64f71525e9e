"""ONNX export of the detector in detectNet's contract, and the checks the shipped file must pass."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import torch

from models.detector.net import CLASSES, INPUT_H, INPUT_W, DetectNetExport, DetectorNet

# Operators TensorRT's ONNX parser supports (onnx-tensorrt docs/operators.md) that this graph may use.
TENSORRT_OPS: frozenset[str] = frozenset({
    "Conv", "BatchNormalization", "Relu", "Add", "Resize", "Sigmoid", "MaxPool", "Sign", "Sub", "Mul", "Div",
    "ReduceSum", "Clip", "Max", "Concat", "Exp", "Reshape", "Transpose", "Slice", "Constant", "Identity",
    "Gather", "Shape", "Unsqueeze", "Squeeze", "Cast", "Min", "Expand", "QuantizeLinear", "DequantizeLinear",
})
OPSET = 17


def export_onnx(net: DetectorNet, path: Path, input_hw: tuple[int, int] = (INPUT_H, INPUT_W)) -> Path:
    """Write one single-file ONNX (weights inside; no ``.onnx.data``) for detectNet and ONNX Runtime.

    Parameters
    ----------
    net : DetectorNet
        Trained network (put in eval mode here).
    path : pathlib.Path
        Output file.
    input_hw : (int, int)
        Fixed input (H, W).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    import onnx

    model = onnx_model(net, input_hw)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(path), save_as_external_data=False)
    return path


def onnx_model(net: DetectorNet, input_hw: tuple[int, int] = (INPUT_H, INPUT_W)) -> Any:
    """The checked ``onnx.ModelProto`` that :func:`export_onnx` writes, in memory.

    One code path for the file and for ``onnx_init``'s reference export, which must match the file's graph node by
    node (same opset, same constant folding).
    """
    import onnx

    net = net.eval()
    wrapped = DetectNetExport(net, input_hw).eval()
    dummy = torch.zeros(1, 3, *input_hw)
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter (deprecated since torch 2.9, hence the silenced warning) takes about a second
        # where the torch.export-based one took 36 s here, and writes the same operators (checked: OpenCV DNN,
        # ONNX Runtime agree on both); the tests' quick training exports within its 30 s.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(wrapped, (dummy,), buf,  # type: ignore[arg-type]
                          input_names=["input_0"], output_names=["scores", "boxes"],
                          opset_version=OPSET, do_constant_folding=True, dynamo=False)
    model = onnx.load_from_string(buf.getvalue())
    model.producer_name = "tppscan"
    onnx.checker.check_model(model, full_check=True)
    return model


def write_labels(path: Path) -> Path:
    """Write detectNet's labels file: BACKGROUND first."""
    path.write_text("\n".join(CLASSES) + "\n")
    return path


def operators(path: Path) -> list[str]:
    """Sorted operator types used in an ONNX file."""
    import onnx

    return sorted({n.op_type for n in onnx.load(str(path)).graph.node})


def check_exported(path: Path) -> list[str]:
    """``onnx.checker`` plus detectNet's names; returns operators outside :data:`TENSORRT_OPS` (want none)."""
    import onnx

    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    names_in = [i.name for i in model.graph.input]
    names_out = [o.name for o in model.graph.output]
    if names_in != ["input_0"] or names_out != ["scores", "boxes"]:
        raise ValueError(f"{path}: inputs {names_in} / outputs {names_out}, expected ['input_0'] / "
                         f"['scores', 'boxes']")
    return [op for op in operators(path) if op not in TENSORRT_OPS]
