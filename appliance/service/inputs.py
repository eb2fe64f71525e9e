"""The files the configuration names (scan plan, calibration, model files), read and checked before any scan.

``tppscan config check`` and ``tppscan run``'s start both come through :func:`check_inputs`, so a file that the
service cannot use is refused by the check as it would be by the service, with the same message naming the key::

    /etc/tppscan/config.yaml: scan.plan /srv/plan.yaml: no such file

The model files are loaded here as a scan loads them (:func:`load_models`, well under a second each), so a
truncated or wrong-shaped model, or labels that do not match it, is refused by the check too, naming the key and
the file; the service's start loads them through the same function and keeps them for its scans.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appliance.config.schema import Config, ConfigError


def _readable_file(key: str, path: Path) -> None:
    """Raise naming ``key`` unless ``path`` is an existing regular file."""
    if path.is_dir():
        raise ConfigError(f"{key} {path}: is a directory, not a file")
    if not path.is_file():
        raise ConfigError(f"{key} {path}: no such file")


def load_plan(cfg: Config) -> Any:
    """The scan plan of ``scan.plan`` (the default plan when unset)."""
    from appliance.scan.plan import ScanPlan

    if not cfg.scan.plan:
        return ScanPlan()
    path = Path(cfg.scan.plan)
    _readable_file("scan.plan", path)
    try:
        return ScanPlan.from_yaml(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"scan.plan {path}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:  # a bad value in the plan (the message names its key), or not UTF-8
        raise ConfigError(f"scan.plan {path}: {exc}") from None


def load_calibration(cfg: Config) -> Any:
    """The calibration of ``calibration.file``, read as ``tppscan scan --calibration FILE`` reads it.

    None when unset: each scan then measures its own at the start, as ``tppscan scan`` without ``--calibration``.
    """
    from appliance.scan.calibration import Calibration

    if not cfg.calibration.file:
        return None
    path = Path(cfg.calibration.file)
    if not path.exists():
        raise ConfigError(f"calibration.file {path}: no such file ({_calibrate_hint(path)}, or set "
                          "calibration.file: null to calibrate at the start of each scan)")
    _readable_file("calibration.file", path)
    try:
        cal = Calibration.load(path)
    except UnicodeDecodeError:
        raise ConfigError(f"calibration.file {path}: not UTF-8 text, so not a calibration 'tppscan calibrate' "
                          "wrote") from None
    except OSError as exc:
        raise ConfigError(f"calibration.file {path}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:  # not YAML, not UTF-8, or a bad matrix (the message names the calibration key)
        raise ConfigError(f"calibration.file {path}: {exc}") from None
    _check_frame_size(cfg, path, tuple(cal.size_px))
    return cal


def _calibrate_hint(path: Path) -> str:
    """How to write the calibration ``path`` names: ``tppscan calibrate`` writes YAML, to a .yaml or .yml name only.

    Configs before session 47 named ``calibration.json``; ``calibrate --out X.json`` refuses that name, so the
    hint names the .yaml beside it and says to point the key there.
    """
    if path.suffix in (".yaml", ".yml"):
        return f"write one with 'tppscan calibrate --out {path}'"
    yaml_path = path.with_suffix(".yaml")
    return (f"'tppscan calibrate' writes YAML: run 'tppscan calibrate --out {yaml_path}' and set calibration.file: "
            f"{yaml_path}")


def _check_frame_size(cfg: Config, path: Path, size_px: tuple[int, ...]) -> None:
    """A calibration made at another frame size than the configured camera's would fail every scan.

    Either orientation passes here (a sensor turned on its port gives its frames upright or on their side); each
    scan checks the frames the camera really gives (``Calibration.check_frame_size``).
    """
    w, h = cfg.camera.width, cfg.camera.height
    if size_px not in ((w, h), (h, w)):
        raise ConfigError(f"calibration.file {path}: made at a frame size of {size_px[0]} x {size_px[1]} px, but "
                          f"camera.width x camera.height is {w} x {h}; calibrate again with this camera "
                          f"({_calibrate_hint(path)}), or set calibration.file: null")


def check_plan_area(cfg: Config, plan: Any) -> None:
    """A real camera's plan gives its area (grid top, left, bottom, right): a real slide's extent is not known.

    ``tppscan scan --check`` refused it, but ``config check`` said ok and the service started, and its first
    START failed with ``plan grid: give top, left, bottom, right`` (session 49).
    """
    if cfg.camera.kind != "sim" and plan.grid.whole_slide:
        where = f"the plan {cfg.scan.plan}" if cfg.scan.plan else "the default plan (no scan.plan)"
        raise ConfigError(f"scan.plan: a real camera (camera.kind {cfg.camera.kind}) needs a plan with grid top, "
                          f"left, bottom and right (the area to scan, in the stage's um); {where} has none: a real "
                          "slide's extent is not known")


def check_model_files(cfg: Config) -> None:
    """The configured model files exist (the shipped ones when unset): a cheap first look, before any loads."""
    for key, name in (("models.detector", cfg.models.detector), ("models.classifier", cfg.models.classifier),
                      ("models.focusnet", cfg.models.focusnet)):
        if name:
            _readable_file(key, Path(name))


def load_models(cfg: Config, strategy: str) -> tuple[Any, Any, Any]:
    """(detector, classifier, focus net or None), loaded as a scan loads them; ConfigError naming the key and file.

    The focus net only for the focus strategy ``neural`` (the only one that runs it). A file that exists but is
    truncated, of the wrong shape, or whose labels do not match passed the check before (session 50), and the
    scan then failed after the stage had homed.
    """
    from appliance.scan.adapters import configured_focus_net, configured_models

    check_model_files(cfg)
    try:
        detector, classifier = configured_models(cfg.models)
        net = configured_focus_net(cfg.models) if strategy == "neural" else None
    except OSError as exc:  # the loaders' ModelFileError / ModelError, naming the key and the file
        raise ConfigError(str(exc)) from None
    return detector, classifier, net


def check_folders(cfg: Config, *, as_service: bool = True) -> list[str]:
    """The service's folders are absolute, and folders or makeable (``ConfigError`` naming the key).

    A file in a folder's place failed every scan's connection as if the hardware were missing, retried every 5 s;
    so did a read-only folder. A folder on a read-only file system is refused for everyone; one this user cannot
    write is refused ``as_service`` (``tppscan run``) and returned as a warning otherwise (``config check`` may
    run as another user than the service's).
    """
    warnings: list[str] = []
    for key, name in (("paths.data_dir", cfg.paths.data_dir), ("paths.log_dir", cfg.paths.log_dir),
                      ("paths.run_dir", cfg.paths.run_dir)):
        path = Path(name)
        if not path.is_absolute():  # under systemd the working folder is /: a relative one lands somewhere else
            raise ConfigError(f"{key} {name}: must be an absolute path")
        for p in (path, *path.parents):
            if p.exists() and not p.is_dir():
                raise ConfigError(f"{key} {name}: {p} is a file, not a folder")
        if key == "paths.log_dir" and not cfg.logging.file:
            continue
        problem = _unwritable(key, path)
        if problem is not None:
            read_only, text = problem
            if read_only or as_service:
                raise ConfigError(text)
            warnings.append(text)
    return warnings


def _unwritable(key: str, path: Path) -> tuple[bool, str] | None:
    """Why the folder, or the nearest one above it that exists (where it would be made), cannot be written.

    ``(read_only_file_system, message)``, or None where it can.
    """
    import os

    where = _nearest_existing(path)
    try:
        read_only = bool(os.statvfs(where).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if not read_only and os.access(where, os.W_OK | os.X_OK):
        return None
    made = "" if where == path else f" (it would be made in {where})"
    why = "is on a read-only file system" if read_only else "is not writable by this user"
    return read_only, (f"{key} {path}: {where} {why}{made}: make it writable by the service's user (tppscan); "
                       "under systemd a folder outside /var/lib/tppscan, /var/log/tppscan and /run/tppscan is "
                       f"read-only (ProtectSystem=strict): add ReadWritePaths={path} to the unit (systemctl edit "
                       "tppscan), or use the default folders")


def check_inputs(cfg: Config, source: str, *, as_service: bool = True, models: bool = True) -> list[str]:
    """Every file the config names, as the service will read it; ConfigError naming ``source`` and the key.

    Returns the warnings (a folder this user cannot write, where not ``as_service``). ``models``: load the model
    files (:func:`load_models`); ``tppscan run`` leaves that to the service's start, which loads them with the
    same loader a moment later and keeps them.
    """
    try:
        warnings = check_folders(cfg, as_service=as_service)
        plan = load_plan(cfg)
        check_plan_area(cfg, plan)
        load_calibration(cfg)
        if models:
            load_models(cfg, plan.focus.strategy)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return warnings


def free_space_problem(data_dir: Path, need_mb: float) -> str | None:
    """``only 3.1 MB free at DIR, below the plan's faults.min_free_mb (200 MB): ...``; None when there is enough."""
    import shutil

    where = _nearest_existing(data_dir)
    try:
        free_mb = shutil.disk_usage(where).free / 1e6
    except OSError as exc:
        return f"cannot read the free space at {where}: {exc.strerror or exc}"
    if free_mb < need_mb:
        from appliance.scan.runner import low_space_message

        return low_space_message(free_mb, where, need_mb)  # the runner's words before each field
    return None


def _nearest_existing(path: Path) -> Path:
    """``path``, or the nearest folder above it that exists (where it would be made)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
