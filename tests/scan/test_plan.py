import pytest

from appliance.scan.grid import FieldOrder, make_grid
from appliance.scan.plan import FocusPlan, GridPlan, ScanPlan


def test_default_plan_round_trips_through_yaml():
    plan = ScanPlan()
    assert ScanPlan.from_yaml(plan.to_yaml()) == plan


def test_full_plan_round_trips_exactly():
    text = """
name: slide-7
grid: {top: 100, left: 200, bottom: 2100, right: 3200, overlap: [12.5, 5], mode: spiral, fov_width: 350}
focus: {strategy: sweep, field_focus: autofocus, search_range_um: 10, stack_range_um: 8, stack_step_um: 0.5}
imaging: {centre: false, approach_um: 0, crop_margin_px: 4, settle_s: 0.2, largest_print_um: 300}
reconstruct: {method: focus, wavelength_um: 0.63, index_delta: 0.52, camera_gamma: 1, tie_dz_um: 1}
"""
    plan = ScanPlan.from_yaml(text)
    assert plan.grid.overlap == (12.5, 5.0) and plan.grid.mode == "spiral"
    assert plan.imaging.largest_print_um == 300.0
    again = ScanPlan.from_yaml(plan.to_yaml())
    assert again == plan and again.to_yaml() == plan.to_yaml()


@pytest.mark.parametrize("text, words", [
    ("grid: {overlap: 80}", ["grid.overlap[x]", "80"]),
    ("grid: {mode: zigzag}", ["grid.mode", "zigzag", "row_wise_snake"]),
    ("grid: {top: 10, left: 0, bottom: 5, right: 10}", ["top < bottom"]),
    ("grid: {top: 10}", ["all four"]),
    ("grid: {colour: red}", ["grid.colour", "unknown key"]),
    ("focus: {stack_step_um: 0}", ["focus.stack_step_um", "0"]),
    ("focus: {strategy: guess}", ["focus.strategy", "guess"]),
    ("imaging: {centre: maybe}", ["imaging.centre", "maybe"]),
    ("imaging: {largest_print_um: 5}", ["imaging.largest_print_um", "5", "[10, 2000]"]),
    ("reconstruct: {method: guess}", ["reconstruct.method", "guess", "phase"]),
    ("reconstruct: {index_delta: 3}", ["reconstruct.index_delta", "3"]),
    ("speed: 3", ["speed", "unknown key"]),
    ("[1, 2]", ["plan", "mapping"]),
    ("grid: {top: 0", ["not valid YAML"]),
    ("focus: {reference_height_um: {pentagon: 10, pentagon: 20}}", ["duplicate key 'pentagon'", "line 1"]),
    ("grid: {top: 0, left: 0, bottom: 1e3, right: 1e3}\ngrid: {top: 0}", ["duplicate key 'grid'", "line 2"]),
    ("faults: {capture_retries: 1e3}", ["faults.capture_retries", "1000"]),
])
def test_bad_plans_name_the_key_and_value(text, words):
    with pytest.raises(ValueError) as err:
        ScanPlan.from_yaml(text)
    for w in words:
        assert w in str(err.value)


def test_exponent_numbers_are_numbers():
    """``1e3`` is a number, as in YAML 1.2 and ``--sim-set`` (PyYAML's YAML 1.1 read it as the text '1e3')."""
    plan = ScanPlan.from_yaml("grid: {top: 0, left: 0, bottom: 2e3, right: 3E+3}\nreconstruct: {wavelength_um: 63e-2}")
    assert (plan.grid.bottom, plan.grid.right, plan.reconstruct.wavelength_um) == (2000.0, 3000.0, 0.63)


def test_stack_offsets_are_symmetric_and_include_focus():
    off = FocusPlan(stack_range_um=3, stack_step_um=1).stack_offsets_um
    assert off == (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)


def _grid(mode, w=1000.0, h=600.0):
    plan = GridPlan(top=0, left=0, bottom=h, right=w, overlap=10, mode=mode)
    return make_grid(plan, (0, 0, w, h), (200.0, 150.0))


def test_grid_covers_the_area_with_the_overlap():
    g = _grid("row_wise")
    assert g.step_x_um == pytest.approx(180.0) and g.step_y_um == pytest.approx(135.0)
    xs = [g.position(0, c).x_um for c in range(g.columns)]
    ys = [g.position(r, 0).y_um for r in range(g.rows)]
    assert xs[0] - 100 <= 0 and xs[-1] + 100 >= 1000  # left and right edges covered
    assert ys[0] - 75 <= 0 and ys[-1] + 75 >= 600
    assert xs[0] - 100 == pytest.approx(1000 - (xs[-1] + 100))  # symmetric overhang


@pytest.mark.parametrize("mode", ["row_wise", "row_wise_snake", "column_wise", "column_wise_snake", "spiral"])
def test_every_static_order_visits_each_cell_once(mode):
    g = _grid(mode)
    cells = [p.cell for p in FieldOrder(g, mode)]
    assert sorted(cells) == list(range(g.n_fields))


def test_snake_reverses_every_other_row_and_steps_one_field_at_a_time():
    g = _grid("row_wise_snake")
    seq = list(FieldOrder(g, "row_wise_snake"))
    for a, b in zip(seq, seq[1:], strict=False):
        assert abs(a.row - b.row) + abs(a.column - b.column) == 1


def test_spiral_starts_at_the_centre():
    g = _grid("spiral", 2000, 2000)
    first = next(iter(FieldOrder(g, "spiral")))
    assert (first.row, first.column) == ((g.rows - 1) // 2, (g.columns - 1) // 2)


def test_resume_skips_done_cells():
    g = _grid("row_wise_snake")
    done = {0: False, 1: True}
    assert [p.cell for p in FieldOrder(g, "row_wise_snake", done)][:1] != [0]
    assert {p.cell for p in FieldOrder(g, "row_wise_snake", done)} == set(range(2, g.n_fields))


def test_adaptive_spiral_grows_only_around_occupied_fields():
    g = _grid("adaptive_spiral", 4000, 4000)
    order = FieldOrder(g, "adaptive_spiral")
    cr, cc = (g.rows - 1) // 2, (g.columns - 1) // 2
    target = g.position(cr, cc + 1).cell  # something right of the centre only
    seen = []
    for p in order:
        seen.append(p.cell)
        order.report(p.cell, p.cell == target)
    assert len(seen) < g.n_fields
    assert 9 < len(seen) <= 9 + 5  # the centre 3x3 block, then the cells of ring 2 next to the target
    # empty sample: only the centre block
    order = FieldOrder(g, "adaptive_spiral")
    assert len(list(order)) == 9


def test_every_error_of_a_plan_is_named_at_once():
    """A misspelt ``stratgy`` was only reported once ``overlap: 80`` was fixed: one error per run."""
    text = ("name: ''\nspeed: 3\ngrid: {overlap: 80, mode: zigzag, top: 10}\n"
            "focus: {stratgy: map, stack_range_um: 0.5, stack_step_um: 1}\n")
    with pytest.raises(ValueError) as err:
        ScanPlan.from_yaml(text)
    msg = str(err.value)
    assert msg.startswith("7 errors: ") and "\n" not in msg, msg
    for words in ("speed: unknown key", "name: must be 1..80",
                  "grid.overlap[x]: must be a number in [0, 49.999], got 80", "grid.mode: must be one of",
                  "got 'zigzag'", "grid: give all four", "focus.stratgy: unknown key",
                  "focus.stack_range_um: must be at least focus.stack_step_um (1)"):  # its step as given, not 2
        assert words in msg, (words, msg)
    with pytest.raises(ValueError, match=r"^grid.overlap\[x\]: must be a number in \[0, 49.999\], got 80$"):
        ScanPlan.from_yaml("grid: {overlap: 80}")  # one error: as before, no count
