"""Accuracy under noise: repeated evaluation with fresh, seeded noise draws."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from hil.seeding import derive_seed

if TYPE_CHECKING:
    from hil.noisy_model import NoisyModel


@dataclass(frozen=True)
class EvaluationResult:
    """Accuracy over ``repeats`` independent noise draws.

    Attributes:
        mean: Mean accuracy (fraction in [0, 1]).
        std: Sample standard deviation over repeats (0 for one repeat).
        accuracies: Accuracy of each repeat.
        samples: Test samples per repeat.
    """

    mean: float
    std: float
    accuracies: tuple[float, ...]
    samples: int

    @property
    def repeats(self) -> int:
        """Number of noise draws."""
        return len(self.accuracies)

    @property
    def sem(self) -> float:
        """Standard error of the mean."""
        return self.std / math.sqrt(self.repeats) if self.repeats > 1 else 0.0

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {"mean": self.mean, "std": self.std, "sem": self.sem, "repeats": self.repeats,
                "samples": self.samples, "accuracies": list(self.accuracies)}


def accuracy(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor,
             batch_size: int = 1000) -> float:
    """Fraction of ``inputs`` classified as ``labels`` (model in eval mode, no grad)."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    correct = 0
    try:
        with torch.no_grad():
            for start in range(0, len(inputs), batch_size):
                x = inputs[start:start + batch_size].to(device)
                y = labels[start:start + batch_size].to(device)
                correct += (model(x).argmax(dim=1) == y).sum().item()
    finally:
        model.train(was_training)
    return correct / max(len(inputs), 1)


def evaluate(noisy_model: NoisyModel, inputs: torch.Tensor, labels: torch.Tensor, *,
             repeats: int = 1, seed: int = 0, batch_size: int = 1000) -> EvaluationResult:
    """Accuracy of a wrapped model over ``repeats`` fresh noise draws.

    Repeat ``k`` reseeds the backend from (``seed``, ``k``), so results are reproducible and
    repeats are independent.

    Args:
        noisy_model: A `hil.NoisyModel` (anything with ``.backend.reseed``).
        inputs: Test inputs.
        labels: Test labels.
        repeats: Independent noise draws (≥ 1).
        seed: Base seed for the draws.
        batch_size: Evaluation batch size.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be ≥ 1, got {repeats}")
    accuracies = [evaluate_draw(noisy_model, inputs, labels, seed=seed, draw=r, batch_size=batch_size)
                  for r in range(repeats)]
    return summarize_draws(accuracies, len(inputs))


def evaluate_draw(noisy_model: NoisyModel, inputs: torch.Tensor, labels: torch.Tensor, *, seed: int, draw: int,
                  batch_size: int = 1000) -> float:
    """Accuracy under noise draw number ``draw`` of ``seed`` (the backend is reseeded for it).

    `evaluate` is this for draws 0 … repeats − 1; a study that runs draws as separate points gets the same
    numbers in any order.
    """
    noisy_model.backend.reseed(derive_seed(seed, "eval", draw))
    return accuracy(noisy_model, inputs, labels, batch_size)


def summarize_draws(accuracies: Sequence[float], samples: int) -> EvaluationResult:
    """Mean, sample standard deviation and the draws themselves, as `evaluate` reports them."""
    std = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
    return EvaluationResult(statistics.fmean(accuracies), std, tuple(accuracies), samples)
