"""The learned reading: its features, its model file's checks, autofocus using it, the bench with the shipped one."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from appliance.focus import autofocus
from appliance.focus.bench import run_bench, summarise
from appliance.focus.reader import (
    N_FEATURES,
    SHIPPED_READER,
    FocusReader,
    OnDetectionBoxes,
    device_reader,
    frame_features,
    reading_features,
    shipped_reader_for,
)
from appliance.focus.scores import TARGET_MARGIN_PX, Rect
from appliance.focus.testing import centre_on, structures
from appliance.sim.capture import PRESETS
from appliance.sim.microscope import VirtualMicroscope
from appliance.sim.stage import SimStageParams

ROOT = Path(__file__).resolve().parents[2]


def _crop(level: float = 170.0, dark: float = 60.0, size: int = 80, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = np.full((size, size), level) + rng.normal(0, 2, (size, size))
    c[size // 3:2 * size // 3, size // 3:2 * size // 3] -= dark
    return c.clip(0, 255).astype(np.uint8)


def test_a_frame_is_a_dozen_numbers_and_a_tiny_crop_is_refused() -> None:
    f = frame_features(_crop())
    assert f.shape == (12,) and np.all(np.isfinite(f))
    assert f[0] < 0 and f[3] > 0  # a dark print: darker than its glass, dark mass
    with pytest.raises(ValueError, match="at least 16 px a side"):
        frame_features(np.zeros((10, 40), np.uint8))


def test_features_need_enough_frames_and_say_where_they_lie() -> None:
    crops = [_crop(dark=d, seed=k) for k, d in enumerate((10, 30, 60, 30, 10))]
    v = reading_features([-8.0, -4.0, 0.0, 4.0, 8.0], crops, reading_um=1.0)
    assert v is not None and v.shape == (N_FEATURES,)
    inside = v[-25:]  # the last block: which grid offsets (-12..12 um) the frames span about the reading
    assert inside.tolist() == [0.0] * 3 + [1.0] * 17 + [0.0] * 5  # frames at -9..+7 um from the reading
    assert reading_features([-4.0, 0.0, 4.0], crops[:3], 0.0) is None  # three frames: too few
    assert reading_features([0.0, 1.0, 2.0, 3.0], crops[:4], 0.0) is None  # 3 um: too short a span
    with pytest.raises(ValueError, match="3 z values for 5 crops"):
        reading_features([0.0, 1.0, 2.0], crops, 0.0)


def test_the_shipped_reader_loads_and_fits_the_default_optics_only() -> None:
    r = FocusReader(SHIPPED_READER)
    assert r.meta["um_per_px"] == pytest.approx(0.56) and r.fits(0.56, r.meta["dof_um"])
    assert not r.fits(0.28, r.meta["dof_um"]) and not r.fits(0.56, 2.0 * r.meta["dof_um"])
    assert r.predict(np.zeros((3, N_FEATURES))).shape == (3,)
    frames = [np.full((60, 80), 170, np.uint8)] * 5
    assert r.correction_um([-8.0, -4.0, 0.0, 4.0, 8.0], frames, (30, 20, 10, 40), 0.0) is None  # too narrow a box
    reader, line = shipped_reader_for(0.28, 3.0)
    assert reader is None and "trained at 0.56 um/px" in line and "the type's reading bias is used" in line


class _Rects:
    """A reader that keeps the rectangles it is asked to read."""

    def __init__(self) -> None:
        self.rects: list[Rect | None] = []

    def fits(self, um_per_px: float, dof_um: float) -> bool:
        return um_per_px == 0.56

    def correction_um(self, z_um: Sequence[float], images: Sequence[np.ndarray], rect: Rect | None,
                      reading_um: float) -> float | None:
        self.rects.append(rect)
        return 0.5


def test_a_scans_reader_reads_its_detections_box_grown_as_the_bench_gave_it() -> None:
    inner = _Rects()
    wrapped = OnDetectionBoxes(inner)
    frames = [np.zeros((480, 640), np.uint8)] * 5
    m = TARGET_MARGIN_PX
    assert wrapped.correction_um([0.0, 1, 2, 3, 4], frames, (100, 200, 50, 40), 2.0) == 0.5
    assert wrapped.correction_um([0.0, 1, 2, 3, 4], frames, (5, 450, 50, 20), 2.0) == 0.5  # clipped to the frame
    assert inner.rects == [(100 - m, 200 - m, 50 + 2 * m, 40 + 2 * m), (0, 450 - m, 55 + m, 30 + m)]
    assert wrapped.correction_um([0.0], frames, None, 0.0) is None and len(inner.rects) == 2
    assert wrapped.fits(0.56, 11.0) and not wrapped.fits(0.28, 11.0)
    dof = FocusReader(SHIPPED_READER).meta["dof_um"]
    default, mono = VirtualMicroscope(seed=3), VirtualMicroscope(seed=3, chain=PRESETS["mono_raw"])
    scan_reader = device_reader(default, 0.56, dof)
    assert isinstance(scan_reader, OnDetectionBoxes) and isinstance(scan_reader.reader, FocusReader)
    assert device_reader(None, 0.56, dof) is None and device_reader(default, 0.28, dof) is None
    assert device_reader(mono, 0.56, dof) is None  # another camera chain than the one it learned from


def test_a_bad_model_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="no focus reader model there"):
        FocusReader(tmp_path / "missing.onnx")
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(SHIPPED_READER.read_bytes()[:500])
    with pytest.raises(OSError, match="cut.onnx: not a readable ONNX model"):
        FocusReader(cut)
    with pytest.raises(OSError, match=r"detector.onnx: a focus reader takes 'features' \[N, "):
        FocusReader(ROOT / "models" / "detector" / "detector.onnx")
    import onnx

    m = onnx.load(str(SHIPPED_READER))
    meta = json.loads(next(p.value for p in m.metadata_props if p.key == "tppscan_reader"))
    for name, props in (("bare", {}), ("old", {"tppscan_reader": json.dumps({**meta, "feature_version": 0})})):
        del m.metadata_props[:]
        if props:
            onnx.helper.set_model_props(m, props)
        onnx.save(m, str(tmp_path / f"{name}.onnx"))
    with pytest.raises(OSError, match="bare.onnx: no tppscan_reader metadata"):
        FocusReader(tmp_path / "bare.onnx")
    with pytest.raises(OSError, match="old.onnx: trained on feature version 0, this tppscan reads version 1"):
        FocusReader(tmp_path / "old.onnx")


class _Fixed:
    """A reader that always says the focus lies ``um`` from the reading (None: it cannot say)."""

    def __init__(self, um: float | None) -> None:
        self.um = um
        self.calls = 0

    def fits(self, um_per_px: float, dof_um: float) -> bool:
        return True

    def correction_um(self, z_um: Sequence[float], images: Sequence[np.ndarray], rect: Rect | None,
                      reading_um: float) -> float | None:
        self.calls += 1
        assert rect is not None and len(z_um) == len(images) >= 4
        return self.um


def _focus(reader: _Fixed | None, target_type: str | None = "pentagon", drive: str = "stepper") -> tuple[float, object]:
    scope = VirtualMicroscope(seed=3, stage=SimStageParams(z_mode=drive))  # type: ignore[arg-type]
    scope.stage.open()
    scope.camera.open()
    obj = next(o for o in structures(scope) if o.cls == "pentagon")
    start = obj.focus_z_um + 6.0
    roi = centre_on(scope, obj, start)
    r = autofocus(scope.stage, scope.camera, "classical", z_range_um=(start - 15, start + 15), roi=roi,
                  now_s=scope.clock.now_s, target_type=target_type, reader=reader)  # type: ignore[arg-type]
    return r.z_um, r


def test_a_reader_moves_a_searched_focus_instead_of_the_types_bias() -> None:
    z0, r0 = _focus(None, target_type=None)
    z1, r1 = _focus(_Fixed(0.75))
    assert r1.ok and r1.frames == r0.frames  # type: ignore[attr-defined]
    assert z1 == pytest.approx(z0 + 0.75, abs=1 / 32)  # not the pentagon's -1.0 um: the reader replaces it
    assert "read from its frames by the learned reader +0.75 um" in r1.reason  # type: ignore[attr-defined]
    assert "bias" not in r1.reason  # type: ignore[attr-defined]
    z2, r2 = _focus(_Fixed(None))  # it cannot say: the reading stays, and no bias either
    assert z2 == pytest.approx(z0) and "reader" not in r2.reason  # type: ignore[attr-defined]
    assert r1.learned and not r2.learned and not r0.learned  # type: ignore[attr-defined]


def test_on_a_servo_the_readers_reading_is_kept_beside_the_degree_the_stage_stops_on() -> None:
    # the reader's answer lies between whole degrees: the stage stops on the nearest, the map is fed the answer
    z0, r0 = _focus(_Fixed(0.0), drive="servo")
    z1, r1 = _focus(_Fixed(0.4), drive="servo")
    assert z0 == round(z0) and z1 == round(z1)  # type: ignore[attr-defined]
    assert r1.reading_um == pytest.approx(z0 + 0.4) and r1.point_um == r1.reading_um  # type: ignore[attr-defined]
    assert z1 == round(z0 + 0.4)


def test_a_fields_own_focus_is_never_given_to_the_reader() -> None:
    scope = VirtualMicroscope(seed=3, stage=SimStageParams(z_mode="stepper"))
    scope.stage.open()
    scope.camera.open()
    z = scope.slide.surface_z_um(*scope.stage.position_um()[:2])
    reader = _Fixed(3.0)
    r = autofocus(scope.stage, scope.camera, "classical", z_range_um=(z - 15, z + 15), mode="specks",
                  now_s=scope.clock.now_s, reader=reader)  # type: ignore[arg-type]
    assert reader.calls == 0 and "reader" not in r.reason


def test_the_shipped_reader_beats_the_types_bias_on_held_out_slides() -> None:
    """40 held-out fields (slides 1000-1001), Z stepper: the reader's share within 1 µm against the table's."""
    reader = FocusReader(SHIPPED_READER)
    table = summarise(run_bench(1000, 40, "classical", "stepper"))
    read = summarise(run_bench(1000, 40, "classical", "stepper", reader=reader))
    assert read["frames_median"] == table["frames_median"]  # no frame of its own
    assert read["success_rate"] >= 0.9 and read["success_rate"] >= table["success_rate"] + 0.1


def test_the_bench_says_which_reader_and_refuses_a_bad_one(tmp_path: Path) -> None:
    def bench(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "appliance.cli", "focus", "bench", "--fields", "2", "--json",
                               *extra], capture_output=True, text=True, cwd=ROOT, timeout=120)
    ok = bench()
    assert ok.returncode == 0 and json.loads(ok.stdout)["reader"] == "shipped"
    assert json.loads(bench("--no-reader").stdout)["reader"] is None
    both = bench("--no-reader", "--reader", str(SHIPPED_READER))
    assert both.returncode == 2 and "--reader FILE with --no-reader" in both.stderr
    missing = bench("--reader", str(tmp_path / "nope.onnx"))
    assert missing.returncode == 2 and "nope.onnx: no focus reader model there" in missing.stderr
    other = bench("--sim-set", "optics.magnification=20", "--sim-set", "optics.na=0.4")
    assert other.returncode == 0 and json.loads(other.stdout)["reader"] is None
    assert "these optics or this camera differ, so the type's bias is used" in other.stderr
    mono = bench("--sim-set", "camera.preset=mono_raw")
    assert mono.returncode == 0 and json.loads(mono.stdout)["reader"] is None


def test_quick_training_writes_a_reader_that_loads(tmp_path: Path) -> None:
    out = tmp_path / "r"
    done = subprocess.run([sys.executable, "-m", "appliance.cli", "train", "reader", "--quick", "--jobs", "1",
                           "--out", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=180)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((out / "reader.metrics.json").read_text())
    assert metrics["quick"] and metrics["train_searches"] >= 15 and metrics["val"]["all"]["n"] >= 15
    assert FocusReader(out / "reader.onnx").fits(0.56, metrics["dof_um"])
    bad = subprocess.run([sys.executable, "-m", "appliance.cli", "train", "reader", "--seed", "990", "--out",
                          str(out)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert bad.returncode == 2 and "overlap the autofocus bench's held-out slides 1000-3999" in bad.stderr
