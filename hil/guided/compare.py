"""Evaluate a checkpoint with repeated executions per site: none, uniform, or guided by a walk.

Protocol (paper 002, section 8, made paired): all strategies run at the same σ (default: the
network's global midpoint μ from the walk), with the same evaluation seeds, on the same test
split. Every strategy except ``none`` has the same total budget n_t = L·r̄ executions over the L
noisy sites. Differences to ``uniform`` are paired per noise draw and get a t interval.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hil.errors import ConfigError
from hil.evaluation import EvaluationResult
from hil.guided.allocation import (
    allocate_greedy,
    allocate_inverse_mu,
    allocate_sqrt_drop,
    predict_accuracy,
    uniform_allocation,
)
from hil.guided.sensitivity import Sensitivity, SiteSensitivity, load_sensitivity
from hil.noise import NoiseSpec, SiteOverride
from hil.validation import check_int, check_size

if TYPE_CHECKING:
    from hil.studies.engine import Executor

STRATEGIES: tuple[str, ...] = ("none", "uniform", "guided-1/mu", "guided-greedy")
"""Strategies in table order."""
PLACEMENT_STRATEGY = "guided-placement"
"""Executions ∝ √(drop) from a placement walk on the hardware (`allocate_sqrt_drop`)."""
SNR_STRATEGY = "guided-snr"
"""The greedy rule on the accuracy-vs-σ curves an SNR walk measured on the hardware, each layer at its own σ."""
MARGINAL_STRATEGY = "guided-marginal"
"""The executions a marginal walk chose on the hardware (exchanges measured to gain, `hil.studies.marginal`)."""
ALLOCATORS = {"greedy": "guided-greedy", "inverse-mu": "guided-1/mu"}
"""``--allocator`` value → strategy name."""
COSTS: tuple[str, ...] = ("executions", "macs")


@dataclass(frozen=True)
class SiteCost:
    """One noisy site and what one execution of it costs.

    Attributes:
        name: Site name.
        macs: Multiply-accumulates per sample of one execution (0 for digital sites).
        numel: Output elements per sample.
    """

    name: str
    macs: int
    numel: int

    def weight(self, cost: str) -> float:
        """Cost of one execution: 1 (``executions``) or its MACs, elements for digital sites (``macs``)."""
        return 1.0 if cost == "executions" else float(self.macs or self.numel)


@dataclass(frozen=True)
class Allocation:
    """Executions per noisy site for one strategy.

    Attributes:
        strategy: One of `STRATEGIES`.
        sites: The noisy sites.
        executions: Executions per site, in site order.
        predicted: Accuracy the greedy rule's model predicts for it (nan without a walk).
        clean_macs: MACs per sample of the matmul sites without noise (run once each).
    """

    strategy: str
    sites: tuple[SiteCost, ...]
    executions: tuple[int, ...]
    predicted: float = math.nan
    clean_macs: int = 0

    @property
    def total_executions(self) -> int:
        """Σ r_i over the noisy sites (n_t)."""
        return sum(self.executions)

    @property
    def macs_per_sample(self) -> int:
        """Multiply-accumulates per input sample, every execution of every matmul counted."""
        return self.clean_macs + sum(r * s.macs for r, s in zip(self.executions, self.sites, strict=True))

    def overrides(self) -> tuple[SiteOverride, ...]:
        """NoiseSpec overrides that set each site's executions."""
        return tuple(SiteOverride(site=s.name, repeats=r) for s, r in zip(self.sites, self.executions, strict=True))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"strategy": self.strategy, "executions": {s.name: r for s, r in zip(self.sites, self.executions,
                                                                                 strict=True)},
                "total_executions": self.total_executions, "macs_per_sample": self.macs_per_sample,
                "predicted_accuracy": None if math.isnan(self.predicted) else self.predicted}


def plan_allocations(strategies: Sequence[str], sites: Sequence[SiteCost], budget: int, *,
                     sensitivity: Sequence[SiteSensitivity] | None = None, drops: Sequence[float] | None = None,
                     sigma: float | Sequence[float] = 0.0, snr: SnrCurves | None = None,
                     marginal: Mapping[str, int] | None = None, cost: str = "executions", num_classes: int = 10,
                     clean_macs: int = 0) -> list[Allocation]:
    """Executions per site for each strategy at budget r̄ (n_t = L·r̄ executions).

    ``guided-greedy`` spends the same cost as ``uniform`` would: L·r̄ executions with
    ``cost="executions"``, r̄·Σ c_i with ``cost="macs"``; ``guided-1/mu`` is the paper's rule and
    always spends n_t executions. ``guided-snr`` is the greedy rule on ``snr``: the hardware's own
    curves, each layer at the σ it has natively (n_t executions). ``guided-marginal`` takes the executions a
    marginal walk chose (``marginal``: site → executions; they must spend n_t).

    Raises:
        ConfigError: Unknown strategy or cost; guided strategy without sensitivities; bad budget.
    """
    if cost not in COSTS:
        raise ConfigError(f"cost must be one of {', '.join(COSTS)}, got {cost!r}")
    budget = check_int(budget, "--budget", low=1, note="(executions per site on average)")
    count = len(sites)
    if count == 0:
        raise ConfigError("no site has noise: give --sigma-add or --sigma-mul (repetitions average noise)")
    curves = [s.predict for s in sensitivity] if sensitivity is not None else None
    chance = 1.0 / num_classes
    plans = []
    for strategy in strategies:
        if strategy not in (*STRATEGIES, PLACEMENT_STRATEGY, SNR_STRATEGY, MARGINAL_STRATEGY):
            raise ConfigError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
        if strategy == SNR_STRATEGY:
            if snr is None:
                raise ConfigError(f"{strategy} needs an SNR walk: pass its folder (hil walk --snr)")
            executions = allocate_greedy(snr.curves, snr.sigma, float(count * budget), chance=chance)
        elif strategy == MARGINAL_STRATEGY:
            executions = _marginal_executions(marginal, sites, count * budget)
        elif strategy == PLACEMENT_STRATEGY:
            if drops is None:
                raise ConfigError(f"{strategy} needs a placement walk: pass its folder (hil walk --placement)")
            executions = allocate_sqrt_drop(drops, count * budget)
        elif strategy.startswith("guided") and curves is None:
            raise ConfigError(f"{strategy} needs Walking Noise results: pass the walk folder")
        elif strategy == "none":
            executions = uniform_allocation(count, 1)
        elif strategy == "uniform":
            executions = uniform_allocation(count, budget)
        elif strategy == "guided-1/mu":
            executions = allocate_inverse_mu([s.mu for s in sensitivity or ()], count * budget)
        else:
            weights = [s.weight(cost) for s in sites]
            executions = allocate_greedy(curves or [], sigma, budget * sum(weights), costs=weights, chance=chance)
        model, levels = (snr.curves, snr.sigma) if strategy == SNR_STRATEGY and snr is not None else (curves, sigma)
        predicted = math.nan
        if model is not None:
            clean = max(c(0.0) for c in model)
            predicted = predict_accuracy(model, executions, levels, clean=clean, chance=chance)
        plans.append(Allocation(strategy, tuple(sites), executions, predicted, clean_macs))
    return plans


def _marginal_executions(marginal: Mapping[str, int] | None, sites: Sequence[SiteCost],
                         total: int) -> tuple[int, ...]:
    if marginal is None:
        raise ConfigError(f"{MARGINAL_STRATEGY} needs a marginal walk: pass its folder (hil walk --marginal)")
    missing = [s.name for s in sites if s.name not in marginal]
    if missing:
        raise ConfigError(f"the marginal walk has no executions for {', '.join(missing)}; it was run on another "
                          f"network — rerun hil walk --marginal on this checkpoint")
    executions = tuple(marginal[s.name] for s in sites)
    if sum(executions) != total:
        raise ConfigError(f"the marginal walk chose {sum(executions)} executions for {len(sites)} layers, this "
                          f"comparison spends {total}: pass the --budget the walk was run with "
                          f"({sum(executions) / len(sites):g})")
    return executions


@dataclass(frozen=True)
class PairedDifference:
    """Accuracy of a strategy minus the baseline's, paired per noise draw.

    Attributes:
        strategy: The strategy.
        baseline: The strategy it is compared with (``uniform``).
        mean: Mean paired difference (accuracy fraction).
        low: Lower end of the 95 % t interval.
        high: Upper end.
    """

    strategy: str
    baseline: str
    mean: float
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        """True when the interval lies entirely above or below 0."""
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"strategy": self.strategy, "baseline": self.baseline, "mean": self.mean, "low": self.low,
                "high": self.high, "excludes_zero": self.excludes_zero}


def paired_difference(strategy: str, result: EvaluationResult, baseline: str, reference: EvaluationResult,
                      confidence: float = 0.95) -> PairedDifference:
    """Mean of the per-draw differences with a Student-t interval (needs ≥ 2 paired draws)."""
    from hil.intervals import mean_interval

    diffs = [a - b for a, b in zip(result.accuracies, reference.accuracies, strict=True)]
    return PairedDifference(strategy, baseline, *mean_interval(diffs, confidence))


@dataclass(frozen=True)
class StrategyResult:
    """Accuracy of one allocation."""

    allocation: Allocation
    result: EvaluationResult

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {**self.allocation.to_dict(), "accuracy": self.result.to_dict()}


@dataclass(frozen=True)
class RepetitionReport:
    """Result of `evaluate_repetitions`."""

    checkpoint: Path
    backend: str
    noise: NoiseSpec
    sigma_source: str
    budget: int
    cost: str
    strategies: tuple[StrategyResult, ...]
    differences: tuple[PairedDifference, ...]
    walk: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"checkpoint": str(self.checkpoint), "backend": self.backend, "noise": self.noise.to_dict(),
                "sigma_source": self.sigma_source, "budget": self.budget, "cost": self.cost, "walk": self.walk,
                "strategies": [s.to_dict() for s in self.strategies],
                "paired_differences": [d.to_dict() for d in self.differences]}


@dataclass(frozen=True)
class RepetitionRequest:
    """Which strategies to evaluate, at what budget, guided by which walk, over how many draws."""

    strategies: tuple[str, ...]
    budget: int
    walk: Path | None
    repeats: int


def repetition_request(*, guided: Path | None = None, uniform: int | None = None, compare: Path | None = None,
                       budget: int | None = None, allocator: str = "greedy",
                       repeats: int | None = None) -> RepetitionRequest:
    """The request behind ``--guided-reps WALK`` / ``--uniform-reps R`` / ``--compare-reps WALK`` (one of them).

    Raises:
        ConfigError: Unknown allocator, a missing or contradictory budget, too few draws to compare.
    """
    if allocator not in ALLOCATORS:
        raise ConfigError(f"--allocator must be one of {', '.join(ALLOCATORS)}, got {allocator!r}")
    walk: Path | None
    if uniform is not None:
        if budget is not None and budget != uniform:
            raise ConfigError("--uniform-reps is itself the budget; drop --budget")
        strategies: tuple[str, ...] = ("uniform",)
        budget, walk = uniform, None
    else:
        if budget is None:
            raise ConfigError("--budget is required: executions per noisy site on average, e.g. --budget 3")
        walk = guided or compare
        strategies = STRATEGIES if compare is not None else (ALLOCATORS[allocator],)
    if repeats is None:
        repeats = 5 if compare is not None else 1
    if compare is not None and repeats < 2:
        raise ConfigError("a paired comparison needs --repeats ≥ 2 (5 or more recommended)")
    return RepetitionRequest(strategies, budget, walk, repeats)


def _noise_kind(noise: NoiseSpec) -> str:
    if noise.sigma_add and noise.sigma_mul:
        raise ConfigError("guided repetitions use one noise kind: give --sigma-add or --sigma-mul, not both")
    adds = noise.sigma_add or any(o.sigma_add for o in noise.overrides)
    return "mul" if (noise.sigma_mul and not adds) else "add"


def _with_walk_sigma(noise: NoiseSpec, sensitivity: Sensitivity) -> tuple[NoiseSpec, str]:
    if not noise.is_clean:
        return noise, "given"
    mu = sensitivity.global_mu
    if mu is None:
        raise ConfigError(f"{sensitivity.folder} has no global {sensitivity.noise} walk to take σ from; give "
                          f"--sigma-{sensitivity.noise} or run hil walk --global --noise {sensitivity.noise} "
                          f"--out {sensitivity.folder}")
    field = "sigma_mul" if sensitivity.noise == "mul" else "sigma_add"
    changed = replace(noise, sigma_mul=mu) if field == "sigma_mul" else replace(noise, sigma_add=mu)
    return changed, f"global μ of the walk ({mu:.4g})"


@dataclass(frozen=True)
class SnrCurves:
    """An SNR walk as the greedy rule reads it: per noisy layer, accuracy vs σ and the layer's native σ."""

    curves: tuple[Any, ...]
    sigma: tuple[float, ...]


def load_snr(folder: str | os.PathLike[str], layers: Sequence[str], *, num_classes: int,
             n_samples: int) -> SnrCurves | None:
    """The curves of ``layers`` from an SNR walk folder (``snr.json``), or None when it is not one.

    Each curve is refitted from the stored means (clean accuracy at σ = 0, then σ_eff(k)) as the walk fitted
    it; without a usable fit the means are interpolated (`SiteSensitivity.predict`).

    Raises:
        ConfigError: An ``snr.json`` that cannot be read, or one without a row for one of ``layers``.
    """
    import json

    from hil.studies.snr import SiteSigma, fit_snr_curve

    path = Path(folder) / "snr.json"
    if not path.is_file():
        return None
    check_size(path, "SNR walk")
    try:
        data = json.loads(path.read_text())
        clean = float(data["clean"])
        table = {str(row["layer"]): ([float(p["sigma"]) for p in row["curve"]],
                                     [float(p["accuracy"]) for p in row["curve"]],
                                     [float(p["sem"]) for p in row["curve"]],
                                     SiteSigma(float(row["sigma_native"]), float(row["sigma_dac"])).total)
                 for row in data["layers"]}
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"cannot read the SNR walk {path} ({error}); rerun hil walk --snr") from None
    missing = [layer for layer in layers if layer not in table]
    if missing:
        raise ConfigError(f"the SNR walk has no row for {', '.join(missing)}; it was run on another network — "
                          f"rerun hil walk --snr on this checkpoint")
    curves, sigma = [], []
    for layer in layers:
        effective, means, sems, native = table[layer]
        fit = fit_snr_curve(clean, effective, means, sems, num_classes=num_classes, n_samples=n_samples)
        curves.append(SiteSensitivity(layer, (0.0, *effective), (clean, *means), fit).predict)
        sigma.append(native)
    return SnrCurves(tuple(curves), tuple(sigma))


def load_placement(folder: str | os.PathLike[str]) -> dict[str, float] | None:
    """Layer → measured drop from a placement walk folder (``placement.json``), or None when it is not one.

    Raises:
        ConfigError: A ``placement.json`` that cannot be read or lacks its rows.
    """
    import json

    path = Path(folder) / "placement.json"
    if not path.is_file():
        return None
    check_size(path, "placement walk")
    try:
        data = json.loads(path.read_text())
        rows = {str(row["layer"]): float(row["drop"]) for row in data["layers"]}
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"cannot read the placement walk {path} ({error}); rerun hil walk --placement") from None
    return rows


def evaluate_repetitions(checkpoint: str | os.PathLike[str], strategies: Sequence[str], *, budget: int,
                         noise: NoiseSpec, walk: str | os.PathLike[str] | None = None, backend: str = "sim",
                         repeats: int = 5, seed: int = 0, cost: str = "executions", data_dir: str | None = None,
                         batch_size: int = 1000, executor: str | Executor | None = None,
                         fold_bn: bool = False) -> RepetitionReport:
    """Accuracy of ``checkpoint`` under ``noise`` for each repetition strategy, same seeds for all.

    Args:
        checkpoint: Checkpoint directory.
        strategies: Names from `STRATEGIES`.
        budget: r̄, executions per noisy site on average.
        noise: The noise; with no σ given, the walk's global μ is used (``add`` unless σm is set).
        walk: ``hil walk`` output folder (needed for guided strategies and for the default σ).
        backend: Backend spec.
        repeats: Noise draws per strategy (paired across strategies).
        seed: Seed of the draws.
        cost: ``executions`` or ``macs`` — what the greedy budget counts.
        data_dir: Override the dataset folder.
        batch_size: Evaluation batch size.
        executor: Where the (strategy, draw) points run (`hil.studies.engine.get_executor`; default local).
        fold_bn: Fold BatchNorm into the layer before it first (`hil.models.fold`).

    Raises:
        HilError: Bad checkpoint, walk folder, σ, budget, backend or executor.
    """
    from hil.evaluation import summarize_draws
    from hil.runs import open_run
    from hil.studies.marginal import load_marginal
    from hil.studies.repetitions import RepetitionStudy

    placement = load_placement(walk) if walk is not None else None
    marginal = load_marginal(walk) if walk is not None and placement is None else None
    snr_walk = (walk is not None and placement is None and marginal is None
                and (Path(walk) / "snr.json").is_file())
    if walk is None and noise.is_clean:
        raise ConfigError("give --sigma-add or --sigma-mul (or a walk folder to take the global μ from)")
    sigma_source = "given"
    sensitivity = None
    if placement is not None or snr_walk or marginal is not None:
        hardware = (PLACEMENT_STRATEGY if placement is not None else
                    MARGINAL_STRATEGY if marginal is not None else SNR_STRATEGY)
        strategies = tuple(dict.fromkeys(hardware if s.startswith("guided") else s for s in strategies))
        if noise.is_clean:  # the hardware brings its own noise to Linear/Conv sites; σ only marks them noisy
            noise, sigma_source = NoiseSpec(sigma_add=1.0, sites="matmul"), "the hardware's own (Linear/Conv sites)"
    kind = _noise_kind(noise)
    if walk is not None and placement is None and marginal is None and not snr_walk:
        sensitivity = load_sensitivity(walk, kind)
        noise, sigma_source = _with_walk_sigma(noise, sensitivity)
    with open_run(checkpoint, backend, noise, data_dir=data_dir, fold_bn=fold_bn) as run:
        noisy, data, loaded = run.noisy, run.data, run.checkpoint
        plan = noisy.site_noise
        noisy_sites = [SiteCost(s.name, s.macs, s.numel) for s, n in zip(noisy.sites, plan, strict=True)
                       if not n.is_clean]
        clean_macs = sum(s.macs for s, n in zip(noisy.sites, plan, strict=True) if n.is_clean)
        site_curves = None
        if sensitivity is not None:
            model_name = loaded.run.model.name
            site_curves = sensitivity.for_sites([s.name for s in noisy_sites], [s.name for s in noisy.sites],
                                                model_name)
        drops, snr = None, None
        if placement is not None or snr_walk or marginal is not None:
            from hil.backends.base import PlacesLayers

            if not isinstance(run.backend, PlacesLayers):
                kind_of_walk = "a placement" if placement is not None else "a marginal" if marginal else "an SNR"
                raise ConfigError(f"repetitions guided by {kind_of_walk} walk "
                                  f"run on the hardware it measured: give --backend device:… or twin:…")
        if snr_walk:
            assert walk is not None
            snr = load_snr(walk, [s.name for s in noisy_sites], num_classes=data.num_classes,
                           n_samples=len(data.test_y))
        if placement is not None:
            missing = [s.name for s in noisy_sites if s.name not in placement]
            if missing:
                raise ConfigError(f"the placement walk has no drop for {', '.join(missing)}; it was run on another "
                                  f"network or with other sites — rerun hil walk --placement on this checkpoint")
            drops = [placement[s.name] for s in noisy_sites]
        sigma = [n.sigma_mul if kind == "mul" else n.sigma_add for n in plan if not n.is_clean]
        allocations = plan_allocations(strategies, noisy_sites, budget, sensitivity=site_curves, drops=drops,
                                       sigma=sigma, snr=snr, marginal=marginal,
                                       cost=cost, num_classes=data.num_classes, clean_macs=clean_macs)
        plans = [(a.strategy, noise.with_overrides(*a.overrides())) for a in allocations]
        study = RepetitionStudy(noisy, data.test_x, data.test_y, plans, draws=repeats, seed=seed,
                                batch_size=batch_size)
        results = [StrategyResult(allocation, summarize_draws(accuracies, len(data.test_y)))
                   for allocation, accuracies in zip(allocations, study.accuracies(executor), strict=True)]
    by_name = {r.allocation.strategy: r.result for r in results}
    differences = tuple(paired_difference(name, by_name[name], "uniform", by_name["uniform"])
                        for name in by_name if name != "uniform" and "uniform" in by_name)
    return RepetitionReport(Path(checkpoint), backend, noise, sigma_source, budget, cost, tuple(results),
                            differences, None if walk is None else str(walk))
