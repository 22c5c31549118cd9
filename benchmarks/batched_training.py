"""Batched training of K walk points (`hil.batched_training.train_batched`) vs K trainings one after the other.

What a train-per-point walk does per unit: K networks that differ only in noise and seed, each a full
`train` run (fresh init, its own split and shuffle, noise at one site as in a walk point, Adam + cosine,
end-of-run clean and noisy test, checkpoint written). Compared: ``hil walk --train-per-point --batch-points K``
(one batched pass) vs ``--batch-points 1`` (K `train` calls). Data: mnist5k, [0, 1] pixels (the paper's
preprocessing), 4,000 training digits, batch 128. Speed-ups are end to end (the walk's wall time) and over
the training epochs alone (`EpochRecord.seconds`: optimizer steps, the per-epoch test not counted, in both
paths alike). Also printed: noisy/clean throughput of the batched pass
(issue 17's GPU goal ≥ 0.8), over the training epochs alone (each run's epoch seconds): end to end, a noisy
run also tests itself under noise at the end, which a clean run skips, so that ratio is lower and is printed
beside it. Medians of ``--rounds`` rounds; the batched runs' clean accuracies are compared with the
sequential runs' (the largest difference, in points: float rounding of the batched matmuls may flip a digit).

    python benchmarks/batched_training.py [--k 8] [--epochs 1] [--rounds 3] [--models mlp,lenet5] [--backend gpu]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

import torch

from hil.batched_training import train_batched
from hil.config import TrainConfig
from hil.noise import NoiseSpec
from hil.training import train

SITE = {"mlp": "3:fc2", "lenet5": "4:conv2"}


def _configs(model: str, k: int, epochs: int, backend: str, noisy: bool) -> list[TrainConfig]:
    sigmas = [0.05 * (1 + i) for i in range(k)]
    return [TrainConfig(model=model, dataset="mnist5k", epochs=epochs, seed=100 + i, backend=backend,
                        noise=NoiseSpec(sigma_add=sigma, sites=(SITE[model],)) if noisy else NoiseSpec())
            for i, sigma in enumerate(sigmas)]


def _sequential(configs: list[TrainConfig], folder: Path) -> list:
    return [train(config, folder / f"p{i}", keep_epochs=False) for i, config in enumerate(configs)]


def _batched(configs: list[TrainConfig], mode: str, folder: Path) -> list:
    return train_batched(configs, [folder / f"p{i}" for i in range(len(configs))], keep_epochs=False,
                         conv_mode=mode)  # type: ignore[arg-type]


def _timed(run) -> tuple[float, float, list[float]]:  # noqa: ANN001
    """Wall seconds, seconds spent in training epochs (all runs), clean accuracies."""
    with tempfile.TemporaryDirectory(prefix="hil-bench-") as folder:
        started = time.perf_counter()
        results = run(Path(folder))
        wall = time.perf_counter() - started
        return wall, sum(r.seconds for result in results for r in result.history), [r.clean_accuracy for r in results]


def _measure(model: str, args: argparse.Namespace, modes: list[str]) -> None:
    noisy = _configs(model, args.k, args.epochs, args.backend, noisy=True)
    clean = _configs(model, args.k, args.epochs, args.backend, noisy=False)
    _timed(partial(_sequential, noisy[:1]))  # warm: data cache, first-call costs
    runs = {"sequential": partial(_sequential, noisy)}
    for mode in modes if model == "lenet5" else modes[:1]:
        runs[mode] = partial(_batched, noisy, mode)
    runs["batched clean"] = partial(_batched, clean, modes[0])
    rows: dict[str, list[float]] = {name: [] for name in runs}
    training: dict[str, list[float]] = {name: [] for name in runs}
    accuracies: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for name, run in runs.items():
            seconds, epochs, accuracies[name] = _timed(run)
            rows[name].append(seconds)
            training[name].append(epochs)
    base, base_training = statistics.median(rows["sequential"]), statistics.median(training["sequential"])
    for name, times in rows.items():
        median = statistics.median(times)
        over_epochs = base_training / statistics.median(training[name])
        gap = max(abs(a - b) for a, b in zip(accuracies[name], accuracies["sequential"], strict=True))
        same = "" if name == "batched clean" else (
            "  same accuracies" if gap == 0 else f"  accuracies differ by ≤ {100 * gap:.1f} pt")
        print(f"{model:7s} {name:14s} median {median:6.2f} s  ({', '.join(f'{t:.2f}' for t in times)})  "
              f"speed-up {base / median:4.2f}× ({over_epochs:4.2f}× over training epochs){same}")
    noisy_train, clean_train = statistics.median(training[modes[0]]), statistics.median(training["batched clean"])
    print(f"{model:7s} noisy/clean throughput of the batched pass: {clean_train / noisy_train:.2f} training epochs "
          f"({noisy_train:.2f} vs {clean_train:.2f} s), "
          f"{statistics.median(rows['batched clean']) / statistics.median(rows[modes[0]]):.2f} end to end")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", default="mlp,lenet5")
    parser.add_argument("--backend", default="sim")
    args = parser.parse_args()
    print(f"batched training — K = {args.k} points × {args.epochs} epoch(s), mnist5k [0, 1] pixels, batch 128, "
          f"torch {torch.__version__}, {args.backend}, {torch.get_num_threads()} threads, "
          f"load avg {os.getloadavg()[0]:.1f}")
    modes = ["grouped"] if args.backend.startswith("gpu") else ["per-network", "grouped"]
    for model in args.models.split(","):
        _measure(model, args, modes)


if __name__ == "__main__":
    main()
