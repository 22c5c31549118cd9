"""The Walking Noise curve model: a (double) logistic in x = log10 σ or σ, and the fitted curve it gives.

Model (paper 002, Equation 1; ../shared/design/noise-model.md, "Midpoint noise level")::

    F(σ) = 2·δa / (1 + exp((x(σ) − x(μ)) / s)) + a_min,   δa = (a_max − a_min) / 2

so F(μ) = a_min + δa: μ is the σ at which the accuracy has lost half of its possible drop. Two
stacked logistics (a first drop to an intermediate plateau, then a second to a_min) describe
curves with two steps; their μ is where the curve crosses a_min + δa. `CurveFit` is what a fit
returns and what `hil.guided` evaluates (`CurveFit.predict`); how a curve is fitted (model choice,
plateaus, errors, intervals) is `hil.walking.fit`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Literal

import numpy as np
from scipy import optimize, special

Scale = Literal["log", "linear"]
SCALES: tuple[str, ...] = ("log", "linear")
ModelFunc = Callable[..., np.ndarray]


@dataclass(frozen=True)
class CurveFit:
    """Result of `fit_midpoint`; μ-related numbers are nan unless ``status == "ok"``.

    Attributes:
        status: "ok", "no-transition" (μ outside the grid; ``message`` says which side) or "failed".
        model: "logistic" or "double-logistic".
        mu: Midpoint σ, where the fitted curve is at a_min + (a_max − a_min)/2.
        mu_low: Lower bound of the ``confidence`` interval for μ (σ units; 0 when it reaches σ = 0).
        mu_high: Upper bound (inf → ``None`` in `to_dict` when a sharp step lies beyond the last point).
        width: Logistic width s in x units (decades on the log scale); for the double logistic, that of the step
            containing μ.
        a_max: Fitted upper plateau.
        a_min: Lower plateau: 1/K, or fitted when ``a_min_fitted``.
        a_min_fitted: True when the high-σ plateau is clearly above 1/K and a_min was fitted.
        interval: "covariance", "delta-crossing" (either may end in "×√(χ²/dof)=…" when scaled), "bracket …"
            or "none".
        chi2: χ² of the chosen model with the errors actually used (floored/pooled).
        dof: Points minus free parameters.
        aic: χ² + 2k.
        message: Which model won and why, how a_min was set, why there is no μ.
        params: Fitted parameters of ``model`` by name, in x units (for plotting and `predict`).
        scale: "log" (x = log10 σ) or "linear" (x = σ).
        mu_x: μ in x units.
        mu_x_se: Standard error of μ in x units (after any χ²/dof scaling; nan for a bracket).
        aicc: Small-sample corrected AIC; the model choice uses it.
        n_points: Points used, σ = 0 anchors included.
        confidence: Coverage the interval was built for.
    """

    status: str
    model: str
    mu: float
    mu_low: float
    mu_high: float
    width: float
    a_max: float
    a_min: float
    a_min_fitted: bool
    interval: str
    chi2: float
    dof: int
    aic: float
    message: str
    params: dict[str, float]
    scale: str
    mu_x: float = math.nan
    mu_x_se: float = math.nan
    aicc: float = math.nan
    n_points: int = 0
    confidence: float = 0.95

    def predict(self, sigma: np.ndarray) -> np.ndarray:
        """Evaluate the fitted curve at ``sigma`` (σ units); all nan when there is no fitted curve.

        Args:
            sigma: Noise levels ≥ 0 (array-like); σ = 0 gives a_max on the log scale.

        Returns:
            Predicted accuracies, same shape as ``sigma``.
        """
        values = np.asarray(sigma, dtype=float)
        if not self.params or self.model not in MODELS:
            return np.full(values.shape, math.nan)
        spec = MODELS[self.model]
        theta = [self.params[name] for name in spec.names]
        return spec.func(to_x(values, self.scale), *theta)

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready dict: every field, with nan/inf floats as ``None``."""
        return {f.name: jsonable(getattr(self, f.name)) for f in fields(self)}


def logistic(x: np.ndarray, mu_x: float, s: float, a_max: float, a_min: float) -> np.ndarray:
    # expit(z) = 1/(1 + e^−z): no overflow for steep steps, and x = −∞ (σ = 0 anchor) gives a_max exactly.
    return a_min + (a_max - a_min) * special.expit((mu_x - x) / s)


def double_logistic(
    x: np.ndarray, mu1_x: float, s1: float, gap: float, s2: float, a_max: float, frac: float, a_min: float
) -> np.ndarray:
    # The second step is parametrised as mu1 + gap (gap ≥ 0) and the plateau as a fraction of the drop, so that
    # plain box bounds keep the steps ordered and the plateau between a_min and a_max.
    a_mid = a_min + frac * (a_max - a_min)
    first = (a_max - a_mid) * special.expit((mu1_x - x) / s1)
    second = (a_mid - a_min) * special.expit((mu1_x + gap - x) / s2)
    return a_min + first + second


def step_terms(x: np.ndarray, mu_x: float, s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """L = expit(z), z = (μ − x)/s, and L(1 − L); z is clipped so that x = −∞ gives 0 (not nan) in z·L(1 − L)."""
    z = np.clip((mu_x - x) / s, -700.0, 700.0)
    value = special.expit(z)
    return value, z, value * (1.0 - value)


def logistic_jac(x: np.ndarray, mu_x: float, s: float, a_max: float, a_min: float) -> np.ndarray:
    # Analytic derivatives: finite differences cost one model evaluation per parameter per iteration.
    value, z, slope = step_terms(x, mu_x, s)
    drop = a_max - a_min
    return np.stack([drop * slope / s, -drop * slope * z / s, value, 1.0 - value], axis=-1)


def double_logistic_jac(
    x: np.ndarray, mu1_x: float, s1: float, gap: float, s2: float, a_max: float, frac: float, a_min: float
) -> np.ndarray:
    l1, z1, d1 = step_terms(x, mu1_x, s1)
    l2, z2, d2 = step_terms(x, mu1_x + gap, s2)
    drop = a_max - a_min
    first, second = (1.0 - frac) * drop, frac * drop
    upper = (1.0 - frac) * l1 + frac * l2
    columns = [
        first * d1 / s1 + second * d2 / s2,
        -first * d1 * z1 / s1,
        second * d2 / s2,
        -second * d2 * z2 / s2,
        upper,
        drop * (l2 - l1),
        1.0 - upper,
    ]
    return np.stack(columns, axis=-1)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    names: tuple[str, ...]  # parameter order of ``func`` after x; a_min always last
    func: ModelFunc
    jac: ModelFunc  # d func / d parameters, shape (n, len(names))


MODELS: dict[str, ModelSpec] = {
    "logistic": ModelSpec("logistic", ("mu_x", "s", "a_max", "a_min"), logistic, logistic_jac),
    "double-logistic": ModelSpec(
        "double-logistic",
        ("mu1_x", "s1", "gap", "s2", "a_max", "frac", "a_min"),
        double_logistic,
        double_logistic_jac,
    ),
}


def to_x(sigma: np.ndarray, scale: str) -> np.ndarray:
    if scale == "linear":
        return sigma.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sigma > 0, np.log10(np.where(sigma > 0, sigma, 1.0)), np.where(sigma == 0, -np.inf, np.nan))


def from_x(x: float, scale: str) -> float:
    if scale == "linear":
        return max(float(x), 0.0)  # σ is a standard deviation: an interval reaching below 0 is clipped there
    if x == -math.inf:
        return 0.0
    return float(10.0**x) if x < 308 else math.inf


def mu_double(theta: np.ndarray) -> float:
    """x where the double logistic crosses half of its full drop (it decreases monotonically)."""
    mu1, s1, gap, s2, a_max, _, a_min = theta
    half = a_min + (a_max - a_min) / 2
    lo, hi = mu1 - 50 * s1, mu1 + gap + 50 * s2
    return float(optimize.brentq(lambda x: double_logistic(np.array(x), *theta) - half, lo, hi, xtol=1e-13))


def jsonable(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, bool | str | int) or value is None:
        return value
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
