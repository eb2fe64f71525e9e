"""The virtual microscope from a seed and ``SECTION.KEY=VALUE`` overrides, every value checked.

``tppscan scan --sim-set``, ``tppscan focus bench --sim-set`` and the service's ``sim.set`` all come through
here, so a parameter means the same everywhere and a bad one gets the same message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

import yaml

from appliance.config.yamlfile import load_yaml

SIM_SECTIONS = ("slide", "optics", "sensor", "stage", "camera")
OPTION = "--sim-set "  # what a message names: the command-line option ...
CONFIG_KEY = "sim.set."  # ... or the service config's key


def parse_sim_sets(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Parse ``SECTION.KEY=VALUE`` items (values as YAML scalars or lists) into per-section mappings.

    Raises
    ------
    ValueError
        An item without ``=`` or a section other than ``slide``, ``optics``, ``sensor``, ``stage``, ``camera``.
    """
    out: dict[str, dict[str, Any]] = {s: {} for s in SIM_SECTIONS}
    for item in items:
        key, sep, raw = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not name:
            raise ValueError(f"--sim-set {item!r}: must look like SECTION.KEY=VALUE, e.g. slide.debris_per_mm2=40")
        if section not in SIM_SECTIONS:
            raise ValueError(f"--sim-set {item!r}: section must be one of {', '.join(SIM_SECTIONS)}, got {section!r}")
        try:
            value = load_yaml(raw)  # ``4e3`` a number, as in plans and the config
        except yaml.YAMLError:
            raise ValueError(f"--sim-set {item!r}: value {raw!r} is not a number, word or [list]") from None
        out[section][name] = _param(value)
    return out


def _param(value: Any) -> Any:
    """A parameter's value as the sim's dataclasses take it: a list as a tuple."""
    return tuple(value) if isinstance(value, list) else value


def _build(cls: type, section: str, values: Mapping[str, Any], extra: tuple[str, ...] = (),
           key: str = OPTION) -> Any:
    known = {f.name for f in fields(cls)}
    for k in values:
        if k not in known:
            allowed = ", ".join(sorted(known | set(extra)))
            raise ValueError(f"{key}{section}.{k}: unknown parameter; allowed: {allowed}")
    try:
        return cls(**values)
    except TypeError as exc:
        raise ValueError(f"{key}{section}: {exc}") from None
    except ValueError as exc:  # the class names the parameter first: say which section it is in
        msg = str(exc)
        first = msg.split(" ", 1)[0].split("[", 1)[0]
        raise ValueError(f"{key}{section}.{msg}" if first in known else f"{key}{section}: {msg}") from None


def _chain(values: Mapping[str, Any], key: str = OPTION) -> Any:
    """The camera's capture chain: ``camera.preset`` (a name of ``capture.PRESETS``) with the other keys changed."""
    from appliance.sim.capture import PRESETS, CameraChainParams, preset

    values = dict(values)
    name = values.pop("preset", "default")
    if name not in PRESETS:
        raise ValueError(f"{key}camera.preset: must be one of {', '.join(sorted(PRESETS))}, got {name!r}")
    base = _build(CameraChainParams, "camera", values, extra=("preset",), key=key)  # unknown keys, bad values named
    return preset(str(name), **{k: getattr(base, k) for k in values})


def sim_params(sets: Mapping[str, Mapping[str, Any]] | None = None, key: str = OPTION) -> tuple[Any, ...]:
    """The virtual microscope's parameters (slide, optics, sensor, stage, capture chain), every value checked.

    ``key`` begins each message: ``"--sim-set "`` on the command line, ``"sim.set."`` for the service's config,
    so the message names what the user wrote.
    """
    from appliance.sim.optics import OpticsParams
    from appliance.sim.sensor import SensorParams
    from appliance.sim.slide import SlideParams
    from appliance.sim.stage import SimStageParams

    sets = sets or {}
    try:
        return (_build(SlideParams, "slide", sets.get("slide", {}), key=key),
                _build(OpticsParams, "optics", sets.get("optics", {}), key=key),
                _build(SensorParams, "sensor", sets.get("sensor", {}), key=key),
                _build(SimStageParams, "stage", sets.get("stage", {}), key=key),
                _chain(sets.get("camera", {}), key=key))
    except ValueError as exc:
        msg = str(exc)
        raise ValueError(msg if msg.startswith(key.strip()) else f"{key.strip().rstrip('.')}: {msg}") from None


def config_sim_sets(values: Mapping[str, Any], key: str = CONFIG_KEY) -> dict[str, dict[str, Any]]:
    """The config's ``sim.set`` (``{"slide.debris_per_mm2": 40}``) as per-section mappings, every value checked.

    The same parameters and checks as ``--sim-set``, with messages naming the config key (``sim.set.slide.x``).

    Raises
    ------
    ValueError
        A key not of the form ``SECTION.KEY``, an unknown section or parameter, or a bad value.
    """
    out: dict[str, dict[str, Any]] = {s: {} for s in SIM_SECTIONS}
    for name, value in values.items():
        section, dot, param = str(name).partition(".")
        if not dot or not param:
            raise ValueError(f"{key}{name}: must be SECTION.KEY, e.g. slide.debris_per_mm2: 40")
        if section not in SIM_SECTIONS:
            raise ValueError(f"{key}{name}: section must be one of {', '.join(SIM_SECTIONS)}, got {section!r}")
        out[section][param] = _param(value)  # the config's loader read ``4e3`` as a number
    sim_params(out, key)
    return out


def sim_microscope(seed: int, sets: Mapping[str, Mapping[str, Any]] | None = None, key: str = OPTION) -> Any:
    """The virtual microscope for a scan: ``seed`` and the ``--sim-set`` overrides, every value checked.

    Sections: ``slide`` (:class:`SlideParams`), ``optics`` (:class:`OpticsParams`), ``sensor``
    (:class:`SensorParams`), ``stage`` (:class:`SimStageParams`) and ``camera``, the capture chain
    (:class:`CameraChainParams`; ``camera.preset=cheap_colour`` starts from a preset of ``capture.PRESETS``).
    ``key`` begins each message, as in :func:`sim_params`.
    """
    from appliance.sim.microscope import VirtualMicroscope

    slide, optics, sensor, stage, chain = sim_params(sets, key)
    return VirtualMicroscope(seed=seed, slide=slide, optics=optics, sensor=sensor, stage=stage, chain=chain)
