"""The reader's training rows: classical searches on virtual slides, each search's features and its miss.

A row is one structure's search as the bench runs it (``appliance.focus.bench``: a start up to ±10 µm from
the true focus, the detection's box as the roi, the type given so a lens's pairs are read as the autofocus
reads them): the feature vector of :func:`appliance.focus.reader.reading_features` about the search's
reading, and the target, the true focus minus the stage's true z at the reading (µm). Only readings the
search called ``ok`` are kept; the rest are failures the reader never sees.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from appliance.focus.bench import FieldRun, run_bench
from appliance.focus.reader import N_FEATURES, N_FRAME_FEATURES, crops_of, grid_vector, search_frames
from appliance.focus.scores import Rect
from models.workers import ordered_results

#: Structures on one default virtual slide: a chunk of work is a run of whole slides.
FIELDS_PER_SLIDE = 20
#: Frames kept per search (a search that took more is left out: the walk stops at 8 on nearly every field).
MAX_FRAMES = 24


class _Recorder:
    """A reader that moves nothing: it keeps the features of each reading it is shown."""

    def __init__(self) -> None:
        #: the last reading's distinct z less the reading, and their frame features
        self.last: tuple[np.ndarray, np.ndarray] | None = None

    def fits(self, um_per_px: float, dof_um: float) -> bool:
        return True

    def correction_um(self, z_um: Sequence[float], images: Sequence[np.ndarray], rect: Rect | None,
                      reading_um: float) -> float | None:
        frames = None if rect is None else search_frames(z_um, crops_of(images, rect))
        if frames is not None and len(frames[0]) <= MAX_FRAMES:
            self.last = (frames[0] - reading_um, frames[1])
        return None


class _SlidesDone(Exception):
    """A chunk's last slide is done (the bench went on to the next one)."""


@dataclass(frozen=True)
class Rows:
    """Training rows: each search's frames, its miss (µm), type, slide seed, focus drive.

    ``z`` [N, MAX_FRAMES] holds each search's distinct frame z less its reading (NaN past its last frame),
    ``f`` [N, MAX_FRAMES, N_FRAME_FEATURES] their frame features, ``y`` the true focus less the reading.
    """

    z: np.ndarray
    f: np.ndarray
    y: np.ndarray
    cls: np.ndarray
    seed: np.ndarray
    focus: np.ndarray

    FIELDS = ("z", "f", "y", "cls", "seed", "focus")

    @staticmethod
    def concat(parts: Sequence[Rows]) -> Rows:
        """One set of rows from several."""
        if not parts:
            return Rows(np.zeros((0, MAX_FRAMES)), np.zeros((0, MAX_FRAMES, N_FRAME_FEATURES)), np.zeros(0),
                        np.zeros(0, "<U16"), np.zeros(0, int), np.zeros(0, "<U8"))
        return Rows(*(np.concatenate([getattr(p, k) for p in parts]) for k in Rows.FIELDS))

    def __len__(self) -> int:
        return len(self.y)

    def vectors(self, shift_um: np.ndarray | None = None) -> np.ndarray:
        """The network's input per row, read about the reading plus ``shift_um`` (µm per row; None: 0)."""
        out = np.zeros((len(self), N_FEATURES), dtype=np.float32)
        for i in range(len(self)):
            n = int(np.sum(np.isfinite(self.z[i])))
            s = 0.0 if shift_um is None else float(shift_um[i])
            out[i] = grid_vector(self.z[i, :n], self.f[i, :n], s)
        return out


def slides_rows(first_seed: int, n_slides: int, focus: str) -> Rows:
    """Every structure of slides ``first_seed`` .. ``first_seed + n_slides - 1``, searched with ``focus``."""
    rec = _Recorder()
    zs: list[np.ndarray] = []
    fs: list[np.ndarray] = []
    ys: list[float] = []
    meta: list[tuple[str, int]] = []

    def keep(run: FieldRun) -> None:
        if run.seed >= first_seed + n_slides:
            raise _SlidesDone
        if rec.last is not None and run.ok and math.isfinite(run.dz_um):
            z, f = rec.last
            zs.append(np.pad(z, (0, MAX_FRAMES - len(z)), constant_values=np.nan))
            fs.append(np.pad(f, ((0, MAX_FRAMES - len(z)), (0, 0))))
            ys.append(-run.dz_um)
            meta.append((run.cls, run.seed))
        rec.last = None

    try:
        run_bench(first_seed, 10 ** 9, "classical", focus, reader=rec, on_field=keep)
    except _SlidesDone:
        pass
    z = np.array(zs, dtype=np.float64).reshape(-1, MAX_FRAMES)
    f = np.array(fs, dtype=np.float64).reshape(-1, MAX_FRAMES, N_FRAME_FEATURES)
    return Rows(z, f, np.array(ys), np.array([m[0] for m in meta], dtype="<U16"),
                np.array([m[1] for m in meta], dtype=int), np.full(len(ys), focus, dtype="<U8"))


def gather(first_seed: int, fields: int, drives: Sequence[str], jobs: int = 2, chunk_slides: int = 5,
           progress: bool = False) -> Rows:
    """About ``fields`` searches per drive, drive ``i`` on its own slides (after drive ``i - 1``'s), in parallel.

    Returns the rows of every drive together.
    """
    n_slides = max(1, math.ceil(fields / FIELDS_PER_SLIDE))
    tasks = []
    for i, focus in enumerate(drives):
        base = first_seed + i * n_slides
        for a in range(0, n_slides, chunk_slides):
            tasks.append((base + a, min(chunk_slides, n_slides - a), focus))
    parts: list[Rows] = []
    for r in ordered_results(slides_rows, tasks, jobs, [__name__]):
        parts.append(r)
        _say(progress, len(parts), len(tasks))
    return Rows.concat(parts)


def _say(on: bool, done: int, total: int) -> None:
    if on:
        print(f"  searched {done}/{total} chunks of slides", flush=True)
