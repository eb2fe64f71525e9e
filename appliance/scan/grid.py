"""Field positions of a scan plan's grid, in the plan's order (useq-schema's ``OrderMode`` names).

Cells are numbered ``cell = row * columns + column`` (row 0 at the top, y growing downwards); a cell's number
does not depend on the order, so results and resume refer to cells. Centres are spread symmetrically over the
area: ``n = ceil((extent - fov) / step) + 1`` fields per axis with ``step = fov * (1 - overlap / 100)``, and
the block of ``n`` fields is centred on the area (so it overhangs both edges by the same amount).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from appliance.scan.plan import GridPlan


@dataclass(frozen=True)
class FieldPosition:
    """One field of the grid.

    Attributes
    ----------
    cell : int
        ``row * columns + column``: the field's stable id.
    row, column : int
        Grid indices (row 0 at the top, column 0 at the left).
    x_um, y_um : float
        Stage position of the field's centre, µm.
    """

    cell: int
    row: int
    column: int
    x_um: float
    y_um: float


@dataclass(frozen=True)
class Grid:
    """The grid laid over an area: its size, step and the centre of every cell.

    Attributes
    ----------
    rows, columns : int
    x0_um, y0_um : float
        Centre of cell (0, 0), µm.
    step_x_um, step_y_um : float
        Centre-to-centre spacing, µm.
    fov_um : (float, float)
        Field of view (width, height), µm.
    """

    rows: int
    columns: int
    x0_um: float
    y0_um: float
    step_x_um: float
    step_y_um: float
    fov_um: tuple[float, float]

    @property
    def n_fields(self) -> int:
        """Number of fields, rows times columns."""
        return self.rows * self.columns

    def position(self, row: int, column: int) -> FieldPosition:
        """The field at ``(row, column)``."""
        return FieldPosition(row * self.columns + column, row, column, self.x0_um + column * self.step_x_um,
                             self.y0_um + row * self.step_y_um)

    def cell(self, cell: int) -> FieldPosition:
        """The field with id ``cell``."""
        return self.position(cell // self.columns, cell % self.columns)


def _axis(lo: float, hi: float, fov: float, overlap_pct: float) -> tuple[int, float, float]:
    step = fov * (1.0 - overlap_pct / 100.0)
    extent = hi - lo
    n = 1 if extent <= fov else int(math.ceil((extent - fov) / step - 1e-9)) + 1
    first = (lo + hi) / 2.0 - (n - 1) * step / 2.0
    return n, first, step


MAX_FIELDS = 1_000_000


def make_grid(plan: GridPlan, area_um: tuple[float, float, float, float], fov_um: tuple[float, float]) -> Grid:
    """Lay the plan's grid over ``area_um``.

    Parameters
    ----------
    plan : GridPlan
        Overlap (and ``fov_width``/``fov_height``, which override ``fov_um`` when set).
    area_um : (left, top, right, bottom)
        The area to cover, µm (the plan's own edges, or the slide's when the plan has none).
    fov_um : (width, height)
        Field of view from the camera and calibration, µm.

    Raises
    ------
    ValueError
        If the grid would have more than ``MAX_FIELDS`` fields.
    """
    fw = plan.fov_width if plan.fov_width is not None else fov_um[0]
    fh = plan.fov_height if plan.fov_height is not None else fov_um[1]
    left, top, right, bottom = area_um
    nx, x0, sx = _axis(left, right, fw, plan.overlap[0])
    ny, y0, sy = _axis(top, bottom, fh, plan.overlap[1])
    if nx * ny > MAX_FIELDS:
        raise ValueError(f"grid: {nx} x {ny} fields is more than {MAX_FIELDS}; lower the area or the overlap")
    return Grid(ny, nx, x0, y0, sx, sy, (fw, fh))


def _static_order(grid: Grid, mode: str) -> Iterator[tuple[int, int]]:
    rows, cols = grid.rows, grid.columns
    if mode in ("row_wise", "row_wise_snake"):
        for r in range(rows):
            reverse = mode == "row_wise_snake" and r % 2 == 1
            for c in (range(cols - 1, -1, -1) if reverse else range(cols)):
                yield r, c
    elif mode in ("column_wise", "column_wise_snake"):
        for c in range(cols):
            reverse = mode == "column_wise_snake" and c % 2 == 1
            for r in (range(rows - 1, -1, -1) if reverse else range(rows)):
                yield r, c
    elif mode == "spiral":
        yield from _spiral(rows, cols)
    else:
        raise ValueError(f"grid.mode: {mode!r} is not a static order")


def _ring(cr: int, cc: int, k: int) -> list[tuple[int, int]]:
    """Cells at Chebyshev distance ``k`` from ``(cr, cc)``, clockwise from the top-left corner."""
    if k == 0:
        return [(cr, cc)]
    top = [(cr - k, cc + j) for j in range(-k, k)]
    right = [(cr + i, cc + k) for i in range(-k, k)]
    bottom = [(cr + k, cc - j) for j in range(-k, k)]
    left = [(cr - i, cc - k) for i in range(-k, k)]
    return top + right + bottom + left


def _spiral(rows: int, cols: int) -> Iterator[tuple[int, int]]:
    cr, cc = (rows - 1) // 2, (cols - 1) // 2
    for k in range(max(rows, cols) + 1):
        for r, c in _ring(cr, cc, k):
            if 0 <= r < rows and 0 <= c < cols:
                yield r, c


class FieldOrder:
    """The fields of a grid in the plan's order; ``adaptive_spiral`` grows from what the scan reports.

    Iterate to get :class:`FieldPosition` objects; after scanning each one call :meth:`report` with whether it
    held anything (a candidate blob). Static orders ignore reports. ``skip`` holds cells already done (resume):
    they are not yielded, but an adaptive order still grows from them as they were reported.
    """

    def __init__(self, grid: Grid, mode: str, done: dict[int, bool] | None = None) -> None:
        self.grid = grid
        self.mode = mode
        self._done = dict(done or {})
        self._occupied: set[int] = {c for c, occ in self._done.items() if occ}

    def report(self, cell: int, occupied: bool) -> None:
        """Record whether ``cell`` held anything (drives ``adaptive_spiral``)."""
        if occupied:
            self._occupied.add(cell)

    def planned(self) -> int:
        """Fields this order visits at most (adaptive: the whole grid is the bound)."""
        return self.grid.n_fields

    def __iter__(self) -> Iterator[FieldPosition]:
        if self.mode == "adaptive_spiral":
            yield from self._adaptive()
            return
        for r, c in _static_order(self.grid, self.mode):
            pos = self.grid.position(r, c)
            if pos.cell not in self._done:
                yield pos

    def _adaptive(self) -> Iterator[FieldPosition]:
        """OpenFlexure's smart spiral: rings around the centre, kept only next to occupied fields.

        The centre 3 x 3 block is always scanned; after that a cell on ring ``k`` is visited only if one of its
        eight neighbours on ring ``k - 1`` (or ring ``k``, already visited) held something. The scan ends at
        the first ring with no such cell.
        """
        g = self.grid
        cr, cc = (g.rows - 1) // 2, (g.columns - 1) // 2
        visited: set[int] = set()
        for k in range(max(g.rows, g.columns) + 1):
            cells = [(r, c) for r, c in _ring(cr, cc, k) if 0 <= r < g.rows and 0 <= c < g.columns]
            if not cells:
                break
            grew = False
            for r, c in cells:
                if k > 1 and not self._near_occupied(r, c):
                    continue
                grew = True
                pos = g.position(r, c)
                visited.add(pos.cell)
                if pos.cell not in self._done:
                    yield pos
            if not grew:
                break

    def _near_occupied(self, r: int, c: int) -> bool:
        g = self.grid
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                rr, cc = r + dr, c + dc
                if (dr or dc) and 0 <= rr < g.rows and 0 <= cc < g.columns and rr * g.columns + cc in self._occupied:
                    return True
        return False
