"""Adaptive σ design vs the full fixed grid (Walking Noise), in one run.

Trains LeNet-5 on mnist5k (10 epochs, seed 0), then walks every site with additive noise twice:
the paper's full grid (1e-2..1e10, 4 per decade = 49 σ, 5 repeats) with the naive loop (one full
forward per point) and with the cached-prefix path, and the adaptive design (`hil walk --adaptive`).
Prints both time ratios, interval widths and μ agreement.

    python benchmarks/walk_adaptive.py [--target-width 0.03] [--sites 0,6,11]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from hil.config import TrainConfig
from hil.studies.walk import walk_checkpoint
from hil.training import train
from hil.walking.adaptive import AdaptivePlan, interval_decades
from hil.walking.grid import default_sigmas
from hil.walking.sweep import SweepSpec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target-width", type=float, default=0.03, help="adaptive stop: μ interval in decades")
    parser.add_argument("--sites", default="all", help="all, or comma-separated site indices")
    args = parser.parse_args()
    sites = "all" if args.sites == "all" else tuple(int(s) for s in args.sites.split(","))
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        train(TrainConfig(model="lenet5", dataset="mnist5k", epochs=10), root / "lenet", keep_epochs=False)
        full_spec = SweepSpec(noise="add", sigmas=default_sigmas("add", False), sites=sites, repeats=5)
        started = time.perf_counter()
        walk_checkpoint(root / "lenet", replace(full_spec, cached_prefix=False), root / "naive")
        naive_s = time.perf_counter() - started
        started = time.perf_counter()
        full = walk_checkpoint(root / "lenet", full_spec, root / "full")
        full_s = time.perf_counter() - started
        started = time.perf_counter()
        adaptive = walk_checkpoint(root / "lenet", SweepSpec(noise="add", sigmas=(1e-2, 1e10), sites=sites),
                                   root / "adaptive", adaptive=AdaptivePlan(target_width=args.target_width))
        adaptive_s = time.perf_counter() - started
    print(f"adaptive vs full grid — LeNet-5/mnist5k, additive, target width {args.target_width} decades")
    print(f"  {'site':10} {'μ full':>8} {'width':>7} {'μ adapt':>8} {'width':>7} {'Δlog10μ':>8} {'points':>7}")
    worse = 0
    for a, b in zip(full.sites, adaptive.sites, strict=True):
        wa, wb = interval_decades(a.fit), interval_decades(b.fit)
        worse += wb > wa
        delta = math.log10(b.fit.mu / a.fit.mu) if a.fit.status == b.fit.status == "ok" else float("nan")
        print(f"  {a.site:10} {a.fit.mu:8.3g} {wa:7.3f} {b.fit.mu:8.3g} {wb:7.3f} {delta:+8.3f} {b.fit.n_points:7d}")
    print(f"  time: naive full grid {naive_s:.1f} s, cached full grid {full_s:.1f} s, adaptive {adaptive_s:.1f} s")
    print(f"  adaptive vs naive full grid: {naive_s / adaptive_s:.1f}× less time (goal ≥ 10×); "
          f"vs cached full grid: {full_s / adaptive_s:.1f}×")
    print(f"  sites where the adaptive interval is wider than the full grid's: {worse}/{len(full.sites)}")


if __name__ == "__main__":
    main()
