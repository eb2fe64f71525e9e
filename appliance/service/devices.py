"""Open the stage and camera the config names (never a silent switch to the simulator).

``stage.kind: sim`` and ``camera.kind: sim`` give the virtual microscope (its camera renders where its stage is);
``stage.kind: grbl`` opens the board on ``stage.port`` (or the first port with ``stage.usb_id``); a real camera
kind opens that camera. A sim camera with a real stage renders the virtual slide where the real stage reports it is
(for bench tests of a board); a real camera with the sim stage is refused, since its frames could not follow.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from appliance.config.schema import CameraConfig, Config, ConfigError
from appliance.hardware.camera.base import Camera
from appliance.hardware.stage.base import Stage, StageError
from appliance.service.daemon import NeedsAttention


class HomingFailed(NeedsAttention, StageError):
    """Homing at start failed: the service waits for a person (:class:`NeedsAttention`).

    A :class:`StageError` too, so ``tppscan scan --config`` reports it in one line as before.
    """


@dataclass
class Devices:
    """The open devices; ``scope`` is the virtual microscope when one is used (for ground truth)."""

    stage: Stage
    camera: Camera
    scope: Any | None
    stack: contextlib.ExitStack

    def close(self) -> None:
        """Close everything opened, last first."""
        self.stack.close()


def open_camera(cfg: CameraConfig, position_source: Any = None) -> Camera:
    """A real camera (not opened) from its config section."""
    if cfg.kind == "opencv":
        from appliance.hardware.camera.opencv import OpenCVCamera

        return OpenCVCamera(cfg.device, cfg.width, cfg.height, cfg.fps, cfg.exposure_ms, cfg.timeout_s,
                            position_source=position_source, latency_ms=cfg.latency_ms)
    if cfg.kind == "gstreamer":
        from appliance.hardware.camera.gstreamer import GStreamerCamera

        return GStreamerCamera(cfg.sensor_id, cfg.width, cfg.height, cfg.fps, cfg.exposure_ms, cfg.timeout_s,
                               pipeline=cfg.pipeline, position_source=position_source, latency_ms=cfg.latency_ms)
    if cfg.kind == "jetson":
        from appliance.hardware.camera.jetson import JetsonCamera

        uri = cfg.device if "://" in cfg.device else f"v4l2://{cfg.device}"
        return JetsonCamera(uri, cfg.width, cfg.height, cfg.fps, cfg.timeout_s, position_source=position_source,
                            latency_ms=cfg.latency_ms)
    if cfg.kind == "files":
        from appliance.hardware.camera.files import ImageFolderCamera

        return ImageFolderCamera(cfg.folder or "", loop=cfg.loop, exposure_ms=cfg.exposure_ms,
                                 position_source=position_source, bit_depth=cfg.bit_depth)
    raise ValueError(f"camera.kind {cfg.kind!r} is not a hardware camera")


def camera_description(stage_kind: str, camera: CameraConfig | None) -> str:
    """What gives a scan's images, as its NOTE line, ``summary.json``'s ``camera`` and its report say it.

    ``camera`` None: the command line's virtual camera (``tppscan scan`` without ``--config``).
    """
    if camera is not None and camera.kind != "sim":
        source = {"opencv": camera.device, "jetson": camera.device, "gstreamer": f"sensor {camera.sensor_id}",
                  "files": camera.folder or ""}.get(camera.kind, "")
        return f"{camera.kind} {source}".rstrip()
    if stage_kind == "sim":
        return "virtual (sim): the virtual microscope"
    return f"virtual (sim) over the {stage_kind} stage"


def camera_warning(cfg: Config) -> str | None:
    """The warning for a virtual camera over a real stage (a config that leaves out ``camera:``); None otherwise.

    Such a scan moves the real stage but images the virtual slide: right for a bench test of a board, wrong for a
    slide. The service logs it at start and in each scan's log; ``tppscan config check`` prints it.
    """
    if cfg.stage.kind == "sim" or cfg.camera.kind != "sim":
        return None
    return (f"camera: the virtual (sim) camera over the real {cfg.stage.kind} stage: scans move the stage but image "
            "the virtual slide, not the one on the stage; add a camera: section (e.g. camera: {kind: opencv, "
            "device: /dev/video0}) to image the real slide")


def _sim_scope(cfg: Config) -> Any:
    from appliance.sim.overrides import CONFIG_KEY, config_sim_sets, sim_microscope

    try:
        return sim_microscope(cfg.sim.seed, config_sim_sets(cfg.sim.set), key=CONFIG_KEY)
    except ValueError as exc:  # the config's fault, not a missing device: the service must not retry it
        raise ConfigError(str(exc)) from None


def open_devices(cfg: Config) -> Devices:
    """Open stage and camera as configured.

    Raises
    ------
    ConfigError
        A combination that cannot work (a real camera on the simulated stage) or a bad ``sim.set``
        (``load_config`` refuses both first; the service does not retry this one).
    StageError, CameraError, OSError
        A device is missing or refuses (the service logs it and retries).
    """
    stack = contextlib.ExitStack()
    try:
        if cfg.stage.kind == "sim":
            if cfg.camera.kind != "sim":
                raise ConfigError(f"camera.kind {cfg.camera.kind!r} with stage.kind 'sim': a real camera cannot "
                                  "follow a simulated stage; use camera.kind: sim, or a real stage")
            scope = _sim_scope(cfg)
            stack.enter_context(scope.stage)
            stack.enter_context(scope.camera)
            return Devices(*_oriented(scope.stage, scope.camera, cfg), scope, stack)
        raw = _open_stage(cfg, stack)  # not homed yet: every check that needs no motion comes first
        if cfg.camera.kind == "sim":
            from appliance.scan.coupled import ReportedPositionStage
            from appliance.sim.camera import SimCamera

            scope = _sim_scope(cfg)
            cam: Camera = SimCamera(ReportedPositionStage(raw), scope.slide,  # type: ignore[arg-type]
                                    scope.camera.optics, scope.camera.sensor, seed=cfg.sim.seed,
                                    chain=scope.camera.chain_params)
            stack.enter_context(cam)
            _home(cfg, raw)
            return Devices(*_oriented(raw, cam, cfg), scope, stack)
        cam = open_camera(cfg.camera, position_source=getattr(raw, "last_position_um", None))
        stack.enter_context(cam)
        _home(cfg, raw)
        return Devices(*_oriented(raw, cam, cfg), None, stack)
    except BaseException:
        stack.close()
        raise


def _oriented(stage: Stage, camera: Camera, cfg: Config) -> tuple[Stage, Camera]:
    """``stage`` and ``camera``, z mirrored when ``stage.z_reversed`` is set."""
    from appliance.hardware.stage.reversed import oriented

    return oriented(stage, camera, cfg.stage.z_reversed)


def _open_stage(cfg: Config, stack: contextlib.ExitStack) -> Stage:
    if cfg.stage.kind == "simavr":
        from appliance.scan.coupled import simavr_stage

        return stack.enter_context(simavr_stage())
    from appliance.hardware.stage.grbl import GrblStage, GrblStageConfig

    auto = cfg.stage.port == "auto"
    gcfg = GrblStageConfig(port=None if auto else cfg.stage.port, usb_id=cfg.stage.usb_id if auto else None,
                           baud=cfg.stage.baud, focus=cfg.stage.focus, um_per_servo_degree=cfg.stage.um_per_degree,
                           boot_delay_s=2.0)  # an Arduino resets when the port opens
    return stack.enter_context(GrblStage(gcfg))


def _home(cfg: Config, stage: Stage) -> None:
    """Home the stage where ``stage.home_on_start`` asks, last (the camera is open, so no failure but homing's follows).

    Raises
    ------
    HomingFailed
        Homing failed (ALARM:8/9: a switch not reached or not wired; ``$22=0``: homing off): another try would
        drive the axes into the frame again, so the service waits for a person.
    """
    if not cfg.stage.home_on_start or cfg.stage.kind == "simavr":
        return
    from appliance.hardware.stage.base import HomingDisabled, StageAlarm

    try:
        stage.home()
    except HomingDisabled as exc:
        raise HomingFailed(f"homing at start (stage.home_on_start: true) failed: {exc}; or set "
                             "stage.home_on_start: false in the config if this stage has no limit switches") from exc
    except StageAlarm as exc:
        raise HomingFailed(f"homing at start (stage.home_on_start: true) failed: {exc}; check the limit switches "
                             "and their wiring, or set stage.home_on_start: false") from exc
