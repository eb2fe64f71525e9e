"""Light lost inside a printed polymer structure: why a real TPP print looks dark all over in bright field.

A smooth transparent block would only refract light at its walls; real prints lose light across their whole
footprint to three things, each modelled as an amplitude attenuation of the transmitted field (so the optics keep
their phase model and simply see a darker object):

- **Scatter from the top surface.** The writing laser fills each slice with hatch lines and stacks slices, which
  leaves a hatched, rippled top whose height varies on a scale below the optics' resolution (hatch distance and
  voxel ripple, 0.1-0.5 µm). A random phase screen of RMS phase ``phi = 2 pi dn sigma / lambda`` keeps
  ``exp(-phi^2)`` of the light in the unscattered (specular) beam (the total-integrated-scatter law). At these
  scales the scattered part leaves the objective's pupil: a 0.3 µm hatch diffracts at ``sin = lambda / 0.3 > 1``,
  and a Gaussian texture of 0.3 µm correlation length scatters 83 % of its light beyond NA 0.25 (the fraction
  inside is ``1 - exp(-(pi l NA / lambda)^2)``; 0.5 µm and NA 0.5 would keep 87 % inside, where this model
  overstates the loss). So the intensity loss is ``1 - exp(-phi^2)``, growing as ``lambda^-2``. The outline of
  every slice is traced by a contour line, not hatched, so a band of ``contour_um`` inside the outline of the top
  (and the walls and rounded top edge below it) keeps only ``contour_roughness`` of the top's roughness: the rim
  of a real print is lighter than its top.
- **Internal inhomogeneity.** Cross-link density varies voxel to voxel; the resulting index fluctuations scatter a
  fraction per µm of path (``internal_scatter_per_um`` at 0.55 µm), with about the same ``lambda^-2`` law
  (Rayleigh-Gans scattering by inhomogeneities comparable to the wavelength).
- **Photo-initiator absorption.** Residual initiator and its photoproducts absorb toward the blue
  (``initiator_absorption_per_um`` at 0.45 µm, falling as ``lambda^-6``, the red tail of a UV-blue band).

Each structure type has its own share of top roughness (``TYPE_ROUGHNESS``): a pentagon or split ring is a hatched
solid; a woodpile's rods are single lines with voxel ripple; a microlens is usually printed with fine slicing for
optical quality; a scaffold's walls are contour lines. Each structure draws a further factor in
``ROUGHNESS_SPREAD`` (prints differ).

The three losses are summed into the structure's absorption map (amplitude attenuation per µm of material at the
reference wavelength ``LOSS_REF_UM``) together with one effective wavelength exponent per structure (the
loss-weighted mean of the components' exponents), which the optics use to scale the loss to each colour channel.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from appliance.sim.structures import Shape

# Wavelength at which absorption maps are stated, µm (the optics scale them by (LOSS_REF_UM / lambda)^exponent).
LOSS_REF_UM = 0.55
# Wavelength at which the initiator's absorption is stated, µm, and its spectral exponent.
INITIATOR_REF_UM = 0.45
INITIATOR_EXPONENT = 6.0
# Scatter (surface and internal) follows lambda^-2.
SCATTER_EXPONENT = 2.0
# Fraction of SlideParams.top_roughness_um each structure type carries on its top.
TYPE_ROUGHNESS: dict[str, float] = {"pentagon": 1.0, "split_ring": 1.0, "scaffold": 1.0, "woodpile": 0.6,
                                    "microlens": 0.3}
# Each structure's roughness is further multiplied by a factor drawn uniformly from this range.
ROUGHNESS_SPREAD = (0.7, 1.3)
# Neighbourhood over which a structure's top is found (its local highest surface), µm.
TOP_WINDOW_UM = 8.0


def polymer_loss(shape: Shape, cls: str, index_delta: float, top_roughness_um: float, contour_um: float,
                 contour_roughness: float, internal_scatter_per_um: float, initiator_absorption_per_um: float,
                 rng: np.random.Generator) -> tuple[Shape, float]:
    """A structure with its light losses folded into its absorption map, and the loss's wavelength exponent.

    Parameters
    ----------
    shape : Shape
        The structure as drawn (its absorption map is replaced).
    cls : str
        Structure type, a key of ``TYPE_ROUGHNESS``.
    index_delta : float
        Index step of the polymer against air (sets the surface's phase roughness).
    top_roughness_um : float
        RMS height of the unresolved hatching and ripple on a hatched top, µm.
    contour_um : float
        Width of the smooth contour band along the outline, µm.
    contour_roughness : float
        Fraction of the top's roughness left in that band, 0..1.
    internal_scatter_per_um : float
        Intensity lost to internal scatter per µm of polymer at 0.55 µm.
    initiator_absorption_per_um : float
        Intensity absorbed by the initiator per µm of polymer at 0.45 µm.
    rng : numpy.random.Generator
        Draws this structure's roughness factor.

    Returns
    -------
    shape : Shape
        Same height map; absorption = amplitude attenuation per µm at ``LOSS_REF_UM``; attrs record the loss.
    exponent : float
        ``lambda`` exponent of the loss (scatter 2, initiator 6, weighted by their share of the loss).
    """
    h = shape.height_um
    sigma_top = top_roughness_um * TYPE_ROUGHNESS[cls] * float(rng.uniform(*ROUGHNESS_SPREAD))
    sigma = sigma_top * _contour_profile(h, shape.pitch_um, contour_um, contour_roughness)
    # Amplitude attenuations at LOSS_REF_UM (half the intensity exponents).
    phase = 2.0 * math.pi * abs(index_delta) / LOSS_REF_UM
    a_surface = 0.5 * (phase * sigma) ** 2
    a_internal = 0.5 * internal_scatter_per_um * h
    initiator_ref = initiator_absorption_per_um * (INITIATOR_REF_UM / LOSS_REF_UM) ** INITIATOR_EXPONENT
    a_initiator = 0.5 * initiator_ref * h
    scatter_total = float(a_surface.sum() + a_internal.sum())
    initiator_total = float(a_initiator.sum())
    total = scatter_total + initiator_total
    exponent = SCATTER_EXPONENT if total <= 0 else \
        (SCATTER_EXPONENT * scatter_total + INITIATOR_EXPONENT * initiator_total) / total
    per_um = np.where(h > 0, (a_surface + a_internal + a_initiator) / np.maximum(h, 1e-6), 0.0).astype(np.float32)
    attrs = {**shape.attrs, "top_roughness_um": round(sigma_top, 4), "loss_exponent": round(exponent, 3)}
    return Shape(h, per_um, shape.pitch_um, shape.rotation_deg, attrs, shape.top_height_um), exponent


def _contour_profile(h: np.ndarray, pitch_um: float, contour_um: float, floor: float) -> np.ndarray:
    """Roughness factor: ``floor`` on walls and on the top's outline, rising smoothly to 1 at ``contour_um`` in.

    The top is where the surface lies within 10 % of the highest point around it (``TOP_WINDOW_UM``): the last
    slices' hatched fill. Below it (walls, the rounded shoulder) every slice shows only its contour line.
    """
    solid = h > 0
    k = 2 * int(TOP_WINDOW_UM / pitch_um / 2) + 1
    local_max = cv2.dilate(h, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    top = (solid & (h >= 0.9 * local_max)).astype(np.uint8)
    if contour_um <= 0:
        return top.astype(np.float32) + np.float32(floor) * (solid & (top == 0))
    # Chamfer distance (5x5 mask): deterministic and fast; its <2 % error is far below the band's fuzziness.
    dist = cv2.distanceTransform(top, cv2.DIST_L2, 5) * np.float32(pitch_um)
    x = np.clip(dist / np.float32(contour_um), 0.0, 1.0)
    ramp = x * x * (3.0 - 2.0 * x)  # smoothstep: no sharp ring in the loss
    return (np.float32(floor) + np.float32(1.0 - floor) * ramp) * solid


def loss_scale(exponent: float, wavelength_um: float) -> float:
    """Factor by which a loss stated at ``LOSS_REF_UM`` grows at ``wavelength_um`` (``(ref/lambda)^exponent``)."""
    return float((LOSS_REF_UM / wavelength_um) ** exponent)
