"""``hil train``: noisy (and quantisation-aware) training, thin over `hil.training`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hil.cli.console import describe_noise, emit_json, stderr, stdout
from hil.cli.options import (
    Executions,
    Gradient,
    JsonFlag,
    Order,
    Preprocess,
    SigmaAdd,
    SigmaMul,
    Sites,
    Track,
    noise_flags,
)
from hil.errors import ConfigError


def train(
    out: Annotated[Path | None, typer.Option("--out", help="Checkpoint directory to write.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Model name (hil list).")] = None,
    bn: Annotated[bool | None, typer.Option("--bn/--no-bn", help="BatchNorm variant.")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="Dataset name (hil list).")] = None,
    data_dir: Annotated[str | None, typer.Option("--data-dir", help="Folder with dataset files.")] = None,
    preprocess: Preprocess = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Epochs (default 30).")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Batch size (128).")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Adam learning rate (1e-3).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of init, split, shuffle, noise.")] = None,
    clamp_weights: Annotated[bool | None, typer.Option(
        "--clamp-weights/--no-clamp-weights", help="Clamp Linear/Conv weights to [-1, 1].")] = None,
    backend: Annotated[str | None, typer.Option("--backend", help="Backend spec: sim, sim#seed=3, gpu.")] = None,
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
    init: Annotated[Path | None, typer.Option(
        "--init", help="Start from this checkpoint's weights (fine-tuning, e.g. on --backend device:…); model "
                       "and data settings default to its own.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a checkpoint at --out.")] = False,
    epoch_checkpoints: Annotated[bool, typer.Option(
        "--epoch-checkpoints/--no-epoch-checkpoints", help="Write out/epochs/epoch-NNNN each epoch.")] = True,
    track: Track = None,
    as_json: JsonFlag = False,
) -> None:
    """Train a model with noise at its sites; prints clean and noisy test accuracy."""
    from hil.cli.progress import TrainProgress
    from hil.config import merge_config, read_toml

    flags = {"model": model, "bn": bn, "dataset": dataset, "data_dir": data_dir, "preprocess": preprocess,
             "epochs": epochs,
             "batch_size": batch_size, "lr": lr, "seed": seed, "clamp_weights": clamp_weights,
             "backend": backend, "calibration": None if calibration is None else str(calibration),
             "quant": quant, "act_scaling": act_scaling}
    noise_settings = noise_flags(sigma_add, sigma_mul, order, sites, gradient, executions)
    if resume is not None and init is not None:
        raise ConfigError("--resume continues a run, --init starts a new one from a checkpoint's weights; give one")
    if resume is not None:
        from hil.training import resumed_config, run_directory

        given = [k for k, v in flags.items() if v is not None and k not in ("epochs", "backend")]
        given += [f"noise.{k}" for k, v in noise_settings.items() if v is not None]
        if given or config is not None:
            raise ConfigError(f"--resume takes the run's settings from the checkpoint; only --epochs may be given "
                              f"(got {', '.join(given) or '--config'}), and --backend, which a file never chooses")
        run = resumed_config(resume, epochs=epochs, backend=backend)
        out = out or run_directory(resume)
    else:
        if out is None:
            raise ConfigError("--out is required: the directory where the checkpoint goes")
        base = read_toml(config) if config else {}
        if init is not None:
            from hil.training import fine_tune_defaults

            base = {**fine_tune_defaults(init), **base, "init": str(init)}
        run = merge_config(base, {**flags, "noise": noise_settings})
    from hil.tracking import TrackedProgress, open_tracker
    from hil.training import train as train_run

    with open_tracker(track, "hil train", f"train {run.model} {run.dataset}", warn=stderr.print) as tracker, \
            TrainProgress(stderr) as progress:
        if tracker is not None:
            tracker.log_params({"kind": "train", **run.to_dict()})
        result = train_run(run, out, resume_from=resume, overwrite=overwrite,
                           progress=progress if tracker is None else TrackedProgress(progress, tracker),
                           keep_epochs=epoch_checkpoints)
        if tracker is not None:
            tracker.log_metrics({"clean_accuracy": result.clean_accuracy,
                                 "noisy_accuracy": None if result.noisy is None else result.noisy.mean})
            tracker.log_artifact(result.path / "metadata.json")
    used = result.noise or run.noise
    summary = {"checkpoint": str(result.path), "clean_accuracy": result.clean_accuracy,
               "noisy_accuracy": None if result.noisy is None else result.noisy.to_dict(),
               "noise": used.to_dict(), "epochs": len(result.history)}
    if as_json:
        emit_json(summary)
        return
    stdout.print(f"clean test accuracy: {result.clean_accuracy:.2%}")
    if result.noisy is not None:
        where = describe_noise(used) if not used.is_clean else f"on {run.backend}"
        stdout.print(f"noisy test accuracy: {result.noisy.mean:.2%} ± {result.noisy.std:.2%} "
                     f"({where}, {result.noisy.repeats} draws)")
    stdout.print(f"checkpoint: {result.path}")
