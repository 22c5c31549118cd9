"""``hil sites`` and ``hil list``: what a model's noise sites are and what is registered."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from hil.cli.console import emit_json, stdout
from hil.cli.options import JsonFlag


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
        emit_json({"model": model, "bn": bn, "sites": [s.to_dict() for s in noisy.sites]})
        return
    table = Table(title=f"{model}{' (BN)' if bn else ''}: {len(noisy.sites)} noise sites")
    for column in ("index", "name", "kind", "op", "shape", "elements"):
        table.add_column(column, justify="right" if column in ("index", "elements") else "left")
    for site in noisy.sites:
        table.add_row(str(site.index), site.name, site.kind, site.op,
                      "×".join(map(str, site.shape)), str(site.numel))
    stdout.print(table)


def list_registered(as_json: JsonFlag = False) -> None:
    """List the registered models, datasets and backends."""
    from hil.backends import backend_names
    from hil.data import dataset_names
    from hil.models import list_models

    names = {"models": list_models(), "datasets": dataset_names(), "backends": backend_names()}
    if as_json:
        emit_json(names)
        return
    for kind, values in names.items():
        stdout.print(f"{kind}: {', '.join(values)}")
