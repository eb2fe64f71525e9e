"""Bright-field optics of the virtual microscope: a phase object imaged through focus.

The model (``docs/simulator.md`` has the figures):

- **Thin element.** An object's height map ``h`` (µm above the slide surface) becomes a complex
  transmittance ``t = exp(-absorption h) exp(i 2π/λ Δn h)`` at the slide model's pitch (0.25 µm), fine
  enough that steep walls become strong local phase gradients that scatter light outside the pupil. The
  whole object is treated as one thin element at its focus reference plane (the slide's ``focus_z_um``);
  no slicing (the multi-slice cost is one run per illumination angle per slice, too slow for online use).
- **Angular spectrum.** The field is propagated by ``dz`` (stage z minus the object's focus z; positive:
  focal plane above the object) with the exact transfer function ``exp(i 2π dz sqrt(1/λ² - |f|²))``.
- **Pupil.** The objective passes spatial frequencies ``|f| <= NA/λ`` only.
- **Partially coherent illumination** (Abbe's method): an incoherent sum over a few tilted plane waves
  inside the condenser aperture (``sigma * NA``). A tilt ``s`` shifts the object spectrum, so each source
  point is the same object spectrum seen through the pupil and propagator shifted by ``s``.

The result is an intensity patch normalised so unobstructed glass is 1.0; the sensor multiplies it onto
the illumination background. Only the band the pupil passes is ever computed: the fine spectrum is cropped to
a coarser output grid (``out_pitch_um``) whose Nyquist frequency still holds the intensity's band
``2 (1 + sigma) NA/λ``, so the crop loses nothing that reaches the camera.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np
import scipy.fft

from appliance.sim._checks import check_number

# Largest sine of a ray angle kept by the propagator: evanescent waves are dropped by the pupil anyway.
_MAX_SINE = 0.98


@dataclass(frozen=True)
class OpticsParams:
    """The objective and condenser.

    Parameters
    ----------
    magnification : float
        Objective (times tube lens) magnification onto the sensor, 1..100. Default 10.
    na : float
        Objective numerical aperture, 0.01..0.95 (a dry objective). Default 0.25.
    wavelength_um : float
        Mean illumination wavelength, 0.3..1.2 µm. Default 0.55 (green of a halogen lamp through a filter).
    condenser_sigma : float
        Condenser NA over objective NA (partial coherence), 0.05..1. Default 0.5.
    n_source_points : int
        Plane waves summed for the condenser: one on axis plus a ring, 1..25. Default 7.
    slice_um : float or None
        None (default): each object is one thin phase screen. A number (0.5..50 µm): objects taller than that are
        cut into slices of at most this thickness and the field is propagated through them (multi-slice, one run
        per condenser point; about 10-50x the cost of a thin object, cached per object). A smooth 0.4 um bump
        in two slices matches the thin screen to 1e-3; a sharp-edged disc differs by up to 0.07 at its edge
        (evanescent light is dropped between slices).

    Raises
    ------
    ValueError
        A parameter out of range; the message names it, the value and the allowed range.
    """

    magnification: float = 10.0
    na: float = 0.25
    wavelength_um: float = 0.55
    condenser_sigma: float = 0.5
    n_source_points: int = 7
    slice_um: float | None = None

    def __post_init__(self) -> None:
        check_number("magnification", self.magnification, 1.0, 100.0, positive=True)
        check_number("na", self.na, 0.01, 0.95, positive=True)
        check_number("wavelength_um", self.wavelength_um, 0.3, 1.2, positive=True)
        check_number("condenser_sigma", self.condenser_sigma, 0.05, 1.0, positive=True)
        n = self.n_source_points
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= 25:
            raise ValueError(f"n_source_points must be an integer in [1, 25], got {n!r}")
        if self.slice_um is not None:
            check_number("slice_um", self.slice_um, 0.5, 50.0, positive=True)

    @property
    def cutoff_per_um(self) -> float:
        """Pupil cut-off frequency ``NA/λ``, cycles per µm."""
        return self.na / self.wavelength_um

    def depth_of_field_um(self, pixel_at_sample_um: float = 0.0) -> float:
        """Depth of field, µm: ``λ/NA² + pixel/(M NA)`` (wave-optical plus detector term, Inoué's formula).

        Parameters
        ----------
        pixel_at_sample_um : float
            Camera pixel size divided by the magnification, µm (0 for the optical term only). Here it is the
            sensor pixel projected onto the sample, so the detector term is ``pixel_at_sample / NA``.
        """
        return depth_of_field_um(self.na, pixel_at_sample_um, self.wavelength_um)

    def source_points(self) -> np.ndarray:
        """Illumination tilts as spatial frequencies, shape (K, 2) of (fx, fy), cycles per µm.

        One point on axis and ``K - 1`` on a ring at 0.7 of the condenser radius: equal weights then
        approximate a uniformly filled condenser disc (the ring at ``sqrt(1/2)`` splits the disc's area in two).
        """
        k = int(self.n_source_points)
        pts = [(0.0, 0.0)]
        r = 0.7 * self.condenser_sigma * self.cutoff_per_um
        for i in range(k - 1):
            a = 2.0 * math.pi * i / (k - 1)
            pts.append((r * math.cos(a), r * math.sin(a)))
        return np.asarray(pts, dtype=np.float64)

    def out_pitch_um(self) -> float:
        """Largest sampling pitch that holds the image intensity's band without aliasing, µm."""
        band = 2.0 * (1.0 + self.condenser_sigma) * self.cutoff_per_um
        return 0.5 / band * 0.95


def depth_of_field_um(na: float, pixel_at_sample_um: float = 0.0, wavelength_um: float = 0.55) -> float:
    """Depth of field of any objective, µm: ``λ/NA² + pixel/NA`` (Inoué's formula).

    Unchecked, unlike :class:`OpticsParams`, so a real immersion objective (NA > 1) may use it too.
    """
    return wavelength_um / na**2 + pixel_at_sample_um / na


@dataclass(frozen=True)
class ObjectSpectrum:
    """An object's transmittance spectrum cropped to the output grid, and where that grid lies on the slide.

    Attributes
    ----------
    spectrum : (My, Mx) or (K, My, Mx) ndarray of complex64
        The cropped FFT of the transmittance, scaled so an inverse FFT of size (My, Mx) gives the field; one per
        condenser point (K of them) when the object was sliced.
    origin_um : (float, float)
        Slide x, y of output sample (row 0, column 0), µm.
    pitch_um : (float, float)
        Output grid pitch in x and y, µm.
    """

    spectrum: np.ndarray
    origin_um: tuple[float, float]
    pitch_um: tuple[float, float]


def object_spectrum(height_um: np.ndarray, absorption: np.ndarray, index_delta: float, pitch_um: float,
                    center_um: tuple[float, float], optics: OpticsParams, pad_um: float,
                    slices: list[np.ndarray] | None = None, slice_step_um: float = 0.0,
                    ref_height_um: float = 0.0, absorption_scale: float = 1.0) -> ObjectSpectrum:
    """The transmittance of one object, Fourier transformed and cropped to the band the pupil can pass.

    Parameters
    ----------
    height_um : (h, w) ndarray of float32
        Material height above the slide surface, µm; centred on ``center_um``.
    absorption : (h, w) ndarray of float32
        Amplitude absorption per µm of material (>= 0).
    index_delta : float
        Refractive index step between the material and its surroundings.
    pitch_um : float
        Sampling of the maps, µm.
    center_um : (float, float)
        Slide x, y of the maps' centre, µm.
    optics : OpticsParams
        The objective and condenser.
    pad_um : float
        Clear glass added around the maps so defocus blur does not wrap around, µm.
    slices : list of (h, w) ndarray of float32, optional
        Material thickness per slice, bottom to top, each ``slice_step_um`` thick (they sum to ``height_um``).
        Given, the field is propagated through them (multi-slice) once per condenser point.
    slice_step_um : float
        Thickness of each slice, µm.
    ref_height_um : float
        Height above the surface of the object's focus reference plane (where ``dz = 0``), µm; with slices the
        exit field is propagated back to it.
    absorption_scale : float
        Factor on ``absorption`` at this wavelength (maps are stated at 0.55 µm; a print's scatter loss grows as
        λ⁻², see :func:`appliance.sim.polymer.loss_scale`).

    Returns
    -------
    ObjectSpectrum
    """
    if height_um.shape != absorption.shape or height_um.ndim != 2:
        raise ValueError(f"height and absorption maps must be 2-D of one shape, got {height_um.shape} "
                         f"and {absorption.shape}")
    h, w = height_um.shape
    p = int(math.ceil(pad_um / pitch_um))
    ny = scipy.fft.next_fast_len(h + 2 * p)
    nx = scipy.fft.next_fast_len(w + 2 * p)
    k0 = 2.0 * math.pi / optics.wavelength_um
    oy, ox = (ny - h) // 2, (nx - w) // 2
    aa = absorption.astype(np.float32, copy=False)
    if absorption_scale != 1.0:
        aa = aa * np.float32(absorption_scale)

    def screen(thickness: np.ndarray) -> np.ndarray:
        th = thickness.astype(np.float32, copy=False)
        t = np.ones((ny, nx), dtype=np.complex64)
        t[oy:oy + h, ox:ox + w] = np.exp(-aa * th + 1j * np.float32(k0 * index_delta) * th)
        return t

    if slices is None or len(slices) < 2:
        spec = scipy.fft.fft2(screen(height_um), workers=1)
    else:
        spec = _multislice(list(map(screen, slices)), pitch_um, slice_step_um,
                           ref_height_um - (len(slices) - 0.5) * slice_step_um, optics)
    target = optics.out_pitch_um()
    my = min(ny, scipy.fft.next_fast_len(int(math.ceil(ny * pitch_um / target))))
    mx = min(nx, scipy.fft.next_fast_len(int(math.ceil(nx * pitch_um / target))))
    ky = np.fft.fftfreq(my, 1.0 / my).astype(np.int64) % ny
    kx = np.fft.fftfreq(mx, 1.0 / mx).astype(np.int64) % nx
    crop = spec[..., ky[:, None], kx[None, :]] * np.float32((my * mx) / (ny * nx))
    # Fine sample (row i, col j) lies at slide x = cx + (j - ox - (w-1)/2) * pitch; the output grid spans the
    # same extent with my x mx samples, so it starts at the same place.
    x0 = center_um[0] - (ox + (w - 1) / 2.0) * pitch_um
    y0 = center_um[1] - (oy + (h - 1) / 2.0) * pitch_um
    return ObjectSpectrum(spectrum=crop.astype(np.complex64), origin_um=(x0, y0),
                          pitch_um=(nx * pitch_um / mx, ny * pitch_um / my))


def _tilted_propagator(shape: tuple[int, int], pitch_um: float, s: np.ndarray, dist_um: float,
                       optics: OpticsParams) -> np.ndarray:
    """Angular-spectrum transfer function over ``dist_um`` for a field whose tilt ``s`` was factored out."""
    fy = np.fft.fftfreq(shape[0], pitch_um)[:, None] + s[1]
    fx = np.fft.fftfreq(shape[1], pitch_um)[None, :] + s[0]
    inv_lam2 = 1.0 / optics.wavelength_um**2
    r2 = fx * fx + fy * fy
    prop = r2 < inv_lam2  # the rest is evanescent: gone within a wavelength
    kz = np.sqrt(np.where(prop, inv_lam2 - r2, 0.0)) - math.sqrt(inv_lam2 - float(s @ s))
    return np.where(prop, np.exp(1j * 2.0 * math.pi * dist_um * kz), 0.0).astype(np.complex64)


def _multislice(screens: list[np.ndarray], pitch_um: float, step_um: float, back_um: float,
                optics: OpticsParams) -> np.ndarray:
    """Exit-field spectra, one per condenser point, of a field sent up through thin screens ``step_um`` apart.

    Each screen is the transmittance of one slice, applied at the slice's mid-plane; between slices the field
    travels ``step_um`` (through air: the material's extra phase is in the screens). The field under tilt ``s``
    is written as carrier times envelope, so each point's propagator is the shifted ``H(f + s)``. At the end the
    exit field is propagated by ``back_um`` (negative: back down) to the reference plane.
    """
    shape = screens[0].shape
    out = np.empty((optics.n_source_points, *shape), dtype=np.complex64)
    for i, s in enumerate(optics.source_points()):
        step = _tilted_propagator(shape, pitch_um, s, step_um, optics)
        v = screens[0].copy()
        for t in screens[1:]:
            v = scipy.fft.ifft2(scipy.fft.fft2(v, workers=1) * step, workers=1)
            v *= t
        out[i] = scipy.fft.fft2(v, workers=1) * _tilted_propagator(shape, pitch_um, s, back_um, optics)
    return out


def image_intensity(obj: ObjectSpectrum, dz_um: float, optics: OpticsParams) -> np.ndarray:
    """The bright-field image of an object at defocus ``dz_um``, normalised so clear glass is 1.0.

    Parameters
    ----------
    obj : ObjectSpectrum
        From :func:`object_spectrum`.
    dz_um : float
        Focal plane minus the object's reference plane, µm (positive: focused above the object).
    optics : OpticsParams
        The objective and condenser.

    Returns
    -------
    (My, Mx) ndarray of float32
        Intensity on the output grid of ``obj``.
    """
    my, mx = obj.spectrum.shape[-2:]
    fields = np.zeros((optics.n_source_points, my * mx), dtype=np.complex64)
    for i, (idx, kz) in enumerate(_pupil_taps((my, mx), obj.pitch_um, optics)):
        spec = obj.spectrum if obj.spectrum.ndim == 2 else obj.spectrum[i]
        fields[i, idx] = spec.reshape(-1)[idx] * np.exp(1j * (2.0 * math.pi * dz_um) * kz)
    fields = fields.reshape(optics.n_source_points, my, mx)
    out = scipy.fft.ifft2(fields, axes=(-2, -1), workers=1)
    inten: np.ndarray = np.ascontiguousarray((out.real * out.real + out.imag * out.imag).mean(axis=0),
                                             dtype=np.float32)
    sigma_um = source_gap_blur_um(dz_um, optics)
    if sigma_um > 0.1 * min(obj.pitch_um):
        # Fill the gaps between the sampled condenser points (see source_gap_blur_um).
        inten = cv2.GaussianBlur(inten, (0, 0), sigmaX=sigma_um / obj.pitch_um[0], sigmaY=sigma_um / obj.pitch_um[1],
                                 borderType=cv2.BORDER_REPLICATE)
    return inten


@functools.lru_cache(maxsize=512)
def _pupil_taps(shape: tuple[int, int], pitch_um: tuple[float, float],
                optics: OpticsParams) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Per condenser point: flat indices of the spectrum samples the pupil passes, and their ``kz`` (cycles/µm).

    ``kz`` is relative to the tilted carrier, so clear glass keeps phase 0 at every dz. Cached: objects of one size
    share their output grid, and a focus sweep reuses it for every plane.
    """
    my, mx = shape
    fy = np.fft.fftfreq(my, pitch_um[1])[:, None]
    fx = np.fft.fftfreq(mx, pitch_um[0])[None, :]
    lam = optics.wavelength_um
    inv_lam2 = 1.0 / lam**2
    taps = []
    for sx, sy in optics.source_points():
        r2 = ((fx + sx) ** 2 + (fy + sy) ** 2).ravel()
        idx = np.flatnonzero(r2 <= min(optics.cutoff_per_um, _MAX_SINE / lam) ** 2)
        kz = np.sqrt(inv_lam2 - r2[idx]) - math.sqrt(inv_lam2 - (sx * sx + sy * sy))
        idx.setflags(write=False)
        kz.setflags(write=False)
        taps.append((idx, kz))
    return tuple(taps)


def source_gap_blur_um(dz_um: float, optics: OpticsParams) -> float:
    """Gaussian sigma that turns the few sampled condenser points into a continuous condenser disc, µm.

    Away from focus, the image under a tilt ``s`` is nearly the on-axis image shifted by ``λ dz s``; a condenser
    sampled at K points therefore gives K displaced copies (concentric outlines at large ``|dz|``), where a real,
    continuous condenser gives one smooth blur. The sampled points are about ``0.7 sigma NA/λ`` apart, so their
    copies are ``0.7 sigma NA |dz|`` apart; a Gaussian of half that spacing merges them. In focus it is far below a
    pixel, so the pupil effects the points do capture (dark steep walls) are untouched.
    """
    if optics.n_source_points == 1:
        return 0.0
    return 0.35 * optics.condenser_sigma * optics.na * abs(dz_um)
