"""The ``hil`` command line: a thin typer layer over the library.

Torch is imported only inside commands, so ``hil --help`` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from hil._version import __version__
from hil.errors import ConfigError, HilError

stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def _debug_requested(ctx: typer.Context) -> bool:
    return bool((ctx.obj or {}).get("debug")) or os.environ.get("HIL_DEBUG") == "1"


class HilGroup(TyperGroup):
    """Reports `HilError` as one red line and exit code 1 (``--debug``: full traceback)."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HilError as error:
            if _debug_requested(ctx):
                raise
            message = " ".join(str(error).split())
            stderr.print(Text(f"error: {message}", style="bold red"))
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=HilGroup,
    name="hil",
    help="Hardware-in-the-loop testbench for neural networks on noisy analog hardware.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        stdout.print(f"hil {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
    version: Annotated[bool | None, typer.Option("--version", callback=_version, is_eager=True,
                                                 help="Print the version and exit.")] = None,
) -> None:
    """Hardware-in-the-loop testbench for neural networks on noisy analog hardware."""
    ctx.obj = {"debug": debug}


# -- shared options -------------------------------------------------------------------------

SigmaAdd = Annotated[float | None, typer.Option("--sigma-add", help="Additive noise σa (≥ 0).")]
SigmaMul = Annotated[float | None, typer.Option("--sigma-mul", help="Multiplicative noise σm (≥ 0).")]
Order = Annotated[str | None, typer.Option("--order", help="mul-first (default) or add-first.")]
Sites = Annotated[str | None, typer.Option(
    "--sites", help="all (default), matmul, or comma-separated site names/indices (e.g. 3:conv2,5).")]
Gradient = Annotated[str | None, typer.Option(
    "--gradient", help="constant (paper, default) or straight-through.")]
Executions = Annotated[int | None, typer.Option(
    "--executions", help="Executions averaged at every site (multi-execution), default 1.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]


def _sites_value(text: str | None) -> str | tuple[str | int, ...] | None:
    if text is None or text in ("all", "matmul"):
        return text
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ConfigError("--sites is empty; use all, matmul or site names such as 3:conv2")
    return tuple(int(item) if item.isdigit() else item for item in items)


def _noise_flags(sigma_add: float | None, sigma_mul: float | None, order: str | None,
                 sites: str | None, gradient: str | None, executions: int | None) -> dict[str, Any]:
    return {"sigma_add": sigma_add, "sigma_mul": sigma_mul, "order": order,
            "sites": _sites_value(sites), "gradient": gradient, "repeats": executions}


def describe_noise(noise: Any) -> str:
    """Short human description of a NoiseSpec."""
    if noise.is_clean:
        return "no noise"
    parts = []
    if noise.sigma_add:
        parts.append(f"σa={noise.sigma_add:g}")
    if noise.sigma_mul:
        parts.append(f"σm={noise.sigma_mul:g}")
    if noise.sigma_add and noise.sigma_mul:
        parts.append(noise.order)
    sites = noise.sites if isinstance(noise.sites, str) else ",".join(map(str, noise.sites))
    parts.append(f"sites={sites}")
    if noise.repeats > 1:
        parts.append(f"executions={noise.repeats}")
    if noise.overrides:
        parts.append(f"{len(noise.overrides)} per-site overrides")
    return " ".join(parts)


def _emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


# -- train ----------------------------------------------------------------------------------

@app.command()
def train(
    out: Annotated[Path | None, typer.Option("--out", help="Checkpoint directory to write.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Model name (hil list).")] = None,
    bn: Annotated[bool | None, typer.Option("--bn/--no-bn", help="BatchNorm variant.")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="Dataset name (hil list).")] = None,
    data_dir: Annotated[str | None, typer.Option("--data-dir", help="Folder with dataset files.")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Epochs (default 30).")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Batch size (128).")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Adam learning rate (1e-3).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of init, split, shuffle, noise.")] = None,
    clamp_weights: Annotated[bool | None, typer.Option(
        "--clamp-weights/--no-clamp-weights", help="Clamp Linear/Conv weights to [-1, 1].")] = None,
    backend: Annotated[str | None, typer.Option("--backend", help="Backend spec: sim, sim:seed=3, gpu.")] = None,
    sigma_add: SigmaAdd = None,
    sigma_mul: SigmaMul = None,
    order: Order = None,
    sites: Sites = None,
    gradient: Gradient = None,
    executions: Executions = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML config; flags override it.")] = None,
    calibration: Annotated[Path | None, typer.Option(
        "--calibration", help="Calibration profile (hil calibrate --out): its σa, σm become the noise.")] = None,
    quant: Annotated[int | None, typer.Option(
        "--quant", help="Quantisation-aware training (Brevitas) with 2, 4, 8 or 16 bits.")] = None,
    act_scaling: Annotated[str | None, typer.Option(
        "--act-scaling", help="Quantised activations: dynamic (default) or const:<s> (step size s).")] = None,
    resume: Annotated[Path | None, typer.Option("--resume", help="Continue from this checkpoint.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a checkpoint at --out.")] = False,
    epoch_checkpoints: Annotated[bool, typer.Option(
        "--epoch-checkpoints/--no-epoch-checkpoints", help="Write out/epochs/epoch-NNNN each epoch.")] = True,
    as_json: JsonFlag = False,
) -> None:
    """Train a model with noise at its sites; prints clean and noisy test accuracy."""
    from hil.cli_progress import RichTrainProgress
    from hil.config import TrainConfig, merge_config, read_toml

    flags = {"model": model, "bn": bn, "dataset": dataset, "data_dir": data_dir, "epochs": epochs,
             "batch_size": batch_size, "lr": lr, "seed": seed, "clamp_weights": clamp_weights,
             "backend": backend, "calibration": None if calibration is None else str(calibration),
             "quant": quant, "act_scaling": act_scaling,
             "noise": _noise_flags(sigma_add, sigma_mul, order, sites, gradient, executions)}
    if resume is not None:
        from hil.checkpoint import read_metadata

        given = [k for k, v in flags.items() if v is not None and k not in ("epochs", "noise")]
        given += [f"noise.{k}" for k, v in flags["noise"].items() if v is not None]
        if given or config is not None:
            raise ConfigError(f"--resume takes the run's settings from the checkpoint; only --epochs "
                              f"may be given (got {', '.join(given) or '--config'})")
        stored = read_metadata(resume).get("training", {}).get("config") or {}
        run = TrainConfig.from_dict({**stored, **({"epochs": epochs} if epochs is not None else {})})
        from hil.training import run_directory

        out = out or run_directory(resume)
    else:
        if out is None:
            raise ConfigError("--out is required: the directory where the checkpoint goes")
        run = merge_config(read_toml(config) if config else {}, flags)
    from hil.training import train as train_run

    with RichTrainProgress(stderr) as progress:
        result = train_run(run, out, resume_from=resume, overwrite=overwrite, progress=progress,
                           keep_epochs=epoch_checkpoints)
    used = result.noise or run.noise
    summary = {"checkpoint": str(result.path), "clean_accuracy": result.clean_accuracy,
               "noisy_accuracy": None if result.noisy is None else result.noisy.to_dict(),
               "noise": used.to_dict(), "epochs": len(result.history)}
    if as_json:
        _emit_json(summary)
        return
    stdout.print(f"clean test accuracy: {result.clean_accuracy:.2%}")
    if result.noisy is not None:
        stdout.print(f"noisy test accuracy: {result.noisy.mean:.2%} ± {result.noisy.std:.2%} "
                     f"({describe_noise(used)}, {result.noisy.repeats} draws)")
    stdout.print(f"checkpoint: {result.path}")


# -- evaluate -------------------------------------------------------------------------------

@app.command()
def evaluate(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="Checkpoint directory.")],
    backend: Annotated[str, typer.Option("--backend", help="Backend spec: sim, sim:seed=3, gpu.")] = "sim",
    sigma_add: SigmaAdd = None,
    sigma_mul: SigmaMul = None,
    order: Order = None,
    sites: Sites = None,
    gradient: Gradient = None,
    executions: Executions = None,
    guided_reps: Annotated[Path | None, typer.Option(
        "--guided-reps", help="Walk folder (hil walk --out): give fragile sites more executions.")] = None,
    uniform_reps: Annotated[int | None, typer.Option(
        "--uniform-reps", min=1, help="The same executions at every noisy site (baseline).")] = None,
    compare_reps: Annotated[Path | None, typer.Option(
        "--compare-reps", help="Walk folder: table of none / uniform / guided-1/μ / guided-greedy.")] = None,
    budget: Annotated[int | None, typer.Option(
        "--budget", min=1, help="Executions per noisy site on average (total n_t = L·budget).")] = None,
    allocator: Annotated[str, typer.Option(
        "--allocator", help="greedy (curve-based, default) or inverse-mu (the paper's 1/μ rule).")] = "greedy",
    cost: Annotated[str, typer.Option(
        "--cost", help="What the greedy budget counts: executions (default) or macs.")] = "executions",
    repeats: Annotated[int | None, typer.Option(
        "--repeats", min=1, help="Independent noise draws (default 1; 5 with --compare-reps).")] = None,
    device_layers: Annotated[str | None, typer.Option(
        "--device-layers", help="Device backend: only these sites (e.g. 1:fc1,3:fc2) run on the device.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the noise draws.")] = 0,
    data_dir: Annotated[str | None, typer.Option("--data-dir", help="Override the dataset folder.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Batch size.")] = 1000,
    as_json: JsonFlag = False,
) -> None:
    """Accuracy of a checkpoint under noise: mean ± std over --repeats noise draws."""
    from hil.noise import NoiseSpec

    flags = _noise_flags(sigma_add, sigma_mul, order, sites, gradient, executions)
    noise = NoiseSpec.from_dict({k: v for k, v in flags.items() if v is not None})
    if device_layers is not None:
        backend = _with_device_layers(backend, device_layers)
    chosen = [name for name, value in (("--guided-reps", guided_reps), ("--uniform-reps", uniform_reps),
                                       ("--compare-reps", compare_reps)) if value is not None]
    if len(chosen) > 1:
        raise ConfigError(f"choose one of {', '.join(chosen)}")
    if chosen:
        if executions is not None:
            raise ConfigError(f"--executions sets one count for every site; drop it when using {chosen[0]}")
        _evaluate_repetitions(checkpoint, backend, noise, guided_reps, uniform_reps, compare_reps, budget,
                              allocator, cost, repeats, seed, data_dir, batch_size, as_json)
        return
    if budget is not None:
        raise ConfigError("--budget goes with --guided-reps or --compare-reps")
    from hil.evaluation_job import evaluate_checkpoint

    report = evaluate_checkpoint(checkpoint, backend, noise, repeats=repeats or 1, seed=seed,
                                 data_dir=data_dir, batch_size=batch_size)
    if as_json:
        _emit_json(report.to_dict())
        return
    result = report.result
    stdout.print(f"accuracy: {result.mean:.2%} ± {result.std:.2%} over {result.repeats} "
                 f"repeat{'s' if result.repeats > 1 else ''} ({describe_noise(noise)}, "
                 f"backend {report.backend}, {result.samples} test samples)")


def _with_device_layers(backend: str, layers: str) -> str:
    if not backend.startswith("device:"):
        raise ConfigError("--device-layers needs a device backend (--backend device:…)")
    if "layers=" in backend:
        raise ConfigError("give the device layers once: either --device-layers or #layers= in the backend")
    names = ",".join(item.strip() for item in layers.split(",") if item.strip())
    if not names:
        raise ConfigError("--device-layers is empty; name sites such as 1:fc1,3:fc2 (hil sites --model …)")
    return f"{backend}{';' if '#' in backend else '#'}layers={names}"


def _evaluate_repetitions(checkpoint: Path, backend: str, noise: Any, guided: Path | None, uniform: int | None,
                          compare: Path | None, budget: int | None, allocator: str, cost: str,
                          repeats: int | None, seed: int, data_dir: str | None, batch_size: int,
                          as_json: bool) -> None:
    from hil.cli_guided import print_repetition_report
    from hil.guided.compare import ALLOCATORS, STRATEGIES, evaluate_repetitions

    if allocator not in ALLOCATORS:
        raise ConfigError(f"--allocator must be one of {', '.join(ALLOCATORS)}, got {allocator!r}")
    if uniform is not None:
        if budget is not None and budget != uniform:
            raise ConfigError("--uniform-reps is itself the budget; drop --budget")
        strategies, budget, walk = ("uniform",), uniform, None
    else:
        if budget is None:
            raise ConfigError("--budget is required: executions per noisy site on average, e.g. --budget 3")
        walk = guided or compare
        strategies = STRATEGIES if compare is not None else (ALLOCATORS[allocator],)
    if repeats is None:
        repeats = 5 if compare is not None else 1
    if compare is not None and repeats < 2:
        raise ConfigError("a paired comparison needs --repeats ≥ 2 (5 or more recommended)")
    report = evaluate_repetitions(checkpoint, strategies, budget=budget, noise=noise, walk=walk, backend=backend,
                                  repeats=repeats, seed=seed, cost=cost, data_dir=data_dir, batch_size=batch_size)
    if as_json:
        _emit_json(report.to_dict())
        return
    print_repetition_report(report, stdout, describe_noise(report.noise))


# -- sites ----------------------------------------------------------------------------------

@app.command()
def sites(
    model: Annotated[str, typer.Option("--model", help="Model name (hil list).")],
    bn: Annotated[bool, typer.Option("--bn/--no-bn", help="BatchNorm variant.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """List a model's noise sites in forward order (Walking Noise convention)."""
    from hil.models import create_model
    from hil.noisy_model import wrap

    noisy = wrap(create_model(model, bn=bn), "sim")
    if as_json:
        _emit_json({"model": model, "bn": bn, "sites": [s.to_dict() for s in noisy.sites]})
        return
    table = Table(title=f"{model}{' (BN)' if bn else ''}: {len(noisy.sites)} noise sites")
    for column in ("index", "name", "kind", "op", "shape", "elements"):
        table.add_column(column, justify="right" if column in ("index", "elements") else "left")
    for site in noisy.sites:
        table.add_row(str(site.index), site.name, site.kind, site.op,
                      "×".join(map(str, site.shape)), str(site.numel))
    stdout.print(table)


# -- list -----------------------------------------------------------------------------------

@app.command("list")
def list_registered(as_json: JsonFlag = False) -> None:
    """List the registered models, datasets and backends."""
    from hil.backends import backend_names
    from hil.data import dataset_names
    from hil.models import list_models

    names = {"models": list_models(), "datasets": dataset_names(), "backends": backend_names()}
    if as_json:
        _emit_json(names)
        return
    for kind, values in names.items():
        stdout.print(f"{kind}: {', '.join(values)}")


from hil import cli_calibrate, cli_demo, cli_device, cli_harden, cli_walk  # noqa: E402 - torch-free sub-apps

app.command("walk")(cli_walk.walk)
app.command("report")(cli_walk.report)
app.add_typer(cli_walk.results_app, name="results")
app.add_typer(cli_walk.analyze_app, name="analyze")
app.add_typer(cli_device.device_app, name="device")
app.add_typer(cli_calibrate.calibrate_app, name="calibrate")
app.command("harden")(cli_harden.harden)
app.command("demo")(cli_demo.demo)


def main() -> None:
    """Console entry point."""
    app(prog_name="hil")
