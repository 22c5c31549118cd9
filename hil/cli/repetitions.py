"""Rich output of `hil evaluate --guided-reps / --uniform-reps / --compare-reps`."""

from __future__ import annotations

import math
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from hil.cli.console import print_wide

TABLE_WIDTH = 96


def _executions(allocation: Any) -> str:
    counts = allocation.executions
    if len(set(counts)) == 1:
        return f"{counts[0]} at each of {len(counts)}"
    return "{" + ",".join(map(str, counts)) + "}"


def _macs(value: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.3g}{unit}"
    return str(value)


def print_repetition_report(report: Any, console: Console, noise_text: str) -> None:
    """Print the strategies of a `RepetitionReport` as one table, then each one's executions per site."""
    first = report.strategies[0].result
    console.print(f"repeated executions — {noise_text} (σ: {report.sigma_source}), backend {report.backend}, "
                  f"budget {report.budget} per site, {first.repeats} paired draws × {first.samples} samples")
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("strategy", "accuracy %", "Δ vs uniform, pt\n[95 % CI]", "model\npredicts", "total\nexecs",
                   "MACs per\nsample"):
        table.add_column(column, justify="left" if column == "strategy" else "right", no_wrap=True)
    differences = {d.strategy: d for d in report.differences}
    for item in report.strategies:
        allocation, result = item.allocation, item.result
        diff = differences.get(allocation.strategy)
        diff_text = "—" if diff is None else (
            f"{diff.mean * 100:+.1f}" + ("" if math.isnan(diff.low) else
                                         f" [{diff.low * 100:+.1f},{diff.high * 100:+.1f}]"))
        if diff is not None and diff.excludes_zero and diff.mean > 0:
            diff_text = f"[bold green]{diff_text}[/]"
        predicted = "—" if math.isnan(allocation.predicted) else f"{allocation.predicted:.1%}"
        table.add_row(allocation.strategy, f"{result.mean * 100:.1f} ± {result.std * 100:.1f}", diff_text, predicted,
                      str(allocation.total_executions), _macs(allocation.macs_per_sample))
    # a pipe or a file gets the whole table (rich would squeeze it to 80 columns)
    print_wide(console, table, TABLE_WIDTH)
    sites = report.strategies[0].allocation.sites
    console.print(f"executions per site ({', '.join(s.name for s in sites)}):")
    for item in report.strategies:
        console.print(f"  {item.allocation.strategy:14} {_executions(item.allocation)}")
    if report.cost == "macs":
        console.print("greedy budget counted in MACs (digital sites: one operation per element)")
