"""Read a user's image file for the vision chain: any common format, bit depth and page count, as 8-bit frames.

``tppscan detect`` is how a lab tries tppscan on frames from its own microscope, and those frames come as the
microscope software saved them: 8-bit PNG or JPEG from a USB camera, 16-bit TIFF holding 10-, 12- or 14-bit
pixels from a scientific camera (Micro-Manager, Fiji), float TIFF after processing, multi-page TIFF z-stacks.
The models read 8-bit grey, so each file becomes one or more uint8 frames (grey or colour; colour is made grey
later by the detector's ``to_gray``):

- integer pixels keep their meaning: a 12-bit image stored in 16 bits is shifted down by 4, not by 8 (shifting
  every 16-bit image by 8, as a camera of known depth may, turns a 12-bit frame nearly black); the depth is the
  smallest of 8, 10, 12, 14 or 16 bits that holds the image's largest value;
- float pixels within [0, 1] are read as fractions of full scale; any other float range is stretched to 0-255;
- every page of a multi-page TIFF is a frame of its own, named ``file.tif[k]``.

Errors are :class:`ImageFileError` naming the file and what was wrong, never an OpenCV log line or a traceback.
"""

from __future__ import annotations

import stat
from pathlib import Path

import cv2
import numpy as np

from appliance.hardware.camera.convert import bit_depth

__all__ = ["ImageFileError", "bit_depth", "file_problem", "read_frames", "to_uint8"]

TIFF_SUFFIXES = frozenset({".tif", ".tiff"})

#: What a path that is no regular file is, in a user's words (opening a FIFO for reading blocks until a writer).
_NOT_REGULAR = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
                (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


class ImageFileError(OSError):
    """An image file that cannot be read as frames; the message names the file."""


def read_frames(path: Path) -> list[tuple[str, np.ndarray]]:
    """The frames of one image file as ``(name, uint8 array)`` pairs, in page order.

    Raises
    ------
    ImageFileError
        The file is missing, empty, not a decodable image, or holds pixels with no meaning as brightness
        (NaN or infinite values, complex numbers, more than 4 channels).
    """
    problem = file_problem(path)
    if problem:
        raise ImageFileError(f"{path}: {problem}")
    if path.stat().st_size == 0:
        raise ImageFileError(f"{path}: empty file")
    pages = _read_tiff(path) if path.suffix.lower() in TIFF_SUFFIXES else [_read_other(path)]
    if len(pages) == 1:
        return [(path.name, to_uint8(pages[0], path))]
    return [(f"{path.name}[{k}]", to_uint8(p, path)) for k, p in enumerate(pages)]


def file_problem(path: Path) -> str | None:
    """Why ``path`` is not a regular file to read ("no such file", "not a regular file: a named pipe (FIFO)"), or None.

    Only ``stat`` is asked: the path is never opened, so a FIFO cannot block.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _NOT_REGULAR if test(mode)), "another kind of file")
    return f"not a regular file: {kind}"


def to_uint8(image: np.ndarray, source: Path | str = "image") -> np.ndarray:
    """One page as uint8, its bit depth kept (see the module's docstring); colour channels are kept."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[0] in (3, 4) and a.shape[2] not in (1, 3, 4):
        a = np.moveaxis(a, 0, -1)  # planar RGB as some TIFF writers store it
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)):
        raise ImageFileError(f"{source}: pixels of shape {a.shape}; expected (H, W) or (H, W, 1|3|4)")
    if a.dtype == np.bool_:
        return np.where(a, 255, 0).astype(np.uint8)
    if a.dtype.kind in "ui":
        return _integers_to_uint8(a, source)
    if a.dtype.kind == "f":
        return _floats_to_uint8(a, source)
    raise ImageFileError(f"{source}: {a.dtype} pixels; expected integer or real brightness values")


def _integers_to_uint8(a: np.ndarray, source: Path | str) -> np.ndarray:
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if a.size and int(a.min()) < 0:
        return _stretch(a.astype(np.float64))
    if a.size and int(a.max()) >= 1 << 16:
        return _stretch(a.astype(np.float64))  # 32-bit counts: no camera depth to keep
    return (a.astype(np.uint32) >> (bit_depth(a) - 8)).astype(np.uint8)


def _floats_to_uint8(a: np.ndarray, source: Path | str) -> np.ndarray:
    if not np.isfinite(a).all():
        raise ImageFileError(f"{source}: holds NaN or infinite pixel values")
    lo, hi = float(a.min()), float(a.max())
    if lo >= 0.0 and hi <= 1.0:
        return np.round(a * 255.0).astype(np.uint8)
    return _stretch(a.astype(np.float64))


def _stretch(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    if hi <= lo:
        return np.zeros(a.shape, np.uint8)
    return np.round((a - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _read_tiff(path: Path) -> list[np.ndarray]:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            data = series.asarray()
            axes = series.axes
    except Exception as exc:  # noqa: BLE001 - tifffile raises many types for a broken file; all mean "unreadable"
        # Compressions tifffile decodes only with the optional imagecodecs (LZW, as OpenCV writes TIFF) are read
        # by OpenCV instead, page by page (already BGR).
        pages = _read_tiff_opencv(path)
        if pages:
            return pages
        raise ImageFileError(f"{path}: not a readable TIFF ({type(exc).__name__}: {exc})") from None
    pages = _tiff_pages(np.asarray(data), axes, path)
    # TIFF stores colour as RGB(A); the rest of the chain takes OpenCV's BGR(A), as imdecode gives it.
    return [p[..., [2, 1, 0, 3][: p.shape[2]]] if p.ndim == 3 and p.shape[2] in (3, 4) else p for p in pages]


def _tiff_pages(data: np.ndarray, axes: str, path: Path) -> list[np.ndarray]:
    """Split a TIFF series into (Y, X) or (Y, X, samples) pages; every other axis (Z, T, C, pages) is a page."""
    if "Y" not in axes or "X" not in axes:
        raise ImageFileError(f"{path}: TIFF axes {axes!r}; expected images with Y and X axes")
    keep = [axes.index("Y"), axes.index("X")] + ([axes.index("S")] if "S" in axes else [])
    lead = [i for i in range(data.ndim) if i not in keep]
    data = np.transpose(data, lead + keep)  # samples (colour) last, whether stored planar or interleaved
    pages = data.reshape((-1, *data.shape[len(lead):]))
    return [pages[k] for k in range(pages.shape[0])]


def _read_tiff_opencv(path: Path) -> list[np.ndarray]:
    log = cv2.utils.logging
    level = log.getLogLevel()
    log.setLogLevel(log.LOG_LEVEL_SILENT)
    try:
        ok, pages = cv2.imreadmulti(str(path), flags=cv2.IMREAD_UNCHANGED)
    finally:
        log.setLogLevel(level)
    return list(pages) if ok and pages else []


def _read_other(path: Path) -> np.ndarray:
    buf = np.fromfile(str(path), dtype=np.uint8)
    log = cv2.utils.logging
    level = log.getLogLevel()
    log.setLogLevel(log.LOG_LEVEL_SILENT)  # a broken file is reported once, by the error below
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    finally:
        log.setLogLevel(level)
    if img is None:
        raise ImageFileError(f"{path}: not a readable image (PNG, JPEG, TIFF or BMP expected)")
    return img
