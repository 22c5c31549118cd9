"""Adaptive σ design: bracket the transition coarsely, then measure where the μ interval shrinks most.

Per site: a coarse scan (one σ per decade on the log scale, 1 repeat, upwards until the accuracy
has been below half-way for two decades), a fit, then rounds that
add σ values around the fitted μ (μ ± {0, ½, 1} widths, in log σ) with more repeats, until the
95 % interval of μ is at most ``target_width`` decades wide or ``max_rounds`` is reached. When the
fit finds no transition yet, the round bisects (geometrically) the grid interval where the mean
accuracy crosses the half-way level. Every point keeps its σ-derived seed, so an adaptive run is
resumable through the same store as a fixed-grid run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hil.walking.fit import CurveFit, fit_midpoint, summarize_repeats
from hil.walking.store import ResultStore
from hil.walking.sweep import SweepPoint

if TYPE_CHECKING:
    from hil.studies.engine import Executor, ProgressCallback
    from hil.studies.walk import InferenceWalk


@dataclass(frozen=True)
class AdaptivePlan:
    """Budget and stopping rule of an adaptive walk (log-σ scale).

    Attributes:
        low: Smallest σ considered.
        high: Largest σ considered.
        target_width: Stop when log10(μ_high / μ_low) is at most this (decades).
        coarse_repeats: Repeats of the coarse grid.
        refine_repeats: Repeats of each refinement point.
        max_rounds: Refinement rounds at most.
    """

    low: float = 1e-2
    high: float = 1e10
    target_width: float = 0.1
    coarse_repeats: int = 1
    refine_repeats: int = 3
    max_rounds: int = 6

    def to_dict(self) -> dict[str, float]:
        """JSON-ready form (part of the experiment config)."""
        return {"low": self.low, "high": self.high, "target_width": self.target_width,
                "coarse_repeats": self.coarse_repeats, "refine_repeats": self.refine_repeats,
                "max_rounds": self.max_rounds}


def interval_decades(fit: CurveFit) -> float:
    """Width of μ's 95 % interval in decades (inf when there is none)."""
    if fit.status != "ok" or not (fit.mu_low > 0 and math.isfinite(fit.mu_high)):
        return math.inf
    return math.log10(fit.mu_high / fit.mu_low)


COARSE_CHUNK = 3
"""Decades evaluated per step of the coarse scan."""
MIN_COARSE = 6
"""The coarse scan measures at least this many decades (a fit needs points on both plateaus)."""


class AdaptiveWalk:
    """Adaptive per-site walk: decides which points to measure; an `InferenceWalk` evaluates them."""

    def __init__(self, sweep: InferenceWalk, plan: AdaptivePlan, num_classes: int, n_samples: int,
                 executor: Executor | None = None) -> None:
        self.sweep = sweep
        self.executor = executor
        self.plan = plan
        self.num_classes = num_classes
        self.n_samples = n_samples

    def _points(self, site_index: int, sigmas: list[float], repeats: int) -> list[SweepPoint]:
        name = self.sweep.noisy.sites[site_index].name
        points: list[SweepPoint] = []
        for sigma in sigmas:
            sigma_add, sigma_mul = self.sweep.spec.sigma_pair(sigma)
            points.extend(SweepPoint(site_index, name, sigma, r, sigma_add, sigma_mul) for r in range(repeats))
        return points

    def _measured(self, store: ResultStore, experiment: str, site: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = [r for r in store.results(experiment) if r.key.site == site]
        noise = self.sweep.spec.noise
        sigmas = [r.key.sigma_mul if noise == "mul" else r.key.sigma_add for r in rows]
        return summarize_repeats(sigmas, [r.accuracy for r in rows])

    def _fit(self, store: ResultStore, experiment: str, site: str) -> tuple[CurveFit, np.ndarray, np.ndarray]:
        grid, mean, sem = self._measured(store, experiment, site)
        fit = fit_midpoint(grid, mean, sem, num_classes=self.num_classes, n_samples=self.n_samples)
        return fit, grid, mean

    def _refinement(self, fit: CurveFit, grid: np.ndarray, mean: np.ndarray) -> list[float]:
        plan = self.plan
        if fit.status == "ok" and math.isfinite(fit.width):
            centre = math.log10(fit.mu)
            offsets = (0.0, -0.5, 0.5, -1.0, 1.0)
            xs = [centre + k * max(fit.width, 0.02) for k in offsets]
        else:  # bisect where the mean crosses half-way between the best accuracy and chance
            half = (float(np.max(mean)) + 1.0 / self.num_classes) / 2
            xs = [math.log10(math.sqrt(a * b)) for a, b, m1, m2 in zip(grid[:-1], grid[1:], mean[:-1], mean[1:],
                                                                        strict=True) if m1 >= half > m2 and a > 0]
        low, high = math.log10(plan.low), math.log10(plan.high)
        # 6 significant digits: a fit's last bits differ between CPUs and BLAS builds, and a point's seed
        # follows its σ, so unrounded proposals would make the same walk give other draws on another machine
        return sorted({float(f"{10 ** min(max(x, low), high):.6g}") for x in xs})

    def _coarse_scan(self, site_index: int, site: str, store: ResultStore, experiment: str,
                     progress: ProgressCallback | None) -> tuple[np.ndarray, np.ndarray]:
        """One σ per decade from ``low`` upwards, in chunks, until two decades are below half-way.

        Above the transition the curve sits at chance, so decades beyond the second point below
        half-way add nothing to the fit; the scan runs to ``high`` only when no transition shows.
        """
        plan = self.plan
        decades = max(1, round(math.log10(plan.high / plan.low)))
        coarse = [plan.low * 10**i for i in range(decades + 1)]
        chance = 1.0 / self.num_classes
        grid = mean = np.zeros(0)
        for start in range(0, len(coarse), COARSE_CHUNK):
            chunk = coarse[start:start + COARSE_CHUNK]
            points = self._points(site_index, chunk, plan.coarse_repeats)
            self.sweep.run_points(points, store, experiment, progress, self.executor)
            grid, mean, _ = self._measured(store, experiment, site)
            half = (float(np.max(mean)) + chance) / 2
            if len(mean) >= MIN_COARSE and np.all(mean[-2:] < half):
                break
        return grid, mean

    def run_site(self, site_index: int, store: ResultStore, experiment: str,
                 progress: ProgressCallback | None = None) -> CurveFit:
        """Adaptive walk of one site; returns its final fit."""
        plan = self.plan
        site = self.sweep.noisy.sites[site_index].name
        grid, mean = self._coarse_scan(site_index, site, store, experiment, progress)
        fit, grid, mean = self._fit(store, experiment, site)
        for _ in range(plan.max_rounds):
            if interval_decades(fit) <= plan.target_width:
                break
            new = self._refinement(fit, grid, mean)
            if not new:
                break
            repeats = plan.refine_repeats
            if all(any(math.isclose(s, g) for g in grid) for s in new):
                repeats += plan.refine_repeats  # nothing new to place: add repeats where we are
            self.sweep.run_points(self._points(site_index, new, repeats), store, experiment, progress, self.executor)
            fit, grid, mean = self._fit(store, experiment, site)
        return fit
