"""``hil demo``: emulator → calibration → training → Walking Noise → guided repetitions → report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hil.cli.console import stderr, stdout


def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for everything the demo writes (new or empty).")]
    = Path("runs/demo"),
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Training epochs.")] = 10,
    quick: Annotated[bool, typer.Option("--quick", help="Fewer epochs, samples and draws (≈ 1 min).")] = False,
) -> None:
    """Run the whole pipeline on embedded data and write OUT/report.md."""
    from hil.demo import DemoSettings, run_demo

    settings = DemoSettings(epochs=epochs)
    if quick:
        settings = DemoSettings(epochs=min(epochs, 3), samples=4000, walk_repeats=2, draws=3, paper_draws=3)
    summary = run_demo(out, settings, step=lambda text: stderr.print(f"[bold]{text}[/]"))
    rows = summary["repetitions"]["strategies"]
    stdout.print(f"device σa {summary['calibration']['sigma_add']['value']:.3g} (truth "
                 f"{summary['device']['truth']['sigma_add']}), σm {summary['calibration']['sigma_mul']['value']:.3g} "
                 f"(truth {summary['device']['truth']['sigma_mul']})")
    stdout.print(f"MLP clean accuracy {summary['training']['clean_accuracy']:.1%}; global μ "
                 f"{summary['walk']['global_mu']:.3g}")
    for row in rows:
        stdout.print(f"  {row['strategy']:14} {row['accuracy']['mean']:.1%} on the device, "
                     f"{row['total_executions']} executions")
    for line in summary["verdict"]:
        stdout.print(line, markup=False)
    stdout.print(f"report: {out / 'report.md'}")
