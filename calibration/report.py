"""Calibration report plots (matplotlib, headless; PNG and SVG)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def write_report(calibration, folder: str | os.PathLike[str]) -> list[Path]:  # noqa: ANN001
    """Variance vs level with the fitted model, residual diagnostics, gains and offsets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import stats

    from hil.calibration.diagnostics import standardised_residuals

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    fit, measurement = calibration.fit, calibration.measurement
    z = measurement.z
    gain = fit.columns.gain
    written = []

    figure, axis = plt.subplots(figsize=(5.5, 3.8))
    pooled = fit.sample_variances.mean(axis=1)
    counts = np.array([len(s) for s in measurement.samples])
    spread = fit.sample_variances.std(axis=1, ddof=1) / np.sqrt(fit.sample_variances.shape[1])
    axis.errorbar(z, pooled, yerr=1.96 * spread, fmt="o", color="#1f4e79", capsize=3,
                  label="measured (mean over columns)")
    grid = np.linspace(0, z.max() * 1.05, 200)
    model = fit.variance.a + fit.variance.b * (gain.mean() * grid) ** 2
    axis.plot(grid, model, color="#c0504d", label=f"σa = {fit.sigma_add.value:.4g}, σm = {fit.sigma_mul.value:.4g}")
    axis.axhline(fit.quantisation, color="0.5", linestyle=":", linewidth=1, label="ADC quantisation Δ²/12")
    axis.set_xlabel("level z (dot-product units)")
    axis.set_ylabel("output variance")
    axis.set_title(f"variance model ({int(counts.sum()):,} samples × {gain.size} columns)")
    axis.legend(frameon=False, fontsize=8)
    written += _save(figure, out / "variance")

    figure, (left, right) = plt.subplots(1, 2, figsize=(8, 3.6))
    pooled_residuals = np.concatenate([r.ravel() for r in standardised_residuals(measurement, fit)])
    sample = np.random.default_rng(0).choice(pooled_residuals, min(5000, pooled_residuals.size), replace=False)
    (osm, osr), _ = stats.probplot(sample, dist="norm")
    left.plot(osm, osr, ".", markersize=2, color="#1f4e79")
    left.plot([-4, 4], [-4, 4], color="#c0504d", linewidth=1)
    left.set_xlabel("normal quantile")
    left.set_ylabel("standardised residual")
    left.set_title("Q–Q of residuals")
    right.hist(pooled_residuals, bins=80, density=True, color="#9dc3e6")
    xs = np.linspace(-4.5, 4.5, 200)
    right.plot(xs, stats.norm.pdf(xs), color="#c0504d", linewidth=1)
    right.set_xlabel("standardised residual")
    right.set_title("residual histogram")
    written += _save(figure, out / "residuals")

    figure, (left, right) = plt.subplots(1, 2, figsize=(8, 3.4))
    columns = np.arange(gain.size)
    left.errorbar(columns, gain, yerr=1.96 * fit.columns.gain_se, fmt=".", color="#1f4e79")
    left.set_xlabel("column")
    left.set_ylabel("gain")
    right.errorbar(columns, fit.columns.offset, yerr=1.96 * fit.columns.offset_se, fmt=".", color="#1f4e79")
    right.set_xlabel("column")
    right.set_ylabel("offset")
    written += _save(figure, out / "columns")
    return written


def _save(figure, stem: Path) -> list[Path]:  # noqa: ANN001
    import matplotlib.pyplot as plt

    figure.tight_layout()
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    for path in paths:
        figure.savefig(path, dpi=150)
    plt.close(figure)
    return paths
