"""A scan's folder: frames, crops, focus stacks (OME-TIFF), height maps and their 3-D plots.

Layout under the scan folder (paths stored in the database are relative to it)::

    frames/obj_00012.png       the frame a structure was centred in (annotated in the exports)
    crops/obj_00012.png        the structure (or debris) with a margin
    stacks/obj_00012.ome.tif   the focus stack of the crop, Z Y X, each plane's stage x, y, z in the OME metadata,
                               the image named after the structure's type and file ("pentagon obj_00012")
    heights/obj_00012.npz      height map, µm above the glass, NaN outside the structure (heights_um), and its
                               pixel size (um_per_px); scans before session 48 wrote the map alone (.npy)
    plots/obj_00012_3d.png     matplotlib 3-D surface of the height map, titled like the stack

``structures.csv`` (:func:`appliance.results.report.structures_csv`) maps each structure's id to its files.

Every writer writes a ``.part`` file and renames it into place, so a file under its final name is always
whole (a process killed mid-write leaves only a ``.part``, which the next write of that name replaces), and
returns the path it wrote; the runner hands them to ``ResultStore.commit_field``, which ``fsync``-s them and
their folders before the field's row is committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from appliance.results.store import fsync_file, write_durably

SUBDIRS = ("frames", "crops", "stacks", "heights", "plots")


class ScanFolder:
    """Writers for one scan's files.

    Parameters
    ----------
    root : Path
        The scan folder (created with its subfolders by :meth:`create`).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def create(self) -> ScanFolder:
        """Make the folder and its subfolders.

        Raises
        ------
        OSError
            ``root`` exists and is not a folder, or cannot be created.
        """
        if self.root.exists() and not self.root.is_dir():
            raise OSError(f"--out {self.root} exists and is not a directory")
        for sub in SUBDIRS:
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        return self

    def rel(self, path: Path) -> str:
        """``path`` relative to the scan folder (as stored in the database)."""
        return path.relative_to(self.root).as_posix()

    def png(self, sub: str, name: str, image: np.ndarray) -> Path:
        """Write a PNG durably."""
        ok, buf = cv2.imencode(".png", image)
        if not ok:
            raise OSError(f"could not encode {name}.png")
        path = self.root / sub / f"{name}.png"
        write_durably(path, buf.tobytes())
        return path

    def stack(self, name: str, planes: np.ndarray, z_um: Sequence[float], um_per_px: float,
              xy_um: tuple[float, float] | None = None, image_name: str | None = None) -> Path:
        """Write a focus stack as OME-TIFF (ZYX): each plane's stage z (and x, y) in its OME ``Plane``.

        ``image_name`` names the OME image (the structure's type and file name, as its plot is titled).
        """
        from appliance.focus.stack import write_ome_stack

        path = self.root / "stacks" / f"{name}.ome.tif"
        tmp = _part(path)
        write_ome_stack(tmp, planes, z_um, um_per_px, xy_um, image_name)
        _replace_durably(tmp, path)
        return path

    def heights(self, name: str, heights: np.ndarray, um_per_px: float | None = None) -> Path:
        """Write a height map: ``.npz`` with ``heights_um`` and ``um_per_px``; ``.npy`` (heights alone) without a scale.

        A height map without its pixel size cannot be measured across (:func:`read_heights` reads both).
        """
        if um_per_px is None:
            path = self.root / "heights" / f"{name}.npy"
            with open(tmp := _part(path), "wb") as f:
                np.save(f, heights.astype(np.float32))
        else:
            path = self.root / "heights" / f"{name}.npz"
            with open(tmp := _part(path), "wb") as f:
                np.savez(f, heights_um=heights.astype(np.float32), um_per_px=np.float64(um_per_px))
        _replace_durably(tmp, path)
        return path

    def plot_3d(self, name: str, heights: np.ndarray, um_per_px: float, title: str) -> Path:
        """Render a 3-D surface of a height map (matplotlib, Agg) as PNG."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        path = self.root / "plots" / f"{name}_3d.png"
        h = np.nan_to_num(heights, nan=0.0)
        step = max(1, int(max(h.shape) // 80))  # at most ~80 x 80 facets: quick, and fine enough to see
        h = h[::step, ::step]
        yy, xx = np.mgrid[0:h.shape[0], 0:h.shape[1]] * um_per_px * step
        fig = plt.figure(figsize=(3.2, 2.6), dpi=90)
        try:
            ax = fig.add_subplot(projection="3d")
            ax.plot_surface(xx, yy, h, cmap="viridis", linewidth=0, antialiased=False, rstride=1, cstride=1)
            ax.set_xlabel("x µm", fontsize=7)
            ax.set_ylabel("y µm", fontsize=7)
            ax.set_zlabel("h µm", fontsize=7)
            ax.tick_params(labelsize=6)
            ax.set_title(title, fontsize=8)
            ax.invert_yaxis()
            fig.savefig(tmp := _part(path), format="png")
        finally:
            plt.close(fig)
        _replace_durably(tmp, path)
        return path


def read_heights(path: Path) -> tuple[np.ndarray, float | None]:
    """A height map (µm) and its pixel size (µm; None for an older scan's ``.npy``, which carries none)."""
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as f:
            return np.asarray(f["heights_um"]), float(f["um_per_px"])
    return np.load(path, allow_pickle=False), None


def _replace_durably(tmp: Path, path: Path) -> None:
    """Rename a written ``.part`` into place, ``fsync``-ed first: a file renamed after the scan's rows stays whole."""
    fsync_file(tmp)
    tmp.replace(path)


def _part(path: Path) -> Path:
    """Where ``path`` is written before it is renamed into place (a file under its final name is whole)."""
    return path.with_name(path.name + ".part")
