"""Test doubles for the scan runner that read the virtual microscope's ground truth. NOT the product path.

They exist so the runner's logic (states, overlap, resume, records, scoring) can be tested before, and apart
from, the trained models and the autofocus: the candidate gate stays the real classical one
(``kernels.analyse_frame``), and only the naming of each candidate and the focus z come from the slide's
ground truth. The ``tppscan scan`` command never uses them unless asked by name (``--vision sim-truth``,
``--focus sim-truth``), and then says so on every run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from appliance.hardware.camera.base import Camera, Frame
from appliance.hardware.stage.base import Stage
from appliance.scan.protocols import Box, Detection, FocusOutcome, VisionResult
from appliance.sim.microscope import VirtualMicroscope


def gate_blobs(image: np.ndarray, um_per_px: float = 0.56) -> np.ndarray:
    """The candidate gate of the scan loop, as this build has it.

    ``appliance.vision.gate`` when present; before it landed, the kernels' fused analysis with the adaptive
    Gaussian threshold (block 31, C 15, dark blobs >= 12 px). Returns the kept blobs' ``(K, 5)`` stats
    (left, top, width, height, area).
    """
    try:
        from appliance.vision.gate import find_candidates
    except ImportError:
        from kernels import analyse_frame

        block = min(31, (min(image.shape) - 1) | 1)
        return analyse_frame(image, "gaussian", block_size=block, c=15.0, invert=True, connectivity=8,
                             min_area=12).stats
    cands = find_candidates(image, um_per_px)
    return np.array([[*c.box_px, c.area_px] for c in cands], dtype=np.int64).reshape(-1, 5)


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


class SimTruthVision:
    """The real candidate gate, then a perfect detector and classifier read from the slide's ground truth.

    Every true object that some candidate blob overlaps is detected once, with its true box in the frame
    (what a perfect detector would draw), its true type for a structure and ``"debris"`` otherwise,
    confidence 1. Objects no blob touches are not detected (the gate missed them); blobs on nothing true are
    dropped. So a scan with this double measures the gate, the stage, the calibration and the runner.

    Parameters
    ----------
    scope : VirtualMicroscope
        The microscope whose frames are analysed (frames must carry ``true_position_um``).
    """

    name = "sim-truth"

    def __init__(self, scope: VirtualMicroscope) -> None:
        self.scope = scope

    def analyse(self, frame: Frame) -> VisionResult:
        """Gate the frame; name its candidates from the ground truth."""
        t0 = time.perf_counter()
        stats = gate_blobs(frame.image, self.scope.camera.um_per_px)
        t1 = time.perf_counter()
        if stats.shape[0] == 0:
            return VisionResult(0, (), {"gate": t1 - t0})
        truth = self.scope.boxes_in_view(frame)
        hit = {}
        for x, y, w, h, _ in stats.tolist():
            blob = (x, y, x + w, y + h)
            for t in truth:
                if _overlaps(blob, t.box_px):
                    hit[t.id] = t
        dets = []
        for _, t in sorted(hit.items()):
            cls = t.cls if t.kind == "structure" else "debris"
            dets.append(Detection(t.box_px, t.kind, cls, 1.0, {cls: 1.0}))
        return VisionResult(int(stats.shape[0]), tuple(dets), {"gate": t1 - t0,
                                                               "classify": time.perf_counter() - t1})


class SimTruthFocuser:
    """Moves focus to the true focus of what is in the region (a structure's, else the glass's). A double.

    Parameters
    ----------
    scope : VirtualMicroscope
        Source of the truth.
    """

    name = "sim-truth"

    def __init__(self, scope: VirtualMicroscope) -> None:
        self.scope = scope

    def focus(self, stage: Stage, camera: Camera, z_guess_um: float, range_um: float,
              roi_px: Box | None = None, cls: str | None = None) -> FocusOutcome:
        """Focus on the true focus z of the structure in ``roi_px``, or the glass at the frame's centre."""
        # the simulator's true position where the stage has one; a firmware stage is where it reports
        where = getattr(stage, "true_position_um", stage.position_um)
        true = where()
        z = float(self.scope.slide.surface_z_um(true.x_um, true.y_um))
        glass = True
        if roi_px is not None:
            for b in self.scope.boxes_at(true.x_um, true.y_um):
                if b.kind == "structure" and _overlaps(b.box_px, roi_px):
                    z, glass = b.focus_z_um, False
                    break
        # the scan's own origin (appliance/hardware/stage/offset.py) may lie off the drive's after a realignment
        stage.focus_to_um(z - _origin_z_um(stage))
        return FocusOutcome(stage.position_um().z_um, 1, True, glass=glass)


def _origin_z_um(stage: Stage) -> float:
    """Where ``stage``'s z origin lies in the truth's.

    The truth is the virtual stage's mechanics where that is the innermost drive (every ``offset_um`` along the
    ``inner`` chain counts), else the reported place of the stage just inside the scan's own origin (a firmware
    rig's: the outermost ``offset_um`` alone counts).
    """
    layers = [stage]
    while "inner" in vars(layers[-1]):
        layers.append(vars(layers[-1])["inner"])
    offsets = [float(vars(s).get("offset_um", (0.0, 0.0, 0.0))[2]) for s in layers]
    return sum(offsets) if hasattr(layers[-1], "true_position_um") else offsets[0]


class PlaneFocusMap:
    """A least-squares plane through the focused points (at least three); a stand-in for ``appliance.focus``.

    ``predict`` returns None until three points are in, then the plane's z and, as the uncertainty, the
    points' RMS misfit plus 1 µm plus 5 µm per mm to the nearest point (the points' mean while they lie nearly
    on a line).
    """

    UM_PER_UM_AWAY = 0.005

    def __init__(self) -> None:
        self.points: list[tuple[float, float, float]] = []

    def add(self, x_um: float, y_um: float, z_um: float) -> None:
        """Add a focused point."""
        self.points.append((x_um, y_um, z_um))

    def predict(self, x_um: float, y_um: float) -> tuple[float, float] | None:
        """Plane z at ``(x, y)`` and its uncertainty, or None with fewer than three points."""
        if len(self.points) < 3:
            return None
        p = np.asarray(self.points)
        # far from every point the plane is a guess: a slide may tilt by a few µm per mm
        reach = self.UM_PER_UM_AWAY * float(np.min(np.hypot(p[:, 0] - x_um, p[:, 1] - y_um)))
        xy = p[:, :2] - p[:, :2].mean(axis=0)
        if np.linalg.svd(xy, compute_uv=False)[-1] / np.sqrt(len(p)) < 200.0:
            # points (nearly) on a line: a plane through them would tilt wildly off it; use their mean
            return float(p[:, 2].mean()), float(p[:, 2].std()) + 1.0 + reach
        a = np.column_stack([p[:, 0], p[:, 1], np.ones(len(p))])
        coef, *_ = np.linalg.lstsq(a, p[:, 2], rcond=None)
        rms = float(np.sqrt(np.mean((a @ coef - p[:, 2]) ** 2)))
        return float(coef[0] * x_um + coef[1] * y_um + coef[2]), rms + 1.0 + reach


def truth_boxes(scope: VirtualMicroscope, frame: Frame) -> Sequence[tuple[str, Box]]:
    """``(cls, box)`` of every object in a frame, for checking exports."""
    return [(b.cls if b.kind == "structure" else "debris", b.box_px) for b in scope.boxes_in_view(frame)]


def scan_small_slide(tmp: Any, seed: int = 21, plan: Any = None, vision_factory: Any = None,
                     slide: dict[str, Any] | None = None, stage: dict[str, Any] | None = None,
                     sensor: dict[str, Any] | None = None, focuser_factory: Any = None, **kw: Any) -> Any:
    """Scan a small virtual slide (1.4 x 1.4 mm, 4 structures) with these doubles; returns (outcome, scope).

    A short focus stack (± 3 µm) keeps it quick; ``slide``, ``stage`` and ``sensor`` override the slide's, the
    virtual stage's and the sensor's parameters; ``vision_factory`` and ``focuser_factory`` (each called with the
    scope) replace :class:`SimTruthVision` and :class:`SimTruthFocuser`; ``kw`` goes to
    :func:`appliance.scan.session.run_scan`.
    """
    from pathlib import Path

    from appliance.scan.plan import FocusPlan, ScanPlan
    from appliance.scan.session import run_scan, scan_area, sim_height_truth, sim_microscope

    tmp = Path(tmp)
    sets: dict[str, Any] = {"slide": {**SMALL_SLIDE["slide"], **(slide or {})}}
    if stage:
        sets["stage"] = stage
    if sensor:
        sets["sensor"] = sensor
    scope = sim_microscope(seed, sets)
    plan = plan or ScanPlan(name="small", focus=FocusPlan(stack_range_um=3.0, stack_step_um=1.0))
    p = scope.slide.params
    with scope.stage, scope.camera:
        vision = (vision_factory or SimTruthVision)(scope)
        focuser = (focuser_factory or SimTruthFocuser)(scope)
        out = run_scan(scope.stage, scope.camera, vision, focuser, PlaneFocusMap(), plan,
                       tmp / "scan", tmp / "tppscan.db", scan_area(plan, (p.width_um, p.height_um)),
                       device_clock=scope.clock.now_s, truth=scope.slide.truth(),
                       height_truth=sim_height_truth(scope), **kw)
    return out, scope


SMALL_SLIDE = {"slide": {"width_um": 1400.0, "height_um": 1400.0, "n_structures": 4}}


def travel_just_above_the_prints(seed: int) -> dict[str, Any]:
    """Stage overrides for :func:`scan_small_slide` whose focus travel ends 1-2 µm above the highest print focus.

    The small slide's focus stacks then meet the end of the travel.
    """
    import math

    from appliance.scan.session import sim_microscope

    objects = sim_microscope(seed, SMALL_SLIDE).slide.objects
    top = max(o.focus_z_um for o in objects if o.kind == "structure")
    return {"travel_z_um": [0.0, float(math.ceil(top)) + 1.0]}
