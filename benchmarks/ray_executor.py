"""Ray executor speed on a train-per-point walk: 2 local workers vs 1, and 1 worker vs the local executor.

Each point trains LeNet-5 (MLP with --quick) on mnist5k ([0, 1] pixels) for a few epochs with its own noise and
evaluates it (the walk's train-per-point flavour). Every run uses one torch thread per point — ``local#threads=1``,
``ray#threads=1`` — so that two workers on two cores do not fight over them and every run stores the same numbers
(checked: convolution rounding depends on the thread count, nothing else does). Start-up — what a process pays once
before its first point (imports, the dataset parsed, torch's first optimizer), and for Ray ``ray.init`` and that
warm-up in each worker — is timed on its own: a cluster pays it once, not per study; the "with start-up" lines add it
back. The ceiling: the same points split in two halves
run by two plain processes at once (``local#threads=1`` each, no Ray; processes started and torch imported before the
clock) — what two cores of this machine give two independent trainings. ``--oversubscribed`` adds ``ray#workers=2`` at
this process's thread count: what oversubscribing the cores costs. Goals (issue 17): 2 workers vs 1 ≥ 1.8×; Ray 1
worker vs local overhead ≤ 10 %.

    python benchmarks/ray_executor.py            # 16 points (8 σ × 2 repeats at 7:fc1), 3 epochs each
    python benchmarks/ray_executor.py --quick    # 8 points (8 σ × 1), MLP, 1 epoch
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import ray
import torch

from hil.config import TrainConfig
from hil.studies.training_walk import walk_training
from hil.walking.grid import log_grid
from hil.walking.sweep import SweepSpec


def warm_up(_: int = 0) -> int:
    """What a process pays once before its first point: imports, the dataset parsed, torch's optimizer set-up."""
    import hil.training  # noqa: F401
    import hil.walking.report  # noqa: F401 - the fit, with scipy
    from hil.data import load_dataset

    load_dataset("mnist5k", seed=0)
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # its first construction imports torch._dynamo (~2 s)
    return os.getpid()


_remote_warm_up = ray.remote(warm_up)


def start_ray(workers: int) -> float:
    """A fresh local Ray with ``workers`` CPUs, every worker process started: the seconds it took."""
    if ray.is_initialized():
        ray.shutdown()
    started = time.perf_counter()
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    ray.get([_remote_warm_up.remote() for _ in range(workers)])
    return time.perf_counter() - started


def timed(step: Callable[[], object]) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def _half(job: tuple[TrainConfig, SweepSpec, str]) -> float:
    base, spec, folder = job
    return walk_training(base, spec, Path(folder), executor="local#threads=1").sites[0].mean


def two_processes(base: TrainConfig, spec: SweepSpec, root: Path) -> float:
    """Seconds for two plain processes, started beforehand, to walk one half of the σ grid each at once."""
    half = len(spec.sigmas) // 2
    jobs = [(base, replace(spec, sigmas=sigmas), str(root / f"half{i}"))
            for i, sigmas in enumerate((spec.sigmas[:half], spec.sigmas[half:]))]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(warm_up, range(2), chunksize=1)
        started = time.perf_counter()
        pool.map(_half, jobs, chunksize=1)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 points, MLP, 1 epoch")
    parser.add_argument("--oversubscribed", action="store_true", help="also 2 workers at this process's threads")
    args = parser.parse_args()
    epochs = 1 if args.quick else 3
    site = "1:fc1" if args.quick else "7:fc1"
    spec = SweepSpec(noise="add", sigmas=log_grid(1e-1, 1e1, 8), sites=(site,),
                     repeats=1 if args.quick else 2)
    base = TrainConfig(model="mlp" if args.quick else "lenet5", dataset="mnist5k", epochs=epochs)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    threads = torch.get_num_threads()
    runs = [("local × 1 thread", "local#threads=1", 0), ("ray, 1 worker × 1", "ray#threads=1", 1),
            ("ray, 2 workers × 1", "ray#threads=1", 2)]
    if args.oversubscribed:
        runs.append((f"ray, 2 workers × {threads}", "ray", 2))
    times, start_ups, means = {}, {}, {}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as root:
        for label, executor, workers in runs:
            start_ups[label] = start_ray(workers) if workers else timed(warm_up)
            started = time.perf_counter()
            report = walk_training(base, spec, Path(root) / f"run{len(times)}", executor=executor)
            times[label] = time.perf_counter() - started
            means[label] = report.sites[0].mean
        ray.shutdown()
        ceiling = two_processes(base, spec, Path(root))
    points = len(spec.sigmas) * spec.repeats
    print(f"ray executor — train-per-point walk, {base.model} on mnist5k [0, 1] pixels, {points} points × {epochs} "
          f"epochs, torch {torch.__version__}, {os.cpu_count()} CPUs, load avg before {load_before:.1f}")
    for label, seconds in times.items():
        print(f"  {label:<22} {seconds:6.1f} s  ({seconds / points:.2f} s/point)   "
              f"start-up {start_ups[label]:.1f} s")
    one, two, local = "ray, 1 worker × 1", "ray, 2 workers × 1", "local × 1 thread"
    print(f"  two plain processes × 1 thread     {ceiling:6.1f} s  (each half the points; no Ray)")
    print(f"  2 workers vs 1 (Ray running):      {times[one] / times[two]:.2f}×   (goal ≥ 1.8×)")
    print(f"  ceiling, 2 processes vs local:     {times[local] / ceiling:.2f}×   (what 2 cores give 2 trainings here)")
    print(f"  2 workers vs 1 (with start-up):    "
          f"{(times[one] + start_ups[one]) / (times[two] + start_ups[two]):.2f}×")
    print(f"  1 worker vs local (Ray running):   {times[one] / times[local] - 1:+.0%}   (goal ≤ +10 %)")
    print(f"  1 worker vs local (with start-up): {(times[one] + start_ups[one]) / times[local] - 1:+.0%}")
    oversubscribed = f"ray, 2 workers × {threads}"
    if oversubscribed in times:
        print(f"  2 workers × {threads} threads vs 2 × 1: {times[two] / times[oversubscribed]:.2f}× "
              f"(stores equal plain local's, not the rows above)")
    same = [label for label in means if means[label] == means[local]]
    print(f"  stored means identical to local × 1 thread: {', '.join(same)}")


if __name__ == "__main__":
    main()
