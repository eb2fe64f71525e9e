"""Read an exported ``detector.onnx`` back into a :class:`DetectorNet`, so that ``--init`` can fine-tune it.

``export_onnx`` folds each Conv + BatchNorm pair into one Conv whose initializers get throw-away names
(``onnx::Conv_273``); only the convolutions without a batch norm (``net.lat8``, the heads) keep theirs. Neither the
names nor the order of the numbers are a contract, so the file's weights are placed by the graph instead:

1. the width comes from the first convolution's output channels and the input size from ``input_0``;
2. a *tagged* net of that width is exported through the same :func:`~models.detector.export.onnx_model` (same opset,
   same folding): its k-th convolution (in ``named_modules`` order) has every weight equal to k + 1 and every batch
   norm is the identity, so the folded weight of each Conv node in that reference graph says which module it came
   from, whatever the node or initializer is called;
3. the two graphs are walked node by node: same operator, same attributes, same wiring (each input is the
   corresponding tensor of the other graph, or an initializer of the same shape). Conv node i of the file then holds
   the weights of the module that the tag of Conv node i of the reference names. Every other initializer (the
   decode's ``cx``/``cy`` grids) must equal the reference's, which checks the input size once more;
4. un-folding: a folded layer's weight goes into its convolution, and its batch norm becomes the identity in eval
   mode (weight 1, bias = the folded bias, running mean 0, running variance 1 - eps, so (x - 0) / sqrt(var + eps)
   = x); the layers without a batch norm load as they are;
5. the loaded net, in eval mode, must reproduce the file's ``scores`` and ``boxes`` in ONNX Runtime within
   :data:`TOLERANCE` on a fixed pseudo-random input, or the file is refused.

Step 5 is what proves the mapping: any module given another's weights changes the outputs by far more than that.
In training mode the identity batch norms normalise with each batch's statistics, which changes the function;
:func:`calibrate_batchnorms` re-estimates them on the training frames first so that train and eval mode agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from models.detector.spec import STRIDE

TOLERANCE = 1e-4
WIDTHS = (4, 64)  # train.py's --width bounds


def _fail(path: Path, why: str) -> OSError:
    return OSError(f"--init {path}: not a detector this code can train further: {why}")


def read_model(path: Path) -> Any:
    """The file as an ``onnx.ModelProto``, or ``OSError`` naming it (missing, truncated, not ONNX)."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path), load_external_data=False)
        onnx.checker.check_model(model, full_check=False)
    except FileNotFoundError:
        raise OSError(f"--init {path}: not found") from None
    except (DecodeError, onnx.checker.ValidationError, ValueError, RuntimeError) as exc:
        raise _fail(path, f"it cannot be read as ONNX ({type(exc).__name__}; truncated or another kind of file)"
                    ) from None
    return model


def _dims(value: Any) -> list[int]:
    return [d.dim_value for d in value.type.tensor_type.shape.dim]


def file_layout(model: Any, path: Path) -> tuple[int, tuple[int, int]]:
    """The (width, (H, W)) an exported detector implies: the first convolution's output channels, ``input_0``."""
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    outputs = [o.name for o in model.graph.output]
    if [i.name for i in inputs] != ["input_0"] or outputs != ["scores", "boxes"]:
        raise _fail(path, f"inputs {[i.name for i in inputs]} / outputs {outputs}, expected ['input_0'] / "
                          "['scores', 'boxes'] (the files `tppscan train detector` writes)")
    shape = _dims(inputs[0])
    if len(shape) != 4 or shape[:2] != [1, 3] or shape[2] % STRIDE or shape[3] % STRIDE or min(shape) <= 0:
        raise _fail(path, f"input_0 is {shape}, expected [1, 3, H, W] with H and W multiples of {STRIDE}")
    inits = {t.name: t for t in model.graph.initializer}
    first = [n for n in model.graph.node if n.op_type == "Conv" and n.input[0] == "input_0"]
    if len(first) != 1 or len(first[0].input) < 2 or first[0].input[1] not in inits:
        raise _fail(path, "no single first convolution on input_0 with its weight in the file")
    width = int(inits[first[0].input[1]].dims[0])
    if not WIDTHS[0] <= width <= WIDTHS[1]:
        raise _fail(path, f"its first convolution has {width} outputs, not a width in [{WIDTHS[0]}, {WIDTHS[1]}]")
    return width, (shape[2], shape[3])


def _tagged_reference(width: int, input_hw: tuple[int, int]) -> tuple[Any, list[str]]:
    """A reference export whose k-th Conv2d (``named_modules`` order) has all weights k + 1; the modules' names."""
    import torch
    from torch import nn

    from models.detector.export import onnx_model
    from models.detector.net import DetectorNet

    net = DetectorNet(width=width)
    names = []
    with torch.no_grad():
        # Biases get tags too (negative, by module): the exporter shares equal initializers between nodes.
        for name, m in net.named_modules():
            if isinstance(m, nn.Conv2d):
                names.append(name)
                m.weight.fill_(float(len(names)))
                if m.bias is not None:
                    m.bias.fill_(-float(len(names)))
            elif isinstance(m, nn.BatchNorm2d):
                _identity(m, torch.full((m.num_features,), -float(len(names))))
    return onnx_model(net, input_hw), names


def _identity(bn: Any, bias: Any) -> None:
    """Make an eval-mode batch norm x -> x + bias (running var 1 - eps: var + eps is 1)."""
    bn.weight.fill_(1.0)
    bn.bias.copy_(bias)
    bn.running_mean.zero_()
    bn.running_var.fill_(1.0 - bn.eps)


def _nodes(model: Any) -> list[Any]:
    """The graph's nodes less the Identity nodes that pass an initializer on, their consumers reading it directly.

    The exporter shares one initializer between equal weights (an untrained net's zero biases) by Identity nodes;
    whether it does depends on the values, not the layout.
    """
    inits = {t.name for t in model.graph.initializer}
    alias = {n.output[0]: n.input[0] for n in model.graph.node
             if n.op_type == "Identity" and len(n.input) == 1 and n.input[0] in inits}
    nodes = []
    for n in model.graph.node:
        if n.output and n.output[0] in alias:
            continue
        if any(x in alias for x in n.input):
            n = type(n).FromString(n.SerializeToString())
            n.input[:] = [alias.get(x, x) for x in n.input]
        nodes.append(n)
    return nodes


def _attrs(node: Any) -> list[bytes]:
    return sorted(a.SerializeToString() for a in node.attribute)


def match_convs(model: Any, reference: Any, names: list[str], path: Path) -> dict[str, tuple[str, str | None]]:
    """Module name -> (weight, bias or None) initializer names in ``model``, by walking both graphs in step.

    Raises ``OSError`` where the graphs differ (another layout, opset or exporter) or a tag is not found.
    """
    from onnx import numpy_helper

    ref_init = {t.name: t for t in reference.graph.initializer}
    file_init = {t.name: t for t in model.graph.initializer}
    ref_nodes, file_nodes = _nodes(reference), _nodes(model)
    if len(file_nodes) != len(ref_nodes):
        raise _fail(path, f"{len(file_nodes)} graph nodes where a detector of its width and input size has "
                          f"{len(ref_nodes)}")
    same = {"input_0": "input_0", "": ""}  # "": an optional input left out (Resize's roi)
    out: dict[str, tuple[str, str | None]] = {}
    for k, (a, b) in enumerate(zip(ref_nodes, file_nodes, strict=True)):
        where = f"node {k} ({b.op_type} {b.name!r})"
        if (a.op_type, len(a.input), len(a.output), _attrs(a)) != (b.op_type, len(b.input), len(b.output), _attrs(b)):
            raise _fail(path, f"{where} differs from the detector layout's {a.op_type} {a.name!r}")
        for x, y in zip(a.input, b.input, strict=True):
            if x in ref_init:
                if y not in file_init or list(file_init[y].dims) != list(ref_init[x].dims):
                    raise _fail(path, f"{where}: input {y!r} is not an initializer of shape {list(ref_init[x].dims)}")
            elif same.get(x) != y:
                raise _fail(path, f"{where}: input {y!r} is wired differently from the detector layout")
        same.update(zip(a.output, b.output, strict=True))
        if a.op_type == "Conv":
            tag = numpy_helper.to_array(ref_init[a.input[1]])
            k_mod = int(round(float(tag.flat[0]))) - 1
            if not (0 <= k_mod < len(names) and np.allclose(tag, k_mod + 1, rtol=1e-4)):
                raise _fail(path, f"{where}: the reference's weight tag {float(tag.flat[0])} names no module")
            out[names[k_mod]] = (b.input[1], b.input[2] if len(b.input) > 2 else None)
        else:
            for x, y in zip(a.input, b.input, strict=True):
                if x in ref_init and not np.allclose(numpy_helper.to_array(ref_init[x]),
                                                     numpy_helper.to_array(file_init[y]), atol=1e-6):
                    raise _fail(path, f"{where}: constant {y!r} differs from the detector's (another input size?)")
    if sorted(out) != sorted(names):
        raise _fail(path, f"convolutions of {sorted(set(names) - set(out))} not found in the file")
    return out


def load_onnx_weights(net: Any, model: Any, convs: dict[str, tuple[str, str | None]]) -> list[str]:
    """Copy the file's weights into ``net``, un-folding the batch norms; returns the un-folded batch norms' names."""
    import torch
    from onnx import numpy_helper
    from torch import nn

    arrays = {t.name: t for t in model.graph.initializer}
    modules = dict(net.named_modules())
    bn_after = _batchnorm_after(net)
    unfolded = []
    with torch.no_grad():
        for name, (w, b) in convs.items():
            conv = modules[name]
            assert isinstance(conv, nn.Conv2d)
            conv.weight.copy_(torch.from_numpy(numpy_helper.to_array(arrays[w]).copy()))
            bias = torch.from_numpy(numpy_helper.to_array(arrays[b]).copy()) if b else torch.zeros(conv.out_channels)
            if name in bn_after:
                _identity(modules[bn_after[name]], bias)
                unfolded.append(bn_after[name])
            elif conv.bias is not None:
                conv.bias.copy_(bias)
    return unfolded


def _batchnorm_after(net: Any) -> dict[str, str]:
    """Conv2d name -> the BatchNorm2d that follows it in the same ``nn.Sequential`` (what export folds)."""
    from torch import nn

    pairs = {}
    for name, m in net.named_modules():
        if isinstance(m, nn.Sequential):
            kids = list(m.named_children())
            for (a, ma), (b, mb) in zip(kids, kids[1:], strict=False):
                if isinstance(ma, nn.Conv2d) and isinstance(mb, nn.BatchNorm2d):
                    pairs[f"{name}.{a}" if name else a] = f"{name}.{b}" if name else b
    return pairs


def check_reproduces(net: Any, model: Any, input_hw: tuple[int, int], path: Path) -> float:
    """Largest |difference| of ``scores``/``boxes`` between ``net`` (eval) and ONNX Runtime on ``model``.

    Raises ``OSError`` above :data:`TOLERANCE`. The input is fixed noise in [-1, 1]: no flat region whose
    neighbouring logits tie, where the graph's peak test (a Sign of a difference) could break either way.
    """
    import onnxruntime as ort
    import torch

    from models.detector.net import DetectNetExport

    x = np.random.default_rng(0).uniform(-1.0, 1.0, (1, 3, *input_hw)).astype(np.float32)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    try:
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        want = sess.run(["scores", "boxes"], {"input_0": x})
    except Exception as exc:  # onnxruntime raises its own (unexported) exception types for a graph it cannot run
        raise _fail(path, f"ONNX Runtime cannot run it ({type(exc).__name__})") from None
    net.eval()
    with torch.no_grad():
        got = DetectNetExport(net, input_hw).eval()(torch.from_numpy(x))
    diff = max(float(np.abs(g.numpy() - w).max()) for g, w in zip(got, want, strict=True))
    if not diff <= TOLERANCE:
        raise _fail(path, f"its weights read back give outputs {diff:.3g} away from the file's in ONNX Runtime "
                          f"(at most {TOLERANCE} allowed)")
    return diff


def load_onnx_init(net: Any, path: Path, input_hw: tuple[int, int]) -> list[str]:
    """Load an exported detector into ``net`` (its width), un-folded and checked; returns the un-folded BN names.

    Raises
    ------
    OSError
        Naming the file: unreadable or not ONNX, another layout, width or input size than ``net`` / ``input_hw``,
        or weights that do not reproduce the file's outputs.
    """
    model = read_model(path)
    width, hw = file_layout(model, path)
    net_width = int(net.stem[0][0].out_channels)
    if width != net_width:
        raise OSError(f"--init {path}: a width-{width} detector; give --width {width} (asked for {net_width})")
    if hw != tuple(input_hw):
        raise OSError(f"--init {path}: a detector of input {hw[1]}x{hw[0]}; give --input-size {hw[1]}x{hw[0]} "
                      f"(asked for {input_hw[1]}x{input_hw[0]})")
    reference, names = _tagged_reference(width, hw)
    convs = match_convs(model, reference, names, path)
    unfolded = load_onnx_weights(net, model, convs)
    check_reproduces(net, model, hw, path)
    return unfolded


def calibrate_batchnorms(net: Any, frames: np.ndarray, names: list[str], batch: int = 16) -> None:
    """Re-estimate the named batch norms' statistics on training frames, keeping the eval-mode function.

    An un-folded batch norm (identity: mean 0, var 1 - eps) in training mode normalises with the batch's own
    statistics, a function far from the eval one (see the model card's figure). With each layer's per-channel input
    mean m and variance v over ``frames`` (eval mode throughout, so earlier layers do not move) and its eval
    function x -> a x + c, the layer gets running mean m, running var v, weight a sqrt(v + eps) and bias c + a m:
    eval mode is still a x + c, and training mode is the same on batches whose statistics are m and v. For a
    folded layer this recovers, approximately, the batch norm's own affine parameters from the data.
    """
    import torch

    modules = dict(net.named_modules())
    sums: dict[str, list[Any]] = {n: [] for n in names}

    def hook(name: str) -> Any:
        def record(_m: Any, inputs: tuple[Any, ...], _out: Any) -> None:
            x = inputs[0].double()
            sums[name].append(torch.stack([x.sum((0, 2, 3)), (x * x).sum((0, 2, 3)),
                                           torch.full_like(x[0, :, 0, 0], x.numel() / x.shape[1])]))
        return record

    handles = [modules[n].register_forward_hook(hook(n)) for n in names]
    net.eval()
    try:
        with torch.no_grad():
            for i in range(0, len(frames), batch):
                net(_net_input(frames[i:i + batch]))
    finally:
        for h in handles:
            h.remove()
    with torch.no_grad():
        for n in names:
            s, ss, cnt = torch.stack(sums[n]).sum(0)
            bn = modules[n]
            mean = s / cnt
            var = torch.clamp(ss / cnt - mean * mean, min=0.0)
            a = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
            c = bn.bias.double() - a * bn.running_mean.double()
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
            bn.weight.copy_(a * torch.sqrt(var + bn.eps))
            bn.bias.copy_(c + a * mean)


def measure(data_dir: Path, path: Path, limit: int = 16) -> dict[str, float]:
    """The model card's figures: ``path`` read back vs ONNX Runtime on a dataset's frames, and train vs eval mode.

    ``python -m models.detector.onnx_init DATA [MODEL]`` prints them (one torch thread).
    """
    import copy

    import onnxruntime as ort
    import torch

    from models.detector.net import DetectNetExport, DetectorNet
    from models.detector.train import load_frames

    torch.set_num_threads(1)
    model = read_model(path)
    width, hw = file_layout(model, path)
    frames, _, _ = load_frames(data_dir, hw, limit=limit)
    net = DetectorNet(width=width)
    unfolded = load_onnx_init(net, path, hw)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    out = {"frames": float(len(frames)), "scores": 0.0, "boxes": 0.0}
    for f in frames:
        x = _net_input(f[None]).numpy()
        got, want = _torch_outputs(DetectNetExport(net.eval(), hw).eval(), x), sess.run(["scores", "boxes"],
                                                                                        {"input_0": x})
        for key, g, w in zip(("scores", "boxes"), got, want, strict=True):
            out[key] = max(out[key], float(np.abs(g - w).max()))
    batch = _net_input(frames[:8])
    for label in ("identity", "calibrated"):
        if label == "calibrated":
            calibrate_batchnorms(net, frames, unfolded)
        with torch.no_grad():
            he, be = net.eval()(batch)
            ht, bt = copy.deepcopy(net).train()(batch)
        dh, db = (torch.sigmoid(ht) - torch.sigmoid(he)).abs(), (bt - be).abs()
        out.update({f"{label}_heat_max": float(dh.max()), f"{label}_heat_mean": float(dh.mean()),
                    f"{label}_box_max": float(db.max()), f"{label}_box_mean": float(db.mean())})
    return out


def _net_input(frames: np.ndarray) -> Any:
    """Grey uint8 frames ``[N, H, W]`` as the net reads them: ``[N, 3, H, W]`` float32 in [-1, 1].

    DetectNet's ``(x/255 - 0.5)/0.5``, the grey repeated to three channels.
    """
    import torch

    x = torch.from_numpy(frames.astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0))
    return x.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()


def _torch_outputs(wrapped: Any, x: np.ndarray) -> list[np.ndarray]:
    import torch

    with torch.no_grad():
        return [t.numpy() for t in wrapped(torch.from_numpy(x))]


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(measure(Path(sys.argv[1]), Path(sys.argv[2] if len(sys.argv) > 2 else
                                                     "models/detector/detector.onnx")), indent=1))
