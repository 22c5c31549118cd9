"""``hil harden``: the quantisation-vs-noise hardening study (thin over `hil.harden`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hil.cli.console import print_wide, stderr, stdout
from hil.cli.options import (
    BackendOption,
    DataDir,
    ExecutorOption,
    GpusPerPoint,
    Preprocess,
    RayAddress,
    executor_spec,
    parse_list,
)
from hil.errors import ConfigError


def harden(
    model: Annotated[str, typer.Option("--model", help="Model name (hil list).")] = "lenet5",
    dataset: Annotated[str, typer.Option("--dataset", help="Dataset name.")] = "mnist5k",
    data_dir: DataDir = None,
    preprocess: Preprocess = None,
    bits: Annotated[str, typer.Option("--bits", help="Bit widths, e.g. 4,8.")] = "4,8",
    scaling: Annotated[str, typer.Option("--scaling", help="Activation scalings, e.g. dynamic,const:1,const:2.")]
    = "dynamic,const:1,const:2",
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Networks (seeds) per variant.")] = 3,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Training epochs per network.")] = 10,
    train_sigma: Annotated[float | None, typer.Option(
        "--train-sigma", help="σa of noisy training (default: the float baseline's global μ).")] = None,
    no_noisy: Annotated[bool, typer.Option("--no-noisy-training", help="Skip the noisy-training rows.")] = False,
    walk_repeats: Annotated[int, typer.Option("--walk-repeats", min=1, help="Noise draws per σ.")] = 3,
    out: Annotated[Path, typer.Option("--out", help="Study folder (resumable).")] = Path("runs/harden"),
    backend: BackendOption = "sim",
    executor: ExecutorOption = "local",
    ray_address: RayAddress = None,
    gpus_per_point: GpusPerPoint = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Peak accuracy and global μ for fp32 and each (bits, scaling), with and without noisy training."""
    from hil.studies.harden import SUMMARY, plot_tradeoff, run_study

    try:
        bit_widths = [int(b) for b in parse_list(bits, "--bits")]
    except ValueError:
        raise ConfigError(f"--bits must be integers such as 4,8, got {bits!r}") from None
    from hil.config import TrainConfig
    from hil.data import DEFAULT_PREPROCESS

    base = TrainConfig(model=model, dataset=dataset, data_dir=data_dir, epochs=epochs, backend=backend,
                       preprocess=preprocess or DEFAULT_PREPROCESS)
    results = run_study(base, out, bits=bit_widths, scalings=parse_list(scaling, "--scaling"), repeats=repeats,
                        walk_repeats=walk_repeats, train_sigma=train_sigma, noisy=not no_noisy,
                        progress=lambda text: stderr.print(f"[dim]{text}[/]"),
                        executor=executor_spec(executor, ray_address, gpus_per_point))
    plots = plot_tradeoff(results, out / "tradeoff")
    if as_json:
        sys.stdout.write((out / SUMMARY).read_text())
        return
    table = Table(title=f"hardening study — {model} on {dataset}, {repeats} networks per row, {epochs} epochs")
    for column in ("variant", "peak accuracy [95 % CI]", "global μ [95 % CI]", "Δμ vs fp32"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    rows = [(result, result.to_dict()) for result in results]
    reference = {result.variant.noisy: data["mu"][0] for result, data in rows if result.variant.bits is None}
    for result, data in rows:
        acc, mu = data["accuracy"], data["mu"]
        acc_text = "—" if acc[0] is None else (f"{acc[0]:.1%}" + ("" if acc[1] is None else
                                                                 f" [{acc[1]:.1%}, {acc[2]:.1%}]"))
        mu_text = "—" if mu[0] is None else (f"{mu[0]:.3g}" + ("" if mu[1] is None else f" [{mu[1]:.3g}, {mu[2]:.3g}]"))
        ref = reference.get(result.variant.noisy)
        delta = "—" if mu[0] is None or not ref else f"{mu[0] / ref - 1:+.0%}"
        table.add_row(result.variant.label, acc_text, mu_text, delta)
    print_wide(stdout, table)
    stdout.print(f"summary: {out / SUMMARY}   plot: {plots[0]}")
