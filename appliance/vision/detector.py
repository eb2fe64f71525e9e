"""The structure detector: one interface over three backends, with detectNet's own post-processing.

The model file follows jetson-inference detectNet's ONNX contract (docs/design.md §4): input ``input_0``
float32 [1,3,H,W] scaled ``(x/255 - 0.5)/0.5``, outputs ``scores`` [1,N,C] (class 0 ``BACKGROUND``) and
``boxes`` [1,N,4] normalised ``x1,y1,x2,y2``, and a labels file with ``BACKGROUND`` first.

Backends:

- ``onnxruntime``: ONNX Runtime, with its CUDA provider when the installed build has one;
- ``opencv``: OpenCV's DNN module;
- ``jetson``: jetson-inference's ``detectNet`` (TensorRT on a Jetson), which post-processes itself;
- ``auto``: the first of jetson, onnxruntime (CUDA, then CPU), opencv that is present.

The ONNX Runtime and OpenCV backends run :func:`postprocess`, a transcription of detectNet's
``postProcessSSD_ONNX`` + ``clusterDetections`` + ``postProcess`` (jetson-inference ``c/detectNet.cpp``): per
output row the best non-background class at or above the threshold; in row order, a detection that overlaps an
earlier one of the same class by more than ``cluster_threshold`` of the larger box's area is merged into it
(boxes united, the higher confidence kept) — detectNet's per-class suppression; then sorted by area, largest
first, and clamped to the image. So the three backends give the same detections for the same model.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from appliance.vision.litert import repeated_names
from appliance.vision.tiles import canvas_size, detect_in_tiles

BACKENDS: tuple[str, ...] = ("auto", "jetson", "onnxruntime", "opencv")
# The shipped model's F1-optimal score threshold on its validation split (MODEL_CARD.md); detectNet's own
# default is 0.5, which this model's compressed scores would turn into low recall.
DEFAULT_THRESHOLD = 0.25
# detectNet's DETECTNET_DEFAULT_CLUSTERING_THRESHOLD.
DEFAULT_CLUSTER_THRESHOLD = 0.75
INPUT_NAME, SCORES_NAME, BOXES_NAME = "input_0", "scores", "boxes"


class ModelError(OSError):
    """A model or labels file that cannot be used: missing, unreadable, or not the expected shape.

    The message names the file and what was expected. An ``OSError``, so the command line reports it as a
    file error (exit 1).
    """


@dataclass(frozen=True)
class Detection:
    """One detected object in frame pixels.

    Attributes
    ----------
    class_id : int
        Index into the labels (>= 1; 0 is BACKGROUND).
    label : str
        Class name (``structure`` or ``debris`` for the shipped model).
    score : float
        Confidence in [0, 1].
    box : (float, float, float, float)
        ``x1, y1, x2, y2`` in pixels of the frame given to :meth:`Detector.detect`.
    """

    class_id: int
    label: str
    score: float
    box: tuple[float, float, float, float]


def default_model_path() -> Path:
    """The shipped detector: ``models/detector/detector.onnx`` beside this repository's packages."""
    return Path(__file__).resolve().parents[2] / "models" / "detector" / "detector.onnx"


def load_labels(path: Path, n_classes: int | None = None) -> list[str]:
    """Read a detectNet labels file (one name a line, ``BACKGROUND`` first).

    Raises
    ------
    ModelError
        Missing or unreadable file, ``BACKGROUND`` not first, a repeated name (one class would never be
        reported), or a class count other than ``n_classes``.
    """
    try:
        names = [ln.strip() for ln in Path(path).read_text().splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"labels file {path}: cannot read it ({exc})") from None
    if not names or names[0] != "BACKGROUND":
        raise ModelError(f"labels file {path}: the first label must be BACKGROUND, got {names[:1]!r}")
    if dup := repeated_names(names):
        raise ModelError(f"labels file {path}: repeats a class name ({', '.join(dup)}): {names}; each class must "
                         f"be named once, in the model's output order")
    if n_classes is not None and len(names) != n_classes:
        raise ModelError(f"labels file {path}: {len(names)} labels {names} but the model outputs {n_classes} "
                         f"classes per box; they must match")
    return names


def to_gray(frame: np.ndarray) -> np.ndarray:
    """A uint8 grey image from a grey or BGR/BGRA frame (8- or 16-bit).

    Raises
    ------
    ValueError
        Not a 2-D or 3-D array with 1, 3 or 4 channels, or an unsupported dtype.
    """
    a = np.asarray(frame)
    if a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)
    elif a.dtype != np.uint8:
        raise ValueError(f"frame must be uint8 or uint16, got {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 3 and a.shape[2] in (3, 4):
        a = cv2.cvtColor(a, cv2.COLOR_BGR2GRAY if a.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    if a.ndim != 2 or min(a.shape) < 8:
        raise ValueError(f"frame must be (H, W) or (H, W, 1|3|4) with H, W >= 8, got shape {np.shape(frame)}")
    return np.ascontiguousarray(a)


def resize_to_input(gray: np.ndarray, input_hw: tuple[int, int]) -> np.ndarray:
    """A grey frame resized to the model's input (area-averaged when shrinking, as in training).

    Every backend gets the frame at exactly the input size: detectNet's own resize samples the nearest pixel
    (jetson-utils ``gpuTensorNormMean``), which would alias small dust differently from ONNX Runtime.
    """
    h, w = input_hw
    if gray.shape == (h, w):
        return gray
    shrink = gray.shape[0] >= h and gray.shape[1] >= w
    return np.ascontiguousarray(cv2.resize(gray, (w, h), interpolation=cv2.INTER_AREA if shrink
                                           else cv2.INTER_LINEAR))


def preprocess(gray: np.ndarray, input_hw: tuple[int, int]) -> np.ndarray:
    """The input detectNet builds: resized, ``(x/255 - 0.5)/0.5``, grey repeated to 3 channels, NCHW."""
    h, w = input_hw
    img = resize_to_input(gray, input_hw)
    x = img.astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)
    return np.ascontiguousarray(np.broadcast_to(x, (1, 3, h, w)), dtype=np.float32)


def scale_detections(dets: list[Detection], sx: float, sy: float) -> list[Detection]:
    """Detections with boxes scaled from model-input pixels to frame pixels."""
    return [Detection(d.class_id, d.label, d.score, (d.box[0] * sx, d.box[1] * sy, d.box[2] * sx, d.box[3] * sy))
            for d in dets]


def postprocess(scores: np.ndarray, boxes: np.ndarray, width: int, height: int, labels: list[str],
                threshold: float = DEFAULT_THRESHOLD,
                cluster_threshold: float = DEFAULT_CLUSTER_THRESHOLD) -> list[Detection]:
    """Apply detectNet's ONNX post-processing (see the module docstring) on raw model outputs.

    Parameters
    ----------
    scores : (1, N, C) ndarray of float32
    boxes : (1, N, 4) ndarray of float32
        Normalised ``x1, y1, x2, y2``.
    width, height : int
        Frame size the boxes are scaled to.
    labels : list of str
        Class names, BACKGROUND first.
    threshold : float
        Minimum class score.
    cluster_threshold : float
        Overlap (intersection over the larger area) above which same-class detections merge.

    Returns
    -------
    list of Detection
        Largest box first.
    """
    s = scores.reshape(-1, scores.shape[-1])[:, 1:]
    b = boxes.reshape(-1, 4)
    # Best class at or above the threshold; detectNet skips scores below it, then takes the maximum.
    masked = np.where(s >= threshold, s, -1.0)
    best = masked.argmax(axis=1)
    conf = masked[np.arange(len(masked)), best]
    rows = np.flatnonzero(conf >= threshold)
    dets: list[list[float]] = []  # [class, conf, l, t, r, b]
    for n in rows:
        cand = [float(best[n] + 1), float(conf[n]), float(b[n, 0]) * width, float(b[n, 1]) * height,
                float(b[n, 2]) * width, float(b[n, 3]) * height]
        if not _cluster_into(dets, cand, cluster_threshold):
            dets.append(cand)
    dets.sort(key=lambda d: -(d[4] - d[2]) * (d[5] - d[3]))  # detectNet's bubble sort is stable, so is this
    out = []
    for c, conf_v, left, top, right, bottom in dets:
        left, top = max(left, 0.0), max(top, 0.0)
        right = width - 1.0 if right >= width else right
        bottom = height - 1.0 if bottom >= height else bottom
        out.append(Detection(int(c), labels[int(c)], conf_v, (left, top, right, bottom)))
    return out


def _cluster_into(dets: list[list[float]], cand: list[float], thr: float) -> bool:
    """detectNet::clusterDetections: merge ``cand`` into the first earlier same-class overlap, if any."""
    for d in dets:
        iw = min(d[4], cand[4]) - max(d[2], cand[2])
        ih = min(d[5], cand[5]) - max(d[3], cand[3])
        inter = iw * ih if iw > 0 and ih > 0 else 0.0
        larger = max((d[4] - d[2]) * (d[5] - d[3]), (cand[4] - cand[2]) * (cand[5] - cand[3]))
        if larger > 0 and inter / larger > thr and d[0] == cand[0]:
            d[2], d[3] = min(d[2], cand[2]), min(d[3], cand[3])
            d[4], d[5] = max(d[4], cand[4]), max(d[5], cand[5])
            d[1] = max(d[1], cand[1])
            return True
        # An overlapping box of another class does not stop the search (detectNet without CLUSTER_INTERCLASS).
    return False


class _Runner(Protocol):
    name: str
    input_hw: tuple[int, int]
    n_classes: int

    def run(self, blob: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def _check_io(path: Path, in_shape: list[Any], scores_shape: list[Any], boxes_shape: list[Any]) -> tuple[
        tuple[int, int], int]:
    """Check detectNet's shapes; return the input (H, W) and the class count."""
    def concrete(shape: list[Any]) -> bool:
        return all(isinstance(v, int) and v > 0 for v in shape)

    if len(in_shape) != 4 or not concrete(in_shape[1:]) or in_shape[1] != 3:
        raise ModelError(f"model file {path}: input {INPUT_NAME} must be float32 [1,3,H,W] with fixed H and W, "
                         f"got {in_shape}")
    if len(scores_shape) != 3 or len(boxes_shape) != 3 or boxes_shape[2] != 4 or not concrete(scores_shape[1:]) \
            or scores_shape[1] != boxes_shape[1] or scores_shape[2] < 2:
        raise ModelError(f"model file {path}: outputs must be {SCORES_NAME} [1,N,C] (C >= 2) and {BOXES_NAME} "
                         f"[1,N,4] with the same N, got {scores_shape} and {boxes_shape}")
    return (int(in_shape[2]), int(in_shape[3])), int(scores_shape[2])


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise ModelError(f"model file {path}: not found (expected a detectNet-style ONNX detector)")


class OrtRunner:
    """ONNX Runtime (CUDA provider first when the installed build has it)."""

    name = "onnxruntime"

    def __init__(self, path: Path, threads: int = 0) -> None:
        import onnxruntime as ort

        _check_file(path)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        # No busy-waiting between ops: the scan loop shares the CPU with the kernels and the stage driver.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        avail = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in avail]
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as exc:  # ORT raises its own exception types for a truncated or foreign file
            raise ModelError(f"model file {path}: ONNX Runtime cannot load it ({type(exc).__name__}: "
                             f"{str(exc).strip()[:200]}); expected a detectNet-style ONNX detector") from None
        ins = {i.name: i for i in self.session.get_inputs()}
        outs = {o.name: o for o in self.session.get_outputs()}
        if INPUT_NAME not in ins or SCORES_NAME not in outs or BOXES_NAME not in outs:
            raise ModelError(f"model file {path}: expected input {INPUT_NAME!r} and outputs {SCORES_NAME!r}, "
                             f"{BOXES_NAME!r}; it has inputs {sorted(ins)} and outputs {sorted(outs)}")
        self.input_hw, self.n_classes = _check_io(path, list(ins[INPUT_NAME].shape),
                                                  list(outs[SCORES_NAME].shape), list(outs[BOXES_NAME].shape))
        self.providers = self.session.get_providers()

    def run(self, blob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw outputs for one preprocessed input."""
        s, b = self.session.run([SCORES_NAME, BOXES_NAME], {INPUT_NAME: blob})
        return np.asarray(s), np.asarray(b)


class OpenCvRunner:
    """OpenCV DNN (CPU). Shapes are read by running the model once on a probe input."""

    name = "opencv"

    def __init__(self, path: Path, input_hw: tuple[int, int] | None = None) -> None:
        _check_file(path)
        try:
            self.net = cv2.dnn.readNetFromONNX(str(path))
        except cv2.error as exc:
            raise ModelError(f"model file {path}: OpenCV DNN cannot load it ({str(exc).strip()[-200:]}); "
                             f"expected a detectNet-style ONNX detector") from None
        hw = input_hw or _onnx_input_hw(path)
        try:
            s, b = self.run(np.zeros((1, 3, *hw), np.float32))
        except cv2.error as exc:
            raise ModelError(f"model file {path}: OpenCV DNN cannot run it on a [1,3,{hw[0]},{hw[1]}] input "
                             f"({str(exc).strip()[-200:]})") from None
        self.input_hw, self.n_classes = _check_io(path, [1, 3, *hw], list(s.shape), list(b.shape))

    def run(self, blob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw outputs for one preprocessed input."""
        self.net.setInput(blob, INPUT_NAME)
        s, b = self.net.forward([SCORES_NAME, BOXES_NAME])
        return np.asarray(s), np.asarray(b)


def _onnx_input_hw(path: Path) -> tuple[int, int]:
    """The input's (H, W) read from the ONNX graph (through onnx, or ONNX Runtime when onnx is absent)."""
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        for i in model.graph.input:
            if i.name == INPUT_NAME:
                dims = [d.dim_value for d in i.type.tensor_type.shape.dim]
                if len(dims) == 4 and dims[2] > 0 and dims[3] > 0:
                    return int(dims[2]), int(dims[3])
        raise ModelError(f"model file {path}: no input {INPUT_NAME!r} of shape [1,3,H,W] with fixed H, W")
    except ImportError:
        return OrtRunner(path).input_hw
    except ModelError:
        raise
    except Exception as exc:  # onnx's DecodeError and friends: not an ONNX protobuf
        raise ModelError(f"model file {path}: not a readable ONNX model ({type(exc).__name__}); expected a "
                         f"detectNet-style ONNX detector") from None


class Detector:
    """Detect structures and debris in frames.

    Parameters
    ----------
    model : path, optional
        ONNX file in detectNet's contract (default: the shipped ``models/detector/detector.onnx``).
    labels : path, optional
        Labels file (default: ``labels.txt`` beside the model).
    backend : str
        One of :data:`BACKENDS`.
    threshold : float
        Minimum class score in (0, 1] (default :data:`DEFAULT_THRESHOLD`).
    threads : int
        ONNX Runtime intra-op threads (0: its default).

    Raises
    ------
    ModelError
        Missing, truncated or wrong-shaped model, or labels that do not match it.
    ValueError
        Unknown backend or threshold out of range.
    """

    def __init__(self, model: Path | None = None, labels: Path | None = None, backend: str = "auto",
                 threshold: float = DEFAULT_THRESHOLD, threads: int = 0) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1 \
                or math.isnan(threshold):
            raise ValueError(f"threshold must be a number in (0, 1], got {threshold!r}")
        self.model_path = Path(model) if model is not None else default_model_path()
        self.labels_path = Path(labels) if labels is not None else self.model_path.with_name("labels.txt")
        self.threshold = float(threshold)
        self.backend = _pick_backend(backend)
        if self.backend == "jetson":
            from appliance.vision.detector_jetson import JetsonRunner

            self.runner: Any = JetsonRunner(self.model_path, self.labels_path, self.threshold)
            self.labels = self.runner.labels
        else:
            self.runner = OrtRunner(self.model_path, threads) if self.backend == "onnxruntime" \
                else OpenCvRunner(self.model_path)
            self.labels = load_labels(self.labels_path, self.runner.n_classes)
        self.input_hw: tuple[int, int] = self.runner.input_hw

    def raw(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The model's raw ``scores`` and ``boxes`` for a frame (ONNX Runtime and OpenCV backends)."""
        if self.backend == "jetson":
            raise ValueError("the jetson backend post-processes inside detectNet; raw outputs are not exposed")
        return self.runner.run(preprocess(to_gray(frame), self.input_hw))

    def detect(self, frame: np.ndarray, um_per_px: float | None = None) -> list[Detection]:
        """Detections in one frame (grey or BGR, any size), in that frame's pixels, largest first.

        With ``um_per_px`` (the frame's pixel size at the sample), a frame the input's size would show coarser
        than the detector was trained on is read in finer tiles (:func:`appliance.vision.tiles.layout`), and
        one it would show finer is padded with bare glass first (:func:`appliance.vision.tiles.canvas_size`).

        Raises
        ------
        ValueError
            Not an image array (see :func:`to_gray`).
        """
        gray = to_gray(frame)
        h, w = gray.shape
        # a frame far from the input's shape, or too coarse at its size, is read in tiles (appliance/vision/tiles.py)
        return detect_in_tiles((w, h), self.input_hw, lambda t: self._detect_tile(gray, t, um_per_px), um_per_px)

    def _detect_tile(self, gray: np.ndarray, tile: tuple[int, int, int, int],
                     um_per_px: float | None = None) -> list[Detection]:
        """Detections in one tile ``x, y, width, height`` of a grey frame, in the frame's pixels.

        A tile off the input's shape, or one that would be read finer than the training, is padded first
        (:func:`~appliance.vision.tiles.canvas_size`); a box centred in the padding is dropped and the others are
        clipped to the tile.
        """
        x, y, w, h = tile
        part = gray if (w, h) == (gray.shape[1], gray.shape[0]) else np.ascontiguousarray(gray[y:y + h, x:x + w])
        pw, ph = canvas_size((w, h), self.input_hw, um_per_px)
        if (pw, ph) != (w, h):
            part = _pad(part, pw, ph)
        ih, iw = self.input_hw
        # Post-processing happens at the input size on every backend (detectNet sees an input-sized image),
        # then boxes are scaled to the frame: the backends agree to float rounding.
        if self.backend == "jetson":
            dets = list(self.runner.detect(resize_to_input(part, self.input_hw)))
        else:
            s, b = self.runner.run(preprocess(part, self.input_hw))
            dets = postprocess(s, b, iw, ih, self.labels, self.threshold)
        found = scale_detections(dets, pw / iw, ph / ih)
        if (pw, ph) != (w, h):
            found = _in_frame(found, w, h)
        return [Detection(d.class_id, d.label, d.score, (d.box[0] + x, d.box[1] + y, d.box[2] + x, d.box[3] + y))
                for d in found]


def _in_frame(dets: list[Detection], w: int, h: int) -> list[Detection]:
    """Boxes read on a padded image: those centred in the padding dropped, the others clipped to ``w`` x ``h``."""
    out = []
    for d in dets:
        x0, y0, x1, y1 = d.box
        if (x0 + x1) / 2 < w and (y0 + y1) / 2 < h:
            out.append(Detection(d.class_id, d.label, d.score, (x0, y0, min(x1, w), min(y1, h))))
    return out


def _pad(gray: np.ndarray, width: int, height: int) -> np.ndarray:
    """``gray`` in the top-left corner of a ``width`` x ``height`` image of its median level (bare glass)."""
    # every fourth pixel each way: the level of a whole 1920 x 1080 frame's median, at a sixteenth of its cost
    out = np.full((height, width), np.median(gray[::4, ::4]), dtype=gray.dtype)
    out[:gray.shape[0], :gray.shape[1]] = gray
    return out


def available_backends() -> list[str]:
    """Backends whose runtime is importable here, best first."""
    out = []
    if importlib.util.find_spec("jetson_inference") is not None and importlib.util.find_spec("jetson_utils"):
        out.append("jetson")
    if importlib.util.find_spec("onnxruntime") is not None:
        out.append("onnxruntime")
    out.append("opencv")  # OpenCV is a core dependency
    return out


def _pick_backend(backend: str) -> str:
    present = available_backends()
    if backend == "auto":
        return present[0]
    if backend not in present:
        raise ModelError(f"detector backend {backend!r} is not installed here (present: {', '.join(present)})")
    return backend
