"""The focus map: a robust surface through the focused (x, y, z) points of a scan, with its uncertainty.

A slide is a tilted, slightly bowed plane, and every structure stands on it: the focus z of the next field
is the surface there plus the structure's own reference height (half its printed height). Given that height
(``offset_um``, from the print job) the map holds the glass surface itself (each point's focus minus its
offset) and predicts a new structure's focus as the surface plus that structure's offset; without it, the
points are structure foci and their different heights become the map's scatter. The map fits a constant
(one or two points), then a plane (three or more), then a quadratic surface (``quadratic_from`` points or
more), each robustly (``scipy.optimize.least_squares`` with a soft-L1 loss), and marks points further than ``outlier_k``
robust standard deviations as outliers (debris on the cover glass, a failed focus) before a final
least-squares fit on the rest. Its uncertainty at a point combines the scatter of the inliers about the
surface (which includes the structures' different heights) with the fit's own uncertainty there.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import least_squares
from scipy.stats import f as f_dist

#: Before the map has residual degrees of freedom to measure its scatter, it assumes this (µm): about the
#: spread of half-heights of the structures a slide carries.
PRIOR_SIGMA_UM = 5.0
#: The prior for a map of the glass (every point added with its structure's offset): about the classical
#: search's error on one structure plus the glass's departure from a plane over a few millimetres.
GLASS_PRIOR_SIGMA_UM = 1.0
#: Prior standard deviations of the surface's coefficients about a level, flat slide: tilt in µm per mm
#: (x and y), curvature in µm per mm² (x², xy, y²); the constant has none. A slide's tilt in its holder is a
#: few µm per mm and may reach 20 (two standard deviations), its bow a few µm over its length. Where the points
#: say nothing (across the first row of a scan, beyond its last point) this is the map's uncertainty: 10 µm
#: per mm away from them.
_COEF_PRIOR_UM: tuple[float, ...] = (math.inf, 10.0, 10.0, 0.5, 0.5, 0.5)
#: Weight of that prior, in residual degrees of freedom.
PRIOR_DOF = 1.0
#: The level of the test that lets the quadratic replace the plane (:meth:`FocusMap._curved`).
CURVED_P = 0.01


class FocusMap:
    """Focused points of a scan and the surface through them.

    Parameters
    ----------
    quadratic_from : int
        Points needed before the quadratic surface replaces the plane (>= 6).
    outlier_k : float
        Residuals beyond ``outlier_k`` robust standard deviations are outliers.
    sigma_floor_um : float
        Smallest uncertainty the map reports (the stage's focus step, say).
    scale_um : float
        Length that normalises x and y in the fit (conditioning only).
    prior_sigma_um : float
        The scatter about the surface the map assumes before it has residuals to measure it, µm: about
        ``PRIOR_SIGMA_UM`` (the spread of half-heights) when points are structure foci, about
        ``GLASS_PRIOR_SIGMA_UM`` (one focus's error) when every point carries its ``offset_um``.

    Examples
    --------
    >>> m = FocusMap()
    >>> for x, y in ((0, 0), (1000, 0), (0, 1000), (1000, 1000)):
    ...     m.add(x, y, 90 + 0.002 * x - 0.001 * y)
    >>> z, sigma = m.predict(500, 500)
    >>> round(z, 3)
    90.5
    """

    def __init__(self, quadratic_from: int = 12, outlier_k: float = 3.5, sigma_floor_um: float = 0.5,
                 scale_um: float = 1000.0, prior_sigma_um: float = PRIOR_SIGMA_UM) -> None:
        if not (isinstance(quadratic_from, int) and quadratic_from >= 6):
            raise ValueError(f"quadratic_from must be an integer >= 6, got {quadratic_from!r}")
        for name, v in (("outlier_k", outlier_k), ("sigma_floor_um", sigma_floor_um), ("scale_um", scale_um),
                        ("prior_sigma_um", prior_sigma_um)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
        self.quadratic_from = quadratic_from
        self.outlier_k = float(outlier_k)
        self.sigma_floor_um = float(sigma_floor_um)
        self.scale_um = float(scale_um)
        self.prior_sigma_um = float(prior_sigma_um)
        self._pts: list[tuple[float, float, float]] = []
        self._extra: list[float] = []  # each point's own uncertainty beyond the map's scatter (``add``)
        self._fit: tuple[np.ndarray, np.ndarray, float, np.ndarray] | None = None  # coef, cov, sigma, inliers
        self._origin = (0.0, 0.0)

    # ----- points --------------------------------------------------------------------------------------

    def add(self, x_um: float, y_um: float, z_um: float, offset_um: float = 0.0, extra_sigma_um: float = 0.0) -> None:
        """Add a focused point (stage µm) of a target ``offset_um`` above the glass (its reference height).

        ``extra_sigma_um``: the point's own uncertainty beyond the map's scatter, added in quadrature (a
        structure's focus less a reference height known to ±3.5 µm is a point of the glass that loose). Such a
        point weighs less in the fit and is an outlier only that much further out.

        Raises ``ValueError`` on a non-finite value or a negative ``extra_sigma_um``.
        """
        vals = (x_um, y_um, z_um, offset_um, extra_sigma_um)
        if not all(isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(float(v)) for v in vals):
            raise ValueError(f"FocusMap.add needs finite x, y, z, offset, extra sigma in um, got {vals!r}")
        if extra_sigma_um < 0:
            raise ValueError(f"FocusMap.add: extra_sigma_um must be >= 0, got {extra_sigma_um!r}")
        self._pts.append((float(x_um), float(y_um), float(z_um) - float(offset_um)))
        self._extra.append(float(extra_sigma_um))
        self._fit = None

    def __len__(self) -> int:
        return len(self._pts)

    @property
    def order(self) -> int:
        """Degree of the surface fitted now: 0 (constant), 1 (plane) or 2 (quadratic).

        From ``quadratic_from`` points on, the quadratic replaces the plane only where the points ask for it
        (:meth:`_solve`): a slide's bow of a micrometre or two is below the foci's own scatter, and the three
        more coefficients would follow that scatter instead.
        """
        if len(self._pts) < 3:
            return 0
        return {1: 0, 3: 1, 6: 2}[len(self._fitted()[0])]

    @property
    def outliers(self) -> list[tuple[float, float, float]]:
        """The points the robust fit set aside."""
        if len(self._pts) == 0:
            return []
        _, _, _, inl = self._fitted()
        return [p for p, ok in zip(self._pts, inl, strict=True) if not ok]

    # ----- prediction ----------------------------------------------------------------------------------

    def predict(self, x_um: float, y_um: float, offset_um: float = 0.0) -> tuple[float, float]:
        """Predicted focus z and its uncertainty (one standard deviation) at ``(x_um, y_um)``, µm.

        ``offset_um`` is the target's reference height above the glass (0 for a map of structure foci).

        Raises
        ------
        ValueError
            The map has no points yet, or x, y are not finite.
        """
        if not self._pts:
            raise ValueError("FocusMap.predict: the map has no points yet")
        if not (math.isfinite(float(x_um)) and math.isfinite(float(y_um)) and math.isfinite(float(offset_um))):
            raise ValueError(f"FocusMap.predict needs finite x, y, offset, got {(x_um, y_um, offset_um)!r}")
        coef, cov, sigma, _ = self._fitted()
        phi = self._design(np.array([float(x_um)]), np.array([float(y_um)]), len(coef))[0]
        z = float(phi @ coef) + float(offset_um)
        var_fit = float(phi @ cov @ phi)
        return z, max(self.sigma_floor_um, math.sqrt(sigma * sigma + max(var_fit, 0.0)))

    def surface_sigma(self, x_um: float, y_um: float) -> float:
        """Uncertainty of the fitted surface itself at ``(x_um, y_um)`` (one standard deviation), µm.

        Unlike :meth:`predict`'s sigma it leaves out the scatter of single points about the surface: on a map
        of the glass that scatter is each point's own focus error, which a new structure's prediction does
        not inherit, while the surface's error (shrinking as points come in, growing away from them) it
        does. Raises ``ValueError`` while the map is empty.
        """
        if not self._pts:
            raise ValueError("FocusMap.surface_sigma: the map has no points yet")
        coef, cov, _, _ = self._fitted()
        phi = self._design(np.array([float(x_um)]), np.array([float(y_um)]), len(coef))[0]
        return math.sqrt(max(float(phi @ cov @ phi), 0.0))

    def _design(self, x: np.ndarray, y: np.ndarray, p: int) -> np.ndarray:
        u = (x - self._origin[0]) / self.scale_um
        v = (y - self._origin[1]) / self.scale_um
        cols = [np.ones_like(u), u, v, u * u, u * v, v * v][:p]
        return np.stack(cols, axis=1)

    def _fitted(self) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
        if self._fit is None:
            self._fit = self._solve()
        return self._fit

    def _solve(self) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
        pts = np.array(self._pts, dtype=np.float64)
        self._origin = (float(np.mean(pts[:, 0])), float(np.mean(pts[:, 1])))
        n = len(pts)
        if n < 3:
            return self._solve_degree(pts, 1)
        plane = self._solve_degree(pts, 3)
        if n < self.quadratic_from:
            return plane
        quad = self._solve_degree(pts, 6)
        return quad if self._curved(pts, plane, quad) else plane

    def _curved(self, pts: np.ndarray, plane: tuple[np.ndarray, np.ndarray, float, np.ndarray],
                quad: tuple[np.ndarray, np.ndarray, float, np.ndarray]) -> bool:
        """Whether the quadratic's three more coefficients earn their place on the points both fits keep.

        An F-test at the 1 % level (``CURVED_P``): the quadratic must cut the residual sum of squares by more
        than noise fitted with three more coefficients would (for 20 points 2.2 times, for 40 1.4 times). Why
        not always the quadratic: on the development slides (tilt 2 µm/mm, bow 1.5 µm), fed the classical
        search's foci (scatter 0.7 µm, some 2-6 µm off), the quadratic predicted the next structure within
        1 µm 62 % of the time after ten points, the plane 82 %. A bow of 20 µm under 0.3 µm of scatter passes it
        from twelve points.
        """
        inl = plane[3] & quad[3]
        m = int(inl.sum())
        if m <= 6:
            return False
        x, y, z = pts[inl, 0], pts[inl, 1], pts[inl, 2]
        rss = [float(np.sum(np.square(z - self._design(x, y, len(c)) @ c))) for c in (plane[0], quad[0])]
        return rss[0] > rss[1] * (1.0 + 3.0 * float(f_dist.ppf(1.0 - CURVED_P, 3, m - 6)) / (m - 6))

    def _solve_degree(self, pts: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
        """The robust fit of the surface with ``p`` coefficients (1, 3 or 6).

        Returns its coefficients, their covariance, the points' scatter about it and which points are inliers.
        """
        x, y, z = pts[:, 0], pts[:, 1], pts[:, 2]
        n = len(z)
        A = self._design(x, y, p)
        # A slide lies nearly level and nearly flat: priors on the tilt and the curvature (as extra rows of the
        # least squares, ridge regression) keep a few points that lie almost on a line, as the first fields of a
        # scan row do, from tilting the surface wildly across the slide, and say how far the surface may
        # depart from its points where they say nothing: the prior's rows are the coefficients' own standard
        # deviations, whatever the points' scatter (scaled by it, a map whose points agreed to 0.5 um was sure
        # of the tilt to 2.5 um/mm where no point constrained it).
        k = self.scale_um / 1000.0  # the priors are stated per mm
        tau = np.array(_COEF_PRIOR_UM[:p]) * np.array([1.0, k, k, k * k, k * k, k * k])[:p]
        P = np.diag(1.0 / tau)[1:]
        zeros = np.zeros(p - 1)

        e2 = np.square(np.array(self._extra, dtype=np.float64))

        def system(rows: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
            s = np.sqrt(sigma * sigma + e2[rows])[:, None]
            return np.vstack([A[rows] / s, P]), np.concatenate([z[rows] / s[:, 0], zeros])

        def scaled(r: np.ndarray, rows: np.ndarray, sigma: float) -> np.ndarray:
            """Residuals on the scale of the map's own points (a loose point's shrunk by its extra sigma)."""
            return r * sigma / np.sqrt(sigma * sigma + e2[rows])

        everyone = np.ones(n, dtype=bool)
        # Robust first pass (soft-L1 at the prior scatter), then inliers by robust residuals.
        Aa, za = system(everyone, self.prior_sigma_um)
        c0 = np.linalg.lstsq(Aa, za, rcond=None)[0]
        if n > p:
            c0 = least_squares(lambda c: Aa @ c - za, c0, loss="soft_l1", f_scale=1.0).x
        r = scaled(z - A @ c0, everyone, self.prior_sigma_um)
        mad = 1.4826 * float(np.median(np.abs(r - np.median(r)))) if n > p else 0.0
        cut = self.outlier_k * max(mad, self.sigma_floor_um)
        inl = np.abs(r) <= cut if n - p >= 3 else np.ones(n, dtype=bool)
        # The scatter is learnt from the inliers' residuals, starting from the prior as if from PRIOR_DOF
        # points (a handful of points that happen to lie on a plane must not make the map overconfident); the
        # surface is refitted with it, since it sets how far the points may pull the surface off the prior.
        sigma = self.prior_sigma_um
        for _ in range(2):
            coef = np.linalg.lstsq(*system(inl, sigma), rcond=None)[0]
            res = scaled(z[inl] - A[inl] @ coef, inl, sigma)
            dof = int(inl.sum()) - p
            ss = float(res @ res) if dof > 0 else 0.0
            sigma = max(math.sqrt((ss + PRIOR_DOF * self.prior_sigma_um ** 2) / (max(dof, 0) + PRIOR_DOF)),
                        self.sigma_floor_um)
        Ai = A[inl] / np.sqrt(sigma * sigma + e2[inl])[:, None]
        cov = np.linalg.pinv(Ai.T @ Ai + P.T @ P)
        return coef, cov, sigma, inl
