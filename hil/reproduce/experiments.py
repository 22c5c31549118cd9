"""The papers' experiments, each run with the paper's protocol through hil's own training, walks and studies.

Every experiment writes into one folder (``--out``): trained networks under ``runs/`` (a network trained
with the same settings is reused by every experiment that needs it, and a rerun skips it), walks under
``walks/`` (results stores, so a rerun resumes them), and its table under ``<experiment>/``. ``quick``
keeps each experiment to a minute or two on 2 CPU cores (fewer epochs, draws, grid points and rows); the
full protocol is the paper's where it fits a laptop and says where it does not.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hil.config import TrainConfig
from hil.errors import ConfigError
from hil.intervals import mean_interval
from hil.noise import NoiseSpec
from hil.reproduce.table import Check, PaperValue, ReproTable, Row, paper_value

if TYPE_CHECKING:
    from hil.walking.curve import CurveFit
    from hil.walking.report import WalkReport

NAMES = {"mlp": "MLP", "lenet5": "LeNet-5", "cnn-s": "CNN-S"}
# Walking Noise trains with Adam, lr 1e-3, batch 128 and a cosine schedule; the paper does not give the epochs.
# 30 epochs of full MNIST are ~14,000 optimizer steps, 30 epochs of mnist5k only ~940: noisy training then has
# not yet grown the weights that make it robust (measured, MLP without BN, global additive noise: 30 epochs
# give noisy-trained / inference-only μ = 1.6×, 150 epochs 2.3×; the paper's 3.6×). The small stand-ins
# therefore train 150 epochs (~4,700 steps) by default.
WALKING_NOISE_EPOCHS = {"mnist5k": 150, "digits": 150}


@dataclass(frozen=True)
class ReproContext:
    """Where and how an experiment runs.

    Attributes:
        out: The reproduction folder (shared by all experiments: networks and walks are reused).
        dataset: Dataset name (mnist5k by default; full datasets from ``data_dir``).
        data_dir: Folder with the dataset files.
        quick: A reduced protocol (minutes on a laptop) instead of the paper's.
        executor: Where walk and study points run (``local``, ``ray``, …).
        progress: Called with a line of text as each step starts.
        models: Run only the rows of these models (None: every row the experiment has).
        epochs_override: Train every network this many epochs instead of the experiment's default.
    """

    out: Path
    dataset: str = "mnist5k"
    data_dir: str | None = None
    quick: bool = False
    executor: str = "local"
    progress: Callable[[str], None] | None = None
    models: tuple[str, ...] | None = None
    epochs_override: int | None = None

    def rows(self, *candidates: tuple[str, bool]) -> list[tuple[str, bool]]:
        """The (model, bn) rows of ``candidates`` that ``models`` selects.

        Raises:
            ConfigError: ``models`` selects none of them.
        """
        chosen = [c for c in candidates if self.models is None or c[0] in self.models]
        if not chosen:
            names = ", ".join(dict.fromkeys(model for model, _ in candidates))
            raise ConfigError(f"--models {','.join(self.models or ())} selects none of this experiment's models "
                              f"({names})")
        return chosen

    def say(self, text: str) -> None:
        """Report a step."""
        if self.progress is not None:
            self.progress(text)

    @property
    def epochs(self) -> int:
        """Training epochs of the Walking Noise experiments: 30 (150 on the small stand-ins, see
        `WALKING_NOISE_EPOCHS`; 10 quick), or ``epochs_override``."""
        return self.epochs_for(WALKING_NOISE_EPOCHS.get(self.dataset, 30), 10)

    def epochs_for(self, full: int, quick: int) -> int:
        """An experiment's training epochs: ``full`` or ``quick``, unless ``epochs_override`` is set."""
        if self.epochs_override is not None:
            return self.epochs_override
        return quick if self.quick else full

    def config(self, model: str, bn: bool, **changes: Any) -> TrainConfig:
        """A training config on this context's data (default preprocessing: the paper's)."""
        return TrainConfig(model=model, bn=bn, dataset=self.dataset, data_dir=self.data_dir, epochs=self.epochs,
                           **changes)

    def paper(self, experiment: str, key: str) -> PaperValue | None:
        """The paper cell for ``key``."""
        return paper_value(experiment, self.dataset, key)


def _label(model: str, bn: bool) -> str:
    return f"{NAMES.get(model, model)} {'with' if bn else 'without'} BN"


def _key(model: str, bn: bool) -> str:
    return f"{model}/{'bn' if bn else 'no-bn'}"


def trained(ctx: ReproContext, config: TrainConfig) -> Path:
    """``config`` trained under ``runs/`` (reused when it was trained before with the same settings)."""
    from hil.training import train_once

    noise = config.noise
    parts = [config.model, "bn" if config.bn else "nobn", f"e{config.epochs}", f"s{config.seed}"]
    if not noise.is_clean:
        parts.append(f"a{noise.sigma_add:g}-m{noise.sigma_mul:g}")
    if config.clamp_weights:
        parts.append("clamped")
    folder = ctx.out / "runs" / "-".join(parts)
    ctx.say(f"training {folder.name}")
    return train_once(config, folder)


def _walk(ctx: ReproContext, checkpoint: Path, noise: str, sites: str, repeats: int,
          sigmas: Sequence[float] | None = None, fold_bn: bool = False) -> WalkReport:
    from hil.studies.walk import walk_checkpoint
    from hil.walking.grid import default_sigmas
    from hil.walking.sweep import SweepSpec

    is_global = sites == "global"
    grid = tuple(sigmas) if sigmas else default_sigmas(noise, is_global)
    spec = SweepSpec(noise=noise, sigmas=grid, sites=sites, repeats=repeats)
    ctx.say(f"walking {checkpoint.name}: {noise} noise, {'global' if is_global else 'per site'}"
            f"{', BN folded' if fold_bn else ''}")
    return walk_checkpoint(checkpoint, spec, ctx.out / "walks" / checkpoint.name, executor=ctx.executor,
                           write_summary=False, fold_bn=fold_bn)


def _training_walk(ctx: ReproContext, base: TrainConfig, noise: str, sites: str, repeats: int,
                   sigmas: Sequence[float]) -> WalkReport:
    from hil.studies.training_walk import walk_training
    from hil.walking.sweep import SweepSpec

    folder = ctx.out / "walks" / f"train-{base.model}-{'bn' if base.bn else 'nobn'}-e{base.epochs}"
    ctx.say(f"noisy-training walk {folder.name}: {noise} noise, {sites}, {len(sigmas)} σ × {repeats}")
    return walk_training(base, SweepSpec(noise=noise, sigmas=tuple(sigmas), sites=sites, repeats=repeats), folder,
                         executor=ctx.executor)


def _mu_row(quantity: str, fit: CurveFit, paper: PaperValue | None, group: str) -> Row:
    if fit.status != "ok":
        return Row(quantity, math.nan, paper=paper, note=f"no μ: {fit.status}", group=group)
    return Row(quantity, fit.mu, fit.mu_low, fit.mu_high, paper, group=group)


# ---- 002 Table 3: guided multi-execution ---------------------------------------------------------------------

def guided_repetitions(ctx: ReproContext) -> ReproTable:
    """002 Table 3: uniform {2,2,…} vs executions ∝ 1/μ of an inference-only walk, at σ = the global μ."""
    from hil.guided.compare import evaluate_repetitions

    rows: list[Row] = []
    checks: list[Check] = []
    draws = 5 if ctx.quick else 10
    repeats = 3 if ctx.quick else 5
    lenet = [] if ctx.quick else [("lenet5", False), ("lenet5", True)]
    for model, bn in ctx.rows(("mlp", False), ("mlp", True), *lenet):
        checkpoint = trained(ctx, ctx.config(model, bn))
        _walk(ctx, checkpoint, "add", "all", repeats)
        _walk(ctx, checkpoint, "add", "global", repeats)
        ctx.say(f"repeated executions on {checkpoint.name}: uniform vs guided-1/μ, {draws} paired draws")
        report = evaluate_repetitions(checkpoint, ("uniform", "guided-1/mu"), budget=2, noise=NoiseSpec(),
                                      walk=ctx.out / "walks" / checkpoint.name, repeats=draws,
                                      executor=ctx.executor)
        label, key = _label(model, bn), _key(model, bn)
        by_name = {s.allocation.strategy: s for s in report.strategies}
        for strategy, name in (("uniform", "uniform"), ("guided-1/mu", "guided")):
            item = by_name[strategy]
            mean, low, high = mean_interval([100 * a for a in item.result.accuracies])
            rows.append(Row(f"{label}: accuracy {name} (%)", mean, low, high,
                            ctx.paper("table3", f"{key}/{name}"),
                            note=f"executions {list(item.allocation.executions)}", group=label))
        (difference,) = report.differences
        rows.append(Row(f"{label}: guided − uniform (points)", 100 * difference.mean, 100 * difference.low,
                        100 * difference.high, ctx.paper("table3", f"{key}/difference"),
                        note=f"σa = global μ = {report.noise.sigma_add:.3g}, {draws} paired draws", group=label))
        checks.append(Check(f"{label}: guided-1/μ beats uniform", difference.low > 0,
                            f"{100 * difference.mean:+.1f} points [{100 * difference.low:+.1f}, "
                            f"{100 * difference.high:+.1f}]"))
    protocol = (f"networks trained clean ({ctx.epochs} epochs, Adam 1e-3, cosine); additive inference-only walks per "
                f"site (paper grid, {repeats} draws) and global; every noisy site at σa = the global μ; budget 2 "
                f"executions per site; uniform {{2,2,…}} vs executions ∝ 1/μ (sum-conserving rounding), "
                f"{draws} paired noise draws; 95 % t intervals over draws.")
    return ReproTable("table3", "002 Table 3: Walking Noise guiding multi-execution", ctx.dataset, protocol,
                      tuple(rows), tuple(checks), {"draws": draws, "walk_repeats": repeats, "epochs": ctx.epochs})


# ---- 002 Tables 1 and 4: global midpoint noise -----------------------------------------------------------

def global_midpoints(ctx: ReproContext) -> ReproTable:
    """002 Tables 4 and 1: global μ inference-only and with noisy training, with/without BN, three noise types."""
    from hil.walking.grid import log_grid

    rows: list[Row] = []
    checks: list[Check] = []
    noises = ("add",) if ctx.quick else ("add", "mul", "mixed")
    repeats = 3 if ctx.quick else 5
    train_repeats = 1 if ctx.quick else 2
    train_grid = log_grid(1e-2, 1e2, 9)  # one training per point: two per decade keeps a row to minutes
    lenet = [] if ctx.quick else [("lenet5", False), ("lenet5", True)]
    for model, bn in ctx.rows(("mlp", False), ("mlp", True), *lenet):
        label, key = _label(model, bn), _key(model, bn)
        checkpoint = trained(ctx, ctx.config(model, bn))
        for noise in noises:
            inference = _walk(ctx, checkpoint, noise, "global", repeats).sites[0].fit
            rows.append(_mu_row(f"{label}, {noise}: μ inference-only", inference,
                                ctx.paper("table4", f"{key}/{noise}/inference"), label))
            if model != "mlp":
                continue  # a LeNet-5 training walk is ~17 σ × 2 × 30 epochs ≈ 40 min here: see the protocol
            trained_fit = _training_walk(ctx, ctx.config(model, bn), noise, "global", train_repeats,
                                         train_grid).sites[0].fit
            rows.append(_mu_row(f"{label}, {noise}: μ noisy-trained", trained_fit,
                                ctx.paper("table4", f"{key}/{noise}/trained"), label))
            ratio_row = _ratio_row(f"{label}, {noise}: noisy-trained / inference-only", trained_fit, inference,
                                   ctx.paper("table4", f"{key}/{noise}/trained"),
                                   ctx.paper("table4", f"{key}/{noise}/inference"), label)
            rows.append(ratio_row)
            if noise == "add" and not bn:
                checks.append(Check(f"{label}: noisy training raises the global additive μ (≥ 2×; paper "
                                    f"{_paper_ratio(ratio_row)})", ratio_row.ours >= 2.0,
                                    f"{ratio_row.ours:.2f}× [{ratio_row.low:.2f}, {ratio_row.high:.2f}]"))
    protocol = (f"global noise (the same σ at every site, BN sites not noised); inference-only: networks trained clean "
                f"({ctx.epochs} epochs), walked on the paper's global grid ({repeats} draws); noisy-trained: one "
                f"network per σ trained with that noise ({len(train_grid)} σ × {train_repeats} seeds) and tested "
                f"under it; μ from the paper's logistic fit with 95 % intervals; the ratio's interval combines the "
                f"two intervals' ends. Noisy-trained LeNet-5 rows are left out (about 40 min per row on 2 cores): run "
                f"hil walk --train-per-point --global --model lenet5 for them.")
    return ReproTable("table4", "002 Tables 4 and 1: global midpoint noise, inference-only vs noisy-trained",
                      ctx.dataset, protocol, tuple(rows), tuple(checks),
                      {"noises": list(noises), "walk_repeats": repeats, "train_repeats": train_repeats,
                       "train_sigmas": list(train_grid), "epochs": ctx.epochs})


def _ratio_row(quantity: str, top: CurveFit, bottom: CurveFit, paper_top: PaperValue | None,
               paper_bottom: PaperValue | None, group: str) -> Row:
    paper = None
    if paper_top is not None and paper_bottom is not None and paper_top.dataset == paper_bottom.dataset:
        paper = PaperValue("table4", paper_top.dataset, "ratio", round(paper_top.value / paper_bottom.value, 2),
                           "002 Tables 1 / 4", paper_top.row, f"{paper_top.column} ÷ inference-only")
    if top.status != "ok" or bottom.status != "ok" or bottom.mu <= 0:
        return Row(quantity, math.nan, paper=paper, note="a μ is missing", group=group)
    low = top.mu_low / bottom.mu_high if bottom.mu_high > 0 else math.nan
    high = top.mu_high / bottom.mu_low if bottom.mu_low > 0 else math.inf
    return Row(quantity, top.mu / bottom.mu, low, high, paper, group=group)


def _paper_ratio(row: Row) -> str:
    return "—" if row.paper is None else f"{row.paper.value:g}×"


# ---- 002 Fig. 2: per-site μ ----------------------------------------------------------------------------

def site_midpoints(ctx: ReproContext) -> ReproTable:
    """002 Fig. 2 style: additive μ per site, inference-only and noisy-trained (input and output least robust)."""
    from hil.walking.grid import log_grid

    rows: list[Row] = []
    checks: list[Check] = []
    repeats = 3 if ctx.quick else 5
    train_repeats = 1  # a training per (site, σ, seed): 8 sites × 9 σ × 150 epochs is ≈ 15 min here already
    grid = log_grid(1e-2, 1e2, 9)
    for model, bn in [("mlp", False)] + ([] if ctx.quick else [("mlp", True)]):
        label = _label(model, bn)
        checkpoint = trained(ctx, ctx.config(model, bn))
        flavours = {"inference-only": _walk(ctx, checkpoint, "add", "all", repeats)}
        if not bn:  # the with-BN training walk (11 sites) would double the cost: inference-only there
            flavours["noisy-trained"] = _training_walk(ctx, ctx.config(model, bn), "add", "all", train_repeats, grid)
        for flavour, report in flavours.items():
            fits = [(site.site, site.fit) for site in report.sites]
            for site, fit in fits:
                rows.append(_mu_row(f"{label}, {flavour}: {site}", fit, None, f"{label}, {flavour}"))
            ok = [(site, fit.mu) for site, fit in fits if fit.status == "ok"]
            if not ok:
                continue
            weakest = min(ok, key=lambda item: item[1])
            first = fits[0][0]
            checks.append(Check(f"{label}, {flavour}: the input site is the least robust", weakest[0] == first,
                                f"lowest μ at {weakest[0]} ({weakest[1]:.3g}); " +
                                ", ".join(f"{s} {m:.3g}" for s, m in ok)))
    protocol = (f"additive noise at one site at a time; inference-only: the clean network ({ctx.epochs} epochs) walked "
                f"on the paper's per-site grid ({repeats} draws); noisy-trained (MLP without BN): one network per "
                f"(site, σ), {len(grid)} σ from 1e-2 to 1e2 × {train_repeats} seed, {ctx.epochs} epochs; the paper "
                f"gives this as a figure (Fig. 2, Figs. 10-11), so there are no paper numbers, only its claims.")
    return ReproTable("sites", "002 Fig. 2: per-site midpoint noise level", ctx.dataset, protocol, tuple(rows),
                      tuple(checks), {"walk_repeats": repeats, "train_repeats": train_repeats,
                                      "train_sigmas": list(grid), "epochs": ctx.epochs})


# ---- 002 Table 2: weight growth under noisy training --------------------------------------------------

WEIGHT_SIGMA = 1.0


def weight_growth(ctx: ReproContext) -> ReproTable:
    """002 Table 2: LeNet-5 trained with global additive noise, mean |w| unclamped / clamped per layer."""
    rows: list[Row] = []
    checks: list[Check] = []
    seeds = 1 if ctx.quick else 2
    epochs = ctx.epochs_for(20, 5)
    noise = NoiseSpec(sigma_add=WEIGHT_SIGMA)
    mean_ratio: dict[bool, float] = {}
    mean_growth: dict[bool, float] = {}
    for bn in (True, False):
        label, key = _label("lenet5", bn), _key("lenet5", bn)
        ratios: list[list[float]] = []
        growth: list[list[float]] = []
        for seed in range(seeds):
            base = replace(ctx.config("lenet5", bn, seed=seed), epochs=epochs)
            free = _weight_magnitudes(trained(ctx, replace(base, noise=noise)))
            clamped = _weight_magnitudes(trained(ctx, replace(base, noise=noise, clamp_weights=True)))
            clean = _weight_magnitudes(trained(ctx, base))
            ratios.append([f / c for f, c in zip(free, clamped, strict=True)])
            growth.append([f / c for f, c in zip(free, clean, strict=True)])
        for layer in range(len(ratios[0])):
            mean, low, high = mean_interval([r[layer] for r in ratios])
            rows.append(Row(f"{label}: layer {layer + 1} mean |w| unclamped / clamped", mean, low, high,
                            ctx.paper("weights", f"{key}/layer{layer + 1}"), group=f"{label}: unclamped / clamped"))
        for layer in range(len(growth[0])):
            mean, low, high = mean_interval([g[layer] for g in growth])
            rows.append(Row(f"{label}: layer {layer + 1} mean |w| noisy / clean", mean, low, high,
                            group=f"{label}: noisy / clean"))
        mean_ratio[bn] = statistics.fmean(statistics.fmean(r) for r in ratios)
        mean_growth[bn] = statistics.fmean(statistics.fmean(g) for g in growth)
    checks.append(Check("with BN the noisy-trained weights grow far more than without (BN's central role)",
                        mean_ratio[True] > 2 * mean_ratio[False],
                        f"mean unclamped/clamped ratio {mean_ratio[True]:.2f} with BN, "
                        f"{mean_ratio[False]:.2f} without" + (
                            " (no weight reached the clamp at ±1)"
                            if all(abs(r - 1) < 1e-3 for r in mean_ratio.values()) else "")))
    checks.append(Check("noisy training grows the weights with BN more than without",
                        mean_growth[True] > mean_growth[False],
                        f"mean noisy/clean |w| ratio {mean_growth[True]:.2f} with BN, "
                        f"{mean_growth[False]:.2f} without"))
    protocol = (f"LeNet-5, global additive noise σa = {WEIGHT_SIGMA:g} during training (near the noisy-trained "
                f"global midpoints of Table 1), {epochs} epochs, {seeds} seed(s); weights clamped to [-1, 1] after "
                f"every step vs free; clean networks for the growth rows; mean |w| per Conv/Linear layer.")
    return ReproTable("weights", "002 Table 2: weight growth under additive noisy training", ctx.dataset, protocol,
                      tuple(rows), tuple(checks), {"sigma_add": WEIGHT_SIGMA, "seeds": seeds, "epochs": epochs})


def _weight_magnitudes(checkpoint: Path) -> list[float]:
    from hil.checkpoint import load_checkpoint

    model = load_checkpoint(checkpoint).model
    return [float(p.detach().abs().mean()) for name, p in model.named_parameters()
            if name.endswith("weight") and p.dim() > 1]


# ---- 001 Table II: QAT vs noisy training ---------------------------------------------------------------

def hardening(ctx: ReproContext) -> ReproTable:
    """001 Table II (and Table I's rows for LeNet-5): fp32 vs QAT 4/8-bit, constant vs dynamic, ± noisy training."""
    from hil.studies.harden import run_study

    bits = (8,) if ctx.quick else (4, 8)
    scalings = ("dynamic", "const:1") if ctx.quick else ("dynamic", "const:1", "const:2")
    repeats = 1 if ctx.quick else 2
    epochs = ctx.epochs_for(15, 3)
    base = replace(ctx.config("lenet5", False), epochs=epochs)
    ctx.say(f"hardening study: LeNet-5, bits {bits}, scalings {scalings}, {repeats} network(s) per row")
    results = run_study(base, ctx.out / "harden-lenet5", bits=bits, scalings=scalings, repeats=repeats,
                        walk_repeats=2 if ctx.quick else 3, executor=ctx.executor)
    rows: list[Row] = []
    mus: dict[str, float] = {}
    for result in results:
        label, fp32 = result.variant.label, result.variant.bits is None
        prefix = "lenet5/fp32/"
        accuracy = mean_interval([100 * a for a in result.accuracies])
        paper_accuracy = ctx.paper("hardening", prefix + "accuracy") if fp32 and not result.variant.noisy else None
        rows.append(Row(f"{label}: peak accuracy (%)", *accuracy, paper=paper_accuracy, group="peak accuracy (%)"))
        mu = mean_interval(result.mus)
        paper_mu = prefix + ("noisy-mu" if result.variant.noisy else "mu")
        rows.append(Row(f"{label}: global μ", *mu, paper=ctx.paper("hardening", paper_mu) if fp32 else None,
                        group="global additive μ"))
        mus[label] = mu[0]
    noisy_fp32 = mus.get("fp32 + noisy training", math.nan)
    best_qat = max((m for label, m in mus.items() if "bit" in label and "noisy" not in label), default=math.nan)
    checks = [Check("noisy training raises μ more than any QAT variant without it", noisy_fp32 > best_qat,
                    f"fp32 + noisy training μ {noisy_fp32:.3g}; best QAT without noisy training {best_qat:.3g}")]
    for b in bits:
        dynamic = mus.get(f"{b}-bit dynamic", math.nan)
        constant = max((mus.get(f"{b}-bit {s}", math.nan) for s in scalings if s.startswith("const")),
                       default=math.nan)
        checks.append(Check(f"{b}-bit: constant scaling is more robust than dynamic", constant > dynamic,
                            f"best const μ {constant:.3g} vs dynamic {dynamic:.3g}"))
    protocol = (f"LeNet-5 without BN, {epochs} epochs (paper: 500 on CIFAR-10), Adam 1e-3 cosine; QAT via Brevitas "
                f"(per-channel conv weights, per-tensor FC and activations), bits {list(bits)}, activation scaling "
                f"{list(scalings)}; noisy training at σa = the fp32 network's global μ; global additive walks; "
                f"{repeats} network(s) per row, 95 % t intervals over networks.")
    return ReproTable("hardening", "001 Table II: quantisation-aware training vs noisy training", ctx.dataset,
                      protocol, tuple(rows), tuple(checks),
                      {"bits": list(bits), "scalings": list(scalings), "repeats": repeats, "epochs": epochs})


# ---- the ResNet question: does digital BN explain ResNet-18's low μ? ----------------------------------------

def resnet_batchnorm(ctx: ReproContext) -> ReproTable:
    """ResNet-18 vs LeNet-5 global μ, with ResNet's BN digital (default), folded into its convs, or noisy."""
    from hil.walking.grid import default_sigmas, log_grid

    epochs = ctx.epochs_for(8, 2)
    repeats = 2 if ctx.quick else 3
    grid = log_grid(1e-2, 1e2, 9) if ctx.quick else default_sigmas("add", True)
    lenet = trained(ctx, replace(ctx.config("lenet5", False), epochs=epochs))
    resnet = trained(ctx, replace(ctx.config("resnet18", False), epochs=epochs))
    noisy_bn = _variant(resnet, noisy_bn=True)
    walks = {  # label: (checkpoint, fold BN, paper cell)
        "LeNet-5 (no BN)": (lenet, False, "lenet5/fp32/mu"),
        "ResNet-18, BN digital after each noisy conv (default)": (resnet, False, "resnet18/fp32/mu"),
        "ResNet-18, BN folded into the convs (--fold-bn)": (resnet, True, "resnet18/fp32/mu"),
        "ResNet-18, BN outputs noisy too (noisy_bn)": (noisy_bn, False, None),
    }
    fits = {label: (_walk(ctx, checkpoint, "add", "global", repeats, grid, fold_bn=fold).sites[0].fit, key)
            for label, (checkpoint, fold, key) in walks.items()}
    rows = [_mu_row(f"{label}: global additive μ", fit, None if key is None else ctx.paper("hardening", key), "μ")
            for label, (fit, key) in fits.items()]
    gains = _bn_gains(resnet)
    rows += [Row(f"ResNet-18 BN gain γ/√var, {name} (median over channels)", gain, group="BN gains")
             for name, gain in gains]
    mu = {label: fit.mu if fit.status == "ok" else math.nan for label, (fit, _) in fits.items()}
    lenet_mu, digital, folded = (mu[k] for k in list(fits)[:3])
    median_gain = statistics.median(g for _, g in gains)
    checks = [
        Check("ResNet-18 is more robust than LeNet-5 (001 Table II: 0.494 vs 0.286)", digital > lenet_mu,
              f"digital BN: ResNet-18 μ {digital:.3g} vs LeNet-5 {lenet_mu:.3g}"),
        Check("folding BN into the convs raises ResNet-18's μ (digital BN amplifies the convs' noise)",
              folded > digital, f"folded {folded:.3g} vs digital {digital:.3g}; median BN gain {median_gain:.2f}"),
        Check("with BN folded, ResNet-18 is more robust than LeNet-5", folded > lenet_mu,
              f"folded ResNet-18 μ {folded:.3g} vs LeNet-5 {lenet_mu:.3g}"),
    ]
    protocol = (f"ResNet-18 (paper 001's layout: conv7×7/2 stem, 33 sites) and LeNet-5 trained clean, {epochs} epochs; "
                f"global additive inference walks ({len(grid)} σ × {repeats} draws) of the same ResNet weights with "
                f"BN kept digital after the noisy convs, BN folded into the convs, and BN outputs as extra noise "
                f"sites; BN gains from the trained running statistics. Paper values: 001 Table II (CIFAR-10, 500 "
                f"epochs).")
    return ReproTable("resnet-bn", "The ResNet question: does digital BatchNorm explain ResNet-18's low μ?",
                      ctx.dataset, protocol, tuple(rows), tuple(checks),
                      {"epochs": epochs, "walk_repeats": repeats, "sigmas": list(grid)})


def _variant(checkpoint: Path, **kwargs: Any) -> Path:
    """The same weights built with other model keywords (e.g. ``noisy_bn``), as a checkpoint beside it."""
    from hil.checkpoint import METADATA, read_run_metadata

    suffix = "-".join(f"{key}" for key in kwargs)
    folder = checkpoint.with_name(f"{checkpoint.name}-{suffix}")
    if not (folder / METADATA).is_file():
        metadata = read_run_metadata(checkpoint)
        model = replace(metadata.model, kwargs={**metadata.model.kwargs, **kwargs})
        temp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(temp, ignore_errors=True)
        shutil.copytree(checkpoint, temp)
        (temp / METADATA).write_text(json.dumps(replace(metadata, model=model).to_dict(), indent=2) + "\n")
        temp.rename(folder)
    return folder


def _bn_gains(checkpoint: Path) -> list[tuple[str, float]]:
    from torch.nn.modules.batchnorm import _BatchNorm

    from hil.checkpoint import load_checkpoint
    from hil.models.fold import batchnorm_gain

    model = load_checkpoint(checkpoint).model
    return [(name, float(batchnorm_gain(module).abs().median())) for name, module in model.named_modules()
            if isinstance(module, _BatchNorm) and module.running_var is not None and module.weight is not None]


@dataclass(frozen=True)
class Experiment:
    """A reproducible experiment: its name, what it reproduces and the function that runs it."""

    name: str
    title: str
    run: Callable[[ReproContext], ReproTable]


EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    Experiment("table3", "002 Table 3: guided multi-execution (uniform {2,2,…} vs executions ∝ 1/μ)",
               guided_repetitions),
    Experiment("table4", "002 Tables 4 and 1: global μ inference-only vs noisy-trained, ± BN, add/mul/mixed",
               global_midpoints),
    Experiment("sites", "002 Fig. 2: per-site μ, inference-only and noisy-trained (input/output least robust)",
               site_midpoints),
    Experiment("weights", "002 Table 2: weight growth under additive noisy training, clamped vs free, ± BN",
               weight_growth),
    Experiment("hardening", "001 Table II: fp32 vs QAT 4/8-bit, constant vs dynamic scaling, ± noisy training",
               hardening),
    Experiment("resnet-bn", "The ResNet question: ResNet-18 vs LeNet-5 μ with BN digital, folded or noisy",
               resnet_batchnorm),
)}


def get_experiment(name: str) -> Experiment:
    """The experiment called ``name``.

    Raises:
        ConfigError: No such experiment (the message lists them).
    """
    if name not in EXPERIMENTS:
        raise ConfigError(f"unknown experiment {name!r}; choose one of: {', '.join(EXPERIMENTS)} "
                          f"(hil reproduce --list)")
    return EXPERIMENTS[name]
