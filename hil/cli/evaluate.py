"""``hil evaluate``: accuracy under noise, and repeated executions per site (none, uniform, guided)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hil.cli.console import describe_noise, emit_json, stdout
from hil.cli.options import (
    Executions,
    ExecutorOption,
    FoldBn,
    GpusPerPoint,
    Gradient,
    JsonFlag,
    Order,
    RayAddress,
    SigmaAdd,
    SigmaMul,
    Sites,
    executor_spec,
    noise_flags,
)
from hil.errors import ConfigError


def evaluate(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="Checkpoint directory.")],
    backend: Annotated[str, typer.Option("--backend", help="Backend spec: sim, sim#seed=3, gpu, device:….")] = "sim",
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
    executor: ExecutorOption = "local",
    ray_address: RayAddress = None,
    gpus_per_point: GpusPerPoint = None,
    fold_bn: FoldBn = False,
    as_json: JsonFlag = False,
) -> None:
    """Accuracy of a checkpoint under noise: mean ± std over --repeats noise draws."""
    from hil.noise import NoiseSpec
    from hil.studies.engine import get_executor, parse_executor_spec

    spec = executor_spec(executor, ray_address, gpus_per_point)
    repetitions = guided_reps is not None or uniform_reps is not None or compare_reps is not None
    if not repetitions and parse_executor_spec(spec)[0] != "local":
        raise ConfigError("--executor goes with --guided-reps, --uniform-reps or --compare-reps (a plain "
                          "evaluation runs in this process)")
    runner = get_executor(spec)  # checked before any work (Ray installed, options valid)
    flags = noise_flags(sigma_add, sigma_mul, order, sites, gradient, executions)
    noise = NoiseSpec.from_dict({k: v for k, v in flags.items() if v is not None})
    if device_layers is not None:
        from hil.backends.spec import parse_backend_spec

        backend = parse_backend_spec(backend).with_option("layers", device_layers, "--device-layers").text
    chosen = [name for name, value in (("--guided-reps", guided_reps), ("--uniform-reps", uniform_reps),
                                       ("--compare-reps", compare_reps)) if value is not None]
    if len(chosen) > 1:
        raise ConfigError(f"choose one of {', '.join(chosen)}")
    if chosen:
        if executions is not None:
            raise ConfigError(f"--executions sets one count for every site; drop it when using {chosen[0]}")
        from hil.cli.repetitions import print_repetition_report
        from hil.guided.compare import evaluate_repetitions, repetition_request

        request = repetition_request(guided=guided_reps, uniform=uniform_reps, compare=compare_reps, budget=budget,
                                     allocator=allocator, repeats=repeats)
        report = evaluate_repetitions(checkpoint, request.strategies, budget=request.budget, noise=noise,
                                      walk=request.walk, backend=backend, repeats=request.repeats, seed=seed,
                                      cost=cost, data_dir=data_dir, batch_size=batch_size, executor=runner,
                                      fold_bn=fold_bn)
        if as_json:
            emit_json(report.to_dict())
            return
        print_repetition_report(report, stdout, describe_noise(report.noise))
        return
    if budget is not None:
        raise ConfigError("--budget goes with --guided-reps or --compare-reps")
    from hil.evaluation_job import evaluate_checkpoint

    evaluation = evaluate_checkpoint(checkpoint, backend, noise, repeats=repeats or 1, seed=seed,
                                     data_dir=data_dir, batch_size=batch_size, fold_bn=fold_bn)
    if as_json:
        emit_json(evaluation.to_dict())
        return
    result = evaluation.result
    stdout.print(f"accuracy: {result.mean:.2%} ± {result.std:.2%} over {result.repeats} "
                 f"repeat{'s' if result.repeats > 1 else ''} ({describe_noise(noise)}, "
                 f"backend {evaluation.backend}, {result.samples} test samples)")
