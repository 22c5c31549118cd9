"""Estimators: per-column gain/offset (WLS) and σa, σm (Gamma GLM by IRLS), intervals, CRLB.

Model per column k and level z (dot-product units), samples y::

    E[y]   = g_k z + o_k
    Var[y] = A + B (g_k z)²,    A = σa² + Δ²/12 (ADC quantisation), B = σm²

Sample variances S²_jk with d = n_j − 1 degrees of freedom are Gamma distributed with mean v and
variance 2v²/d. The GLM with identity link is fitted by iteratively re-weighted least squares
with weights d / (2 v̂²) — not OLS (inefficient) and not 1/S⁴ (biased). The inverse Fisher
information I⁻¹, I = Σ d/(2v²)·[1, u; u, u²] with u = (g z)², is both the covariance of (Â, B̂)
and the Cramér–Rao bound; intervals for σa = √(A − Δ²/12) and σm = √B use the delta method.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hil.calibration.measure import Measurement

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Estimate:
    """A value with its standard error and 95 % interval."""

    value: float
    se: float
    low: float
    high: float

    @classmethod
    def normal(cls, value: float, se: float, floor: float | None = 0.0) -> Estimate:
        """value ± 1.96 se (the low end clipped at ``floor``)."""
        low = value - Z95 * se
        return cls(value, se, max(low, floor) if floor is not None else low, value + Z95 * se)

    def covers(self, truth: float) -> bool:
        """True when ``truth`` lies in the interval."""
        return self.low <= truth <= self.high

    def to_dict(self) -> dict[str, float]:
        """Plain form."""
        return {"value": self.value, "se": self.se, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class VarianceFit:
    """(A, B) of the variance model with covariance."""

    a: float
    b: float
    cov: np.ndarray
    iterations: int


@dataclass(frozen=True)
class ColumnFit:
    """Gains and offsets of every column."""

    gain: np.ndarray
    gain_se: np.ndarray
    offset: np.ndarray
    offset_se: np.ndarray


def level_moments(measurement: Measurement) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(means, variances, counts): arrays (levels, cols), (levels, cols), (levels,)."""
    means = np.stack([s.mean(axis=0) for s in measurement.samples])
    variances = np.stack([s.var(axis=0, ddof=1) for s in measurement.samples])
    counts = np.array([len(s) for s in measurement.samples])
    return means, variances, counts


def fit_columns(z: np.ndarray, means: np.ndarray, counts: np.ndarray, variance: np.ndarray) -> ColumnFit:
    """Weighted least squares of each column's means on z (weights n / v̂)."""
    cols = means.shape[1]
    gain, gain_se, offset, offset_se = (np.empty(cols) for _ in range(4))
    design = np.stack([np.ones_like(z), z], axis=1)
    for k in range(cols):
        weights = counts / np.maximum(variance[:, k], 1e-300)
        xtwx = design.T @ (design * weights[:, None])
        cov = np.linalg.inv(xtwx)
        offset[k], gain[k] = cov @ (design.T @ (weights * means[:, k]))
        offset_se[k], gain_se[k] = np.sqrt(np.diag(cov))
    return ColumnFit(gain, gain_se, offset, offset_se)


def variance_design(u: np.ndarray) -> np.ndarray:
    """Design matrix [1, u] of the variance model v = A + B u."""
    return np.stack([np.ones_like(u), u], axis=1)


def gamma_weights(u: np.ndarray, dof: np.ndarray, a: float, b: float) -> np.ndarray:
    """Inverse variances d / (2v²) of sample variances with d degrees of freedom and mean v = A + B u."""
    v = np.maximum(a + b * u, 1e-300)
    return dof / (2 * v**2)


def fisher(u: np.ndarray, dof: np.ndarray, a: float, b: float) -> np.ndarray:
    """Fisher information of (A, B) from sample variances at regressors u with dof d."""
    design = variance_design(u)
    return design.T @ (design * gamma_weights(u, dof, a, b)[:, None])


def fit_variance_glm(u: np.ndarray, s2: np.ndarray, dof: np.ndarray, max_iter: int = 50) -> VarianceFit:
    """Gamma GLM (identity link) of sample variances on (1, u) by IRLS."""
    a, b = fit_variance_ols(u, s2)
    a, b = max(a, 1e-12 * np.mean(s2)), max(b, 0.0)
    design = variance_design(u)
    iterations = 0
    for _ in range(max_iter):
        iterations += 1
        w = gamma_weights(u, dof, a, b)
        new_a, new_b = np.linalg.solve(design.T @ (design * w[:, None]), design.T @ (w * s2))
        new_a, new_b = max(new_a, 1e-12 * np.mean(s2)), max(new_b, 0.0)
        converged = abs(new_a - a) <= 1e-10 * abs(a) + 1e-300 and abs(new_b - b) <= 1e-10 * abs(b) + 1e-300
        a, b = new_a, new_b
        if converged:
            break
    return VarianceFit(a, b, np.linalg.inv(fisher(u, dof, a, b)), iterations)


def fit_variance_ols(u: np.ndarray, s2: np.ndarray) -> tuple[float, float]:
    """Unweighted least squares of sample variances on (1, u): the inefficient baseline."""
    a, b = np.linalg.lstsq(variance_design(u), s2, rcond=None)[0]
    return float(a), float(b)


@dataclass(frozen=True)
class CalibrationFit:
    """Everything the estimators produce from one measurement."""

    columns: ColumnFit
    variance: VarianceFit
    sigma_add: Estimate
    sigma_mul: Estimate
    quantisation: float
    crlb_sigma_add: float
    crlb_sigma_mul: float
    ols_sigma_add: float
    ols_sigma_mul: float
    regressors: np.ndarray
    sample_variances: np.ndarray
    dof: np.ndarray


def _sigma(value: float, variance: float) -> Estimate:
    """√value with a delta-method interval (the interval of value, mapped, when value is near 0)."""
    root = math.sqrt(max(value, 0.0))
    se_value = math.sqrt(max(variance, 0.0))
    low, high = max(value - Z95 * se_value, 0.0), max(value + Z95 * se_value, 0.0)
    se = se_value / (2 * root) if root > 0 else math.sqrt(se_value)
    return Estimate(root, se, math.sqrt(low), math.sqrt(high))


def estimate(measurement: Measurement) -> CalibrationFit:
    """Gains, offsets, σa and σm with intervals, CRLB and the OLS baseline."""
    z = measurement.z
    means, variances, counts = level_moments(measurement)
    pooled = variances.mean(axis=1, keepdims=True) * np.ones_like(variances)
    columns = fit_columns(z, means, counts, pooled)
    for _ in range(2):  # refine: weights from the fitted variance model, regressors from fitted gains
        u = (columns.gain[None, :] * z[:, None]) ** 2
        dof = np.broadcast_to((counts - 1)[:, None], u.shape).astype(np.float64)
        variance = fit_variance_glm(u.ravel(), variances.ravel(), dof.ravel())
        model = variance.a + variance.b * u
        columns = fit_columns(z, means, counts, model)
    quantisation = measurement.lsb**2 / 12
    cov = variance.cov
    sigma_add = _sigma(variance.a - quantisation, cov[0, 0])
    sigma_mul = _sigma(variance.b, cov[1, 1])
    ols_a, ols_b = fit_variance_ols(u.ravel(), variances.ravel())
    crlb_a = cov[0, 0] / (4 * max(variance.a - quantisation, 1e-300))
    crlb_b = cov[1, 1] / (4 * max(variance.b, 1e-300))
    return CalibrationFit(columns, variance, sigma_add, sigma_mul, quantisation, math.sqrt(crlb_a),
                          math.sqrt(crlb_b), math.sqrt(max(ols_a - quantisation, 0.0)), math.sqrt(max(ols_b, 0.0)),
                          u, variances, dof)
