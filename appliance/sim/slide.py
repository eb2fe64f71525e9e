"""The virtual slide: TPP structures and debris on a tilted, slightly bowed glass plane, with ground truth.

Coordinates are slide micrometres, identical to stage x/y: the slide spans ``0 <= x <= width_um``,
``0 <= y <= height_um``. Heights and focus are stage z micrometres: :meth:`Slide.surface_z_um` is the stage z
at which the glass surface at ``(x, y)`` is in focus, and a point ``h`` µm above the surface is in focus at
``surface_z_um(x, y) + h``.

Surface model: ``z = surface_z0_um + tilt_x_um_per_mm * (x - cx) / 1000 + tilt_y_um_per_mm * (y - cy) / 1000
+ bow_um * r^2 / r_corner^2``, with ``(cx, cy)`` the slide centre and ``r_corner`` the centre-to-corner
distance: a positive bow means the centre sags ``bow_um`` below the corners.

True focus of an object (``SlideObject.focus_z_um``) is defined as the surface z at its centre plus half its
height extreme (half the maximum height; for a groove, half its depth below the surface): the mid-plane of
the object, which is where a through-focus metric of a thick phase object peaks most symmetrically.

Placement: structures keep ``STRUCTURE_MARGIN_UM`` between their bounding boxes and ``EDGE_MARGIN_UM`` from
the slide's edges. Debris never overlaps a structure's bounding box (grown by ``DEBRIS_CLEARANCE_UM``) but may
overlap other debris (dust on a fibre, as on real glass); a piece of debris that finds no free place in
``_DEBRIS_TRIES`` draws is dropped and counted in ``truth()["debris_dropped"]``.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, overload

import numpy as np

from appliance.sim import debris as _debris
from appliance.sim._checks import check_number
from appliance.sim.polymer import polymer_loss
from appliance.sim.structures import GENERATORS, STRUCTURE_PITCH_UM, Shape, crop_shape

STRUCTURE_TYPES: tuple[str, ...] = ("woodpile", "microlens", "scaffold", "pentagon", "split_ring")
DEBRIS_TYPES: tuple[str, ...] = ("dust", "fibre", "bubble", "scratch")

STRUCTURE_MARGIN_UM = 30.0
EDGE_MARGIN_UM = 100.0
DEBRIS_CLEARANCE_UM = 5.0
_STRUCTURE_TRIES = 500
_DEBRIS_TRIES = 30
_GRID_CELL_UM = 250.0


@dataclass(frozen=True)
class SlideParams:
    """Parameters of a generated slide; validated on construction.

    Attributes
    ----------
    width_um, height_um : float
        Slide area, µm, 1000..100000.
    n_structures : int
        Number of TPP structures, 0..5000.
    type_mix : tuple of 5 float or None
        Relative weights of ``STRUCTURE_TYPES`` (>= 0, not all 0); None for an even mix. Counts per type are
        apportioned from the weights (largest remainder), so an even mix of 20 gives 4 of each.
    debris_per_mm2 : float
        Mean debris count per square millimetre, 0..200.
    tilt_x_um_per_mm, tilt_y_um_per_mm : float
        Slope of the slide plane, µm of z per mm of x / y, -50..50.
    bow_um : float
        Centre-to-corner sag, µm, -50..50 (positive: the centre sits lower than the corners).
    surface_z0_um : float
        Stage z of the surface at the slide centre, µm, -10000..10000.
    index_delta : float
        Refractive-index step of the cured polymer against air, 0.01..1.5.
    top_roughness_um : float
        RMS height of the unresolved hatching and voxel ripple on a printed top, µm, 0..0.5. Scales
        each structure type's share (``polymer.TYPE_ROUGHNESS``); the light it scatters out of the pupil is what
        makes a real print dark all over (``docs/simulator.md``). Default 0.22.
    contour_um : float
        Width of the contour-traced (smooth) band inside the outline of each structure's top, µm, 0..10: the
        contour lines of the last slices or, for a large print written as a shell, the shell's wall. Default 5.
    contour_roughness : float
        Fraction of the top's roughness left in that band and on the walls, 0..1. Default 0.1.
    internal_scatter_per_um : float
        Intensity lost to scatter by the polymer's internal inhomogeneity per µm of path at 0.55 µm (grows as
        λ⁻²), 1/µm, 0..0.2. Default 0.01.
    initiator_absorption_per_um : float
        Intensity absorbed by residual photo-initiator per µm of path at 0.45 µm (falls as λ⁻⁶), 1/µm, 0..0.5.
        Default 0.01.
    """

    width_um: float = 10000.0
    height_um: float = 10000.0
    n_structures: int = 20
    type_mix: tuple[float, ...] | None = None
    debris_per_mm2: float = 20.0
    tilt_x_um_per_mm: float = 2.0
    tilt_y_um_per_mm: float = -1.5
    bow_um: float = 1.5
    surface_z0_um: float = 90.0
    index_delta: float = 0.5
    top_roughness_um: float = 0.22
    contour_um: float = 5.0
    contour_roughness: float = 0.1
    internal_scatter_per_um: float = 0.01
    initiator_absorption_per_um: float = 0.01

    def __post_init__(self) -> None:
        def put(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        for name, lo, hi in (("width_um", 1000.0, 100000.0), ("height_um", 1000.0, 100000.0),
                             ("debris_per_mm2", 0.0, 200.0), ("tilt_x_um_per_mm", -50.0, 50.0),
                             ("tilt_y_um_per_mm", -50.0, 50.0), ("bow_um", -50.0, 50.0),
                             ("surface_z0_um", -10000.0, 10000.0), ("index_delta", 0.01, 1.5),
                             ("top_roughness_um", 0.0, 0.5), ("contour_um", 0.0, 10.0), ("contour_roughness", 0.0, 1.0),
                             ("internal_scatter_per_um", 0.0, 0.2), ("initiator_absorption_per_um", 0.0, 0.5)):
            put(name, check_number(name, getattr(self, name), lo, hi))
        n = self.n_structures
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n <= 5000:
            raise ValueError(f"n_structures must be an integer in [0, 5000], got {n!r}")
        put("n_structures", int(n))
        put("type_mix", self._checked_mix())

    def _checked_mix(self) -> tuple[float, ...] | None:
        mix = self.type_mix
        if mix is None:
            return None
        if isinstance(mix, (str, bytes)) or not isinstance(mix, (tuple, list, np.ndarray)) \
                or len(mix) != len(STRUCTURE_TYPES):
            raise ValueError(f"type_mix must be {len(STRUCTURE_TYPES)} weights for {STRUCTURE_TYPES} "
                             f"or None, got {mix!r}")
        out = tuple(check_number(f"type_mix[{t}]", w, 0.0, 1e9) for t, w in zip(STRUCTURE_TYPES, mix, strict=True))
        if sum(out) <= 0:
            raise ValueError(f"type_mix must have at least one weight > 0, got {mix!r}")
        return out


Recipe = Callable[[], Shape]
# Maps a slide keeps at once (bytes); a 10 x 10 mm default slide needs about 50 MB, so it never regenerates.
MAP_BUDGET_BYTES = 256 * 2**20


class _MapStore:
    """Height and absorption maps of a slide's objects, kept under a byte budget (least recently used out).

    Each object registers a recipe that rebuilds its (cropped, read-only) shape from the object's own seed;
    shared maps (dust templates) are pinned and never counted or evicted.
    """

    def __init__(self, budget_bytes: int = MAP_BUDGET_BYTES) -> None:
        self.budget = budget_bytes
        self._recipes: dict[int, Recipe] = {}
        self._pinned: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._lru: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.regenerated = 0  # how many maps were rebuilt after eviction (for tests and tuning)

    def add(self, ident: int, recipe: Recipe, shape: Shape, pinned: bool) -> None:
        maps = (shape.height_um, shape.absorption)
        with self._lock:
            self._recipes[ident] = recipe
            if pinned:
                self._pinned[ident] = maps
            else:
                self._put(ident, maps)

    def get(self, ident: int) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            if ident in self._pinned:
                return self._pinned[ident]
            maps = self._lru.get(ident)
            if maps is not None:
                self._lru.move_to_end(ident)
                return maps
            shape = self._recipes[ident]()
            self.regenerated += 1
            maps = (shape.height_um, shape.absorption)
            self._put(ident, maps)
            return maps

    def set_budget(self, budget_bytes: int) -> None:
        """Change the byte budget, evicting least recently used maps at once if now over it."""
        with self._lock:
            self.budget = budget_bytes
            self._trim()

    def _put(self, ident: int, maps: tuple[np.ndarray, np.ndarray]) -> None:
        self._lru[ident] = maps
        self._bytes += maps[0].nbytes + maps[1].nbytes
        self._trim()

    def _trim(self) -> None:
        while self._bytes > self.budget and len(self._lru) > 1:
            _, old = self._lru.popitem(last=False)
            self._bytes -= old[0].nbytes + old[1].nbytes

    @property
    def bytes_held(self) -> int:
        """Bytes of unpinned maps held now."""
        return self._bytes


@dataclass(frozen=True, eq=False)
class SlideObject:
    """One structure or piece of debris placed on the slide.

    Maps are centred on ``center_um``: sample ``[i, j]`` of an ``(h, w)`` map lies at slide
    ``x = cx + (j - (w - 1) / 2) * pitch_um``, ``y = cy + (i - (h - 1) / 2) * pitch_um``. The maps are
    cropped to the object's nonzero region, so ``footprint_um == (w * pitch_um, h * pitch_um)``. Arrays are
    read-only (small dust specks share theirs).

    Attributes
    ----------
    id : int
        Unique on the slide; structures first (0..n_structures-1), then debris.
    kind : str
        ``"structure"`` or ``"debris"``.
    cls : str
        One of ``STRUCTURE_TYPES`` or ``DEBRIS_TYPES``.
    center_um : (float, float)
        Slide x, y of the map centre, µm.
    pitch_um : float
        Sample spacing of the maps, µm.
    height_um : (h, w) ndarray of float32
        Material height above the slide surface, µm (negative for a groove), 0 outside the object: the
        top surface for solid shapes, the summed thickness of the rod layers for a woodpile (its layers
        hold air between them, so this is what sets the optical path).
    absorption : (h, w) ndarray of float32
        Amplitude absorption coefficient per µm of material (>= 0).
    index_delta : float
        Refractive-index step of the material against its surroundings.
    rotation_deg : float
        Rotation of the object's own frame, degrees counter-clockwise.
    max_height_um : float
        Largest absolute height, µm (a groove's depth); for a woodpile, the geometric top of its stack,
        which may exceed ``height_um.max()``.
    focus_z_um : float
        True focus, stage z µm: surface z at the centre + half the signed height extreme (half
        ``max_height_um``, or minus half a groove's depth).
    footprint_um : (float, float)
        Axis-aligned width and height of the map, µm.
    loss_exponent : float
        Wavelength exponent of the absorption map: at wavelength λ the optics scale it by ``(0.55/λ)^loss_exponent``
        (0 for grey absorbers such as dust; about 2 for a print's scatter loss, see :mod:`appliance.sim.polymer`).
    store : _MapStore
        Where the maps live (internal): a slide keeps its maps under a memory budget and regenerates an
        evicted one, byte-identical, from its own seed, so a full 75 x 25 mm slide fits in memory.
    attrs : dict
        Generator parameters (sizes, defects, collapse), JSON-ready.
    """

    id: int
    kind: str
    cls: str
    center_um: tuple[float, float]
    pitch_um: float
    index_delta: float
    rotation_deg: float
    max_height_um: float
    focus_z_um: float
    footprint_um: tuple[float, float]
    store: _MapStore = field(repr=False)
    attrs: dict[str, Any] = field(default_factory=dict)
    loss_exponent: float = 0.0

    @property
    def height_um(self) -> np.ndarray:
        """(h, w) float32 height map (see the class doc); regenerated on demand if evicted."""
        return self.store.get(self.id)[0]

    @property
    def absorption(self) -> np.ndarray:
        """(h, w) float32 absorption map; regenerated on demand if evicted."""
        return self.store.get(self.id)[1]

    @property
    def bbox_um(self) -> tuple[float, float, float, float]:
        """Axis-aligned box ``(x0, y0, x1, y1)`` of the map, slide µm."""
        cx, cy = self.center_um
        w, h = self.footprint_um
        return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)

    def thickness_between(self, z0_um: float, z1_um: float) -> np.ndarray:
        """Material thickness map between two heights above the slide surface, for sliced propagation.

        Summed over slices that tile the object's height range, the result equals ``height_um``. A solid
        shape fills its column from the glass up to its top; a woodpile's thickness is spread evenly over
        its stack (its layers alternate rods and air at a finer scale than any useful slice); a groove
        (negative height) is negative thickness of glass between its floor and the surface.

        Parameters
        ----------
        z0_um, z1_um : float
            Slice bounds, µm above the slide surface, ``z0_um <= z1_um``.

        Returns
        -------
        (h, w) ndarray of float32
            Thickness, µm, within the slice.

        Raises
        ------
        ValueError
            If ``z1_um < z0_um``.
        """
        if not z0_um <= z1_um:
            raise ValueError(f"thickness_between needs z0_um <= z1_um, got {z0_um!r} > {z1_um!r}")
        h = self.height_um
        if self.cls == "woodpile":
            top = self.max_height_um
            frac = max(0.0, min(z1_um, top) - max(z0_um, 0.0)) / top
            return (h * np.float32(frac)).astype(np.float32)
        above = np.clip(np.minimum(h, np.float32(z1_um)) - np.float32(max(z0_um, 0.0)), 0.0, None)
        below = np.clip(np.float32(min(z1_um, 0.0)) - np.maximum(h, np.float32(z0_um)), 0.0, None)
        return (above - below).astype(np.float32)

    def truth(self) -> dict[str, Any]:
        """JSON-ready description of the object (no maps)."""
        return {"id": self.id, "kind": self.kind, "cls": self.cls,
                "center_um": list(self.center_um), "footprint_um": list(self.footprint_um),
                "bbox_um": list(self.bbox_um), "max_height_um": self.max_height_um,
                "focus_z_um": self.focus_z_um, "rotation_deg": self.rotation_deg,
                "index_delta": self.index_delta, "loss_exponent": self.loss_exponent, "pitch_um": self.pitch_um,
                "attrs": dict(self.attrs)}


class _GridIndex:
    """Bounding boxes bucketed on a square grid, for fast rectangle queries."""

    def __init__(self, cell_um: float) -> None:
        self.cell = cell_um
        self.cells: dict[tuple[int, int], list[int]] = defaultdict(list)
        self.boxes: list[tuple[float, float, float, float]] = []

    def _span(self, x0: float, y0: float, x1: float, y1: float) -> tuple[range, range]:
        c = self.cell
        return (range(math.floor(x0 / c), math.floor(x1 / c) + 1), range(math.floor(y0 / c), math.floor(y1 / c) + 1))

    def add(self, box: tuple[float, float, float, float]) -> int:
        i = len(self.boxes)
        self.boxes.append(box)
        xs, ys = self._span(*box)
        for gx in xs:
            for gy in ys:
                self.cells[(gx, gy)].append(i)
        return i

    def query(self, x0: float, y0: float, x1: float, y1: float) -> list[int]:
        """Indices of boxes that overlap ``[x0, x1] x [y0, y1]``, in insertion order."""
        xs, ys = self._span(x0, y0, x1, y1)
        found: set[int] = set()
        for gx in xs:
            for gy in ys:
                for i in self.cells.get((gx, gy), ()):
                    b = self.boxes[i]
                    if b[0] <= x1 and b[2] >= x0 and b[1] <= y1 and b[3] >= y0:
                        found.add(i)
        return sorted(found)


class Slide:
    """A generated slide: its parameters, seed, objects and surface; build it with :func:`make_slide`."""

    def __init__(self, params: SlideParams, seed: int, objects: tuple[SlideObject, ...],
                 debris_dropped: int = 0) -> None:
        self.params = params
        self.seed = seed
        self.objects = objects
        self.debris_dropped = debris_dropped
        self._index = _GridIndex(_GRID_CELL_UM)
        for obj in objects:
            self._index.add(obj.bbox_um)
        p = params
        self._corner2 = (p.width_um / 2) ** 2 + (p.height_um / 2) ** 2

    @overload
    def surface_z_um(self, x_um: float, y_um: float) -> float: ...

    @overload
    def surface_z_um(self, x_um: np.ndarray, y_um: np.ndarray | float) -> np.ndarray: ...

    @overload
    def surface_z_um(self, x_um: float, y_um: np.ndarray) -> np.ndarray: ...

    def surface_z_um(self, x_um: float | np.ndarray, y_um: float | np.ndarray) -> float | np.ndarray:
        """Stage z at which the glass surface at ``(x, y)`` is in focus, µm (tilt + bow; see module doc)."""
        p = self.params
        dx = np.asarray(x_um, dtype=np.float64) - p.width_um / 2
        dy = np.asarray(y_um, dtype=np.float64) - p.height_um / 2
        z = (p.surface_z0_um + p.tilt_x_um_per_mm * dx / 1000 + p.tilt_y_um_per_mm * dy / 1000
             + p.bow_um * (dx * dx + dy * dy) / self._corner2)
        return float(z) if np.ndim(z) == 0 else z

    def with_structure(self, cls: str, shape: Shape, center_um: tuple[float, float],
                       rng: np.random.Generator) -> Slide:
        """A copy of this slide with one more structure (drawn by the caller) and no debris on its box.

        The structure gets the slide's polymer losses (:func:`with_polymer_loss`, drawing from ``rng``) and the
        next free id; debris within ``DEBRIS_CLEARANCE_UM`` of its box is left out. Used to image a structure of a
        chosen size (``appliance.sim.realism``).

        Raises
        ------
        ValueError
            ``cls`` is not a structure type.
        """
        if cls not in STRUCTURE_TYPES:
            raise ValueError(f"cls must be one of {STRUCTURE_TYPES}, got {cls!r}")
        shaped = _readonly(with_polymer_loss(shape, cls, self.params, rng))
        store = self.objects[0].store if self.objects else _MapStore()
        ident = max((o.id for o in self.objects), default=-1) + 1
        obj = _place(shaped, store, lambda: shaped, ident, "structure", cls, center_um, self.params.index_delta,
                     self.surface_z_um(*center_um))
        box = obj.bbox_um
        c = DEBRIS_CLEARANCE_UM
        keep = tuple(o for o in self.objects if o.kind != "debris" or o.bbox_um[2] < box[0] - c
                     or o.bbox_um[0] > box[2] + c or o.bbox_um[3] < box[1] - c or o.bbox_um[1] > box[3] + c)
        return Slide(self.params, self.seed, (*keep, obj), self.debris_dropped)

    def objects_in_rect(self, x0: float, y0: float, x1: float, y1: float) -> list[SlideObject]:
        """Objects whose bounding box overlaps the rectangle ``[x0, x1] x [y0, y1]`` (slide µm), by id."""
        return [self.objects[i] for i in self._index.query(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))]

    def truth_in_rect(self, x0: float, y0: float, x1: float, y1: float) -> list[dict[str, Any]]:
        """Ground-truth boxes of what lies in a view ``[x0, x1] x [y0, y1]`` (slide µm), e.g. one frame.

        Returns
        -------
        list of dict
            One per object whose box overlaps the view, by id: ``id``, ``kind``, ``cls``, ``focus_z_um``,
            ``bbox_um`` (the whole object), ``visible_bbox_um`` (clipped to the view) and
            ``visible_fraction`` (clipped box area over whole box area, so a caller can skip edge slivers).
        """
        vx0, vx1 = min(x0, x1), max(x0, x1)
        vy0, vy1 = min(y0, y1), max(y0, y1)
        out = []
        for o in self.objects_in_rect(vx0, vy0, vx1, vy1):
            bx0, by0, bx1, by1 = o.bbox_um
            cx0, cy0, cx1, cy1 = max(bx0, vx0), max(by0, vy0), min(bx1, vx1), min(by1, vy1)
            area = (bx1 - bx0) * (by1 - by0)
            out.append({"id": o.id, "kind": o.kind, "cls": o.cls, "focus_z_um": o.focus_z_um,
                        "bbox_um": [bx0, by0, bx1, by1], "visible_bbox_um": [cx0, cy0, cx1, cy1],
                        "visible_fraction": max(cx1 - cx0, 0.0) * max(cy1 - cy0, 0.0) / area})
        return out

    def write_truth(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`truth` to ``path`` as indented JSON (UTF-8)."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.truth(), f, indent=1)
            f.write("\n")

    def truth(self) -> dict[str, Any]:
        """JSON-ready ground truth: seed, parameters, surface model and every object (without maps)."""
        params = asdict(self.params)
        if params["type_mix"] is not None:
            params["type_mix"] = list(params["type_mix"])
        return {"seed": self.seed, "params": params,
                "surface": {"model": "z0 + tx*(x-cx)/1000 + ty*(y-cy)/1000 + bow*r^2/r_corner^2",
                            "center_um": [self.params.width_um / 2, self.params.height_um / 2]},
                "focus_reference": "surface z at centre + half the signed height extreme",
                "debris_dropped": self.debris_dropped,
                "objects": [o.truth() for o in self.objects]}


def _type_counts(n: int, mix: tuple[float, ...] | None) -> list[int]:
    """Apportion ``n`` structures to types by the weights (largest remainder, ties to the earlier type)."""
    w = np.ones(len(STRUCTURE_TYPES)) if mix is None else np.asarray(mix, dtype=np.float64)
    share = n * w / w.sum()
    counts = np.floor(share).astype(int)
    order = sorted(range(len(w)), key=lambda i: (-(share[i] - counts[i]), i))
    for i in order[: n - int(counts.sum())]:
        counts[i] += 1
    return [int(c) for c in counts]


def _readonly(shape: Shape) -> Shape:
    """Crop a shape to its nonzero region and freeze its maps (they may be shared)."""
    shape = crop_shape(shape)[0]
    for arr in (shape.height_um, shape.absorption):
        if arr.flags.writeable:
            arr.setflags(write=False)
    return shape


def _structure_recipe(cls: str, seed: int, k: int, p: SlideParams) -> Recipe:
    """The recipe of structure ``k``: its own seed, so it can be rebuilt alone, byte-identical."""
    return lambda: _readonly(with_polymer_loss(GENERATORS[cls](np.random.default_rng([seed, 2, k]),
                                                               STRUCTURE_PITCH_UM),
                                               cls, p, np.random.default_rng([seed, 6, k])))


def with_polymer_loss(shape: Shape, cls: str, p: SlideParams, rng: np.random.Generator) -> Shape:
    """A drawn structure with the slide's polymer losses in its absorption map (:func:`polymer.polymer_loss`)."""
    return polymer_loss(shape, cls, p.index_delta, p.top_roughness_um, p.contour_um, p.contour_roughness,
                        p.internal_scatter_per_um, p.initiator_absorption_per_um, rng)[0]


def _debris_recipe(cls: str, seed: int, k: int, templates: _debris.DustTemplates) -> Recipe:
    """The recipe of debris piece ``k`` (see :func:`_structure_recipe`)."""
    return lambda: _readonly(_debris.make_debris(cls, np.random.default_rng([seed, 4, k]), templates))


def _place(shape: Shape, store: _MapStore, recipe: Recipe, ident: int, kind: str, cls: str,
           center: tuple[float, float], index_delta: float, slide_z: float) -> SlideObject:
    """Wrap a cropped shape as a placed :class:`SlideObject` with its true focus; register its maps."""
    h = shape.height_um
    hmax, hmin = float(h.max()), float(h.min())
    extreme = hmax if hmax >= -hmin else hmin
    if shape.top_height_um is not None:  # an open lattice: focus on its geometric mid-height
        extreme = shape.top_height_um
    store.add(ident, recipe, shape, pinned="template" in shape.attrs)
    pitch = shape.pitch_um
    return SlideObject(
        id=ident, kind=kind, cls=cls, center_um=center, pitch_um=pitch, index_delta=index_delta,
        rotation_deg=shape.rotation_deg, max_height_um=abs(extreme), focus_z_um=slide_z + extreme / 2,
        footprint_um=(h.shape[1] * pitch, h.shape[0] * pitch), store=store, attrs=dict(shape.attrs),
        loss_exponent=float(shape.attrs.get("loss_exponent", 0.0)))


def _free(index: _GridIndex, box: tuple[float, float, float, float], margin: float) -> bool:
    return not index.query(box[0] - margin, box[1] - margin, box[2] + margin, box[3] + margin)


def _random_center(rng: np.random.Generator, p: SlideParams, w: float, h: float,
                   edge: float) -> tuple[float, float] | None:
    lo_x, hi_x = edge + w / 2, p.width_um - edge - w / 2
    lo_y, hi_y = edge + h / 2, p.height_um - edge - h / 2
    if lo_x > hi_x or lo_y > hi_y:
        return None
    return float(rng.uniform(lo_x, hi_x)), float(rng.uniform(lo_y, hi_y))


def _box(center: tuple[float, float], shape: Shape) -> tuple[float, float, float, float]:
    w = shape.height_um.shape[1] * shape.pitch_um
    h = shape.height_um.shape[0] * shape.pitch_um
    return (center[0] - w / 2, center[1] - h / 2, center[0] + w / 2, center[1] + h / 2)


def make_slide(seed: int, params: SlideParams | None = None) -> Slide:
    """Generate a slide, deterministically from ``seed``.

    Parameters
    ----------
    seed : int
        Non-negative seed; the same seed and parameters give byte-identical maps.
    params : SlideParams, optional
        Slide parameters; defaults to ``SlideParams()``.

    Returns
    -------
    Slide

    Raises
    ------
    ValueError
        If ``seed`` is not a non-negative integer, or ``n_structures`` do not fit on the slide.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    p = SlideParams() if params is None else params
    if not isinstance(p, SlideParams):
        raise ValueError(f"params must be a SlideParams, got {type(p).__name__}")
    seed = int(seed)
    probe = Slide(p, seed, ())  # for the surface model only
    store = _MapStore()
    objects: list[SlideObject] = []
    s_index = _GridIndex(_GRID_CELL_UM)
    # Independent streams (placement, each object's shape, debris): the structures do not change when only
    # the debris density changes, and any object's maps can be rebuilt alone from its own seed.
    place_rng = np.random.default_rng([seed, 1])
    types = [t for t, c in zip(STRUCTURE_TYPES, _type_counts(p.n_structures, p.type_mix), strict=True)
             for _ in range(c)]
    place_rng.shuffle(types)
    for k, cls in enumerate(types):
        recipe = _structure_recipe(cls, seed, k, p)
        shape = recipe()
        c = _find_place(place_rng, p, shape, s_index, STRUCTURE_MARGIN_UM, EDGE_MARGIN_UM, _STRUCTURE_TRIES)
        if c is None:
            raise ValueError(f"n_structures={p.n_structures} do not fit on a {p.width_um:g} x {p.height_um:g} um "
                             f"slide with {STRUCTURE_MARGIN_UM:g} um between structures; lower n_structures")
        s_index.add(_box(c, shape))
        objects.append(_place(shape, store, recipe, len(objects), "structure", cls, c, p.index_delta,
                              probe.surface_z_um(*c)))
    dropped = _add_debris(seed, p, probe, s_index, store, objects)
    return Slide(p, seed, tuple(objects), debris_dropped=dropped)


def _find_place(rng: np.random.Generator, p: SlideParams, shape: Shape, s_index: _GridIndex, margin: float,
                edge: float, tries: int) -> tuple[float, float] | None:
    """A random centre where the shape's box keeps ``margin`` from every structure, or None."""
    w = shape.height_um.shape[1] * shape.pitch_um
    h = shape.height_um.shape[0] * shape.pitch_um
    for _ in range(tries):
        c = _random_center(rng, p, w, h, edge)
        if c is None:
            return None
        if _free(s_index, _box(c, shape), margin):
            return c
    return None


def _add_debris(seed: int, p: SlideParams, probe: Slide, s_index: _GridIndex, store: _MapStore,
                objects: list[SlideObject]) -> int:
    """Append Poisson-many debris objects clear of every structure; return how many found no place."""
    rng = np.random.default_rng([seed, 3])
    n = int(rng.poisson(p.debris_per_mm2 * p.width_um * p.height_um / 1e6))
    kinds = list(_debris.DEBRIS_MIX)
    weights = np.array([_debris.DEBRIS_MIX[k] for k in kinds])
    drawn = rng.choice(len(kinds), size=n, p=weights / weights.sum())
    templates = _debris.DustTemplates(np.random.default_rng([seed, 5]))
    dropped = 0
    for k, kind_index in enumerate(drawn):
        cls = kinds[int(kind_index)]
        recipe = _debris_recipe(cls, seed, k, templates)
        shape = recipe()
        c = _find_place(rng, p, shape, s_index, DEBRIS_CLEARANCE_UM, 0.0, _DEBRIS_TRIES)
        if c is None:
            dropped += 1
            continue
        objects.append(_place(shape, store, recipe, len(objects), "debris", cls, c, _debris.INDEX_DELTA[cls],
                              probe.surface_z_um(*c)))
    return dropped
