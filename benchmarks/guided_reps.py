"""Guided vs uniform repeated executions at equal budget (Walking Noise paper, section 8), in one run.

For each network: train on mnist5k (seed 0), walk every site with additive noise (inference-only,
paper grid, 5 repeats) and globally, then evaluate at the global midpoint μ with none / uniform /
guided-1/μ / guided-greedy executions (10 paired draws each). Prints accuracy, the paired
difference to uniform with its 95 % interval, total executions and MACs per sample.

    python benchmarks/guided_reps.py [--models mlp,lenet5] [--budgets 2,3] [--repeats 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from hil.config import TrainConfig
from hil.guided.compare import STRATEGIES, evaluate_repetitions
from hil.noise import NoiseSpec
from hil.studies.walk import walk_checkpoint
from hil.training import train
from hil.walking.grid import default_sigmas
from hil.walking.sweep import SweepSpec


def _print(report, label: str) -> None:  # noqa: ANN001 - benchmark output only
    diffs = {d.strategy: d for d in report.differences}
    print(f"{label}: σa = {report.noise.sigma_add:.3g} (global μ), budget {report.budget}/site, cost {report.cost}")
    for item in report.strategies:
        a, r = item.allocation, item.result
        d = diffs.get(a.strategy)
        diff = "" if d is None else f"Δ {d.mean * 100:+5.1f} pt [{d.low * 100:+.1f}, {d.high * 100:+.1f}]"
        print(f"  {a.strategy:14} {r.mean:6.1%} ± {r.std:4.1%}  {diff:28} predicted {a.predicted:5.1%}  "
              f"execs {a.total_executions:3d}  MACs {a.macs_per_sample / 1e3:7.1f}k  {list(a.executions)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mlp,lenet5")
    parser.add_argument("--budgets", default="2,3")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        for model in args.models.split(","):
            root = Path(folder) / model
            started = time.perf_counter()
            train(TrainConfig(model=model, dataset="mnist5k", epochs=30 if model == "mlp" else 15), root / "ckpt",
                  keep_epochs=False)
            grid = default_sigmas("add", False)
            walk_checkpoint(root / "ckpt", SweepSpec(noise="add", sigmas=grid, repeats=5), root / "walk")
            walk_checkpoint(root / "ckpt", SweepSpec(noise="add", sigmas=default_sigmas("add", True), sites="global",
                                                     repeats=5), root / "walk")
            print(f"{model}: trained and walked in {time.perf_counter() - started:.0f} s")
            for budget in budgets:
                for cost in ("executions", "macs") if model != "mlp" else ("executions",):
                    report = evaluate_repetitions(root / "ckpt", STRATEGIES, budget=budget, noise=NoiseSpec(),
                                                  walk=root / "walk", repeats=args.repeats, cost=cost)
                    _print(report, model)


if __name__ == "__main__":
    main()
