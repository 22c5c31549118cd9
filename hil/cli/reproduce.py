"""``hil reproduce``: the papers' tables measured with hil, beside the papers' numbers (thin over `hil.reproduce`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hil.cli.console import emit_json, print_wide, stderr, stdout
from hil.cli.options import DataDir, ExecutorOption, GpusPerPoint, JsonFlag, RayAddress, executor_spec, parse_list
from hil.errors import ConfigError


def reproduce(
    name: Annotated[str | None, typer.Argument(help="Experiment (hil reproduce --list), or all.")] = None,
    list_experiments: Annotated[bool, typer.Option("--list", help="Name the experiments and exit.")] = False,
    dataset: Annotated[str, typer.Option("--dataset", help="Dataset (mnist5k default; full ones need --data-dir).")]
    = "mnist5k",
    data_dir: DataDir = None,
    quick: Annotated[bool, typer.Option("--quick", help="A reduced protocol: a minute or two per experiment.")]
    = False,
    out: Annotated[Path, typer.Option("--out", help="Reproduction folder (resumable; networks shared).")]
    = Path("runs/reproduce"),
    models: Annotated[str | None, typer.Option(
        "--models", help="Only the rows of these models, e.g. mlp (skips the slow LeNet-5 rows).")] = None,
    epochs: Annotated[int | None, typer.Option(
        "--epochs", min=1, help="Train every network this many epochs (default: each experiment's).")] = None,
    executor: ExecutorOption = "local",
    ray_address: RayAddress = None,
    gpus_per_point: GpusPerPoint = None,
    as_json: JsonFlag = False,
) -> None:
    """Run a paper's experiment with its protocol; writes OUT/NAME/table.{md,json,csv,png}."""
    from hil.reproduce.experiments import EXPERIMENTS

    if list_experiments:
        for experiment in EXPERIMENTS.values():
            stdout.print(f"{experiment.name:10} {experiment.title}", markup=False)
        return
    if name is None:
        raise ConfigError("name an experiment (hil reproduce --list shows them) or give all")
    from hil.config import TrainConfig
    from hil.reproduce import ReproContext, get_experiment, run_experiment

    names = list(EXPERIMENTS) if name == "all" else [get_experiment(name).name]
    TrainConfig(dataset=dataset, data_dir=data_dir)  # an unknown dataset fails here, before any work
    chosen = None
    if models is not None:
        from hil.models import MODELS

        chosen = tuple(parse_list(models, "--models"))
        for model in chosen:
            MODELS.get(model)  # an unknown name: the registry's one line, naming the choices
    context = ReproContext(out=out, dataset=dataset, data_dir=data_dir, quick=quick,
                           executor=executor_spec(executor, ray_address, gpus_per_point),
                           progress=lambda text: stderr.print(f"[dim]{text}[/]", markup=True), models=chosen,
                           epochs_override=epochs)
    results = []
    for each in names:
        table, paths = run_experiment(each, context)
        results.append((table, paths))
        if not as_json:
            _print(table)
            stdout.print(f"table: {paths[0]}   plot: {paths[-1]}", markup=False)
    if as_json:
        emit_json([{**table.to_dict(), "files": [str(p) for p in paths]} for table, paths in results])


def _print(table_data) -> None:  # noqa: ANN001 - a ReproTable; typed at the library side
    table = Table(title=f"{table_data.title} — {table_data.dataset}")
    for column in ("quantity", "ours", "95 % interval", "paper", "paper's table, row (dataset)"):
        table.add_column(column, justify="left" if column in ("quantity", "paper's table, row (dataset)")
                         else "right")
    for row in table_data.rows:
        interval = f"[{row.low:.3g}, {row.high:.3g}]" if math.isfinite(row.low) else "—"
        paper = "—" if row.paper is None else f"{row.paper.value:.3g}"
        where = "" if row.paper is None else f"{row.paper.table}, {row.paper.row} ({row.paper.dataset})"
        table.add_row(row.quantity, "—" if not math.isfinite(row.ours) else f"{row.ours:.3g}", interval, paper,
                      where)
    print_wide(stdout, table, width=160)
    if table_data.caveat:
        stdout.print(table_data.caveat, markup=False)
    for check in table_data.checks:
        stdout.print(f"{'holds' if check.holds else 'DOES NOT HOLD'}: {check.claim} — {check.evidence}", markup=False)
