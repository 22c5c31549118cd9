"""Publication-style plots of Walking Noise results (matplotlib, headless; PNG + SVG)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hil.walking.report import WalkReport  # noqa: E402

PLOT_STYLE: dict[Any, Any] = {"font.size": 9, "axes.spines.top": False, "axes.spines.right": False, "savefig.dpi": 200}


def save_figure(figure: plt.Figure, stem: Path) -> list[Path]:
    """Write ``figure`` as ``stem``.png and ``stem``.svg (folders made), close it → the two paths."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    for path in paths:
        figure.savefig(path, bbox_inches="tight")
    plt.close(figure)
    return paths


def _sigma_label(report: WalkReport) -> str:
    noise = report.config.get("sweep", {}).get("noise", "add")
    return {"add": "additive σa", "mul": "multiplicative σm", "mixed": "mixed σa (σm = ratio·σa)"}[noise]


def plot_curves(report: WalkReport, stem: Path) -> list[Path]:
    """Accuracy vs σ per site (small multiples): mean ± SE, fitted curve, μ with its 95 % interval."""
    count = len(report.sites)
    columns = min(4, count)
    rows = math.ceil(count / columns)
    with plt.rc_context(PLOT_STYLE):
        figure, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.1 * rows), squeeze=False,
                                    sharey=True)
        for axis in axes.flat[count:]:
            axis.set_visible(False)
        for axis, site in zip(axes.flat, report.sites, strict=False):
            sigmas = np.asarray(site.sigmas)
            log = site.fit.scale == "log"
            shown = sigmas > 0 if log else np.ones_like(sigmas, dtype=bool)
            axis.errorbar(sigmas[shown], np.asarray(site.mean)[shown], yerr=np.asarray(site.sem)[shown], fmt="o",
                          ms=2.5, lw=0.8, color="0.2", capsize=1.5, label="measured")
            if site.fit.status == "ok" and shown.any():
                low, high = sigmas[shown].min(), sigmas[shown].max()
                dense = np.geomspace(low, high, 300) if log else np.linspace(low, high, 300)
                axis.plot(dense, site.fit.predict(dense), color="tab:blue", lw=1.2, label=site.fit.model)
                axis.axvspan(site.fit.mu_low, site.fit.mu_high, color="tab:orange", alpha=0.25, lw=0)
                axis.axvline(site.fit.mu, color="tab:orange", lw=1)
                title = f"{site.site}   μ = {site.fit.mu:.3g}"
            else:
                title = f"{site.site}   ({site.fit.status})"
            if log:
                axis.set_xscale("log")
            axis.set_title(title.replace(site.site, site.label, 1), fontsize=8)
            axis.set_ylim(0, 1.02)
        for axis in axes[-1]:
            axis.set_xlabel(_sigma_label(report))
        for axis in axes[:, 0]:
            axis.set_ylabel("test accuracy")
        figure.tight_layout()
        return save_figure(figure, stem)


def plot_mu(report: WalkReport, stem: Path) -> list[Path]:
    """Midpoint μ per site with 95 % intervals (log axis); sites without a transition are marked."""
    sites = [s for s in report.sites if s.site != "global"]
    with plt.rc_context(PLOT_STYLE):
        figure, axis = plt.subplots(figsize=(max(4.0, 0.45 * len(sites) + 1.5), 3.0))
        positions = np.arange(len(sites))
        for position, site in zip(positions, sites, strict=True):
            fit = site.fit
            if fit.status == "ok":
                axis.bar(position, fit.mu, color="tab:blue", width=0.7)
                axis.errorbar(position, fit.mu, yerr=[[fit.mu - fit.mu_low], [fit.mu_high - fit.mu]], fmt="none",
                              ecolor="0.1", lw=1, capsize=2)
            else:
                axis.annotate("no\ntransition" if fit.status == "no-transition" else "fit\nfailed",
                              (position, 0.5), xycoords=("data", "axes fraction"), ha="center", fontsize=6,
                              color="tab:red")
        axis.set_xticks(positions, [s.site for s in sites], rotation=60, ha="right")
        if any(s.fit.status == "ok" and s.fit.mu > 0 for s in sites):
            axis.set_yscale("log")
        axis.set_ylabel(f"midpoint μ ({_sigma_label(report)})")
        global_fit = next((s.fit for s in report.sites if s.site == "global"), None)
        if global_fit is not None and global_fit.status == "ok":
            axis.axhline(global_fit.mu, color="tab:orange", lw=1, ls="--", label=f"global μ = {global_fit.mu:.3g}")
            axis.legend(frameon=False)
        figure.tight_layout()
        return save_figure(figure, stem)


def plot_heatmaps(report: WalkReport, stem: Path) -> list[Path]:
    """Mean accuracy over the σa × σm grid, one panel per site (mixed-noise heatmap)."""
    sites = list(dict.fromkeys(s.site for s in report.sites))
    with plt.rc_context(PLOT_STYLE):
        figure, axes = plt.subplots(1, len(sites), figsize=(3.2 * len(sites), 2.8), squeeze=False)
        image = None
        for axis, site in zip(axes[0], sites, strict=True):
            rows = sorted((s for s in report.sites if s.site == site), key=lambda s: s.sigma_mul or 0.0)
            sigma_add = np.asarray(rows[0].sigmas)
            grid = np.array([[dict(zip(r.sigmas, r.mean, strict=True)).get(a, np.nan) for a in sigma_add]
                             for r in rows])
            image = axis.imshow(grid, origin="lower", aspect="auto", vmin=0, vmax=1, cmap="viridis")
            axis.set_xticks(range(len(sigma_add)), [f"{a:.2g}" for a in sigma_add], rotation=60, fontsize=6)
            axis.set_yticks(range(len(rows)), [f"{r.sigma_mul:.2g}" for r in rows], fontsize=6)
            axis.set_xlabel("additive σa")
            if axis is axes[0][0]:
                axis.set_ylabel("multiplicative σm")
            axis.set_title(site, fontsize=8)
        if image is not None:
            figure.colorbar(image, ax=axes[0].tolist(), label="test accuracy", shrink=0.9)
        return save_figure(figure, stem)


def write_plots(report: WalkReport, folder: Path) -> list[Path]:
    """All plots of a report into ``folder``; returns the files written."""
    paths = plot_curves(report, folder / "curves")
    if any(s.sigma_mul is not None for s in report.sites):
        return paths + plot_heatmaps(report, folder / "heatmap")
    if any(s.site != "global" for s in report.sites):
        paths += plot_mu(report, folder / "mu")
    return paths


def plot_histograms(results: list, stem: Path) -> list[Path]:  # list[SiteBinarization]
    """Activation histograms per site with the best two-level threshold (self-binarisation test)."""
    count = max(1, len(results))
    columns = min(4, count)
    rows = math.ceil(count / columns)
    with plt.rc_context(PLOT_STYLE):
        figure, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.0 * rows), squeeze=False)
        for axis in axes.flat[len(results):]:
            axis.set_visible(False)
        for axis, result in zip(axes.flat, results, strict=False):
            edges, counts = np.asarray(result.histogram[0]), np.asarray(result.histogram[1])
            axis.stairs(np.maximum(counts, 1), edges, fill=True, color="tab:blue", alpha=0.7)
            axis.set_yscale("log")
            axis.axvline(result.threshold, color="tab:orange", lw=1)
            axis.set_title(f"{result.site}: Δacc {result.accuracy_drop:+.1%}", fontsize=8)
            axis.set_xlabel("activation")
        figure.tight_layout()
        return save_figure(figure, stem)
