"""`hil reproduce`: the papers' tables, measured with hil and printed beside the papers' numbers.

`EXPERIMENTS` names them (``hil reproduce --list``); `run_experiment` runs one into a folder, resumably,
and writes its table (Markdown, JSON, CSV, plot). The papers' values are data (``paper_values.toml``).
"""

from __future__ import annotations

from hil.reproduce.experiments import EXPERIMENTS, Experiment, ReproContext, get_experiment
from hil.reproduce.runner import run_experiment
from hil.reproduce.table import Check, PaperValue, ReproTable, Row, paper_value, paper_values

__all__ = ["EXPERIMENTS", "Check", "Experiment", "PaperValue", "ReproContext", "ReproTable", "Row",
           "get_experiment", "paper_value", "paper_values", "run_experiment"]
