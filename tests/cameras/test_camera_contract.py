"""One contract for every camera source: frame shape and dtype, owned buffers, errors as CameraError."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

import kernels
from appliance.hardware.camera.base import Camera, CameraError
from appliance.hardware.camera.files import ImageFolderCamera
from appliance.hardware.camera.gstreamer import ISP_RAW, GStreamerCamera, argus_pipeline, opencv_has_gstreamer
from appliance.hardware.camera.jetson import JetsonCamera
from appliance.hardware.camera.opencv import OpenCVCamera
from tests.cameras.fakes import FakeClock, FakeVideoCapture, World, make_jetson_utils, scene

GST_YES = "Video I/O:\n    GStreamer:                   YES (1.20.3)\n"
GST_NO = "Video I/O:\n    GStreamer:                   NO\n"


@pytest.fixture(autouse=True)
def _fake_devices() -> Iterator[None]:
    FakeVideoCapture.devices = {"/dev/video0": (640, 480), 1: (320, 240)}
    FakeVideoCapture.unplugged = set()
    FakeVideoCapture.hung = set()
    FakeVideoCapture.release_hang.clear()
    FakeVideoCapture.clock = FakeClock()
    FakeVideoCapture.world = None
    yield
    FakeVideoCapture.release_hang.set()


def _folder(tmp: Path, n: int = 3, size: tuple[int, int] = (200, 150)) -> Path:
    d = tmp / "frames"
    d.mkdir(exist_ok=True)
    for i in range(n):
        cv2.imwrite(str(d / f"f{i:03d}.png"), scene(i, size[1], size[0]))
    return d


def _sim() -> Camera:
    from appliance.sim.microscope import VirtualMicroscope

    scope = VirtualMicroscope(seed=2)
    scope.stage.open()
    return scope.camera


MAKERS: dict[str, Callable[[Path], Camera]] = {
    "sim": lambda tmp: _sim(),
    "opencv": lambda tmp: OpenCVCamera("/dev/video0", 1280, 720, capture_factory=FakeVideoCapture, timeout_s=0.5,
                                       clock=FakeVideoCapture.clock),
    "gstreamer": lambda tmp: GStreamerCamera(0, 640, 480, capture_factory=lambda *a: FakeVideoCapture(
        "/dev/video0"), build_info=GST_YES, timeout_s=0.5, clock=FakeVideoCapture.clock),
    "jetson": lambda tmp: JetsonCamera("csi://0", 640, 480, jetson_utils=make_jetson_utils(
        clock=FakeVideoCapture.clock), timeout_s=0.5, clock=FakeVideoCapture.clock),
    "files": lambda tmp: ImageFolderCamera(_folder(tmp)),
}


@pytest.mark.parametrize("kind", list(MAKERS))
def test_contract(kind: str, tmp_path: Path) -> None:
    cam = MAKERS[kind](tmp_path)
    if kind != "sim":
        with pytest.raises(CameraError, match="not open"):
            cam.capture()
    with cam:
        f1 = cam.capture()
        keep = f1.image.copy()
        f2 = cam.capture()
        for f in (f1, f2):
            assert f.image.dtype == np.uint8 and f.image.ndim == 2 and f.image.flags.c_contiguous
            assert (f.image.shape[1], f.image.shape[0]) == cam.size_px
        assert np.array_equal(f1.image, keep), "a later capture changed an earlier frame"
        if kind != "sim":
            assert not np.array_equal(f1.image, f2.image)
        ro = f2.image.copy()
        ro.flags.writeable = False  # camera buffers handed on read-only must work in the kernels
        assert np.isfinite(kernels.laplacian_variance(ro))
    cam.close()  # safe twice


def test_opencv_reads_back_the_size_the_driver_really_gives() -> None:
    with OpenCVCamera("/dev/video0", 1280, 720, capture_factory=FakeVideoCapture,
                      clock=FakeVideoCapture.clock) as cam:
        assert cam.size_px == (640, 480)
        assert cam.capture().image.shape == (480, 640)


def test_opencv_gray_matches_opencv_conversion() -> None:
    with OpenCVCamera(1, 320, 240, capture_factory=FakeVideoCapture, clock=FakeVideoCapture.clock, warmup=0,
                      latency_ms=0) as cam:  # the first frame read: frame 0
        img = cam.capture().image
    assert np.array_equal(img, cv2.cvtColor(scene(0, 240, 320), cv2.COLOR_BGR2GRAY))


def test_opencv_missing_device_is_a_camera_error() -> None:
    with pytest.raises(CameraError, match="/dev/video7"):
        OpenCVCamera("/dev/video7", capture_factory=FakeVideoCapture, clock=FakeVideoCapture.clock).open()


def test_opencv_unplugged_then_back_reopens() -> None:
    cam = OpenCVCamera("/dev/video0", capture_factory=FakeVideoCapture, clock=FakeVideoCapture.clock,
                       timeout_s=0.5)
    with cam:
        cam.capture()
        FakeVideoCapture.unplugged.add("/dev/video0")
        with pytest.raises(CameraError, match="no frame"):
            cam.capture()
        FakeVideoCapture.unplugged.clear()
        assert cam.capture().image.shape == (480, 640)  # reopened


def test_opencv_hung_read_times_out_as_camera_error() -> None:
    cam = OpenCVCamera("/dev/video0", capture_factory=FakeVideoCapture, clock=FakeVideoCapture.clock,
                       timeout_s=0.3)
    with cam:
        FakeVideoCapture.hung.add("/dev/video0")
        t0 = time.monotonic()
        with pytest.raises(CameraError, match="no frame within 0.3 s"):
            cam.capture()
        assert time.monotonic() - t0 < 2.0
        FakeVideoCapture.hung.clear()
        FakeVideoCapture.release_hang.set()


def test_opencv_exposure_in_v4l2_units() -> None:
    fakes: list[FakeVideoCapture] = []

    def factory(*a: object) -> FakeVideoCapture:
        fakes.append(FakeVideoCapture(*a))
        return fakes[-1]

    with OpenCVCamera("/dev/video0", exposure_ms=12.5, capture_factory=factory, clock=FakeVideoCapture.clock):
        assert fakes[0].props[cv2.CAP_PROP_AUTO_EXPOSURE] == 1
        assert fakes[0].props[cv2.CAP_PROP_EXPOSURE] == pytest.approx(125.0)


def test_gstreamer_refuses_an_opencv_without_gstreamer() -> None:
    cam = GStreamerCamera(capture_factory=FakeVideoCapture, build_info=GST_NO)
    with pytest.raises(CameraError, match="no GStreamer backend"):
        cam.open()
    assert opencv_has_gstreamer(GST_YES) and not opencv_has_gstreamer(GST_NO)


def test_gstreamer_pipeline_carries_sensor_size_and_exposure() -> None:
    p = argus_pipeline(1, 1280, 720, 30, 8.0)
    assert "sensor-id=1" in p and 'exposuretimerange="8000000 8000000"' in p and "format=GRAY8" in p
    assert p.rstrip().endswith("sync=false") and "appsink" in p


def test_jetson_copies_after_synchronising() -> None:
    ju = make_jetson_utils()
    with JetsonCamera(jetson_utils=ju, latency_ms=0) as cam:  # one Capture per capture
        frames = [cam.capture().image for _ in range(6)]  # more than the ring's 4 buffers
    for i, img in enumerate(frames):
        assert np.array_equal(img, cv2.cvtColor(scene(i, 480, 640), cv2.COLOR_BGR2GRAY)), i
    assert ju.state["synced"] == 6


def test_jetson_timeout_end_of_stream_and_open_failure() -> None:
    with JetsonCamera(jetson_utils=make_jetson_utils(frames=2, timeouts={1}), latency_ms=0) as cam:
        cam.capture()
        with pytest.raises(CameraError, match="no frame within"):
            cam.capture()
        with pytest.raises(CameraError, match="capture failed"):
            cam.capture()
    with pytest.raises(CameraError, match="csi://9"):
        JetsonCamera("csi://9", jetson_utils=make_jetson_utils()).open()


def _slide_under_a_stage_that_arrived_at(arrived_s: float) -> World:
    """Frames exposed before the stage arrived show the old place (dark), after it the new one (bright)."""
    return lambda t, h, w: np.full((h, w, 3), 200 if t >= arrived_s else 60, np.uint8)


STREAMING: dict[str, Callable[[int | float], Camera]] = {
    "opencv": lambda lat: OpenCVCamera("/dev/video0", exposure_ms=10.0, capture_factory=FakeVideoCapture,
                                       clock=FakeVideoCapture.clock, latency_ms=lat),
    "gstreamer": lambda lat: GStreamerCamera(0, exposure_ms=10.0, capture_factory=lambda *a: FakeVideoCapture(
        "/dev/video0"), build_info=GST_YES, clock=FakeVideoCapture.clock, latency_ms=lat),
    "jetson": lambda lat: JetsonCamera(jetson_utils=make_jetson_utils(
        clock=FakeVideoCapture.clock, world=FakeVideoCapture.world), clock=FakeVideoCapture.clock, latency_ms=lat),
}


@pytest.mark.parametrize("kind", list(STREAMING))
def test_a_capture_after_a_stage_move_shows_the_slide_where_the_stage_is_now(kind: str) -> None:
    """A streaming camera holds frames exposed before the call; the capture drops them (fresh.py)."""
    clock = FakeVideoCapture.clock
    arrived = clock.now + 5.0  # opened, one capture, then a move of five seconds
    FakeVideoCapture.world = _slide_under_a_stage_that_arrived_at(arrived)
    for latency_ms, level in ((0, 60), (100, 200)):  # the first frame read is the driver's, from the move
        with STREAMING[kind](latency_ms) as cam:
            assert cam.capture().image.mean() < 100
            clock.now = arrived
            frame = cam.capture()
        assert frame.image.mean() == pytest.approx(level, abs=1), (kind, latency_ms)
        assert frame.meta["dropped_frames"] >= (2 if latency_ms else 0)
        arrived = clock.now + 5.0
        FakeVideoCapture.world = _slide_under_a_stage_that_arrived_at(arrived)


def _edge_under_a_stage_that_arrived_at(arrived_s: float) -> World:
    """Before the stage arrived, dark glass; after, a print's edge: 60 on the left half, 200 on the right."""
    def world(t: float, h: int, w: int) -> np.ndarray:
        img = np.full((h, w, 3), 60, np.uint8)
        if t >= arrived_s:
            img[:, w // 2:] = 200
        return img
    return world


def test_the_argus_isp_hands_on_the_sensor_frames_unfiltered() -> None:
    """nvarguscamerasrc blends each frame with the ones before it and sharpens edges unless told not to."""
    clock = FakeVideoCapture.clock
    ours = argus_pipeline(0, 640, 480, 30, 10.0)
    assert ISP_RAW in ours.split("!", 1)[0]  # on the source element, where the properties belong
    element_defaults = ours.replace(ISP_RAW, "")
    frames = {}
    for name, pipeline in (("ours", None), ("element defaults", element_defaults)):
        FakeVideoCapture.devices[pipeline or ours] = (640, 480)
        arrived = clock.now + 5.0
        FakeVideoCapture.world = _edge_under_a_stage_that_arrived_at(arrived)
        with GStreamerCamera(0, exposure_ms=10.0, pipeline=pipeline, capture_factory=FakeVideoCapture,
                             build_info=GST_YES, clock=clock) as cam:
            cam.capture()
            clock.now = arrived  # a five-second move
            frames[name] = cam.capture().image
    truth = cv2.cvtColor(_edge_under_a_stage_that_arrived_at(0.0)(1.0, 480, 640), cv2.COLOR_BGR2GRAY)
    assert np.array_equal(frames["ours"], truth)
    blended = frames["element defaults"]
    assert 60 < blended[:, 600].mean() < 195  # the old field still shows through the new one
    assert blended[:, 320:324].max() > 200  # and the edge overshoots


def test_the_fresh_frame_gate_and_its_bad_values() -> None:
    from appliance.hardware.camera.fresh import check_latency_ms, fresh_gate_s, read_fresh

    assert fresh_gate_s(10.0, 30.0, 100.0) == pytest.approx(0.110)
    assert fresh_gate_s(float("nan"), 20.0, 100.0) == pytest.approx(0.150)  # automatic exposure: a frame period
    assert fresh_gate_s(10.0, 30.0, 0.0) == 0.0
    for bad in (-1, 5001, float("nan"), True, "100"):
        with pytest.raises(ValueError, match=r"latency_ms must be in \[0, 5000\] ms"):
            check_latency_ms(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="latency_ms"):
        OpenCVCamera(latency_ms=-5)
    clock = FakeClock()
    times = iter([0.0, 0.001, 0.002, 0.05, 0.12, 0.16])

    def read() -> float:
        clock.now = 1000.0 + next(times)
        return clock.now

    assert read_fresh(read, 0.11, clock) == (pytest.approx(1000.12), 4)


def test_files_errors_name_the_file(tmp_path: Path) -> None:
    d = _folder(tmp_path, 2)
    cv2.imwrite(str(d / "f009.png"), scene(0, 50, 60))
    (d / "f010.png").write_bytes(b"not a png")
    cam = ImageFolderCamera(d, loop=False)
    with cam:
        cam.capture()
        cam.capture()
        with pytest.raises(CameraError, match="f009.png: 60x50 differs"):
            cam.capture()
        with pytest.raises(CameraError, match="f010.png: not a readable image"):
            cam.capture()
        with pytest.raises(CameraError, match="all 4 files replayed"):
            cam.capture()
    with pytest.raises(CameraError, match="holds no"):
        ImageFolderCamera(tmp_path).open()  # holds only the folder "frames"


def _write_16bit(folder: Path, name: str, value_top: int) -> np.ndarray:
    ramp = np.linspace(0, value_top, 48 * 64).reshape(48, 64).astype(np.uint16)
    cv2.imwrite(str(folder / name), ramp)
    return ramp


def test_files_keep_a_12_bit_cameras_brightness(tmp_path: Path) -> None:
    """A 12-bit camera's 16-bit TIFFs are shifted by 4, with the depth found once for the folder."""
    bright = _write_16bit(tmp_path, "a.tif", 4095)
    dim = _write_16bit(tmp_path, "b.tif", 1000)  # a dim frame must stay dim: the depth is the camera's
    with ImageFolderCamera(tmp_path) as cam:
        assert cam.bit_depth == 12
        first, second = cam.capture().image, cam.capture().image
    assert np.array_equal(first, (bright >> 4).astype(np.uint8))
    assert np.array_equal(second, (dim >> 4).astype(np.uint8))
    assert first.max() == 255 and second.max() == 62


def test_files_a_pixel_above_the_depth_is_an_error_naming_the_file(tmp_path: Path) -> None:
    _write_16bit(tmp_path, "a.tif", 1023)
    _write_16bit(tmp_path, "b.tif", 4095)
    with ImageFolderCamera(tmp_path, loop=False) as cam:
        assert cam.bit_depth == 10
        cam.capture()
        with pytest.raises(CameraError, match=r"b\.tif holds pixel value 4095, above its 10-bit depth"):
            cam.capture()
    with ImageFolderCamera(tmp_path, bit_depth=16) as cam:  # a depth given is kept
        assert cam.capture().image.max() == 1023 >> 8
    with pytest.raises(ValueError, match="bit_depth must be one of 8, 10, 12, 14, 16"):
        ImageFolderCamera(tmp_path, bit_depth=11)


def test_a_jetson_csi_source_says_its_isp_filters_stay_on(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING"), JetsonCamera("csi://0", jetson_utils=make_jetson_utils()):
        pass
    assert "camera.kind: gstreamer" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"), JetsonCamera("v4l2:///dev/video0", jetson_utils=make_jetson_utils()):
        pass
    assert caplog.text == ""
