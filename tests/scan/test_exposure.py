"""The scan's exposure: clipped or dark glass brought back to a bright-field grey, and cameras it must leave alone."""

import json
import math

import numpy as np
import pytest

from appliance.cli import main
from appliance.hardware.camera.base import Camera, CameraError, Frame
from appliance.hardware.stage.base import Position
from appliance.scan.exposure import CLOSE, TARGET, TOO_BRIGHT, TOO_DARK, settle_exposure
from appliance.scan.session import exposure_warnings
from appliance.sim.overrides import parse_sim_sets, sim_microscope
from tests.faults.faulty_camera import FaultyCamera


def _sim_camera(*sets: str) -> Camera:
    scope = sim_microscope(5, parse_sim_sets(list(sets)))
    scope.stage.open()
    scope.camera.open()
    return scope.camera


class _Fixed(Camera):
    """A camera whose frames are one grey level, whatever its exposure (frames from files, a stuck driver)."""

    def __init__(self, level: int, exposure_ms: float = 10.0, refuse: bool = False) -> None:
        self.level, self._exposure_ms, self.refuse, self.captures = level, exposure_ms, refuse, 0

    def open(self) -> None: ...

    def close(self) -> None: ...

    def capture(self) -> Frame:
        self.captures += 1
        image = np.full((48, 64), self.level, np.uint8)
        return Frame(image=image, position=Position(0.0, 0.0, 0.0), time_s=0.0, exposure_ms=self._exposure_ms)

    @property
    def size_px(self) -> tuple[int, int]:
        return (64, 48)

    @property
    def exposure_ms(self) -> float:
        return self._exposure_ms

    @exposure_ms.setter
    def exposure_ms(self, value: float) -> None:
        if self.refuse:  # as the jetson camera's videoSource does
            raise CameraError("no exposure control")
        self._exposure_ms = value


def test_a_well_set_lamp_keeps_its_exposure_for_one_frame():
    r = settle_exposure(_sim_camera())
    assert r.ok and not r.changed and r.frames == 1 and r.exposure_ms == 10.0
    assert TOO_DARK <= r.glass_before <= TOO_BRIGHT


@pytest.mark.parametrize("sets, brighter", [
    (("sensor.electrons_per_ms=3000",), False),                          # 3 x the well: every pixel clipped
    (("sensor.electrons_per_ms=1500",), False),                          # glass at 247: the bright fringes clip
    (("camera.preset=mono_raw", "sensor.electrons_per_ms=3000"), False),  # a linear camera
    (("sensor.electrons_per_ms=60",), True),                             # a lamp turned down: glass at 61
])
def test_clipped_or_dark_glass_is_brought_to_the_target_grey(sets, brighter):
    camera = _sim_camera(*sets)
    r = settle_exposure(camera)
    assert r.ok and r.changed and r.before_ms == 10.0
    assert not TOO_DARK <= r.glass_before <= TOO_BRIGHT
    assert abs(r.glass_after - TARGET) <= CLOSE
    assert (r.exposure_ms > 10.0) == brighter
    assert camera.exposure_ms == r.exposure_ms  # the camera is left where the glass was read
    glass = np.percentile(camera.capture().image, 95)
    assert abs(glass - TARGET) <= CLOSE + 5


def test_a_camera_on_its_own_automatic_exposure_is_left_to_it():
    camera = _Fixed(255, exposure_ms=math.nan)
    r = settle_exposure(camera)
    assert r.ok and not r.changed and r.frames == 0 and camera.captures == 0
    assert "automatic exposure" in r.note


def test_a_camera_that_refuses_an_exposure_says_so():
    r = settle_exposure(_Fixed(255, refuse=True))
    assert not r.ok and r.exposure_ms == 10.0
    assert "refused" in r.note and "no exposure control" in r.note
    assert exposure_warnings(r.to_mapping()) == [f"the exposure could not be set: {r.note}"]


def test_frames_that_do_not_follow_the_exposure_keep_the_exposure_they_had():
    camera = _Fixed(60)
    r = settle_exposure(camera)
    assert not r.ok and camera.exposure_ms == 10.0 and r.frames == 3  # read, read again, one step
    assert "do not follow the exposure" in r.note


def test_glass_clipped_at_every_exposure_stops_and_names_the_lamp():
    camera = _Fixed(255)
    r = settle_exposure(camera)
    assert not r.ok and "clipped" in r.note and "lamp" in r.note
    assert camera.captures == r.frames <= 8


def test_a_black_frame_is_a_lamp_not_an_exposure():
    camera = _Fixed(3)
    r = settle_exposure(camera)
    assert not r.ok and camera.exposure_ms == 10.0 and r.frames == 2
    assert "lamp on" in r.note


@pytest.mark.parametrize("fault", ["saturated", "black"])
def test_one_faulty_frame_changes_nothing(fault):
    camera = FaultyCamera(_sim_camera(), {0: fault})
    r = settle_exposure(camera)
    assert r.ok and not r.changed and r.frames == 2 and camera.exposure_ms == 10.0


def test_a_camera_error_is_tried_again():
    camera = FaultyCamera(_sim_camera("sensor.electrons_per_ms=3000"), {0: "timeout", 3: "timeout"}, timeout_s=0.0)
    r = settle_exposure(camera, retries=1)
    assert r.ok and r.changed and camera.injected == ["timeout", "timeout"]
    with pytest.raises(CameraError, match="no frame within"):
        settle_exposure(FaultyCamera(_sim_camera(), {0: "timeout", 1: "timeout"}, timeout_s=0.0), retries=1)


def test_warnings_only_for_an_exposure_that_could_not_be_set():
    assert exposure_warnings(None) == []
    assert exposure_warnings(settle_exposure(_sim_camera()).to_mapping()) == []


def test_a_lamp_three_times_too_bright_is_scanned_at_a_shorter_exposure(tmp_path, capsys, caplog):
    # Before: every capture saturated and the scan stopped before its first field (exit 1, CaptureFailed).
    out = tmp_path / "scan"
    sets = ["--sim-set", "slide.width_um=1000", "--sim-set", "slide.height_um=1000", "--sim-set",
            "slide.n_structures=1", "--sim-set", "slide.debris_per_mm2=3", "--sim-set", "sensor.electrons_per_ms=3000"]
    code = main(["scan", "--sim", "--seed", "5", *sets, "--out", str(out), "--vision", "sim-truth", "--focus",
                 "sim-truth", "--progress", "none"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "exposure: glass at 255 of 255 at 10 ms, so the scan runs at" in caplog.text
    info = json.loads((out / "scan.json").read_text())["exposure"]
    assert info["changed"] and info["ok"] and info["exposure_ms"] < 5.0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["recall"] == 1.0 and summary["warnings"] == []
    assert "so the scan runs at" in (out / "report.html").read_text()  # the report says it too
