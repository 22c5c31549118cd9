"""Per-site sensitivity from Walking Noise results: μ per site, its curve, and the global μ.

A walk folder (``hil walk --out DIR``) holds a results store with one or more experiments. For
guidance we need the latest per-site experiment of the evaluation's noise kind and, for the
default σ, the latest global experiment of that kind. Either flavour works (inference-only on a
checkpoint, or noisy training per point).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hil.errors import ConfigError
from hil.walking.fit import CurveFit
from hil.walking.report import STORE_NAME, SiteFit, experiment_sizes, fit_experiment


@dataclass(frozen=True)
class SiteSensitivity:
    """How one site's noise alone affects accuracy.

    Attributes:
        site: Site name (``"3:conv2"``).
        sigmas: Measured σ grid.
        mean: Mean accuracy at each σ.
        fit: The midpoint fit of the curve.
    """

    site: str
    sigmas: tuple[float, ...]
    mean: tuple[float, ...]
    fit: CurveFit

    @classmethod
    def from_site_fit(cls, fit: SiteFit) -> SiteSensitivity:
        """From a fitted walk curve."""
        return cls(fit.site, fit.sigmas, fit.mean, fit.fit)

    @property
    def mu(self) -> float:
        """Midpoint noise level for the 1/μ rule.

        When the curve never crosses half-way inside the grid, the grid edge is used: the largest
        σ when the site is more robust than the grid reaches (a lower bound on μ, so the site gets
        at most the executions it needs), the smallest σ when it is already broken there.
        """
        if self.fit.status == "ok" and math.isfinite(self.fit.mu) and self.fit.mu > 0:
            return float(self.fit.mu)
        positive = [s for s in self.sigmas if s > 0]
        if not positive:
            return math.nan
        return min(positive) if "below the half-way" in self.fit.message else max(positive)

    def predict(self, sigma: float) -> float:
        """Accuracy with noise σ at this site only: the fitted curve, or the measured means.

        Without a usable fit the measured means are interpolated (linearly in log σ, made
        non-increasing, held constant beyond the grid).
        """
        if self.fit.status == "ok":
            value = float(self.fit.predict(np.array([sigma]))[0])
            if math.isfinite(value):
                return value
        sigmas = np.asarray(self.sigmas, dtype=float)
        mean = np.asarray(self.mean, dtype=float)
        order = np.argsort(sigmas)
        sigmas, mean = sigmas[order], np.minimum.accumulate(mean[order])
        if sigma <= sigmas[0]:
            return float(mean[0])
        if sigma >= sigmas[-1]:
            return float(mean[-1])
        positive = sigmas > 0
        if sigmas[0] == 0 and sigma < sigmas[positive][0]:
            return float(np.interp(sigma, sigmas[:2], mean[:2]))
        return float(np.interp(math.log10(sigma), np.log10(sigmas[positive]), mean[positive]))


@dataclass(frozen=True)
class Sensitivity:
    """Per-site sensitivities of one walk, plus the global μ when the folder has a global sweep.

    Attributes:
        folder: The walk folder.
        noise: ``add`` or ``mul``.
        experiment: Id of the per-site experiment used.
        config: Its configuration (flavour, checkpoint or training run, grid).
        sites: One entry per walked site, in site order.
        global_fit: Fit of the global sweep of the same noise kind, if any.
        num_classes: Classes of the task (chance = 1/K).
    """

    folder: Path
    noise: str
    experiment: str
    config: dict[str, Any]
    sites: tuple[SiteSensitivity, ...]
    global_fit: CurveFit | None
    num_classes: int

    @property
    def global_mu(self) -> float | None:
        """The network's global midpoint μ (None without a usable global sweep)."""
        if self.global_fit is None or self.global_fit.status != "ok":
            return None
        return float(self.global_fit.mu)

    @property
    def flavour(self) -> str:
        """``inference`` or ``train``."""
        return str(self.config.get("kind", "inference"))

    def for_sites(self, names: Sequence[str], model_sites: Sequence[str] | None = None,
                  model: str | None = None) -> tuple[SiteSensitivity, ...]:
        """The sensitivities of ``names`` (a checkpoint's noisy sites), in that order.

        Args:
            names: The sites that need a sensitivity (the noisy ones).
            model_sites: All site names of the checkpoint's model (default ``names``).
            model: The checkpoint's model name, checked against a noisy-training walk's model.

        Raises:
            ConfigError: The walk comes from a different model, or does not cover every site.
        """
        walked = {s.site: s for s in self.sites}
        walked_model = self.config.get("train", {}).get("model") if self.flavour == "train" else None
        model_sites = list(names if model_sites is None else model_sites)
        foreign = [n for n in walked if n not in model_sites]
        if foreign or (model and walked_model and walked_model != model):
            raise ConfigError(
                f"the walk in {self.folder} is of another model{f' ({walked_model})' if walked_model else ''}: "
                f"it has sites {', '.join(walked)} but the checkpoint has {', '.join(model_sites)}; "
                f"walk this model (hil walk --checkpoint … --out DIR)")
        missing = [n for n in names if n not in walked]
        if missing:
            raise ConfigError(
                f"the walk in {self.folder} lacks sites {', '.join(missing)}; re-run hil walk on all sites "
                f"(drop --sites) with the same --out")
        return tuple(walked[n] for n in names)


def _noise_kind(config: dict[str, Any]) -> str:
    return str(config.get("sweep", {}).get("noise", "add"))


def _is_global(config: dict[str, Any]) -> bool:
    return config.get("sweep", {}).get("sites") == "global"


def _is_plain(config: dict[str, Any]) -> bool:
    return not config.get("sweep", {}).get("mul_sigmas")


def load_sensitivity(folder: str | os.PathLike[str], noise: str = "add") -> Sensitivity:
    """Read a walk folder: the latest per-site experiment of ``noise`` and its global μ if any.

    Args:
        folder: Output folder of ``hil walk``.
        noise: ``add`` (the evaluation has σa only) or ``mul`` (σm only).

    Raises:
        ConfigError: No results, no per-site experiment of that noise kind.
    """
    from hil.walking.store import ResultStore

    path = Path(folder) / STORE_NAME
    if not path.is_file():
        raise ConfigError(f"no Walking Noise results in {folder} (expected {path}); run hil walk --out {folder} first")
    with ResultStore(path, read_only=True) as store:
        experiments = [(str(e["id"]), store.config(str(e["id"]))) for e in store.experiments()]
        usable = [(i, c) for i, c in experiments if _noise_kind(c) == noise and _is_plain(c)]
        per_site = [(i, c) for i, c in usable if not _is_global(c)]
        if not per_site:
            kinds = sorted({_noise_kind(c) + (" global" if _is_global(c) else "") for _, c in experiments}) or ["none"]
            raise ConfigError(f"{folder} has no per-site {noise} walk (it has: {', '.join(kinds)}); run "
                              f"hil walk --noise {noise} --out {folder} on the model first")
        experiment, config = per_site[-1]
        report = fit_experiment(store, experiment)
        global_fit = None
        globals_ = [i for i, c in usable if _is_global(c)]
        if globals_:
            global_fit = fit_experiment(store, globals_[-1]).sites[0].fit
    sites = tuple(SiteSensitivity.from_site_fit(f) for f in report.sites)
    return Sensitivity(Path(folder), noise, experiment, config, sites, global_fit, experiment_sizes(config)[0])
