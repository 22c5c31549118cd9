"""Run one experiment of `hil.reproduce.experiments` into its folder and write its table."""

from __future__ import annotations

from pathlib import Path

from hil.errors import ConfigError
from hil.reproduce.experiments import ReproContext, get_experiment
from hil.reproduce.table import ReproTable, write_table


def run_experiment(name: str, context: ReproContext) -> tuple[ReproTable, list[Path]]:
    """Run experiment ``name`` in ``context.out`` (resuming what is there); returns its table and the files.

    The table goes to ``OUT/<name>/`` as ``table.md``, ``table.json``, ``table.csv`` and ``table.png``.

    Raises:
        ConfigError: Unknown experiment, or ``out`` is a file.
        HilError: A training, walk or study failed (its own message).
    """
    experiment = get_experiment(name)
    out = context.out
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; choose a folder for the reproduction")
    out.mkdir(parents=True, exist_ok=True)
    table = experiment.run(context)
    return table, write_table(table, out / name)
