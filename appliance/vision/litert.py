"""Run a ``.tflite`` model through LiteRT on batches of crops, checking the file against what is expected.

The interpreter comes from ``ai_edge_litert`` (LiteRT, the maintained TFLite runtime); ``tflite_runtime``,
dead upstream, is accepted only as a fallback import on a device that still has nothing else. Checks happen
at load, so a wrong file fails when the scan starts, never mid-scan: a missing file, one that is not a TFLite
flatbuffer (truncated, an ONNX file renamed), an input that is not the expected crop shape, an output whose
size does not match the labels. Every such error is a :class:`ModelFileError` (an ``OSError``: the command
line reports it in one line and exits 1) naming the file and what was expected.

Batches: the interpreter is resized to the batch it is given (``resize_tensor_input``), once per new size,
and larger batches are split into chunks of ``max_batch``. An interpreter is not thread-safe: one
:class:`LiteModel` per thread. ``num_threads`` is the caller's choice (the scan loop leaves cores to the
camera and the detector).

LiteRT's ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` line is kept off stderr while a model loads
(:func:`quiet_xnnpack_info`); anything else the runtime writes there, its errors included, is shown.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: What LiteRT's C++ runtime writes on stderr each time an interpreter takes its CPU delegate: news to no user.
XNNPACK_INFO = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
#: Held while fd 2 is redirected: two threads redirecting at once would leave it pointing at a closed file.
_STDERR_LOCK = threading.Lock()


class ModelFileError(OSError):
    """A model or labels file that is missing, unreadable or not what the caller expects."""


@contextlib.contextmanager
def quiet_xnnpack_info() -> Iterator[None]:
    """Hide :data:`XNNPACK_INFO` from stderr while the block runs; everything else written there is written after.

    LiteRT writes it from C++ straight to file descriptor 2, so fd 2 is pointed at a temporary file around the
    block and what it caught, less that line, is written back, real errors included (a damaged model's). Where
    fd 2 cannot be redirected (closed), the block runs as it is.
    """
    with _STDERR_LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):
            yield
            return
        try:
            with tempfile.TemporaryFile() as caught:
                os.dup2(caught.fileno(), 2)
                try:
                    yield
                finally:
                    with contextlib.suppress(OSError, ValueError):
                        sys.stderr.flush()  # Python's own writes in the block are caught too
                    os.dup2(saved, 2)
                    caught.seek(0)
                    _write_back(caught.read())
        finally:
            os.close(saved)


def _write_back(text: bytes) -> None:
    """``text`` to fd 2 without the lines that are :data:`XNNPACK_INFO`."""
    kept = [ln for ln in text.splitlines(keepends=True) if ln.strip() != XNNPACK_INFO.encode()]
    out = b"".join(kept)
    while out:  # a pipe may take less than all of it at once
        out = out[os.write(2, out):]


def _interpreter_class() -> Any:
    """LiteRT's ``Interpreter``, else ``tflite_runtime``'s; ``ModelFileError`` when neither is installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise ModelFileError("no TFLite runtime: install ai-edge-litert (pip install ai-edge-litert)") from None
    return Interpreter


@dataclass(frozen=True)
class OutputSpec:
    """One expected output: a name for messages and its size per sample (the last dimension).

    ``size=None`` takes the one output left after the sized ones are matched (the caller checks its size,
    e.g. against a labels file, to say which file is wrong).
    """

    name: str
    size: int | None


def repeated_names(labels: Sequence[str]) -> list[str]:
    """The names ``labels`` holds more than once, in order: a model's outputs are told apart by name only."""
    return sorted({n for n in labels if labels.count(n) > 1}, key=list(labels).index)


def read_labels(path: str | Path, expected_count: int | None = None) -> list[str]:
    """Class names, one per line (blank lines and surrounding space ignored).

    Raises
    ------
    ModelFileError
        Missing or unreadable file, no labels, duplicates, or not ``expected_count`` labels.
    """
    p = Path(path)
    try:
        labels = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{p}: cannot read labels file ({exc})") from None
    if not labels:
        raise ModelFileError(f"{p}: labels file is empty; expected one class name per line")
    if repeated_names(labels):
        raise ModelFileError(f"{p}: labels file repeats a class name: {labels}")
    if expected_count is not None and len(labels) != expected_count:
        raise ModelFileError(f"{p}: {len(labels)} labels but the model has {expected_count} outputs per crop")
    return labels


class LiteModel:
    """A checked ``.tflite`` model with one float image input ``[N, *input_shape]`` and named outputs.

    Parameters
    ----------
    path : str or Path
        The ``.tflite`` file.
    input_shape : tuple of int
        Expected input shape without the batch dimension, e.g. ``(64, 64, 1)``.
    outputs : sequence of OutputSpec
        Expected outputs, identified by their per-sample size (so each size must be distinct).
    num_threads : int
        Interpreter threads, 1..16.
    max_batch : int
        Largest batch run at once, 1..1024.

    Raises
    ------
    ModelFileError
        The file is missing, not a TFLite model, or its input/outputs are not the expected ones.
    ValueError
        ``num_threads`` or ``max_batch`` out of range.
    """

    def __init__(self, path: str | Path, input_shape: Sequence[int], outputs: Sequence[OutputSpec],
                 num_threads: int = 1, max_batch: int = 64) -> None:
        for name, v, hi in (("num_threads", num_threads, 16), ("max_batch", max_batch, 1024)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= v <= hi:
                raise ValueError(f"{name} must be an integer in [1, {hi}], got {v!r}")
        self.path = Path(path)
        self.input_shape = tuple(int(v) for v in input_shape)
        self.max_batch = int(max_batch)
        self._interp = self._load(int(num_threads))
        self._in = self._check_input()
        self._outs = self._match_outputs(list(outputs))
        self._batch = 1

    def _what(self) -> str:
        return f"a TFLite model with input [N, {', '.join(map(str, self.input_shape))}]"

    def _load(self, num_threads: int) -> Any:
        if not self.path.is_file():
            raise ModelFileError(f"{self.path}: model file not found; expected {self._what()}")
        data = self.path.read_bytes()
        # A flatbuffer's file identifier sits at bytes 4..8; TFLite's is "TFL3".
        if len(data) < 8 or data[4:8] != b"TFL3":
            raise ModelFileError(f"{self.path}: not a TFLite flatbuffer (no 'TFL3' identifier); "
                                 f"expected {self._what()}")
        try:
            with quiet_xnnpack_info():  # the delegate is taken in allocate_tensors; its INFO line was on every command
                interp = _interpreter_class()(model_content=data, num_threads=num_threads)
                interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelFileError(f"{self.path}: LiteRT cannot load it, truncated or corrupt? ({exc}); "
                                 f"expected {self._what()}") from None
        return interp

    def _check_input(self) -> dict[str, Any]:
        ins = self._interp.get_input_details()
        if len(ins) != 1:
            raise ModelFileError(f"{self.path}: {len(ins)} inputs; expected {self._what()}")
        d = ins[0]
        got = tuple(int(v) for v in d["shape"][1:])
        if got != self.input_shape:
            raise ModelFileError(f"{self.path}: input shape [N, {', '.join(map(str, got))}]; expected {self._what()}")
        if d["dtype"] not in (np.float32, np.int8, np.uint8):
            raise ModelFileError(f"{self.path}: input dtype {np.dtype(d['dtype']).name}; expected float32 or int8")
        return dict(d)

    def _match_outputs(self, specs: list[OutputSpec]) -> dict[str, dict[str, Any]]:
        outs = self._interp.get_output_details()
        by_size = {int(d["shape"][-1]): dict(d) for d in outs}
        want = ", ".join(f"{s.name} [N, {s.size if s.size is not None else 'K'}]" for s in specs)
        sized = [s.size for s in specs if s.size is not None]
        if len(outs) != len(specs) or len(by_size) != len(outs) or any(k not in by_size for k in sized):
            got = ", ".join("[" + ", ".join(map(str, d["shape"])) + "]" for d in outs)
            raise ModelFileError(f"{self.path}: outputs {got}; expected {want}")
        free = [k for k in by_size if k not in sized]
        return {s.name: by_size[s.size if s.size is not None else free.pop()] for s in specs}

    def output_size(self, name: str) -> int:
        """Per-sample size of output ``name``."""
        return int(self._outs[name]["shape"][-1])

    @property
    def quantized_input(self) -> bool:
        """True when the model takes int8/uint8 input (a fully integer model)."""
        return bool(self._in["dtype"] != np.float32)

    def _resize(self, n: int) -> None:
        if n != self._batch:
            self._interp.resize_tensor_input(self._in["index"], [n, *self.input_shape])
            self._interp.allocate_tensors()
            self._batch = n

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        if self._in["dtype"] == np.float32:
            return x
        scale, zero = self._in["quantization"]
        info = np.iinfo(self._in["dtype"])
        return np.clip(np.round(x / scale + zero), info.min, info.max).astype(self._in["dtype"])

    def _read(self, d: dict[str, Any]) -> np.ndarray:
        y = np.array(self._interp.get_tensor(d["index"]))
        if y.dtype != np.float32:
            scale, zero = d["quantization"]
            y = (y.astype(np.float32) - zero) * np.float32(scale)
        return y.reshape(y.shape[0], -1)

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run the model on ``batch`` ``[N, *input_shape]`` float32; returns each output as ``[N, size]``.

        Raises
        ------
        ValueError
            A batch of the wrong shape.
        """
        x = np.asarray(batch, dtype=np.float32)
        if x.ndim != len(self.input_shape) + 1 or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"batch must have shape [N, {', '.join(map(str, self.input_shape))}], got {x.shape}")
        parts: dict[str, list[np.ndarray]] = {k: [] for k in self._outs}
        for a in range(0, len(x), self.max_batch):
            chunk = np.ascontiguousarray(self._quantize(x[a:a + self.max_batch]))
            self._resize(len(chunk))
            self._interp.set_tensor(self._in["index"], chunk)
            self._interp.invoke()
            for k, d in self._outs.items():
                parts[k].append(self._read(d))
        return {k: (np.concatenate(v) if v else np.zeros((0, int(self._outs[k]["shape"][-1])), np.float32))
                for k, v in parts.items()}
