"""The hardening study of paper 001: does quantisation (and its activation scaling) buy robustness?

For the float baseline and every (bits, scaling) variant, with and without noisy training, train
``repeats`` networks (seeds 0…), measure each one's peak (clean) test accuracy and its global
additive midpoint μ (inference-only global walk), and summarise mean ± a t interval over the
networks. Noisy training uses additive noise at all sites with σ = the float baseline's μ (measured
first), unless ``train_sigma`` is given. Every trained network is a checkpoint under
``OUT/runs/…`` and every walk point is in ``OUT/results.sqlite``: rerunning the same command
skips finished trainings and points, so a killed study continues where it stopped.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hil.config import TrainConfig
from hil.errors import ConfigError
from hil.intervals import mean_interval
from hil.noise import NoiseSpec

SUMMARY = "harden.json"


@dataclass(frozen=True)
class Variant:
    """One row of the study: precision, activation scaling, training noise."""

    bits: int | None
    scaling: str
    noisy: bool

    @property
    def label(self) -> str:
        """``fp32``, ``8-bit const:2``, with `` + noisy training`` when noisy."""
        base = "fp32" if self.bits is None else f"{self.bits}-bit {self.scaling}"
        return base + (" + noisy training" if self.noisy else "")

    @property
    def key(self) -> str:
        """Folder name."""
        base = "fp32" if self.bits is None else f"q{self.bits}-{self.scaling.replace(':', '')}"
        return base + ("-noisy" if self.noisy else "")


@dataclass(frozen=True)
class VariantResult:
    """Accuracy and μ of the networks of one variant."""

    variant: Variant
    accuracies: tuple[float, ...]
    mus: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain form (nan → None)."""
        accuracy, mu = mean_interval(self.accuracies), mean_interval(self.mus)

        def clean(value: float) -> float | None:
            return value if math.isfinite(value) else None

        return {"label": self.variant.label, "bits": self.variant.bits, "scaling": self.variant.scaling,
                "noisy_training": self.variant.noisy, "accuracies": list(self.accuracies),
                "mus": [clean(m) for m in self.mus], "accuracy": [clean(v) for v in accuracy],
                "mu": [clean(v) for v in mu]}


def variants(bits: Sequence[int], scalings: Sequence[str], noisy: bool = True) -> list[Variant]:
    """The float baseline first, then every (bits, scaling); each clean and (if ``noisy``) noisy."""
    from hil.models.quantize import QuantConfig

    for b in bits:
        for s in scalings:
            QuantConfig(b, s)  # validate early, before any training
    rows = [(None, "-"), *((b, s) for b in bits for s in scalings)]
    return [Variant(b, s, flag) for flag in ((False, True) if noisy else (False,)) for b, s in rows]


def _train_once(base: TrainConfig, variant: Variant, seed: int, sigma: float, folder: Path) -> Path:
    from hil.training import train_once

    config = replace(base, seed=seed, quant=variant.bits,
                     act_scaling=variant.scaling if variant.bits is not None else "dynamic",
                     noise=NoiseSpec(sigma_add=sigma) if variant.noisy else NoiseSpec())
    return train_once(config, folder / "runs" / variant.key / f"seed-{seed}")


def _global_mu(checkpoint: Path, folder: Path, sigmas: tuple[float, ...], repeats: int, backend: str,
               executor: Any) -> float:
    from hil.studies.walk import walk_checkpoint
    from hil.walking.sweep import SweepSpec

    report = walk_checkpoint(checkpoint, SweepSpec(noise="add", sigmas=sigmas, sites="global", repeats=repeats),
                             folder, backend=backend, executor=executor, write_summary=False)
    fit = report.sites[0].fit
    return float(fit.mu) if fit.status == "ok" else math.nan


def run_study(base: TrainConfig, out: str | os.PathLike[str], *, bits: Sequence[int] = (4, 8),
              scalings: Sequence[str] = ("dynamic", "const:1", "const:2"), repeats: int = 3,
              walk_repeats: int = 3, sigmas: Sequence[float] | None = None, train_sigma: float | None = None,
              noisy: bool = True, progress: Callable[[str], None] | None = None,
              executor: Any = None) -> list[VariantResult]:
    """Run (or resume) the study; returns one result per variant and writes ``OUT/harden.json``.

    Networks train on ``base.backend`` and their global walks run there too, through the study
    engine (``executor``: where the walk points run).

    Raises:
        HilError: Bad settings, data or checkpoints.
    """
    from hil.checkpoint import read_run_metadata
    from hil.walking.grid import default_sigmas

    if repeats < 1 or walk_repeats < 1:
        raise ConfigError("--repeats must be ≥ 1")
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--out {folder} is a file; choose a directory")
    folder.mkdir(parents=True, exist_ok=True)
    grid = tuple(sigmas) if sigmas else default_sigmas("add", True)
    rows = variants(bits, scalings, noisy)
    results: list[VariantResult] = []
    sigma = train_sigma
    for variant in rows:
        if variant.noisy and sigma is None:
            baseline = next(r for r in results if r.variant.bits is None and not r.variant.noisy)
            finite = [m for m in baseline.mus if math.isfinite(m)]
            if not finite:
                raise ConfigError("the float baseline has no global midpoint inside the σ grid; give --train-sigma")
            sigma = statistics.fmean(finite)
        accuracies, mus = [], []
        for seed in range(repeats):
            if progress is not None:
                progress(f"{variant.label}, network {seed + 1}/{repeats}")
            checkpoint = _train_once(base, variant, seed, sigma or 0.0, folder)
            accuracies.append(read_run_metadata(checkpoint).test_accuracy)
            mus.append(_global_mu(checkpoint, folder, grid, walk_repeats, base.backend, executor))
        results.append(VariantResult(variant, tuple(accuracies), tuple(mus)))
    summary = {"model": base.model, "dataset": base.dataset, "preprocess": base.preprocess, "epochs": base.epochs,
               "repeats": repeats,
               "train_sigma": sigma, "sigmas": list(grid), "variants": [r.to_dict() for r in results]}
    temp = folder / (SUMMARY + ".tmp")
    temp.write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(temp, folder / SUMMARY)
    return results


def plot_tradeoff(results: Sequence[VariantResult], path: str | os.PathLike[str]) -> list[Path]:
    """Peak accuracy vs μ, one point per variant with 95 % intervals (PNG + SVG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4.2))
    for result in results:
        data = result.to_dict()
        mu, acc = data["mu"], data["accuracy"]
        if mu[0] is None or acc[0] is None:
            continue
        xerr = [[mu[0] - mu[1]], [mu[2] - mu[0]]] if mu[1] is not None else None
        yerr = [[acc[0] - acc[1]], [acc[2] - acc[0]]] if acc[1] is not None else None
        marker = "s" if result.variant.noisy else "o"
        colour = "#333333" if result.variant.bits is None else ("#1f4e79" if result.variant.bits >= 8 else "#c0504d")
        axis.errorbar(mu[0], acc[0] * 100, xerr=xerr, yerr=None if yerr is None else [[v * 100 for v in yerr[0]],
                                                                                       [v * 100 for v in yerr[1]]],
                      fmt=marker, color=colour, capsize=2, markersize=5)
        axis.annotate(result.variant.label.replace(" + noisy training", " +NT"), (mu[0], acc[0] * 100),
                      fontsize=6, xytext=(3, 3), textcoords="offset points")
    axis.set_xscale("log")
    axis.set_xlabel("global additive midpoint μ")
    axis.set_ylabel("peak accuracy (%)")
    axis.set_title("accuracy vs robustness (○ trained clean, □ noisy training)")
    figure.tight_layout()
    stem = Path(path)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    for target in paths:
        figure.savefig(target, dpi=150)
    plt.close(figure)
    return paths
