"""QAT cost and the paper-001 findings on LeNet-5/mnist5k, measured in one run.

1. Training step time, QAT (Brevitas, 4 and 8 bit, dynamic and constant scaling) / float, batch
   128, under the noise wrapper (σa = 0.1 at all sites), median of 30 steps after warm-up.
2. Peak accuracy of float vs 4-/8-bit dynamic QAT (goal: within 2 points), and the constant-
   scaling trade-off: peak accuracy and global additive μ for const:0.5, 1, 2, 4 (4 bit).

    python benchmarks/qat.py [--epochs 15]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import hil
from hil.config import TrainConfig
from hil.models import create_model
from hil.models.quantize import QuantConfig, quantize
from hil.studies.walk import walk_checkpoint
from hil.training import train
from hil.walking.grid import default_sigmas
from hil.walking.sweep import SweepSpec


def step_time(model: torch.nn.Module) -> float:
    noisy = hil.wrap(model, "sim", hil.NoiseSpec(sigma_add=0.1))
    optimizer = torch.optim.Adam(noisy.parameters(), lr=1e-3)
    x, y = torch.randn(128, 1, 28, 28), torch.randint(0, 10, (128,))
    times = []
    for index in range(40):
        started = time.perf_counter()
        optimizer.zero_grad()
        F.cross_entropy(noisy(x), y).backward()
        optimizer.step()
        if index >= 10:
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()
    torch.manual_seed(0)
    base = step_time(create_model("lenet5"))
    print("QAT training step / float training step (LeNet-5, batch 128, noise wrapper on):")
    print(f"  float: {base * 1e3:.1f} ms")
    for bits, scaling in ((8, "dynamic"), (4, "dynamic"), (4, "const:2")):
        seconds = step_time(quantize(create_model("lenet5"), QuantConfig(bits, scaling)))
        print(f"  {bits}-bit {scaling:8}: {seconds * 1e3:.1f} ms  → {seconds / base:.2f}×")
    rows = [(None, "dynamic"), (8, "dynamic"), (4, "dynamic"), (4, "const:0.5"), (4, "const:1"), (4, "const:2"),
            (4, "const:4")]
    print(f"\npeak accuracy and global additive μ, LeNet-5 on mnist5k, {args.epochs} epochs, seed 0:")
    with tempfile.TemporaryDirectory() as folder:
        float_accuracy = None
        for bits, scaling in rows:
            name = "fp32" if bits is None else f"{bits}-bit {scaling}"
            out = Path(folder) / name.replace(" ", "-").replace(":", "")
            started = time.perf_counter()
            result = train(TrainConfig(model="lenet5", dataset="mnist5k", epochs=args.epochs, quant=bits,
                                       act_scaling=scaling), out, keep_epochs=False)
            seconds = time.perf_counter() - started
            walk = walk_checkpoint(out, SweepSpec(noise="add", sigmas=default_sigmas("add", True), sites="global",
                                                  repeats=3), Path(folder) / "walks", write_summary=False)
            fit = walk.sites[0].fit
            float_accuracy = float_accuracy if float_accuracy is not None else result.clean_accuracy
            gap = (result.clean_accuracy - float_accuracy) * 100
            print(f"  {name:14} accuracy {result.clean_accuracy:6.2%} ({gap:+5.1f} pt vs fp32)  μ {fit.mu:6.3g} "
                  f"[{fit.mu_low:.3g}, {fit.mu_high:.3g}]  ({seconds:.0f} s training)")


if __name__ == "__main__":
    main()
