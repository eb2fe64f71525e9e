"""The virtual microscope from a seed and ``SECTION.KEY=VALUE`` overrides, every value checked.

``tppscan scan --sim-set``, ``tppscan focus bench --sim-set`` and the service's ``sim.set`` all come through
here, so a parameter means the same everywhere and a bad one gets the same message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

import yaml

SIM_SECTIONS = ("slide", "optics", "sensor", "stage")


def parse_sim_sets(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Parse ``SECTION.KEY=VALUE`` items (values as YAML scalars or lists) into per-section mappings.

    Raises
    ------
    ValueError
        An item without ``=`` or a section other than ``slide``, ``optics``, ``sensor``, ``stage``.
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
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ValueError(f"--sim-set {item!r}: value {raw!r} is not a number, word or [list]") from None
        out[section][name] = tuple(value) if isinstance(value, list) else value
    return out


def _build(cls: type, section: str, values: Mapping[str, Any], **fixed: Any) -> Any:
    known = {f.name for f in fields(cls)}
    for k in values:
        if k not in known:
            raise ValueError(f"--sim-set {section}.{k}: unknown parameter; allowed: {', '.join(sorted(known))}")
    try:
        return cls(**{**fixed, **values})
    except TypeError as exc:
        raise ValueError(f"--sim-set {section}: {exc}") from None


def sim_microscope(seed: int, sets: Mapping[str, Mapping[str, Any]] | None = None) -> Any:
    """The virtual microscope for a scan: ``seed`` and the ``--sim-set`` overrides, every value checked."""
    from appliance.sim.microscope import VirtualMicroscope
    from appliance.sim.optics import OpticsParams
    from appliance.sim.sensor import SensorParams
    from appliance.sim.slide import SlideParams
    from appliance.sim.stage import SimStageParams

    sets = sets or {}
    try:
        slide = _build(SlideParams, "slide", sets.get("slide", {}))
        optics = _build(OpticsParams, "optics", sets.get("optics", {}))
        sensor = _build(SensorParams, "sensor", sets.get("sensor", {}))
        stage = _build(SimStageParams, "stage", sets.get("stage", {}))
    except ValueError as exc:
        msg = str(exc)
        raise ValueError(msg if msg.startswith("--sim-set") else f"--sim-set: {msg}") from None
    return VirtualMicroscope(seed=seed, slide=slide, optics=optics, sensor=sensor, stage=stage)
