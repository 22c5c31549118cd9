"""Walking Noise sweep speed: cached-prefix stacked evaluation vs the naive loop, in one run.

Naive = one full noisy forward of the test set per (site, σ, repeat) point. Cached = per batch,
the clean prefix up to the site once, then the rest of the network once on all (σ, repeat)
draws stacked along the batch. Both give identical accuracies for identical seeds (checked here
on the points both ran, and in tests/walking/test_sweep.py).

    python benchmarks/walk_speed.py            # LeNet-5, 12 sites × 20 σ × 5 repeats, mnist5k test set
    python benchmarks/walk_speed.py --quick    # 12 sites × 4 σ × 2 repeats
    python benchmarks/walk_speed.py --twin --rounds 2   # on twin:PROFILE of an emulated chip, 12 sites × 4 σ × 2
                                               # repeats, 500 test samples (the twin is ~100× slower per point)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from hil.data import load_dataset
from hil.models import create_model
from hil.noisy_model import wrap
from hil.studies.walk import InferenceWalk
from hil.walking.grid import log_grid
from hil.walking.sweep import SweepSpec


def timed_walk(walk: InferenceWalk) -> tuple[float, dict]:
    """Every point of ``walk`` through the study engine's own ``units``/``evaluate`` → (seconds, {key: accuracy})."""
    started = time.perf_counter()
    accuracies = {}
    for unit in walk.units(walk.points):
        outcomes = walk.evaluate(unit)
        accuracies.update((point.key, outcome.accuracy) for point, outcome in zip(unit, outcomes, strict=True))
    return time.perf_counter() - started, accuracies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small grid for a smoke run")
    parser.add_argument("--twin", action="store_true", help="walk on the digital twin of an emulated chip")
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds of both paths (fastest kept)")
    args = parser.parse_args()
    sigmas = log_grid(1e-1, 1e2, 4 if args.quick or args.twin else 20)
    repeats = 2 if args.quick or args.twin else 5
    data = load_dataset("mnist5k", seed=0)
    test_x, test_y = (data.test_x[:500], data.test_y[:500]) if args.twin else (data.test_x, data.test_y)
    torch.manual_seed(0)
    model = create_model("lenet5").eval()  # accuracy values do not matter for timing
    spec = SweepSpec(noise="add", sigmas=sigmas, sites="all", repeats=repeats, batch_size=250)
    backend = "sim"
    if args.twin:
        from emulated_device import calibrated_chip

        _, profile = calibrated_chip(Path(tempfile.mkdtemp()), sigma_add=0.5)
        backend = f"twin:{profile}"
        warm = InferenceWalk(wrap(model, backend), test_x, test_y, replace(spec, sigmas=sigmas[:1], repeats=1))
        warm.evaluate(warm.points[:1])  # first allocations out of the timed runs
    times: dict[bool, float] = {}
    accuracies = {}
    for cached_prefix in (True, False) * args.rounds:  # alternating; the fastest round of each is kept
        # the two paths through the study engine's own calls: units of stacked points vs one point per unit
        walk = InferenceWalk(wrap(model, backend), test_x, test_y, replace(spec, cached_prefix=cached_prefix))
        seconds, accuracies[cached_prefix] = timed_walk(walk)
        times[cached_prefix] = min(times.get(cached_prefix, float("inf")), seconds)
    sweep = walk
    by_site = {point.site_index for point in sweep.points}
    cached_s, naive_s = times[True], times[False]
    cached, naive = accuracies[True], accuracies[False]

    same = sum(cached[p.key] == naive[p.key] for p in sweep.points)
    print(f"walk speed — LeNet-5 on {backend.split(':')[0]}, mnist5k test set ({len(test_y)} samples, [0, 1] pixels), "
          f"{len(by_site)} sites × "
          f"{len(sigmas)} σ × {repeats} repeats = {len(sweep.points)} points, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"  naive loop      {naive_s:8.2f} s   ({1e3 * naive_s / len(sweep.points):.1f} ms/point)")
    print(f"  cached prefix   {cached_s:8.2f} s   ({1e3 * cached_s / len(sweep.points):.1f} ms/point)")
    print(f"  speed-up        {naive_s / cached_s:8.2f}×   {'(no goal set)' if args.twin else '(goal ≥ 3×)'}")
    print(f"  identical accuracies: {same}/{len(sweep.points)} points")


if __name__ == "__main__":
    main()
