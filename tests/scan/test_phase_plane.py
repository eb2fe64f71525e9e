"""Where a round object's phase is read: its focus, held where an object of its width on the glass can focus.

Held-out seed 6313 (10x under the raw mono camera; docs/held-out.md, "Held-out settings, session 45"): a 23 µm
micro-lens whose focus was found 8.3 µm above its mid-plane read -1.0 there (its centre is brightest 4 µm above
its mid-plane and dims beyond) and was recorded as a bubble; a 12 µm bubble whose focus was found 4 µm below the
glass read +0.21 there and was recorded as a micro-lens. Read about the plane between the glass and a quarter of
the object's width above it (``appliance.vision.phasesign.reading_plane``), the lens converges and the bubble
diverges. The product's scan (gate, detector, classifier, autofocus) through the command line.
"""

from __future__ import annotations

import json
from pathlib import Path

from appliance.cli import main
from appliance.results.store import ResultStore

SEED_6313 = [
    "optics.magnification=10", "optics.na=0.25", "slide.width_um=2000", "slide.height_um=2000",
    "slide.n_structures=5", "slide.tilt_x_um_per_mm=-3.699", "slide.tilt_y_um_per_mm=0.726", "slide.bow_um=3.195",
    "slide.debris_per_mm2=50.565", "slide.index_delta=0.467", "slide.contour_um=6.865",
    "slide.top_roughness_um=0.262", "slide.internal_scatter_per_um=0.017", "slide.initiator_absorption_per_um=0.021",
    "sensor.electrons_per_ms=790.045", "sensor.read_noise_e=6.654", "sensor.vignetting=0.133",
    "sensor.optics_dust_per_mm2=242.544", "sensor.illumination_variation=0.056", "optics.condenser_sigma=0.372",
    "sensor.rotation_deg=90.0", "sensor.mirror=true", "sensor.lamp_flicker=0.034", "camera.preset=mono_raw",
    "stage.z_mode=stepper", "stage.z_steps_per_um=4", "stage.backlash_um=[14.52,13.627,1.742]",
]
LENS_UM = (610.4, 369.7)
BUBBLE_UM = (331.0, 365.0)


def _near(records: list, xy: tuple[float, float], r: float = 10.0) -> list:
    return [o for o in records if abs(o.x_um - xy[0]) < r and abs(o.y_um - xy[1]) < r]


def test_a_lens_focused_past_its_bright_plane_and_a_bubble_focused_below_the_glass(tmp_path: Path) -> None:
    sets = [a for s in SEED_6313 for a in ("--sim-set", s)]
    out = tmp_path / "scan"
    assert main(["scan", "--sim", "--seed", "6313", *sets, "--out", str(out), "--db", str(tmp_path / "s.db"),
                 "--progress", "none"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    with ResultStore(tmp_path / "s.db") as st:
        records = st.objects(st.scans()[-1].id)
    lens = [o for o in _near(records, LENS_UM) if o.kind == "structure"]
    assert [o.cls for o in lens] == ["microlens"] and lens[0].extra["phase_sign"] >= 0.2, _near(records, LENS_UM)
    bubble = _near(records, BUBBLE_UM)
    assert bubble and all(o.kind == "debris" for o in bubble), bubble
    assert summary["recall"] == 1.0 and summary["debris_as_structure"] == 0.0
