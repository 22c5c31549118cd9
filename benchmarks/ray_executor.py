"""Ray executor speed on a train-per-point walk: 2 local workers vs 1, and 1 worker vs the local executor.

Each point trains LeNet-5 (MLP with --quick) on mnist5k for a few epochs with its own noise and evaluates it (the walk's
train-per-point flavour); the runs store identical numbers (checked): Ray tasks use this process's
torch thread count (2 here), as they must for identical convolution results, so two workers
oversubscribe 2 cores; a last run with ``ray#workers=2;threads=1`` shows the other
choice. Goals (issue 17): 2 workers vs 1 ≥ 1.8×; Ray 1 worker vs local overhead ≤ 10 %.

    python benchmarks/ray_executor.py            # 16 points (8 σ × 2 repeats at 7:fc1), 3 epochs each
    python benchmarks/ray_executor.py --quick    # 4 points (4 σ × 1), 1 epoch
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import ray
import torch

from hil.config import TrainConfig
from hil.studies.training_walk import walk_training
from hil.walking.grid import log_grid
from hil.walking.sweep import SweepSpec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 points, 1 epoch")
    args = parser.parse_args()
    epochs = 1 if args.quick else 3
    site = "1:fc1" if args.quick else "7:fc1"
    spec = SweepSpec(noise="add", sigmas=log_grid(1e-1, 1e1, 4 if args.quick else 8), sites=(site,),
                     repeats=1 if args.quick else 2)
    base = TrainConfig(model="mlp" if args.quick else "lenet5", dataset="mnist5k", epochs=epochs)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    times, means = {}, {}
    with tempfile.TemporaryDirectory() as root:
        for label, executor in (("local", "local"), ("ray, 1 worker", "ray#workers=1"),
                                ("ray, 2 workers", "ray#workers=2"),
                                ("ray, 2 w, 1 thread", "ray#workers=2;threads=1")):
            if ray.is_initialized():
                ray.shutdown()
            started = time.perf_counter()
            report = walk_training(base, spec, Path(root) / label.replace(" ", "").replace(",", "-"),
                                   executor=executor)
            times[label] = time.perf_counter() - started
            means[label] = report.sites[0].mean
    ray.shutdown()
    points = len(spec.sigmas) * spec.repeats
    print(f"ray executor — train-per-point walk, {base.model} on mnist5k, {points} points × {epochs} epochs, torch "
          f"{torch.__version__}, {os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.1f}")
    for label, seconds in times.items():
        print(f"  {label:<16} {seconds:7.1f} s   ({seconds / points:.2f} s/point; Ray start-up included)")
    print(f"  2 workers vs 1:  {times['ray, 1 worker'] / times['ray, 2 workers']:.2f}×   (goal ≥ 1.8×)")
    print(f"  1 worker vs local: {times['ray, 1 worker'] / times['local'] - 1:+.0%}   (goal ≤ +10 %)")
    print(f"  2 workers × 1 thread vs 1 worker: {times['ray, 1 worker'] / times['ray, 2 w, 1 thread']:.2f}×")
    same = [label for label in means if means[label] == means["local"]]
    print(f"  stored means identical to local: {', '.join(same)}")


if __name__ == "__main__":
    main()
