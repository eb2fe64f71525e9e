"""``report.html``: the slide map, the focus map, a table of structures with thumbnails and 3-D views, timings.

Everything is a local file beside the report (PNG plots made with matplotlib's Agg backend, the crops, the
3-D plots, the OME-TIFF stacks), linked by relative paths, so the folder can be copied or served as it is.
With ground truth (the virtual microscope) the report also shows the scores of ``summary.json`` and each
structure's height-map error.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from appliance.results.store import FieldRecord, ObjectRecord, ScanRecord, write_durably

TYPE_COLOURS = {"woodpile": "#1f77b4", "microlens": "#ff7f0e", "scaffold": "#2ca02c", "pentagon": "#d62728",
                "split_ring": "#9467bd"}
#: The scores the report shows (``summary.json``'s keys, each its tooltip) and how each reads there.
SCORE_LABELS = {"recall": "structures found (recall)", "type_accuracy": "type right, of those found",
                "debris_as_structure": "debris recorded as a structure", "position_error_um_median":
                "position error, median (µm)", "duplicates": "structures recorded twice",
                "structures_truth": "structures on the slide", "structures_found": "structures found",
                "focus_error_um_median": "focus error, median (µm)", "focus_within_1um": "focus within 1 µm",
                "autofocus_within_1um": "autofocus within 1 µm"}
SCORE_KEYS = tuple(SCORE_LABELS)
#: Scores that are shares, shown as percentages.
SHARE_KEYS = ("recall", "type_accuracy", "focus_within_1um", "autofocus_within_1um")
#: Scores that mean nothing on a slide without structures in the scanned area (recall reads 1 there).
PER_STRUCTURE_KEYS = ("recall", "type_accuracy", "position_error_um_median", "focus_error_um_median",
                      "focus_within_1um", "autofocus_within_1um")

#: Above the structure table: how far its heights can be off (the bar is RMSE <= 1 µm; docs/scan.md, "Height maps"
#: and "Measurements": 1.5-7.8 µm per type on held-out slides at 10x).
HEIGHT_CAVEAT = ("Heights are measured from each structure's focus stack and can be off by several micrometres: "
                 "1.5-7.8 µm RMS per type on held-out virtual slides at 10x, more at other objectives (the goal "
                 "is 1 µm). docs/scan.md, section \"Height maps\", says what can and cannot be measured.")


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def slide_map(path: Path, fields: Sequence[FieldRecord], objects: Sequence[ObjectRecord],
              fov_um: tuple[float, float], area_um: Sequence[float],
              missed: Sequence[Mapping[str, Any]] = ()) -> Path:
    """The slide map: scanned fields, debris, structures by type (and missed true structures, if known)."""
    plt = _plt()
    from matplotlib.patches import Rectangle

    fig, ax = plt.subplots(figsize=(7.5, 6.5), dpi=100)
    try:
        fw, fh = fov_um
        for f in fields:
            ax.add_patch(Rectangle((f.x_um - fw / 2, f.y_um - fh / 2), fw, fh, fill=False, lw=0.3,
                                   ec="#bbbbbb"))
        deb = [o for o in objects if o.kind != "structure"]
        if deb:
            ax.scatter([o.x_um for o in deb], [o.y_um for o in deb], s=3, c="#777777", label="debris", lw=0)
        for cls in sorted({o.cls for o in objects if o.kind == "structure"}):
            pts = [o for o in objects if o.kind == "structure" and o.cls == cls]
            ax.scatter([o.x_um for o in pts], [o.y_um for o in pts], s=40, c=TYPE_COLOURS.get(cls, "#000000"),
                       marker="s", label=cls, edgecolors="k", linewidths=0.5)
            for o in pts:
                ax.annotate(str(o.id), (o.x_um, o.y_um), fontsize=6, xytext=(4, 4), textcoords="offset points")
        if missed:
            ax.scatter([m["center_um"][0] for m in missed], [m["center_um"][1] for m in missed], s=60,
                       marker="x", c="red", label="missed (truth)")
        ax.set_xlim(area_um[0], area_um[2])
        ax.set_ylim(area_um[3], area_um[1])  # y grows downwards, as on the stage and in the frames
        ax.set_aspect("equal")
        ax.set_xlabel("stage x (µm)")
        ax.set_ylabel("stage y (µm)")
        if objects or missed:  # a scan stopped before its first object has nothing to label
            ax.legend(fontsize=7, loc="upper right", markerscale=0.8)
        ax.set_title(f"{len(fields)} fields, {len(objects) - len(deb)} structures, {len(deb)} debris")
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


def focus_heatmap(path: Path, fields: Sequence[FieldRecord], area_um: Sequence[float]) -> Path:
    """The focus map as a heat map: each field's z, interpolated between field centres."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 5.5), dpi=100)
    try:
        if fields:
            xs = np.array([f.x_um for f in fields])
            ys = np.array([f.y_um for f in fields])
            zs = np.array([f.z_um for f in fields])
            gx, gy = np.meshgrid(np.linspace(area_um[0], area_um[2], 120), np.linspace(area_um[1], area_um[3], 120))
            grid = _interpolate(xs, ys, zs, gx, gy)
            im = ax.imshow(grid, extent=(area_um[0], area_um[2], area_um[3], area_um[1]), cmap="magma",
                           aspect="equal", interpolation="bilinear")
            ax.scatter(xs, ys, s=2, c="w", lw=0, alpha=0.5)
            fig.colorbar(im, ax=ax, label="focus z (µm)")
        ax.set_xlabel("stage x (µm)")
        ax.set_ylabel("stage y (µm)")
        ax.set_title("focus map (field z)")
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


def _interpolate(xs: np.ndarray, ys: np.ndarray, zs: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    if len(xs) >= 4 and np.ptp(xs) > 0 and np.ptp(ys) > 0:
        from scipy.interpolate import griddata

        lin = griddata((xs, ys), zs, (gx, gy), method="linear")
        near = griddata((xs, ys), zs, (gx, gy), method="nearest")
        return np.where(np.isfinite(lin), lin, near)
    return np.full(gx.shape, float(np.mean(zs)))


def timings_plot(path: Path, fields: Sequence[FieldRecord], by_step: Mapping[str, float]) -> Path:
    """Wall time by step and the distribution of stage time per field."""
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2), dpi=100)
    try:
        steps = list(by_step)[:12]
        a.barh(steps[::-1], [by_step[s] for s in steps][::-1], color="#4c72b0")
        a.set_xlabel("wall time (s), whole scan")
        a.tick_params(labelsize=7)
        st = [f.stage_time_s for f in fields]
        if st:
            b.hist(st, bins=40, color="#55a868")
            b.axvline(float(np.median(st)), color="k", lw=1, ls="--", label=f"median {np.median(st):.2f} s")
            b.legend(fontsize=7, loc="upper right")  # "best" warns when slow (a loaded machine)
        b.set_xlabel("stage (device) time per field (s)")
        b.set_ylabel("fields")
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


def _score(key: str, summary: Mapping[str, Any]) -> str:
    """A score as the report shows it: a share as a percentage, None as a dash.

    Per-structure scores on a slide without structures in the scanned area say so (recall reads 1 there).
    """
    v = summary.get(key)
    if key in PER_STRUCTURE_KEYS and summary.get("structures_truth") == 0:
        return "no structures on the slide"
    if v is None:
        return "—"
    if key in SHARE_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool):
        return f"{100 * v:.0f} %"
    return _fmt(v)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def _scan_meta(scan_json: Path) -> dict[str, Any] | None:
    """``scan.json`` as a mapping, or None where it cannot be read."""
    try:
        meta = json.loads(scan_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _flat_field_line(scan_json: Path) -> str:
    """What the scan decided about the light's flat field, in a line (``scan.json``'s ``flat_field``)."""
    meta = _scan_meta(scan_json)
    if meta is None:
        return "unknown (scan.json unreadable)"
    flat = meta.get("flat_field")
    if not isinstance(flat, dict):
        return "off (imaging.flat_field: false)"
    light = (f"the light {flat['light_p2']:.2f}-{flat['light_p98']:.2f} of its median over {flat['frames']} frames"
             if all(k in flat for k in ("light_p2", "light_p98", "frames")) else "")
    return "; ".join(p for p in (str(flat.get("note", "")), light) if p)


def _exposure_line(scan_json: Path) -> str:
    """What the scan did with the camera's exposure, in a line (``scan.json``'s ``exposure``)."""
    meta = _scan_meta(scan_json)
    if meta is None:
        return "unknown (scan.json unreadable)"
    exposure = meta.get("exposure")
    if not isinstance(exposure, dict):
        return "not checked (imaging.auto_exposure: false)"
    return str(exposure.get("note", ""))


#: How the report names each field focus source (``FieldRecord.focus_source``).
FOCUS_SOURCE_LABELS = {"map": "from the focus map", "autofocus": "from their own search",
                       "autofocus-unsure": "at a guess after a search that found no focus",
                       "guess": "at a guess"}


def _focus_sources_line(counts: dict[str, int]) -> str:
    """``fields_by_focus`` as the report's line: where each field's z came from, most first."""
    return ", ".join(f"{n} {FOCUS_SOURCE_LABELS.get(src, src)}" for src, n in counts.items())


def _calibration_line(calibration: object) -> str:
    """The scan's pixel -> µm map, the camera's turn and the stage's backlash, in a line (the config snapshot's)."""
    if not isinstance(calibration, Mapping):
        return "unknown (no calibration in the scan's record)"
    try:
        m = np.asarray(calibration["matrix"], dtype=np.float64).reshape(2, 2)
        residual = float(calibration.get("residual_um", 0.0))
        backlash = calibration.get("backlash_um")
        slack = None if backlash is None else (float(backlash[0]), float(backlash[1]))
    except (KeyError, TypeError, ValueError, IndexError):
        return "unknown (the scan's calibration record is damaged)"
    det = float(np.linalg.det(m))
    flip = 1.0 if det > 0 else -1.0  # a mirrored frame's rows run along its -u axis
    turn = float(np.degrees(np.arctan2(flip * m[1, 0], flip * m[0, 0])))
    slack_text = "not read" if slack is None else f"{slack[0]:.1f} µm in x, {slack[1]:.1f} µm in y"
    return "; ".join([f"{abs(det) ** 0.5:.4f} µm per pixel, moves fitted to {residual:.2f} µm",
                      f"camera turned {turn:.1f}° from the stage's axes{', mirrored' if det < 0 else ''}",
                      f"stage backlash {slack_text}"])


def _unsure(o: ObjectRecord) -> str:
    """A mark after a structure's focus z where its focus search could not be trusted."""
    if not o.focus_unsure:
        return ""
    why = "its focus search could not be trusted: z, stack and height are estimates"
    return f" <span class='unsure' title='{why}'>(unsure)</span>"


def _pieces(extra: Mapping[str, Any]) -> str:
    """Links to the crops of the records merged into this one (a print recorded from two of its pieces)."""
    links = [f" · <a href='{html.escape(str(p['crop_path']))}'>piece {int(p['id'])}</a>"
             for p in extra.get("pieces", []) if p.get("crop_path")]
    return "".join(links)


def _link(path: str | None, text: str) -> str:
    """A link to a file of the scan folder, or nothing where the record names none."""
    return f"<a href='{html.escape(path)}'>{text}</a>" if path else ""


def _structure_row(o: ObjectRecord, rmse: float | None) -> str:
    """A structure's row of the report's table: its id, reading, thumbnails and links to all its files."""
    extra = o.extra or {}
    files = " · ".join(x for x in (_link(o.stack_path, "stack"), _link(o.height_map_path, "height map"),
                                   _link(o.frame_path, "frame")) if x)
    return ("<tr>"
            f"<td>{o.id}</td><td><span class='sw' style='background:{TYPE_COLOURS.get(o.cls, '#000')}'></span>"
            f"{html.escape(o.cls)}</td><td>{o.confidence:.2f}</td>"
            f"<td>{o.x_um:.1f}</td><td>{o.y_um:.1f}</td><td>{(o.z_um or 0):.1f}{_unsure(o)}</td>"
            f"<td>{o.width_um:.0f} × {o.height_um:.0f}</td><td>{extra.get('max_height_um', 0):.1f}</td>"
            f"<td>{'' if rmse is None else f'{rmse:.2f}'}</td>"
            f"<td><a href='{o.crop_path}'><img class='thumb' src='{o.crop_path}' alt='crop {o.id}'></a></td>"
            f"<td><a href='{o.plot_path}'><img class='plot' src='{o.plot_path}' alt='3-D view {o.id}'></a></td>"
            f"<td>{files}{_pieces(extra)}</td></tr>")


def write_report(root: Path, scan: ScanRecord, fields: Sequence[FieldRecord], objects: Sequence[ObjectRecord],
                 summary: Mapping[str, Any], fov_um: tuple[float, float], area_um: Sequence[float],
                 height_rmse: Mapping[int, float] | None = None) -> Path:
    """Write the plots and ``report.html`` into the scan folder ``root``; return the report's path."""
    root = Path(root)
    missed = summary.get("missed", []) or []
    slide_map(root / "slide_map.png", fields, objects, fov_um, area_um, missed)
    focus_heatmap(root / "focus_map.png", fields, area_um)
    timings_plot(root / "timings.png", fields, summary.get("wall_time_s_by_step", {}))
    structures = [o for o in objects if o.kind == "structure"]
    rows = [_structure_row(o, (height_rmse or {}).get(o.id)) for o in structures]
    scores = [k for k in SCORE_KEYS if k in summary]
    score_html = ""
    if scores:
        score_html = ("<h2>Against the virtual slide's ground truth</h2><table class='kv'>"
                      + "".join(f"<tr><th title='summary.json: {k}'>{html.escape(SCORE_LABELS[k])}</th>"
                                f"<td>{_score(k, summary)}</td></tr>" for k in scores)
                      + "".join(f"<tr><th>height RMSE, {html.escape(t)} (µm)</th><td>{v:.2f}</td></tr>"
                                for t, v in (summary.get("height_rmse_um_by_type") or {}).items())
                      + "</table>")
    # every value is escaped once, by _fmt: escaped here too, a warning's "stage's" read "stage&amp;#x27;s"
    info = [("scan", f"{scan.id} · {scan.name}"), ("status", f"{scan.status} ({scan.finish_reason})"),
            *((("camera", summary["camera"]),) if summary.get("camera") else ()),
            ("fields", f"{summary.get('fields_done')} of {summary.get('fields_planned')}"),
            *((("fields by focus", _focus_sources_line(summary["fields_by_focus"])),)
              if summary.get("fields_by_focus") else ()),
            ("structures", summary.get("structures_recorded")), ("debris", summary.get("debris_recorded")),
            ("stage time", f"{summary.get('stage_time_s_total', 0):.0f} s (median "
                           f"{summary.get('stage_time_s_per_field_median') or 0:.2f} s per field)"),
            ("computer time in the fields", f"{summary.get('wall_time_s_total', 0):.0f} s"),
            ("calibration", _calibration_line((scan.config or {}).get("calibration"))),
            ("exposure", _exposure_line(root / "scan.json")),
            ("flat field", _flat_field_line(root / "scan.json")),
            *(("warning", w) for w in summary.get("warnings") or ())]
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>tppscan report · scan {scan.id}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; font-size: 13px; }}
td, th {{ border: 1px solid #ddd; padding: 3px 6px; text-align: left; vertical-align: middle; }}
.kv th {{ background: #f4f4f4; }}
.thumb {{ max-width: 110px; max-height: 110px; }}
.plot {{ max-width: 220px; }}
.sw {{ display: inline-block; width: 10px; height: 10px; margin-right: 4px; }}
.figs img {{ max-width: 48%; margin: 0.5%; border: 1px solid #eee; }}
.note {{ font-size: 13px; max-width: 60em; }}
</style></head><body>
<h1>tppscan report · {html.escape(scan.name)}</h1>
<table class="kv">{''.join(f'<tr><th>{k}</th><td>{_fmt(v)}</td></tr>' for k, v in info)}</table>
{score_html}
<h2>Slide map and focus map</h2>
<div class="figs"><img src="slide_map.png" alt="slide map"><img src="focus_map.png" alt="focus map"></div>
<h2>Structures ({len(structures)})</h2>
<p class="note">{html.escape(HEIGHT_CAVEAT)} The id is the one <code>tppscan results show</code> lists;
<a href="structures.csv">structures.csv</a> maps each id to its files.</p>
<table><tr><th>id</th><th>type</th><th>type score</th><th>x µm</th><th>y µm</th><th>focus z µm</th>
<th>size µm</th><th>height µm</th><th>height RMSE µm (virtual slide only)</th><th>crop</th><th>3-D view</th>
<th>files</th></tr>
{''.join(rows)}</table>
<h2>Timings</h2>
<div class="figs"><img src="timings.png" alt="timings"></div>
<p>Exports: <a href="export.csv">export.csv</a> · <a href="export_coco.json">export_coco.json</a> ·
<a href="structures.csv">structures.csv</a> · <a href="summary.json">summary.json</a></p>
</body></html>
"""
    path = root / "report.html"
    write_durably(path, page.encode("utf-8"))
    return path
