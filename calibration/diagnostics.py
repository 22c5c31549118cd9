"""Diagnostics of a calibration: does the model fit, is the noise Gaussian, which order, drift, crosstalk."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from hil.calibration.estimate import CalibrationFit
from hil.calibration.measure import Measurement

ALPHA = 0.001
"""Tests flag a problem below this p-value (many columns and levels: keep false alarms rare)."""


@dataclass(frozen=True)
class Diagnostic:
    """One check.

    Attributes:
        name: Short name.
        status: ``pass``, ``warn`` or ``info``.
        statistic: The test statistic.
        p_value: Its p-value (nan when not a test).
        detail: One line for humans.
    """

    name: str
    status: str
    statistic: float
    p_value: float
    detail: str

    def to_dict(self) -> dict[str, object]:
        """Plain form (nan → None)."""
        return {"name": self.name, "status": self.status, "statistic": _plain(self.statistic),
                "p_value": _plain(self.p_value), "detail": self.detail}


def _plain(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def lack_of_fit(fit: CalibrationFit) -> Diagnostic:
    """Gamma deviance of the variance model against χ²(n − 2)."""
    u, s2, dof = fit.regressors.ravel(), fit.sample_variances.ravel(), fit.dof.ravel()
    v = fit.variance.a + fit.variance.b * u
    ratio = np.maximum(s2, 1e-300) / v
    deviance = float(np.sum(dof * (ratio - 1 - np.log(ratio))))
    df = len(s2) - 2
    p = float(stats.chi2.sf(deviance, df))
    status = "pass" if p >= ALPHA else "warn"
    detail = f"deviance {deviance:.1f} on {df} dof (p = {p:.3g})" + ("" if status == "pass" else
                                                                   ": variance is not σa² + σm²(gz)²")
    return Diagnostic("lack of fit", status, deviance, p, detail)


def standardised_residuals(measurement: Measurement, fit: CalibrationFit) -> list[np.ndarray]:
    """Per level, (y − (g z + o)) / √v(z) for every sample and column."""
    gain, offset = fit.columns.gain, fit.columns.offset
    out = []
    for samples, z in zip(measurement.samples, measurement.z, strict=True):
        v = fit.variance.a + fit.variance.b * (gain * z) ** 2
        out.append((samples - (gain * z + offset)) / np.sqrt(v))
    return out


def gaussianity(measurement: Measurement, fit: CalibrationFit, limit: int = 20_000) -> Diagnostic:
    """D'Agostino–Pearson test on pooled standardised residuals (a seeded subsample of ``limit``)."""
    residuals = np.concatenate([r.ravel() for r in standardised_residuals(measurement, fit)])
    if len(residuals) > limit:
        residuals = np.random.default_rng(0).choice(residuals, limit, replace=False)
    statistic, p = stats.normaltest(residuals)
    skew, kurt = stats.skew(residuals), stats.kurtosis(residuals)
    status = "pass" if p >= ALPHA else "warn"
    return Diagnostic("gaussianity", status, float(statistic), float(p),
                      f"skew {skew:+.3f}, excess kurtosis {kurt:+.3f} (p = {p:.3g})")


def noise_order(measurement: Measurement, fit: CalibrationFit) -> Diagnostic:
    """mul-first vs add-first from the third central moment at the top level.

    Add-first gives μ3 = 6·(g z)·σa²·σm² (noise (gz + ε_a)(1 + ε_m)); mul-first gives 0. The
    test compares the pooled μ3 with its standard error √(6 v³ / n).
    """
    top = measurement.samples[-1]
    gain = fit.columns.gain
    z = measurement.z[-1]
    centred = top - top.mean(axis=0)
    mu3 = float(np.mean(centred**3))
    v = fit.variance.a + fit.variance.b * float(np.mean((gain * z) ** 2))
    n = top.size
    se = math.sqrt(6 * v**3 / n)
    expected = 6 * float(np.mean(gain * z)) * fit.sigma_add.value**2 * fit.sigma_mul.value**2
    statistic = mu3 / se
    if abs(expected) < 3 * se:
        needed = int(math.ceil(n * (3 * se / max(abs(expected), 1e-300)) ** 2)) if expected else 0
        more = f"; ≈ {needed:,} samples at the top level would tell" if needed else ""
        return Diagnostic("noise order", "info", statistic, math.nan,
                          f"too few samples to tell add-first from mul-first (add-first μ3 {expected:.2e} "
                          f"< 3 SE {3 * se:.2e}){more}")
    if statistic < -3:
        return Diagnostic("noise order", "warn", statistic, float(2 * stats.norm.sf(abs(statistic))),
                          f"negative skew at the top level (μ3 = {mu3:.2e}, {statistic:+.1f} SE): neither order "
                          f"explains it — saturation or a non-Gaussian device?")
    order = "add-first" if statistic > 3 else "mul-first"
    return Diagnostic("noise order", "info", statistic, float(2 * stats.norm.sf(abs(statistic))),
                      f"{order}: μ3 = {mu3:.2e} ({statistic:+.1f} SE; add-first predicts {expected:.2e})")


def _von_neumann(series: np.ndarray) -> tuple[float, float]:
    """Von Neumann ratio of each column of ``series`` (time × columns), averaged, and its one-sided p-value."""
    spread = float(np.mean(series.var(axis=0, ddof=1)))
    ratio = float(np.mean(np.diff(series, axis=0) ** 2) / (2 * spread))
    n = len(series)
    z_stat = (ratio - 1) / math.sqrt((n - 2) / ((n - 1) * (n + 1)))  # von Neumann ratio under no drift
    return ratio, float(stats.norm.cdf(z_stat))  # drift lowers the ratio


def drift(measurement: Measurement, fit: CalibrationFit) -> Diagnostic:
    """Von Neumann ratio (mean-square successive difference / 2·variance) at the zero level, and temperature.

    Tested twice, Bonferroni-corrected: on each column's series (drift of single columns) and on the series
    of the column means, where a drift common to all columns stands √cols times clearer out of the noise.
    """
    zero = measurement.samples[0]
    ordered = zero[np.argsort(measurement.order[0], kind="stable")]
    if len(ordered) < 3:
        return Diagnostic("drift", "info", math.nan, math.nan, f"{len(ordered)} samples at z = 0: too few to test "
                                                               f"drift; calibrate with more --samples")
    if float(np.mean(ordered.var(axis=0, ddof=1))) == 0:
        return Diagnostic("drift", "info", math.nan, math.nan, "no noise at z = 0 (every sample equal): nothing "
                                                               "to test drift against")
    ratio, p_columns = _von_neumann(ordered)
    common = ordered.mean(axis=1, keepdims=True)
    common_ratio, p_common = _von_neumann(common) if float(common.var()) > 0 else (1.0, 1.0)
    p = min(1.0, 2 * min(p_columns, p_common))
    temps = measurement.temperatures
    span = float(temps.max() - temps.min()) if len(temps) else 0.0
    status = "pass" if p >= ALPHA else "warn"
    detail = (f"von Neumann ratio {ratio:.3f} per column, {common_ratio:.3f} of the column mean (1 = none, "
              f"p = {p:.3g}); temperature {temps.min():.1f}–{temps.max():.1f} °C (Δ {span:.2f} K)")
    return Diagnostic("drift", status, ratio, p, detail)


def crosstalk(measurement: Measurement) -> Diagnostic:
    """Largest correlation between two columns' noise at the zero level."""
    zero = measurement.samples[0]
    if zero.shape[1] < 2:
        return Diagnostic("column correlation", "info", math.nan, math.nan, "one column: nothing to correlate")
    if np.any(zero.std(axis=0) == 0):
        return Diagnostic("column correlation", "info", math.nan, math.nan, "a column has no noise at z = 0")
    corr = np.corrcoef(zero, rowvar=False)
    off = np.abs(corr[~np.eye(len(corr), dtype=bool)])
    worst = float(np.nanmax(off))
    threshold = 5 / math.sqrt(len(zero))  # max of ~cols²/2 null correlations stays below ≈ 4.3/√n
    status = "pass" if worst < threshold else "warn"
    return Diagnostic("column correlation", status, worst, math.nan,
                      f"max |r| between columns {worst:.3f} (noise-only level {threshold:.3f})")


def saturation(measurement: Measurement) -> Diagnostic:
    """Vectors whose outputs hit the ADC limit (they bias means and variances)."""
    worst = max((count / max(total, 1) for count, total in zip(measurement.saturated, measurement.vectors,
                                                                strict=False)), default=0.0)
    status = "pass" if worst <= 0.001 else "warn"
    detail = (f"{sum(measurement.saturated)} saturated vector runs; worst level {worst:.2%}"
              + ("" if status == "pass" else ": lower the top level (design top) or the device gain"))
    return Diagnostic("saturation", status, worst, math.nan, detail)


def run_all(measurement: Measurement, fit: CalibrationFit) -> list[Diagnostic]:
    """Every diagnostic, in report order."""
    return [saturation(measurement), lack_of_fit(fit), gaussianity(measurement, fit), noise_order(measurement, fit),
            drift(measurement, fit), crosstalk(measurement)]
