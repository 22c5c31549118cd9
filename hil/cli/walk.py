"""CLI verbs for Walking Noise: ``hil walk``, ``hil report``, ``hil results export`` (torch imported lazily)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hil.cli.console import emit_json, stderr, stdout
from hil.cli.options import (
    BackendOption,
    DataDir,
    ExecutorOption,
    FoldBn,
    GpusPerPoint,
    JsonFlag,
    Preprocess,
    RayAddress,
    Track,
    executor_spec,
    parse_sites,
)
from hil.cli.progress import ProgressBar
from hil.errors import ConfigError

results_app = typer.Typer(help="Inspect and export Walking Noise result stores.", no_args_is_help=True,
                          add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


def print_report(report: Any, console: Console) -> None:
    """Rich table of per-site μ."""
    noise = report.config.get("sweep", {}).get("noise", "add")
    table = Table(title=f"midpoint noise level μ ({noise} noise), experiment {report.experiment}")
    for column in ("site", "μ", "95 % interval", "fit", "χ²/dof", "note"):
        table.add_column(column)
    for site in report.sites:
        fit = site.fit
        ok = fit.status == "ok"
        quality = f"{fit.chi2 / fit.dof:.2f}" if ok and fit.dof > 0 else "–"
        table.add_row(site.label, f"{fit.mu:.4g}" if ok else "–",
                      f"[{fit.mu_low:.4g}, {fit.mu_high:.4g}]" if ok else "–",
                      fit.model if ok else fit.status, quality,
                      "" if ok else fit.message)
    console.print(table)
    if report.failed:
        first = report.failed[0]
        console.print(f"[yellow]{len(report.failed)} points failed and are left out of the fits (first: "
                      f"{first.key.site} σ={first.key.sigma_add or first.key.sigma_mul:g}: {first.error}); rerun "
                      f"the walk to retry them[/]")


def _check_hardware_walk(flag: str, checkpoint: Path | None, others: dict[str, bool], runs: str) -> Path:
    """The checkpoint of a walk on the hardware (``--placement``, ``--snr``, ``--marginal``); σ-walk flags refused."""
    if checkpoint is None:
        raise ConfigError(f"{flag} walks a trained --checkpoint DIR on --backend device:… or twin:…")
    given = [name for name, used in others.items() if used]
    if given:
        raise ConfigError(f"{flag} {runs}; drop {', '.join(given)}")
    return checkpoint


def _placement(checkpoint: Path | None, backend: str, out: Path | None, repeats: int, seed: int,
               budget_s: float | None, data_dir: str | None, as_json: bool, others: dict[str, bool]) -> None:
    """``hil walk --placement``: the placement walk, printed as a table of drops."""
    from hil.studies.placement import place_checkpoint

    checkpoint = _check_hardware_walk("--placement", checkpoint, others, "runs each layer at the hardware's own noise")
    folder = out or Path(f"{checkpoint}-placement")
    with ProgressBar(stderr) as bar:
        report = place_checkpoint(checkpoint, backend, folder, draws=repeats, seed=seed, budget_s=budget_s,
                                  data_dir=data_dir, progress=bar.points)
    if as_json:
        emit_json(report.to_dict())
        return
    table = Table(title=f"placement walk on {report.backend}: clean digital accuracy {report.clean:.2%}")
    for column in ("layer on the hardware", "accuracy", "drop (points)", "95 % interval"):
        table.add_column(column)
    for row in report.layers:
        table.add_row(row.layer, f"{row.accuracy:.2%}", f"{row.drop * 100:+.2f}",
                      f"[{row.low * 100:+.2f}, {row.high * 100:+.2f}]")
    stdout.print(table)
    stdout.print(f"most fragile layer: {report.most_fragile}   results: {folder / 'placement.json'}   "
                 f"figure: {folder / 'placement.png'}")


def _marginal(checkpoint: Path | None, backend: str, out: Path | None, repeats: int, seed: int,
              budget_s: float | None, budget: int, rounds: int, data_dir: str | None, as_json: bool,
              others: dict[str, bool]) -> None:
    """``hil walk --marginal``: each layer's executions ±1 around uniform on the hardware; the exchange that gains."""
    from hil.studies.marginal import marginal_walk_checkpoint

    checkpoint = _check_hardware_walk("--marginal", checkpoint, others, "runs every layer at the hardware's own noise")
    folder = out or Path(f"{checkpoint}-marginal")
    with ProgressBar(stderr) as bar:
        report = marginal_walk_checkpoint(checkpoint, backend, folder, budget=budget, draws=repeats, rounds=rounds,
                                          seed=seed, budget_s=budget_s, data_dir=data_dir, progress=bar.points)
    if as_json:
        emit_json(report.to_dict())
        return
    for number, row in enumerate(report.rounds, start=1):
        table = Table(title=f"marginal walk on {report.backend}, round {number}: executions "
                            f"{list(row.executions)}, accuracy {row.accuracy:.2%}")
        for column in ("layer", "executions", "one more (points)", "one fewer (points)"):
            table.add_column(column)
        for layer, r, up, down in zip(report.layers, row.executions, row.up, row.down, strict=True):
            table.add_row(layer, str(r), f"{up * 100:+.2f}", "—" if down is None else f"{-down * 100:+.2f}")
        stdout.print(table)
        stdout.print(f"chosen: {list(row.chosen)} (predicted {row.predicted_gain * 100:+.2f} points)")
    stdout.print(f"results: {folder / 'marginal.json'}   compare on the hardware: hil evaluate --checkpoint "
                 f"{checkpoint} --backend {backend} --compare-reps {folder} --budget {report.budget}")


def _snr(checkpoint: Path | None, backend: str, out: Path | None, repeats: int, seed: int, budget_s: float | None,
         attenuations: str | None, profile: Path | None, data_dir: str | None, as_json: bool,
         others: dict[str, bool]) -> None:
    """``hil walk --snr``: one layer at a time on the hardware at rising input attenuation; μ per layer."""
    from hil.studies.snr import DEFAULT_ATTENUATIONS, snr_walk_checkpoint
    from hil.walking.grid import parse_sigmas

    checkpoint = _check_hardware_walk("--snr", checkpoint, others,
                                      "raises the hardware's own noise by attenuating inputs (--attenuations)")
    grid = parse_sigmas(attenuations) if attenuations else DEFAULT_ATTENUATIONS
    folder = out or Path(f"{checkpoint}-snr")
    with ProgressBar(stderr) as bar:
        report = snr_walk_checkpoint(checkpoint, backend, folder, profile=profile, attenuations=grid, draws=repeats,
                                     seed=seed, budget_s=budget_s, data_dir=data_dir, progress=bar.points)
    if as_json:
        emit_json(report.to_dict())
        return
    table = Table(title=f"SNR walk on {report.backend}: clean digital accuracy {report.clean:.2%}; "
                        f"σ in network units at the layer's output")
    for column in ("layer on the hardware", "σ at k=1", "μ", "95 % interval", "k at μ", "note"):
        table.add_column(column)
    for row in report.layers:
        fit = row.fit
        ok = fit.status == "ok"
        table.add_row(row.layer, f"{row.sigma.total:.4g}", f"{fit.mu:.4g}" if ok else "–",
                      f"[{fit.mu_low:.4g}, {fit.mu_high:.4g}]" if ok else "–",
                      f"{row.mu_attenuation:.3g}" if ok else "–", "" if ok else fit.message)
    stdout.print(table)
    stdout.print(f"results: {folder / 'snr.json'}")


def print_weight_table(checkpoint: Path, console: Console) -> None:
    """Mean |w| per Linear/Conv layer of the walked checkpoint (large weights ⇒ robust sites)."""
    from hil.checkpoint import load_checkpoint
    from hil.errors import HilError

    try:
        model = load_checkpoint(checkpoint).model
    except HilError as error:
        console.print(f"(weight table skipped: {error})")
        return
    table = Table(title="weight magnitudes")
    for column in ("layer", "shape", "mean |w|", "max |w|"):
        table.add_column(column)
    for name, parameter in model.named_parameters():
        if name.endswith("weight") and parameter.dim() > 1:
            magnitude = parameter.detach().abs()
            table.add_row(name.removesuffix(".weight"), "×".join(map(str, parameter.shape)),
                          f"{magnitude.mean().item():.4f}", f"{magnitude.max().item():.4f}")
    console.print(table)


def walk(
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", help="Trained checkpoint, inference-only.")] = None,
    noise: Annotated[str, typer.Option("--noise", help="add, mul or mixed.")] = "add",
    global_sweep: Annotated[bool, typer.Option("--global", help="Same σ at all sites (global μ).")] = False,
    sites: Annotated[str, typer.Option("--sites", help="all, or comma-separated site names/indices.")] = "all",
    sigmas: Annotated[str | None, typer.Option(
        "--sigmas", help="Grid: 0.1,0.5,1 or log:1e-2:1e2:17 or lin:0:2:21 (default: the paper's).")] = None,
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Noise draws per (site, σ).")] = 5,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Sweep seed.")] = 0,
    mixed_ratio: Annotated[float, typer.Option("--mixed-ratio", help="σm/σa for --noise mixed.")] = 1.0,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Test batch size.")] = 250,
    naive: Annotated[bool, typer.Option("--naive", help="One full forward per point (no prefix cache).")] = False,
    train_per_point: Annotated[bool, typer.Option(
        "--train-per-point", help="Noisy-training flavour: train a network per point.")] = False,
    model: Annotated[str | None, typer.Option("--model", help="Model for --train-per-point.")] = None,
    dataset: Annotated[str, typer.Option("--dataset", help="Dataset for --train-per-point.")] = "mnist5k",
    bn: Annotated[bool, typer.Option("--bn/--no-bn", help="BatchNorm variant (--train-per-point).")] = False,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Epochs per point (--train-per-point).")] = 10,
    batch_points: Annotated[int, typer.Option(
        "--batch-points", min=1, help="--train-per-point: train this many points together in one batched pass "
                                      "(sim/gpu, models without BatchNorm); same numbers as 1.")] = 1,
    data_dir: DataDir = None,
    preprocess: Preprocess = None,
    out: Annotated[Path | None, typer.Option("--out", help="Results folder (resumable).")] = None,
    heatmap: Annotated[bool, typer.Option(
        "--heatmap", help="Mixed noise on a σa × σm grid (σa from --sigmas, σm from --mul-sigmas).")] = False,
    mul_sigmas: Annotated[str, typer.Option("--mul-sigmas", help="σm grid for --heatmap.")] = "lin:0:1:6",
    adaptive: Annotated[bool, typer.Option(
        "--adaptive", help="Adaptive σ design per site (add/mixed): bracket, then refine around μ.")] = False,
    target_width: Annotated[float, typer.Option(
        "--target-width", help="--adaptive: stop at a 95 % μ interval this many decades wide.")] = 0.1,
    backend: BackendOption = "sim",
    executor: ExecutorOption = "local",
    ray_address: RayAddress = None,
    gpus_per_point: GpusPerPoint = None,
    fold_bn: FoldBn = False,
    placement: Annotated[bool, typer.Option(
        "--placement", help="One layer at a time on --backend (device:…, twin:…) at its native noise, the rest "
                            "digital: each layer's accuracy drop, --repeats draws.")] = False,
    budget_s: Annotated[float | None, typer.Option(
        "--budget-s", min=0.001,
        help="--placement/--snr: device seconds allowed (timed on the first point).")] = None,
    marginal: Annotated[bool, typer.Option(
        "--marginal", help="Marginal walk on --backend (device:…, twin:…): each layer's executions ±1 around "
                           "uniform at --budget, --repeats paired draws; keeps the exchange measured to "
                           "gain.")] = False,
    budget: Annotated[int | None, typer.Option(
        "--budget", min=1, help="--marginal: executions per layer on average (default 2).")] = None,
    rounds: Annotated[int | None, typer.Option(
        "--rounds", min=1, help="--marginal: exchanges, each measured (default 1).")] = None,
    snr: Annotated[bool, typer.Option(
        "--snr", help="SNR walk: one layer at a time on --backend (device:…, twin:…) with its input range "
                      "attenuated by k (--attenuations), μ per layer in network units.")] = False,
    attenuations: Annotated[str | None, typer.Option(
        "--attenuations", help="--snr: the k grid (≥ 1), e.g. 1,2,4,8 or log:1:32:11.")] = None,
    profile: Annotated[Path | None, typer.Option(
        "--profile", help="--snr: calibration profile for σ units (default: the backend's own).")] = None,
    track: Track = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print mu.json content on stdout.")] = False,
) -> None:
    """Walking Noise: accuracy vs σ per site, midpoint μ with 95 % intervals (resumable)."""
    from hil.studies.training_walk import walk_training
    from hil.studies.walk import walk_checkpoint
    from hil.walking.grid import default_sigmas, parse_sigmas
    from hil.walking.sweep import SweepSpec

    if placement + snr + marginal > 1:
        raise ConfigError("choose one of --placement, --snr and --marginal")
    sigma_flags = {"--train-per-point": train_per_point, "--global": global_sweep, "--adaptive": adaptive,
                   "--heatmap": heatmap, "--sigmas": sigmas is not None, "--fold-bn": fold_bn}  # no hardware walk
    if marginal:
        _marginal(checkpoint, backend, out, repeats, seed, budget_s, budget or 2, rounds or 1, data_dir, as_json,
                  others=sigma_flags)
        return
    if snr:
        _snr(checkpoint, backend, out, repeats, seed, budget_s, attenuations, profile, data_dir, as_json,
             others=sigma_flags)
        return
    if attenuations is not None or profile is not None:
        raise ConfigError("--attenuations and --profile go with --snr")
    if budget is not None or rounds is not None:
        raise ConfigError("--budget and --rounds go with --marginal (a σ walk has no executions to spend)")
    if placement:
        _placement(checkpoint, backend, out, repeats, seed, budget_s, data_dir, as_json,
                   others=sigma_flags)
        return
    if budget_s is not None:
        raise ConfigError("--budget-s goes with --placement or --snr (device walks); a σ walk runs on the backend "
                          "you give")
    if (checkpoint is None) == (not train_per_point):
        raise ConfigError("give either --checkpoint DIR (inference-only) or --train-per-point --model M")
    if adaptive and train_per_point:
        raise ConfigError("--adaptive works with --checkpoint (inference-only) walks")
    if train_per_point and model is None:
        raise ConfigError("--train-per-point needs --model (and --dataset)")
    if batch_points > 1 and not train_per_point:
        raise ConfigError("--batch-points batches trainings: it goes with --train-per-point")
    if fold_bn and checkpoint is None:
        raise ConfigError("--fold-bn walks a trained --checkpoint (inference); training keeps BatchNorm as it is")
    if checkpoint is not None and preprocess is not None:
        raise ConfigError("--preprocess is for --train-per-point; a checkpoint is walked with the preprocessing "
                          "it was trained with (recorded in it)")
    site_spec: Any = "global" if global_sweep else parse_sites(sites, keywords=("all",))
    if heatmap and sigmas is None:
        sigmas = "log:1e-2:1e2:9"  # the full per-site grid × σm would be hundreds of σ pairs per site
    grid = parse_sigmas(sigmas) if sigmas else default_sigmas(noise, global_sweep)
    spec = SweepSpec(noise=noise, sigmas=grid, sites=site_spec, repeats=repeats, seed=seed,
                     mixed_ratio=mixed_ratio, batch_size=batch_size, cached_prefix=not naive,
                     mul_sigmas=parse_sigmas(mul_sigmas) if heatmap else ())
    from hil.tracking import log_walk, open_tracker

    runner = executor_spec(executor, ray_address, gpus_per_point)
    name = f"walk {checkpoint}" if checkpoint is not None else f"walk-train {model} {dataset}"
    with open_tracker(track, "hil walk", name, warn=stderr.print) as tracker, ProgressBar(stderr) as bar:
        if tracker is not None:
            tracker.log_params({"kind": "walk", "checkpoint": str(checkpoint), "backend": backend,
                                "sweep": spec.to_dict()})
        if checkpoint is not None:
            folder = out or Path(f"{checkpoint}-walk")
            plan = None
            if adaptive:
                from hil.walking.adaptive import AdaptivePlan

                plan = AdaptivePlan(target_width=target_width)
            report = walk_checkpoint(checkpoint, spec, folder, backend=backend, data_dir=data_dir,
                                     progress=bar.points, adaptive=plan, executor=runner, fold_bn=fold_bn)
        else:
            from hil.config import TrainConfig
            from hil.data import DEFAULT_PREPROCESS

            folder = out or Path("runs") / f"walk-{model}-{dataset}"
            assert model is not None  # checked above: --train-per-point needs --model
            base = TrainConfig(model=model, bn=bn, dataset=dataset, data_dir=data_dir, epochs=epochs,
                               backend=backend, preprocess=preprocess or DEFAULT_PREPROCESS)
            report = walk_training(base, spec, folder, progress=bar.points, executor=runner,
                                   batch_points=batch_points)
        if tracker is not None:
            log_walk(tracker, report, folder)
    if as_json:
        emit_json(report.to_dict())
        return
    print_report(report, stdout)
    stdout.print(f"results: {folder / 'results.sqlite'}   μ: {folder / 'mu.json'}   plots: hil report {folder}")


def report(
    folder: Annotated[Path, typer.Argument(help="Folder written by hil walk --out.")],
    experiment: Annotated[str | None, typer.Option("--experiment", help="Experiment id (default: latest).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the fits as JSON on stdout.")] = False,
) -> None:
    """Table and plots (PNG + SVG in FOLDER/plots) of a Walking Noise run."""
    from hil.walking.plots import write_plots
    from hil.walking.report import load_report, write_mu

    result = load_report(folder, experiment)
    write_mu(result, folder)
    paths = write_plots(result, folder / "plots")
    if as_json:
        emit_json({**result.to_dict(), "plots": [str(p) for p in paths]})
        return
    print_report(result, stdout)
    if result.config.get("kind") == "inference":
        print_weight_table(Path(str(result.config["checkpoint"])), stdout)
    stdout.print("plots: " + ", ".join(str(p) for p in paths if p.suffix == ".png"))


@results_app.command("export")
def export(
    folder: Annotated[Path, typer.Argument(help="Folder written by hil walk --out.")],
    csv_path: Annotated[Path | None, typer.Option("--csv", help="Write CSV here.")] = None,
    parquet_path: Annotated[Path | None, typer.Option("--parquet", help="Write Parquet here (needs pyarrow).")] = None,
) -> None:
    """Export every stored point (all experiments) as CSV and/or Parquet."""
    from hil.walking.report import STORE_NAME
    from hil.walking.store import ResultStore

    if csv_path is None and parquet_path is None:
        raise ConfigError("nothing to do: pass --csv PATH and/or --parquet PATH")
    store_path = folder / STORE_NAME
    if not store_path.is_file():
        raise ConfigError(f"no results store at {store_path}; run hil walk --out {folder} first")
    with ResultStore(store_path, read_only=True) as store:
        for path, writer in ((csv_path, store.export_csv), (parquet_path, store.export_parquet)):
            if path is not None:
                rows = writer(path)
                stdout.print(f"{rows} rows → {path}")


analyze_app = typer.Typer(help="Analyses of trained checkpoints.", no_args_is_help=True, add_completion=False,
                          pretty_exceptions_enable=False, rich_markup_mode=None)


@analyze_app.command("binarization")
def binarization(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="Trained checkpoint.")],
    out: Annotated[Path | None, typer.Option("--out", help="Folder for the histogram plot.")] = None,
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Self-binarisation test: accuracy when each activation site is quantised to two levels."""
    from hil.runs import open_run
    from hil.walking.binarization import binarization_test

    with open_run(checkpoint, "sim", data_dir=data_dir) as run:
        results = binarization_test(run.noisy, run.data.test_x, run.data.test_y)
    paths = []
    if out is not None:
        from hil.walking.plots import plot_histograms

        paths = plot_histograms(results, out / "binarization")
    if as_json:
        emit_json({"sites": [r.to_dict() for r in results], "plots": list(map(str, paths))})
        return
    table = Table(title=f"two-level quantisation test, {checkpoint}")
    for column in ("site", "clean acc", "binarised acc", "drop", "threshold", "levels"):
        table.add_column(column)
    for r in results:
        table.add_row(r.site, f"{r.clean_accuracy:.2%}", f"{r.binarized_accuracy:.2%}", f"{r.accuracy_drop:+.2%}",
                      f"{r.threshold:.3g}", f"{r.low_level:.3g} / {r.high_level:.3g}")
    stdout.print(table)
    if paths:
        stdout.print("plots: " + ", ".join(str(p) for p in paths if p.suffix == ".png"))
