"""Held-out scans over random settings of the virtual microscope: the sweeps docs/held-out.md reports.

Usage::

    python scripts/held_out_sweep.py knobs --start 6000 --count 20 > knobs.txt   # one line per slide
    python scripts/held_out_sweep.py run knobs.txt --out sweep/ --jobs 2          # tppscan scan per line
    python scripts/held_out_sweep.py table knobs.txt --out sweep/                 # what each scan found
    python scripts/held_out_sweep.py glass knobs.txt --out sweep/                 # the height maps' glass
    python scripts/held_out_sweep.py light knobs.txt                              # each slide's light spread

Each line is ``SEED KEY=VALUE ...``: the slide's seed and its ``--sim-set`` knobs, drawn from the seed alone
(``random.Random``-free: NumPy's PCG64 seeded with ``seed * 7919 + 13``), so a line is the same on every machine.
The draws cover the realism ranges all at once: the objective (4x / NA 0.13 to 40x / NA 0.65, weighted towards
10x) with an area a scan covers in minutes, 5-10 prints, slide tilt and bow, dust, the prints' index, contour,
roughness, scatter and absorption, the lamp and sensor (light, read noise, vignetting, dust on the optics, uneven
light, condenser), a camera turned or mirrored, sensors off 4:3, lamp flicker, the three camera presets and JPEG,
servo or stepper focus, backlash, jitter, drift and settling. Seeds used to tune the code are 0-3 and those of
docs/held-out.md's sweeps; any other start gives a held-out set.

``run`` calls ``tppscan scan --sim --seed N --sim-set K=V ... --out OUT/N --db OUT/N.db --progress none`` per
line (``--jobs`` at a time), keeping each scan's output in ``OUT/N.log``; ``table`` prints each scan's
``summary.json`` figures and the totals by objective and camera and in all (prints found, typed right, dirt
recorded as a print, structures recorded where no object lies, duplicates).
``light`` measures each line's light field as a scan's flat field does (16 frames over the slide) and prints its
spread, brightest 2 % over darkest 2 %: which slides a change of ``flatfield.EVEN_WITHIN`` would touch.
``glass`` compares the glass each recorded structure's height used (``extra.glass_z_um``, read beside it) with the
slide's true surface under it, by where that glass came from (``extra.glass_source``) and objective: records,
median error and interquartile range in µm, and the share within 1 µm (docs/scan.md, "Height maps").
Exit status: ``run`` 1 when any scan exited non-zero, ``table`` 1 when any scan has no summary, ``glass`` 1 when
any scan has no database.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Objective (magnification, NA, slide side in µm) and how often each is drawn.
OBJECTIVES = ((4, 0.13, 3000), (5, 0.15, 3000), (10, 0.25, 2000), (10, 0.3, 2000), (16, 0.4, 2000),
              (20, 0.45, 1600), (40, 0.65, 1200))
OBJECTIVE_WEIGHTS = (0.06, 0.1, 0.3, 0.17, 0.12, 0.13, 0.12)
SENSORS = ((800, 600), (1280, 960), (512, 512), (960, 540), (480, 640))


def knobs(seed: int) -> list[str]:
    """The ``--sim-set`` knobs of one held-out slide, drawn from its seed alone."""
    r = np.random.default_rng(seed * 7919 + 13)

    def u(lo: float, hi: float) -> float:
        return round(float(r.uniform(lo, hi)), 3)

    mag, na, side = OBJECTIVES[int(r.choice(len(OBJECTIVES), p=OBJECTIVE_WEIGHTS))]
    k = [f"optics.magnification={mag}", f"optics.na={na}", f"slide.width_um={side}", f"slide.height_um={side}",
         f"slide.n_structures={int(r.integers(5, 11))}",
         f"slide.tilt_x_um_per_mm={u(-4, 4)}", f"slide.tilt_y_um_per_mm={u(-4, 4)}", f"slide.bow_um={u(0, 4)}",
         f"slide.debris_per_mm2={u(5, 60)}", f"slide.index_delta={u(0.45, 0.55)}",
         f"slide.contour_um={u(1, 7)}", f"slide.top_roughness_um={u(0.08, 0.3)}",
         f"slide.internal_scatter_per_um={u(0, 0.03)}", f"slide.initiator_absorption_per_um={u(0, 0.05)}",
         f"sensor.electrons_per_ms={u(300, 900)}", f"sensor.read_noise_e={u(2, 10)}",
         f"sensor.vignetting={u(0.1, 0.4)}", f"sensor.optics_dust_per_mm2={u(50, 400)}",
         f"sensor.illumination_variation={u(0, 0.06)}", f"optics.condenser_sigma={u(0.3, 0.8)}"]
    if r.random() < 0.25:
        k.append(f"sensor.rotation_deg={r.choice([90, 180, u(-5, 5)])}")
    if r.random() < 0.1:
        k.append("sensor.mirror=true")
    if r.random() < 0.25:
        w, h = SENSORS[int(r.integers(len(SENSORS)))]
        k += [f"sensor.width_px={w}", f"sensor.height_px={h}"]
    if r.random() < 0.15:
        k.append(f"sensor.lamp_flicker={u(0, 0.05)}")
    p = r.random()
    if p < 0.25:
        k.append("camera.preset=cheap_colour")
    elif p < 0.4:
        k.append("camera.preset=mono_raw")
    if r.random() < 0.2:
        k.append(f"camera.jpeg_quality={int(r.integers(50, 95))}")
    if r.random() < 0.4:
        k += ["stage.z_mode=stepper", f"stage.z_steps_per_um={int(r.choice([2, 4, 8, 32]))}"]
    elif r.random() < 0.3:
        k.append(f"stage.um_per_servo_degree={r.choice([1.0, 1.5, 2.0])}")
    k.append(f"stage.backlash_um=[{u(0, 15)},{u(0, 15)},{u(0, 4)}]")
    if r.random() < 0.2:
        k.append(f"stage.jitter_um=[{u(0, 1)},{u(0, 1)},{u(0, 0.2)}]")
    if r.random() < 0.15:
        k.append(f"stage.z_drift_um_per_min={u(-0.5, 0.5)}")
    if r.random() < 0.15:
        k.append(f"stage.settle_s={u(0.02, 0.3)}")
    return k


def read_lines(path: Path) -> list[tuple[int, list[str]]]:
    """The ``SEED KEY=VALUE ...`` lines of a knobs file (blank lines and ``#`` comments skipped)."""
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if not words[0].isdigit():
            raise ValueError(f"{path}:{n}: a line starts with the slide's seed (a whole number), got {words[0]!r}")
        out.append((int(words[0]), words[1:]))
    return out


def scan_command(seed: int, sets: Sequence[str], out: Path) -> list[str]:
    """The ``tppscan scan`` command of one line."""
    cmd = [sys.executable, "-m", "appliance.cli", "scan", "--sim", "--seed", str(seed)]
    for s in sets:
        cmd += ["--sim-set", s]
    return cmd + ["--out", str(out / str(seed)), "--db", str(out / f"{seed}.db"), "--progress", "none"]


def run(lines: Sequence[tuple[int, list[str]]], out: Path, jobs: int) -> int:
    """Scan every line, ``jobs`` at a time; the number of scans that exited non-zero."""
    out.mkdir(parents=True, exist_ok=True)
    root = Path(__file__).resolve().parents[1]

    def one(line: tuple[int, list[str]]) -> int:
        seed, sets = line
        with open(out / f"{seed}.log", "w") as log:
            done = subprocess.run(scan_command(seed, sets, out), cwd=root, stdout=log, stderr=subprocess.STDOUT)
        rc = done.returncode
        print(f"{seed}: exit {rc}", flush=True)
        return rc

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return sum(rc != 0 for rc in pool.map(one, lines))


@dataclass
class Tally:
    """Prints found, typed right, dirt recorded as a print and duplicates over some scans."""

    scans: int = 0
    found: int = 0
    truth: int = 0
    typed: int = 0
    dirt: int = 0
    bare: int = 0
    duplicates: int = 0

    def add(self, s: dict[str, Any]) -> None:
        """Count one scan's ``summary.json``."""
        matched = int(s["structures_matched"])
        self.scans += 1
        self.found += matched
        self.truth += int(s["structures_truth"])
        self.typed += round((s["type_accuracy"] or 0.0) * matched)
        self.dirt += round((s["debris_as_structure"] or 0.0) * int(s["debris_truth"]))
        self.bare += int(s.get("false_structures") or 0)
        self.duplicates += int(s["duplicates"])

    def __str__(self) -> str:
        """The counts as the table prints them."""
        share = f"{self.found / self.truth:.3f}" if self.truth else "-"
        return (f"found {self.found} of {self.truth} ({share}), typed right {self.typed}, dirt as a print "
                f"{self.dirt}, structures where no object lies {self.bare}, duplicates {self.duplicates}")


def setting(sets: Sequence[str]) -> str:
    """A line's objective and camera preset, as the table groups scans."""
    knob = dict(k.split("=", 1) for k in sets if "=" in k)
    objective = f"{knob['optics.magnification']}x" if "optics.magnification" in knob else "default objective"
    return f"{objective} {knob.get('camera.preset', 'default')}"


def table(lines: Sequence[tuple[int, list[str]]], out: Path) -> int:
    """Print each scan's figures, the totals by objective and camera and in all; the lines without a summary."""
    total, missing = Tally(), 0
    groups: defaultdict[str, Tally] = defaultdict(Tally)
    for seed, sets in lines:
        path = out / str(seed) / "summary.json"
        if not path.is_file():
            print(f"{seed}: no summary.json (see {out / f'{seed}.log'})")
            missing += 1
            continue
        s = json.loads(path.read_text())
        one = Tally()
        one.add(s)
        total.add(s)
        groups[setting(sets)].add(s)
        print(f"{seed} {setting(sets)}: {one}, position error median {s['position_error_um_median']} um")
    for name in sorted(groups, key=lambda g: (int(g.split("x")[0]) if g[0].isdigit() else 0, g)):
        print(f"{name} ({groups[name].scans} scans): {groups[name]}")
    print(f"total: {total}, scans without a summary {missing}")
    return missing


def glass(lines: Sequence[tuple[int, list[str]]], out: Path) -> int:
    """Print the glass under recorded structures against the true surface, by source and objective."""
    from appliance.results.store import ResultStore  # only this command needs the project's scan and sim code
    from appliance.sim.overrides import parse_sim_sets, sim_microscope

    errors: defaultdict[tuple[str, str], list[float]] = defaultdict(list)
    missing = 0
    for seed, sets in lines:
        db = out / f"{seed}.db"
        if not db.is_file():
            print(f"{seed}: no database {db}")
            missing += 1
            continue
        slide = sim_microscope(seed, parse_sim_sets(sets)).slide
        with ResultStore(db) as store:
            objects = store.objects(store.scans()[-1].id)
        for o in objects:
            z = (o.extra or {}).get("glass_z_um")
            if o.kind == "structure" and z is not None:
                key = (str((o.extra or {}).get("glass_source")), setting(sets).split()[0])
                errors[key].append(float(z) - slide.surface_z_um(o.x_um, o.y_um))
    for (source, objective), e in sorted(errors.items()):
        q1, med, q3 = np.percentile(e, [25, 50, 75])
        within = sum(abs(v) <= 1.0 for v in e) / len(e)
        print(f"{source} {objective}: {len(e)} records, median {med:+.2f} um, IQR {q1:+.2f} .. {q3:+.2f} um, "
              f"within 1 um {within:.0%}")
    return missing


def light(lines: Sequence[tuple[int, list[str]]]) -> int:
    """Print each line's light spread as its scan's flat field would measure it; 1 if any cannot be measured."""
    from appliance.scan.flatfield import EVEN_WITHIN, FlatFieldError, measure_flat_field
    from appliance.sim.overrides import parse_sim_sets, sim_microscope

    failed = 0
    for seed, sets in lines:
        knob = dict(k.split("=", 1) for k in sets if "=" in k)
        area = (0.0, 0.0, float(knob.get("slide.width_um", 10000)), float(knob.get("slide.height_um", 10000)))
        scope = sim_microscope(seed, parse_sim_sets(sets))
        try:
            with scope.stage, scope.camera:
                lo, hi = measure_flat_field(scope.stage, scope.camera, area).spread
        except FlatFieldError as e:
            print(f"{seed}: {e}")
            failed += 1
            continue
        print(f"{seed} {setting(sets)}: light {lo:.3f}-{hi:.3f}, spread {hi / lo:.3f}"
              f"{'' if hi <= EVEN_WITHIN * lo else ' (divided out)'}")
    return failed


def main(argv: Sequence[str] | None = None) -> int:
    """``knobs``, ``run``, ``table``, ``glass`` or ``light`` (see the module's docstring); the exit status."""
    p = argparse.ArgumentParser(description="Held-out scans over random settings of the virtual microscope.")
    sub = p.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("knobs", help="print one line of knobs per slide seed")
    k.add_argument("--start", type=int, required=True, help="first slide seed (>= 0)")
    k.add_argument("--count", type=int, default=20, help="how many slides (1..10000, default 20)")
    for name, what in (("run", "scan every line of a knobs file"), ("table", "print what each scan found"),
                       ("glass", "the glass under each recorded structure against the slide's true surface")):
        q = sub.add_parser(name, help=what)
        q.add_argument("knobs", type=Path, help="a file of 'SEED KEY=VALUE ...' lines (from 'knobs')")
        q.add_argument("--out", type=Path, required=True, help="folder of the scans' outputs")
        if name == "run":
            q.add_argument("--jobs", type=int, default=2, help="scans at a time (1..64, default 2)")
    q = sub.add_parser("light", help="each slide's light spread, as a scan's flat field measures it")
    q.add_argument("knobs", type=Path, help="a file of 'SEED KEY=VALUE ...' lines (from 'knobs')")
    args = p.parse_args(argv)
    if args.cmd == "knobs":
        if args.start < 0 or not 1 <= args.count <= 10000:
            p.error(f"--start must be >= 0 and --count in 1..10000, got {args.start} and {args.count}")
        for seed in range(args.start, args.start + args.count):
            print(seed, " ".join(knobs(seed)))
        return 0
    try:
        lines = read_lines(args.knobs)
    except (OSError, ValueError) as e:
        p.error(str(e))
    if args.cmd == "light":
        return int(light(lines) > 0)
    if args.cmd == "run":
        if not 1 <= args.jobs <= 64:
            p.error(f"--jobs must be in 1..64, got {args.jobs}")
        return int(run(lines, args.out, args.jobs) > 0)
    return int((table if args.cmd == "table" else glass)(lines, args.out) > 0)


if __name__ == "__main__":
    sys.exit(main())
