"""Scan plans as frozen, validated data that round-trip through YAML exactly.

A plan says *where* to look (the grid), in *which order*, and *how* to focus and image each structure. The
grid part follows useq-schema's ``GridFromEdges`` (pymmcore-plus, Micro-Manager's Python users): the area is
given by its edges ``top, left, bottom, right`` in stage micrometres, ``overlap`` is a percentage of the field
of view (a number or an ``[x, y]`` pair), ``mode`` is an ``OrderMode`` name (``row_wise``, ``row_wise_snake``,
``column_wise``, ``column_wise_snake``, ``spiral``), and ``fov_width``/``fov_height`` may be left out to take
the field of view from the camera and the calibration. Where we depart from useq, and why:

- **y grows downwards** (docs/design.md §3: image and stage y point the same way), so ``top < bottom``;
  useq's y grows upwards and has ``top > bottom``.
- ``mode`` adds ``adaptive_spiral``, OpenFlexure's "smart spiral": start at the area's centre and grow ring by
  ring only around fields that held something, so a sparse sample costs few fields. useq has no data-driven
  order because its plans are fixed before acquisition.
- Grid positions always cover the whole area (useq's ``GridFromEdges`` also does) and are laid out
  symmetrically about the area's centre, so the last row or column does not hang off one side only.

>>> plan = ScanPlan.from_yaml("grid: {top: 0, left: 0, bottom: 2000, right: 3000, overlap: 10}")
>>> ScanPlan.from_yaml(plan.to_yaml()) == plan
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import yaml

from appliance.config.yamlfile import load_yaml

ORDER_MODES: tuple[str, ...] = ("row_wise_snake", "row_wise", "column_wise", "column_wise_snake", "spiral",
                                "adaptive_spiral")
FOCUS_STRATEGIES: tuple[str, ...] = ("map", "classical", "sweep", "neural")


def _number(path: str, value: object, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise ValueError(f"{path}: must be a number in [{lo:g}, {hi:g}], got {value!r}")
    v = float(value)
    if not lo <= v <= hi:
        raise ValueError(f"{path}: must be a number in [{lo:g}, {hi:g}], got {value!r}")
    return v


def _integer(path: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{path}: must be an integer in [{lo}, {hi}], got {value!r}")
    return int(value)


def _choice(path: str, value: object, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{path}: must be one of {', '.join(allowed)}; got {value!r}")
    return str(value)


def _from_mapping(cls: type, path: str, values: object) -> Any:
    """Build a plan section from a mapping; unknown keys are errors naming the key path."""
    if values is None:
        return cls()
    if not isinstance(values, Mapping):
        raise ValueError(f"{path}: must be a mapping, got {type(values).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(str(k) for k in values if k not in known)
    if unknown:
        raise ValueError(f"{path}.{unknown[0]}: unknown key; allowed: {', '.join(sorted(known))}")
    return cls(**dict(values))


def _section_errors(cls: type, path: str, values: object, first: str) -> list[str]:
    """Every error of a section that failed with ``first``: each unknown key, each key's own bad value.

    A section stops at its first error; a plan with a misspelt key and a bad value showed one per run. Each key is
    tried alone, then beside the keys that passed alone (a rule over two keys reads their values), and its error
    kept where it names that key; ``first`` is kept where it names none of them ("give all four of top, ...").
    """
    if not isinstance(values, Mapping):
        return [first]
    known = {f.name for f in fields(cls)}
    errors = [f"{path}.{k}: unknown key; allowed: {', '.join(sorted(known))}"
              for k in sorted(str(k) for k in values if k not in known)]
    given = {k: v for k, v in values.items() if k in known}
    alone = {k: _problem(cls, {k: v}) for k, v in given.items()}
    good = {k: v for k, v in given.items() if alone[k] is None}
    for key, value in given.items():
        said = alone[key] and (_problem(cls, {**good, key: value}) or alone[key])
        if said and said.startswith((f"{path}.{key}:", f"{path}.{key}[")):
            errors.append(said)
    return errors if first in errors else [*errors, first]


def _problem(cls: type, values: dict[str, Any]) -> str | None:
    """The error building a plan section of ``values`` raises, or None."""
    try:
        cls(**values)
    except (TypeError, ValueError) as exc:
        return str(exc)
    return None


def _joined(errors: list[str]) -> str:
    """One line for one error or several: ``2 errors: A | B``."""
    return errors[0] if len(errors) == 1 else f"{len(errors)} errors: " + " | ".join(errors)


def _one_line(exc: yaml.YAMLError) -> str:
    """A YAML error as one line: what is wrong and where (PyYAML's own text quotes the source over lines)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc).split())


def _put(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


@dataclass(frozen=True)
class GridPlan:
    """The scanned area and the order of its fields (useq ``GridFromEdges`` with y down; see module doc).

    Attributes
    ----------
    top, left, bottom, right : float or None
        Edges of the area in stage µm (``top < bottom``, ``left < right``), each in [-1e6, 1e6]. All four
        None means "the whole slide" (only the virtual microscope knows its slide's size).
    overlap : (float, float)
        Overlap of neighbouring fields in percent of the field of view, x and y, each in [0, 50).
    mode : str
        Field order, one of ``ORDER_MODES``; default ``row_wise_snake``.
    fov_width, fov_height : float or None
        Field of view in µm, (0, 1e5]; None takes it from the camera and the calibration.
    """

    top: float | None = None
    left: float | None = None
    bottom: float | None = None
    right: float | None = None
    overlap: tuple[float, float] = (10.0, 10.0)
    mode: str = "row_wise_snake"
    fov_width: float | None = None
    fov_height: float | None = None

    def __post_init__(self) -> None:
        edges = (self.top, self.left, self.bottom, self.right)
        if any(e is not None for e in edges):
            if any(e is None for e in edges):
                raise ValueError("grid: give all four of top, left, bottom, right, or none (the whole slide)")
            for name in ("top", "left", "bottom", "right"):
                _put(self, name, _number(f"grid.{name}", getattr(self, name), -1e6, 1e6))
            if not (self.top < self.bottom and self.left < self.right):  # type: ignore[operator]
                raise ValueError(f"grid: need top < bottom and left < right (y grows downwards), got top="
                                 f"{self.top:g} bottom={self.bottom:g} left={self.left:g} right={self.right:g}")
        ov = self.overlap
        pair = (ov, ov) if isinstance(ov, (int, float)) and not isinstance(ov, bool) else ov
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"grid.overlap: must be a percentage or an [x, y] pair, each in [0, 50), got {ov!r}")
        checked = tuple(_number(f"grid.overlap[{a}]", v, 0.0, 49.999) for a, v in zip("xy", pair, strict=True))
        _put(self, "overlap", checked)
        _put(self, "mode", _choice("grid.mode", self.mode, ORDER_MODES))
        for name in ("fov_width", "fov_height"):
            v = getattr(self, name)
            if v is not None:
                _put(self, name, _number(f"grid.{name}", v, 1e-3, 1e5))

    @property
    def whole_slide(self) -> bool:
        """True when no edges were given (the virtual slide's extent is used)."""
        return self.top is None


def _reference_heights(value: object) -> tuple[tuple[str, float], ...]:
    """``focus.reference_height_um`` (a mapping, or ``(type, um)`` pairs) as sorted, checked pairs."""
    path = "focus.reference_height_um"
    if value is None:
        return ()
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, (tuple, list)) and all(isinstance(p, (tuple, list)) and len(p) == 2 for p in value):
        items = [(p[0], p[1]) for p in value]
    else:
        raise ValueError(f"{path}: must be a mapping of structure type to um, e.g. {{pentagon: 10}}, got {value!r}")
    out: dict[str, float] = {}
    for name, v in items:
        if not isinstance(name, str) or not 1 <= len(name) <= 40 or not name.isprintable() or name.strip() != name:
            raise ValueError(f"{path}: a structure type must be a name of 1..40 printable characters, got {name!r}")
        if name in out:
            raise ValueError(f"{path}.{name}: given twice")
        if name == "debris":
            raise ValueError(f"{path}.debris: debris is not a printed structure; name structure types only")
        out[name] = _number(f"{path}.{name}", v, -250.0, 250.0)
    return tuple(sorted(out.items()))


@dataclass(frozen=True)
class FocusPlan:
    """How fields and structures are focused, and the focus stack taken of each structure.

    Attributes
    ----------
    strategy : str
        Autofocus on a structure: one of ``FOCUS_STRATEGIES`` (``map``: predict from the focus map, then the
        classical search; see ``appliance/focus``). Default ``classical``.
    field_focus : str
        How a field's z is chosen: ``map`` (the focus map's prediction; autofocus only while the map is
        unsure) or ``autofocus`` (every field). Default ``map``.
    search_range_um : float
        Half-range of the autofocus search around the predicted z, µm, (0, 100]. Default 15.
    stack_range_um : float
        The focus stack spans the structure's focus ± this, µm, (0, 100]. Default 16.
    stack_step_um : float
        Step between stack planes, µm, [0.05, 20]. Default 2 (two servo degrees on the default stage): under
        a quarter of the 10x/0.25 objective's depth of field, so a focus curve is still sampled finely enough
        for the sub-step peak fit, at half the frames of 1 µm steps.
    reference_height_um : tuple of (str, float)
        The print job's focus reference height of each structure type above the glass (half its printed
        height; a groove: minus half its depth), µm in [-250, 250], by the classifier's type name; in YAML a
        mapping, e.g. ``{pentagon: 10, microlens: 7.5}``. With it the focus map holds the glass and predicts
        each structure's focus from its type; a type it does not name is focused with the map of structure
        foci. Empty (the default): the virtual microscope takes its catalogue's heights, a real device has
        none. Stored as sorted ``(type, height)`` pairs; :attr:`reference_heights` gives the mapping.
    reference_height_sigma_um : float
        How well a print's reference height is known from those stated heights (one standard deviation), µm
        in [0, 50]. Default 0.3 (``appliance.focus.reference.PRINT_JOB_SIGMA_UM``: a print against its design).
        A resin that shrinks by more, or one design printed in several heights, wants a larger value: it widens
        the map strategy's window, keeps the map from standing alone, and weighs the map less against a
        search's reading; above 1 µm a structure's focus no longer becomes a point of the glass.
    map_trust : float
        ``strategy: map`` with a stated reference height: a structure is focused at the map of the glass's
        prediction after one frame where the stage lands within 1 µm of its focus with this probability, in
        [0.5, 1]. Default 0.9 (``appliance.focus.autofocus.MAP_TRUST_P``); 0.95 searches more structures and
        gains a point or two of accuracy (docs/autofocus.md, "A servo's reading, and trusting the map by the
        odds"); 1 searches every one.
    """

    strategy: str = "classical"
    field_focus: str = "map"
    search_range_um: float = 15.0
    stack_range_um: float = 16.0
    stack_step_um: float = 2.0
    reference_height_um: tuple[tuple[str, float], ...] = ()
    reference_height_sigma_um: float = 0.3
    map_trust: float = 0.9

    def __post_init__(self) -> None:
        _put(self, "strategy", _choice("focus.strategy", self.strategy, FOCUS_STRATEGIES))
        _put(self, "field_focus", _choice("focus.field_focus", self.field_focus, ("map", "autofocus")))
        _put(self, "search_range_um", _number("focus.search_range_um", self.search_range_um, 0.1, 100.0))
        _put(self, "stack_range_um", _number("focus.stack_range_um", self.stack_range_um, 0.1, 100.0))
        _put(self, "stack_step_um", _number("focus.stack_step_um", self.stack_step_um, 0.05, 20.0))
        if self.stack_range_um < self.stack_step_um:
            # one plane: the height maps need the focus and a plane either side (a scan with such a plan ran
            # until its first structure and failed there: "stack must be (Z, H, W) with Z >= 3")
            raise ValueError(f"focus.stack_range_um: must be at least focus.stack_step_um ({self.stack_step_um:g}) "
                             f"for a stack of 3 planes or more, got {self.stack_range_um:g}")
        if self.stack_range_um * 2 / self.stack_step_um > 400:
            raise ValueError(f"focus: a stack of {self.stack_range_um * 2 / self.stack_step_um:.0f} planes is too "
                             "many (at most 400); raise focus.stack_step_um or lower focus.stack_range_um")
        _put(self, "reference_height_um", _reference_heights(self.reference_height_um))
        _put(self, "reference_height_sigma_um",
             _number("focus.reference_height_sigma_um", self.reference_height_sigma_um, 0.0, 50.0))
        _put(self, "map_trust", _number("focus.map_trust", self.map_trust, 0.5, 1.0))

    @property
    def reference_heights(self) -> dict[str, float]:
        """``reference_height_um`` as a mapping of structure type to µm."""
        return dict(self.reference_height_um)

    @property
    def stack_offsets_um(self) -> tuple[float, ...]:
        """Stack plane offsets from the structure's focus, µm, lowest first."""
        n = int(math.floor(self.stack_range_um / self.stack_step_um + 1e-9))
        return tuple(k * self.stack_step_um for k in range(-n, n + 1))


@dataclass(frozen=True)
class ImagingPlan:
    """What the runner does with each structure it finds.

    Attributes
    ----------
    centre : bool
        Centre each structure in the frame before focusing on it (it then lies whole in view). Default true.
    approach_um : float
        Every centring move first goes this far to -x, -y of the target, then comes up to it, so the stage
        always ends moving +x, +y and backlash cancels (as ``focus_to_um`` does for z), µm, [0, 500].
    crop_margin_px : int
        Pixels kept around a structure's box in its crop, [0, 256]. Default 16.
    settle_s : float
        Extra wait after each field move before capture, s, [0, 10] (the stage's own settle time comes first).
    flat_field : bool
        Measure the light field fixed to the camera (lamp, vignetting) on the slide before the first field and
        divide every frame by it where it is uneven (``appliance/scan/flatfield.py``). Default true: where
        the light is even (within the measurement's own spread) the frames are left as they are, so the cost
        is the 16 frames of the measurement; off for a plan whose slide has too little bare glass to measure.
    auto_exposure : bool
        Before the first field, bring bare glass that is clipped or dark back to a bright-field grey by the
        camera's exposure (``appliance/scan/exposure.py``). Default true: a well-set lamp costs one frame and
        keeps its exposure; a camera on its own automatic exposure is left to it.
    largest_print_um : float
        The largest print on the slide, µm across, [10, 2000]. Default 150. Where the field is narrower, a
        piece of debris that may belong to a print larger than the field is looked at whole (``WholeLook``,
        ``appliance.scan.whole_look``): at 40x a print's every piece can be dust to the models.
    """

    centre: bool = True
    approach_um: float = 20.0
    crop_margin_px: int = 16
    settle_s: float = 0.0
    flat_field: bool = True
    auto_exposure: bool = True
    largest_print_um: float = 150.0

    def __post_init__(self) -> None:
        for key in ("centre", "flat_field", "auto_exposure"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"imaging.{key}: must be true or false, got {getattr(self, key)!r}")
        _put(self, "approach_um", _number("imaging.approach_um", self.approach_um, 0.0, 500.0))
        _put(self, "crop_margin_px", _integer("imaging.crop_margin_px", self.crop_margin_px, 0, 256))
        _put(self, "settle_s", _number("imaging.settle_s", self.settle_s, 0.0, 10.0))
        _put(self, "largest_print_um", _number("imaging.largest_print_um", self.largest_print_um, 10.0, 2000.0))


@dataclass(frozen=True)
class ReconstructPlan:
    """How each structure's height map is measured (``appliance/results/reconstruct.py``).

    Attributes
    ----------
    method : str
        ``phase`` (default): the measured model: peak height from the focus offset over the glass, a lens's
        cap from the transport-of-intensity phase; ``focus``: shape from focus.
    wavelength_um : float
        Mean illumination wavelength, µm, [0.3, 1.2]. Default 0.55 (a green filter).
    index_delta : float
        Refractive-index step of the cured resin against air, [0.01, 1.5]. Default 0.5 (IP-Dip and similar).
    camera_gamma : float
        The camera's encoding gamma, [0.2, 5]. Default 2.2 (1 for a linear camera).
    tie_dz_um : float
        Distance of the TIE's planes from focus, µm, [0.1, 20]. Default 2.
    """

    method: str = "phase"
    wavelength_um: float = 0.55
    index_delta: float = 0.5
    camera_gamma: float = 2.2
    tie_dz_um: float = 2.0

    def __post_init__(self) -> None:
        _put(self, "method", _choice("reconstruct.method", self.method, ("phase", "focus")))
        for name, lo, hi in (("wavelength_um", 0.3, 1.2), ("index_delta", 0.01, 1.5), ("camera_gamma", 0.2, 5.0),
                             ("tie_dz_um", 0.1, 20.0)):
            _put(self, name, _number(f"reconstruct.{name}", getattr(self, name), lo, hi))


@dataclass(frozen=True)
class FaultsPlan:
    """What the runner does when a field cannot be imaged, and how much disk it keeps free.

    Attributes
    ----------
    capture_retries : int
        Captures tried again after a camera error or a black or saturated frame, [0, 10]. Default 2.
    retry_wait_s : float
        Wait before each retry (a camera that dropped off the bus needs a moment to come back), s, [0, 60].
    on_field_error : str
        ``continue`` (record the error for that field and go on; the scan ends ``failed`` and a rerun
        retries the failed fields) or ``stop`` (end the scan at the first failed field). Default ``continue``.
    max_failed_in_a_row : int
        With ``continue``, stop after this many failed fields in a row (the camera is gone), [1, 10000].
    min_free_mb : float
        Free space needed on the scan folder's and the database's disks before each field, MB, [0, 1e6]:
        below it the scan stops with an error naming the folder instead of failing mid-write. Default 200.
    on_stage_error : str
        What a stage fault in the middle of a field does (a lost port the driver could not get back, a board
        that reset, an alarm, a reply that never came, a garbled line): ``recover`` (bring the stage back:
        reopen it, re-home it where its position is lost, then redo the field from its move) or ``stop``
        (end the scan there; the committed fields are kept and a rerun resumes). Default ``recover``.
    stage_recoveries : int
        With ``recover``, the faults one field may meet (recoveries that fail included) before the scan
        stops anyway, [1, 100]. Default 3.
    stage_retry_wait_s : float
        Wait before each attempt to bring the stage back (a USB port re-enumerates, a board boots), s,
        [0, 600]. Default 2.
    realign_every_fields : int
        Every so many fields, go back to the scan's first recorded print, find it, and where the slide moved under
        the drive (steps lost under load, a slide creeping in its clips) go on in the scan's first coordinates
        (``appliance/scan/realign.py``); one move and one to five frames each time. 0 (the default): only when a
        scan resumes and after a recovery that homed the stage. [0, 1000000].
    """

    capture_retries: int = 2
    retry_wait_s: float = 0.5
    on_field_error: str = "continue"
    max_failed_in_a_row: int = 3
    min_free_mb: float = 200.0
    on_stage_error: str = "recover"
    stage_recoveries: int = 3
    stage_retry_wait_s: float = 2.0
    realign_every_fields: int = 0

    def __post_init__(self) -> None:
        _put(self, "capture_retries", _integer("faults.capture_retries", self.capture_retries, 0, 10))
        _put(self, "retry_wait_s", _number("faults.retry_wait_s", self.retry_wait_s, 0.0, 60.0))
        _put(self, "on_field_error", _choice("faults.on_field_error", self.on_field_error, ("continue", "stop")))
        _put(self, "max_failed_in_a_row", _integer("faults.max_failed_in_a_row", self.max_failed_in_a_row, 1, 10000))
        _put(self, "min_free_mb", _number("faults.min_free_mb", self.min_free_mb, 0.0, 1e6))
        _put(self, "on_stage_error", _choice("faults.on_stage_error", self.on_stage_error, ("recover", "stop")))
        _put(self, "stage_recoveries", _integer("faults.stage_recoveries", self.stage_recoveries, 1, 100))
        _put(self, "stage_retry_wait_s", _number("faults.stage_retry_wait_s", self.stage_retry_wait_s, 0.0, 600.0))
        _put(self, "realign_every_fields", _integer("faults.realign_every_fields", self.realign_every_fields, 0,
                                                    1_000_000))


@dataclass(frozen=True)
class ScanPlan:
    """A whole scan: grid, focus, imaging and reconstruct sections (each validated; unknown keys are errors).

    Attributes
    ----------
    name : str
        A label for the results (1..80 printable characters). Default ``scan``.
    grid : GridPlan
    focus : FocusPlan
    imaging : ImagingPlan
    reconstruct : ReconstructPlan
    faults : FaultsPlan
    """

    name: str = "scan"
    grid: GridPlan = field(default_factory=GridPlan)
    focus: FocusPlan = field(default_factory=FocusPlan)
    imaging: ImagingPlan = field(default_factory=ImagingPlan)
    reconstruct: ReconstructPlan = field(default_factory=ReconstructPlan)
    faults: FaultsPlan = field(default_factory=FaultsPlan)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not 1 <= len(self.name) <= 80 or not self.name.isprintable():
            raise ValueError(f"name: must be 1..80 printable characters, got {self.name!r}")
        for section, cls in (("grid", GridPlan), ("focus", FocusPlan), ("imaging", ImagingPlan),
                             ("reconstruct", ReconstructPlan), ("faults", FaultsPlan)):
            if not isinstance(getattr(self, section), cls):
                raise ValueError(f"{section}: must be a {cls.__name__}, got {type(getattr(self, section)).__name__}")

    @classmethod
    def from_mapping(cls, values: object) -> ScanPlan:
        """Build from a parsed YAML mapping; every error names the key path, the value and what is allowed."""
        if values is None:
            values = {}
        if not isinstance(values, Mapping):
            raise ValueError(f"plan: must be a mapping, got {type(values).__name__}")
        allowed = {"name", "grid", "focus", "imaging", "reconstruct", "faults"}
        errors = [f"{k}: unknown key; allowed: {', '.join(sorted(allowed))}"
                  for k in sorted(str(k) for k in values if k not in allowed)]
        try:
            cls(name=values.get("name", "scan"))
        except ValueError as exc:
            errors.append(str(exc))
        sections: dict[str, Any] = {}
        for name, kind in _SECTIONS:  # every section read, so that one run names every error of the file
            try:
                sections[name] = _from_mapping(kind, name, values.get(name))
            except ValueError as exc:
                errors.extend(_section_errors(kind, name, values.get(name), str(exc)))
        if errors:
            raise ValueError(_joined(errors))
        return cls(name=values.get("name", "scan"), **sections)

    @classmethod
    def from_yaml(cls, text: str) -> ScanPlan:
        """Parse YAML text (see :meth:`from_mapping`)."""
        try:
            data = load_yaml(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"plan: not valid YAML: {_one_line(exc)}") from None
        return cls.from_mapping(data)

    def to_mapping(self) -> dict[str, Any]:
        """Plain data (tuples as lists), the inverse of :meth:`from_mapping`."""
        data = asdict(self)
        data["grid"]["overlap"] = list(self.grid.overlap)
        data["focus"]["reference_height_um"] = self.focus.reference_heights
        return data

    def to_yaml(self) -> str:
        """YAML text that :meth:`from_yaml` turns back into an equal plan."""
        return yaml.safe_dump(self.to_mapping(), sort_keys=False)


_SECTIONS: tuple[tuple[str, type], ...] = (("grid", GridPlan), ("focus", FocusPlan), ("imaging", ImagingPlan),
                                           ("reconstruct", ReconstructPlan), ("faults", FaultsPlan))
