"""The appliance's YAML configuration: one file, typed and validated by pydantic.

Read once at start (``load_config``) into frozen models; parts take the section they need and never the whole
file. Unknown keys are errors, not warnings (a misspelt ``exposure_ms`` must not silently keep the default).
Every error names the key path, the value and what is allowed::

    /etc/tppscan/config.yaml: camera.width: must be between 16 and 8192, got 70000

``tppscan config check`` validates a file; ``tppscan config show --defaults`` prints a commented default that
``systemd/install.sh`` installs as ``/etc/tppscan/config.yaml``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from appliance.config.yamlfile import load_yaml
from appliance.hardware.camera.fresh import DEFAULT_LATENCY_MS, MAX_LATENCY_MS

DEFAULT_CONFIG_PATH = Path("/etc/tppscan/config.yaml")
MAX_CONFIG_BYTES = 1 << 20  # a config file is a few KB; anything larger is not one


class ConfigError(ValueError):
    """A configuration file is missing, unreadable, not YAML, or holds a bad value (message names the key path)."""


class ConfigFileError(ConfigError):
    """The configuration file itself is missing or unreadable (a file error, not a bad value)."""


class _Section(BaseModel):
    """Base of every section: frozen, unknown keys rejected, no silent type coercion from strings to numbers."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, validate_default=True)

    @field_validator("*", mode="after")
    @classmethod
    def _finite(cls, value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


Seconds = Annotated[float, Field(gt=0.0, le=3600.0)]


def _index_as_text(value: Any) -> Any:
    """A camera index written as a number (``device: 0``) is the same device as ``'0'``."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else value


def _quoted_number(value: Any) -> Any:
    """A baud rate written in quotes (``baud: "115200"``) is that number."""
    return int(value) if isinstance(value, str) and value.strip().isdigit() else value


def _file_mode(value: Any) -> Any:
    """A mode as octal text (``'0660'``, ``'0o660'``) is that mode; ``660`` written bare is refused by name.

    PyYAML reads ``0660`` as octal (432), but ``660`` is the decimal 660: say how to write it, where the range
    check alone would say "at most 511".
    """
    if isinstance(value, str) and re.fullmatch(r"(0o?)?[0-7]{3}", value.strip()):
        return int(value.strip().removeprefix("0o"), 8)
    if isinstance(value, int) and not isinstance(value, bool) and 0o777 < value <= 777 and set(str(value)) <= set(
            "01234567"):  # 600, 640, 660, 755 ... meant as octal (01777 arrives as 1023: the range check says it)
        raise ValueError(f"is read as a decimal number: write the mode in octal, as 0{value} or '0{value}'")
    return value


class CameraConfig(_Section):
    """Where frames come from (``appliance.hardware.camera``)."""

    kind: Literal["sim", "opencv", "gstreamer", "jetson", "files"] = "sim"
    device: str = Field("/dev/video0", description="opencv: a /dev/videoN path or an index; jetson: a videoSource URI")
    sensor_id: int = Field(0, ge=0, le=7, description="gstreamer: the CSI sensor (nvarguscamerasrc sensor-id)")
    pipeline: str | None = Field(None, description="gstreamer: a whole pipeline ending in appsink, replaces the "
                                                   "built-in nvarguscamerasrc one")
    folder: str | None = Field(None, description="files: the folder of PNG/JPEG/TIFF frames to replay")
    loop: bool = Field(True, description="files: start again after the last file")
    bit_depth: Literal[8, 10, 12, 14, 16] | None = Field(
        None, description="files: the bits per pixel of 16-bit files (a 12-bit camera's TIFFs: 12); "
                          "unset: the smallest depth that holds the first file")
    width: int = Field(640, ge=16, le=8192)
    height: int = Field(480, ge=16, le=8192)
    fps: float = Field(30.0, gt=0.0, le=240.0)
    exposure_ms: float = Field(10.0, gt=0.0, le=10000.0)
    timeout_s: Seconds = 2.0
    latency_ms: float = Field(DEFAULT_LATENCY_MS, ge=0.0, le=MAX_LATENCY_MS, description=(
        "opencv, gstreamer, jetson: the longest the camera takes from the end of an exposure to delivering the "
        "frame; each capture drops the frames the driver holds until one delivered an exposure plus this after "
        "the call, so no frame of a stage move is used (0: the first frame read)"))

    _device_index = field_validator("device", mode="before")(_index_as_text)

    @model_validator(mode="after")
    def _source_named(self) -> CameraConfig:
        if self.kind == "files" and not self.folder:
            raise ValueError("camera.folder: required when camera.kind is 'files'")
        return self


class StageConfig(_Section):
    """The XY stage and focus (``appliance.hardware.stage``)."""

    kind: Literal["sim", "grbl", "simavr"] = "sim"
    port: str = Field("auto", description="a serial device (e.g. /dev/tppscan-stage) or 'auto' (find by usb_id)")
    usb_id: str = Field("2341:0043", description="VID:PID used when port is 'auto'")
    baud: Literal[9600, 19200, 38400, 57600, 115200, 230400, 250000] = 115200
    focus: Literal["auto", "servo", "stepper"] = "auto"
    um_per_degree: float = Field(1.0, gt=0.0, le=100.0, description="servo focus: µm per servo degree")
    home_on_start: bool = False
    z_reversed: bool = Field(False, description=(
        "the focus drive lowers the focal plane as its z grows (an upright microscope that focuses by raising its "
        "stage, a servo coupled the other way round): z is mirrored in the focus travel so that it rises, as "
        "tppscan reads it; a scan whose prints focus below their glass says to set this"))
    connect_retry_s: Seconds = Field(5.0, description="wait between attempts while the board is missing")

    _baud_number = field_validator("baud", mode="before")(_quoted_number)

    @field_validator("usb_id")
    @classmethod
    def _usb_id(cls, v: str) -> str:
        if not re.fullmatch(r"[0-9a-fA-F]{4}:[0-9a-fA-F]{4}", v):
            raise ValueError("must be VID:PID with 4 hex digits each, e.g. '2341:0043' (Arduino Uno)")
        return v


class SimConfig(_Section):
    """The virtual microscope, when camera or stage is ``sim``."""

    # 0, as `tppscan scan --sim`'s --seed: "the default virtual slide" is one slide (it was 1 here, session 48)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    set: dict[str, float | int | str | bool] = Field(
        default_factory=dict, description="simulator parameters as 'group.name: value' (as tppscan scan --sim-set)")


class OpticsConfig(_Section):
    """What the objective and camera give (used until a calibration exists)."""

    magnification: float = Field(10.0, gt=0.0, le=200.0)
    na: float = Field(0.25, gt=0.0, le=1.6)
    pixel_um: float = Field(5.6, gt=0.0, le=100.0, description="camera pixel pitch, µm")


class CalibrationConfig(_Section):
    """The pixel -> stage µm mapping (``tppscan calibrate`` writes the file)."""

    file: str | None = Field(None, description=(
        "the file 'tppscan calibrate --out FILE' writes; every scan uses it, as 'tppscan scan --calibration FILE' "
        "does (config check refuses one that is missing or bad); null: each scan calibrates at its start"))


class ScanDefaults(_Section):
    """What a scan started by a trigger does."""

    plan: str | None = Field(None, description="a scan plan YAML file (its keys: docs/scan.md, section Plans); "
                                               "null: the default plan over the whole slide")


class ModelsConfig(_Section):
    """The model files and how to run them (``appliance.vision``); unset files are the ones shipped in models/."""

    detector: str | None = Field(None, description="the detector ONNX file (labels.txt beside it); null: shipped")
    detector_backend: Literal["auto", "onnxruntime", "opencv", "jetson"] = "auto"
    detector_threshold: float | None = Field(None, gt=0.0, lt=1.0,
                                             description="detection score threshold; null: the model card's")
    classifier: str | None = Field(None, description="the classifier .tflite (labels.txt beside it); null: shipped")
    focusnet: str | None = Field(None, description="the focus net .tflite a plan's focus.strategy neural runs; "
                                                   "null: shipped (models/focusnet/focusnet.tflite)")
    threads: int = Field(2, ge=1, le=64)


class PathsConfig(_Section):
    """Where the service keeps state, results, logs and its sockets (control.sock, http.sock in run_dir)."""

    data_dir: str = "/var/lib/tppscan"
    log_dir: str = "/var/log/tppscan"
    run_dir: str = "/run/tppscan"


class GpioTrigger(_Section):
    """A push button on the Jetson header (libgpiod): short press start/pause, long press stop."""

    enabled: bool = False
    chip: str = "/dev/gpiochip0"
    line: int = Field(0, ge=0, le=1023)
    active_low: bool = True
    debounce_ms: int = Field(30, ge=0, le=1000)
    long_press_s: float = Field(2.0, gt=0.0, le=30.0)


class SerialTrigger(_Section):
    """A serial console that sends START, STOP, PAUSE, STATUS lines."""

    enabled: bool = False
    port: str = "/dev/ttyTHS1"
    baud: Literal[9600, 19200, 38400, 57600, 115200] = 115200

    _baud_number = field_validator("baud", mode="before")(_quoted_number)


class BoardButtonTrigger(_Section):
    """The stage board's button, reported by the firmware as ``[MSG:BUTTON PRESSED]``."""

    enabled: bool = True


class SocketTrigger(_Section):
    """The local control socket behind ``tppscan start|stop|pause|status``."""

    path: str | None = Field(None, description="the socket file; null: control.sock in paths.run_dir")
    group: str = "tppscan"
    mode: int = Field(0o660, ge=0, le=0o777, description="the socket's file mode, in octal (0660)")

    _octal = field_validator("mode", mode="before")(_file_mode)


class TriggersConfig(_Section):
    """What can start, pause and stop a scan."""

    gpio: GpioTrigger = GpioTrigger()
    serial: SerialTrigger = SerialTrigger()
    board_button: BoardButtonTrigger = BoardButtonTrigger()
    socket: SocketTrigger = SocketTrigger()


class LiveConfig(_Section):
    """The read-only live view, served on a Unix socket (reach it with ssh -L 8080:<socket> host)."""

    enabled: bool = True
    socket: str | None = Field(None, description="the socket file; null: http.sock in paths.run_dir")


class LoggingConfig(_Section):
    """Log lines on stdout (journald) and in a rotating file."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    file: bool = True
    max_bytes: int = Field(10_000_000, ge=10_000, le=10**10)
    backups: int = Field(5, ge=0, le=100)


class Config(_Section):
    """The whole configuration file."""

    camera: CameraConfig = CameraConfig()
    stage: StageConfig = StageConfig()
    sim: SimConfig = SimConfig()
    optics: OpticsConfig = OpticsConfig()
    calibration: CalibrationConfig = CalibrationConfig()
    scan: ScanDefaults = ScanDefaults()
    models: ModelsConfig = ModelsConfig()
    paths: PathsConfig = PathsConfig()
    triggers: TriggersConfig = TriggersConfig()
    live: LiveConfig = LiveConfig()
    logging: LoggingConfig = LoggingConfig()

    @property
    def control_socket(self) -> str:
        """The control socket's file: ``triggers.socket.path``, else ``control.sock`` in ``paths.run_dir``."""
        return self.triggers.socket.path or str(Path(self.paths.run_dir) / "control.sock")

    @property
    def live_socket(self) -> str:
        """The live view's socket file: ``live.socket``, else ``http.sock`` in ``paths.run_dir``."""
        return self.live.socket or str(Path(self.paths.run_dir) / "http.sock")


def _describe(err: Any) -> str:
    """One error of a ValidationError as 'key.path: what is allowed, got value'."""
    path = ".".join(str(p) for p in err["loc"]) or "(top level)"
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    ctx = err.get("ctx") or {}
    if err["type"] == "extra_forbidden":
        return f"{path}: unknown key (allowed keys are listed by 'tppscan config show --defaults')"
    if err["type"] in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        msg = _range_text(err["loc"]) or msg.replace("Input should be", "must be")
    elif err["type"] == "literal_error":
        msg = f"must be one of {ctx.get('expected', '?')}"
    else:
        msg = msg.replace("Input should be", "must be")
    if msg.startswith(path.split(".")[0] + "."):  # a cross-field check names its own key
        return f"{msg}, got {err.get('input')!r}"
    return f"{path}: {msg}, got {err.get('input')!r}"


_BOUND_KINDS = (("gt", True, True), ("ge", True, False), ("lt", False, True), ("le", False, False))


def _range_text(loc: tuple[int | str, ...]) -> str | None:
    """'must be between A and B' from the bounds declared on the field at ``loc``."""
    model: type[BaseModel] = Config
    info = None
    for part in loc:
        fields = model.model_fields
        if not isinstance(part, str) or part not in fields:
            return None
        info = fields[part]
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
    if info is None:
        return None
    lo = hi = None
    lo_open = hi_open = False
    for m in info.metadata:
        for attr, is_lo, is_open in _BOUND_KINDS:
            v = getattr(m, attr, None)
            if v is not None:
                if is_lo:
                    lo, lo_open = v, is_open
                else:
                    hi, hi_open = v, is_open
    if lo is None or hi is None:
        return None
    return f"must be {'above' if lo_open else 'at least'} {lo:g} and {'below' if hi_open else 'at most'} {hi:g}"


def parse_config(data: object, source: str = "config") -> Config:
    """Validate already-parsed YAML data; raises ConfigError naming the first bad key path."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, got {type(data).__name__}")
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        extra = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(f"{source}: {_describe(errors[0])}{extra}") from None
    problem = _combination_problem(cfg)
    if problem is not None:
        raise ConfigError(f"{source}: {problem}")
    return cfg


def _combination_problem(cfg: Config) -> str | None:
    """What the sections cannot do together, or a bad ``sim.set``; None when nothing.

    Checked here so that ``config check`` and ``run``'s start refuse it, not the device connection, which the
    service retries as if hardware were missing.
    """
    if cfg.stage.kind == "sim" and cfg.camera.kind != "sim":
        return (f"camera.kind {cfg.camera.kind!r} with stage.kind 'sim': a real camera cannot follow a simulated "
                "stage; use camera.kind: sim, or a real stage")
    if cfg.triggers.serial.enabled and cfg.stage.kind == "grbl" and cfg.stage.port != "auto" \
            and _same_device(cfg.triggers.serial.port, cfg.stage.port):
        return (f"triggers.serial.port {cfg.triggers.serial.port!r} is the stage's port (stage.port "
                f"{cfg.stage.port!r}): one port cannot be both; give the serial console its own port (e.g. "
                "/dev/ttyTHS1), or set triggers.serial.enabled: false")
    if cfg.sim.set:
        from appliance.sim.overrides import config_sim_sets

        try:
            config_sim_sets(cfg.sim.set)
        except ValueError as exc:
            return str(exc)
    return None


def _same_device(a: str, b: str) -> bool:
    """Whether two device paths name one device (a udev link and its target included)."""
    import os

    return a == b or os.path.realpath(a) == os.path.realpath(b)


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate a YAML config file; the defaults when ``path`` is None.

    Raises
    ------
    ConfigError
        The file is missing, unreadable, too large, not YAML, or a value is bad.
    """
    if path is None:
        return Config()
    p = Path(path)
    try:
        if p.is_dir():
            raise ConfigFileError(f"{p}: is a directory, not a config file")
        if p.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{p}: {p.stat().st_size} bytes is too large for a config file (at most 1 MiB)")
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigFileError(f"{p}: no such config file (write one with 'tppscan config show --defaults')") from None
    except OSError as exc:
        raise ConfigFileError(f"{p}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text") from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(f"{p}: not valid YAML{where}: {problem}") from None
    return parse_config(data, str(p))


def default_yaml() -> str:
    """The default configuration as commented YAML (every key, its default and what it means)."""
    lines = ["# tppscan configuration (/etc/tppscan/config.yaml). Every key is optional; shown with its default.",
             "# Check a file with: tppscan config check --config FILE"]
    _emit(Config(), 0, lines)
    return "\n".join(lines) + "\n"


def _emit(model: BaseModel, indent: int, lines: list[str]) -> None:
    pad = "  " * indent
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            if indent == 0:
                lines.append("")
            doc = (type(value).__doc__ or "").strip().splitlines()[0]
            lines.append(f"{pad}# {doc}")
            lines.append(f"{pad}{name}:")
            _emit(value, indent + 1, lines)
            continue
        if info.description:
            lines.append(f"{pad}# {info.description}")
        if name == "mode" and isinstance(value, int):
            lines.append(f"{pad}{name}: 0{value:o}  # octal")
            continue
        dumped = yaml.safe_dump({name: list(value) if isinstance(value, tuple) else value},
                                default_flow_style=True, width=1000).strip()
        lines.append(f"{pad}{dumped[1:-1] if dumped.startswith('{') else dumped}")
