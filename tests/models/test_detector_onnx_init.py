"""``--init detector.onnx``: an exported detector read back into a ``DetectorNet`` (``models.detector.onnx_init``)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from appliance.cli import main

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from models.detector import onnx_init  # noqa: E402
from models.detector.export import export_onnx  # noqa: E402
from models.detector.net import DetectNetExport, DetectorNet  # noqa: E402

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "detector" / "detector.onnx"
HW = (64, 96)  # small and not square: a swapped H and W shows
WIDTH = 4  # the smallest --width


def _random_net(seed: int = 1) -> DetectorNet:
    """A width-4 net with every batch norm away from the identity, so folding changes every weight."""
    torch.manual_seed(seed)
    net = DetectorNet(width=WIDTH)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return net.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    return export_onnx(_random_net(), tmp_path_factory.mktemp("onnx") / "detector.onnx", HW)


def _ort(path: Path | bytes, x: np.ndarray) -> list[np.ndarray]:
    sess = ort.InferenceSession(str(path) if isinstance(path, Path) else path, providers=["CPUExecutionProvider"])
    return sess.run(["scores", "boxes"], {"input_0": x})


def _torch(net: DetectorNet, x: np.ndarray, hw: tuple[int, int]) -> list[np.ndarray]:
    with torch.no_grad():
        return [t.numpy() for t in DetectNetExport(net.eval(), hw).eval()(torch.from_numpy(x))]


def test_round_trip_reproduces_onnx_runtime(exported: Path):
    net = DetectorNet(width=WIDTH)
    unfolded = onnx_init.load_onnx_init(net, exported, HW)
    assert len(unfolded) == 15 and all(n.endswith((".1",)) for n in unfolded)  # every Conv+BN pair
    x = np.random.default_rng(7).normal(0.0, 0.6, (1, 3, *HW)).astype(np.float32)  # not the check's own input
    for got, want in zip(_torch(net, x, HW), _ort(exported, x), strict=True):
        assert np.abs(got - want).max() <= 1e-4
    bn = dict(net.named_modules())[unfolded[0]]
    assert torch.all(bn.weight == 1) and torch.all(bn.running_mean == 0)


def test_mapping_is_by_graph_not_by_initializer_names_or_order(exported: Path, tmp_path: Path):
    """Renumber the folded initializers backwards and list them in reverse: the same net comes back."""
    model = onnx.load(str(exported))
    folded = [t.name for t in model.graph.initializer if t.name.startswith("onnx::")]
    rename = dict(zip(folded, reversed(folded), strict=True))
    inits = list(model.graph.initializer)
    for t in inits:
        t.name = rename.get(t.name, t.name)
    del model.graph.initializer[:]
    model.graph.initializer.extend(reversed(inits))
    for node in model.graph.node:
        node.input[:] = [rename.get(i, i) for i in node.input]
    shuffled = tmp_path / "shuffled.onnx"
    onnx.save(model, str(shuffled))
    a, b = DetectorNet(width=WIDTH), DetectorNet(width=WIDTH)
    onnx_init.load_onnx_init(a, exported, HW)
    onnx_init.load_onnx_init(b, shuffled, HW)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name


def test_a_wrong_mapping_is_caught_by_the_check(exported: Path, monkeypatch):
    """Two same-shaped layers' weights exchanged (what a guess from names could do): refused, the file named."""
    match = onnx_init.match_convs

    def swapped(*args, **kwargs):
        convs = match(*args, **kwargs)
        a, b = "s16.1.a.0", "s16.2.a.0"  # both [4*6, 4*6, 3, 3]
        convs[a], convs[b] = convs[b], convs[a]
        return convs

    monkeypatch.setattr(onnx_init, "match_convs", swapped)
    with pytest.raises(OSError, match=rf"--init {exported}: not a detector this code can train further: .* away"):
        onnx_init.load_onnx_init(DetectorNet(width=WIDTH), exported, HW)


def test_the_shipped_detector_loads_and_reproduces_itself():
    from models.detector.spec import INPUT_H, INPUT_W

    net = DetectorNet(width=16)
    onnx_init.load_onnx_init(net, SHIPPED, (INPUT_H, INPUT_W))
    # A frame-like input: a grey background with dark discs and noise, in the contract's scaling.
    yy, xx = np.mgrid[0:INPUT_H, 0:INPUT_W]
    img = np.full((INPUT_H, INPUT_W), 170.0) + np.random.default_rng(3).normal(0, 6, (INPUT_H, INPUT_W))
    for cx, cy, r in ((80, 60, 12), (200, 150, 25), (290, 40, 6)):
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = 60.0
    x = np.broadcast_to(((img / 255.0 - 0.5) / 0.5).astype(np.float32), (1, 3, INPUT_H, INPUT_W)).copy()
    got, want = _torch(net, x, (INPUT_H, INPUT_W)), _ort(SHIPPED, x)
    assert max(float(np.abs(g - w).max()) for g, w in zip(got, want, strict=True)) <= 1e-4
    assert want[0][0, :, 1:].max() > 0.25  # the discs are found: the comparison is not of empty maps


def _add_only(path: Path) -> Path:
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input_0", TensorProto.FLOAT, [1, 3, 64, 96])
    y = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 3, 64, 96])
    graph = helper.make_graph([helper.make_node("Add", ["input_0", "input_0"], ["scores"])], "add", [x], [y])
    onnx.save(helper.make_model(graph), str(path))
    return path


def _truncated(path: Path) -> Path:
    path.write_bytes(SHIPPED.read_bytes()[:50_000])
    return path


@pytest.mark.parametrize("make, needle", [
    (_add_only, "not a detector this code can train further: inputs ['input_0'] / outputs ['scores']"),
    (_truncated, "not a detector this code can train further: it cannot be read as ONNX"),
    (lambda p: p.write_bytes(b"") or p, "not a detector this code can train further: "),
])
def test_files_that_are_not_detectors_are_refused(make, needle, tmp_path: Path):
    bad = make(tmp_path / "bad.onnx")
    with pytest.raises(OSError) as exc:
        onnx_init.load_onnx_init(DetectorNet(width=WIDTH), bad, HW)
    assert f"--init {bad}: " in str(exc.value) and needle in str(exc.value)


def test_another_input_size_or_width_says_which_to_give(exported: Path):
    with pytest.raises(OSError, match=rf"--init {exported}: a detector of input 96x64; give --input-size 96x64 "
                                      r"\(asked for 128x64\)"):
        onnx_init.load_onnx_init(DetectorNet(width=WIDTH), exported, (64, 128))
    with pytest.raises(OSError, match=rf"--init {exported}: a width-4 detector; give --width 4 \(asked for 8\)"):
        onnx_init.load_onnx_init(DetectorNet(width=8), exported, HW)


def test_cli_refuses_a_bad_onnx_init_on_one_line_before_any_work(tmp_path: Path, capsys):
    bad = _add_only(tmp_path / "add.onnx")
    out = tmp_path / "o"
    assert main(["train", "detector", "--data", str(tmp_path), "--out", str(out), "--init", str(bad),
                 "--quick"]) == 1
    err = capsys.readouterr().err
    assert f"--init {bad}: not a detector" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_calibration_keeps_eval_and_brings_train_mode_to_it(exported: Path):
    net = DetectorNet(width=WIDTH)
    unfolded = onnx_init.load_onnx_init(net, exported, HW)
    frames = np.random.default_rng(2).integers(0, 256, (8, *HW), np.uint8)
    x = torch.from_numpy(frames.astype(np.float32) * np.float32(2 / 255) - 1).unsqueeze(1).expand(-1, 3, -1, -1)

    def heat(n: DetectorNet, mode: bool) -> Any:
        n.train(mode)
        with torch.no_grad():  # (training mode moves the running statistics: on a copy, or last)
            return n(x)[0]

    before_eval, before_train = heat(net, False), heat(copy.deepcopy(net), True)
    onnx_init.calibrate_batchnorms(net, frames, unfolded)
    assert (heat(net, False) - before_eval).abs().max() <= 1e-4  # eval mode: the file's function still
    # training mode on a batch of the calibration frames: the eval function (the un-folded one was far off)
    assert (heat(net, True) - before_eval).abs().max() <= 1e-3 < (before_train - before_eval).abs().max()
