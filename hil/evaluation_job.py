"""Evaluate a checkpoint on its own test split under a backend and noise spec."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hil.evaluation import EvaluationResult, evaluate
from hil.noise import NoiseSpec


@dataclass(frozen=True)
class CheckpointEvaluation:
    """Result of `evaluate_checkpoint`."""

    checkpoint: Path
    backend: str
    noise: NoiseSpec
    result: EvaluationResult
    dataset: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"checkpoint": str(self.checkpoint), "backend": self.backend,
                "dataset": self.dataset, "noise": self.noise.to_dict(),
                "accuracy": self.result.to_dict()}


def evaluate_checkpoint(path: str | Path, backend: str, noise: NoiseSpec, *, repeats: int = 1,
                        seed: int = 0, data_dir: str | None = None,
                        batch_size: int = 1000, fold_bn: bool = False) -> CheckpointEvaluation:
    """Load checkpoint ``path`` and measure its test accuracy under ``noise`` on ``backend``.

    The test split is rebuilt from the dataset name and seed stored in the checkpoint, so it is
    the split the model never saw in training.

    Raises:
        HilError: Unusable checkpoint, backend, noise or dataset.
    """
    from hil.runs import open_run

    with open_run(path, backend, noise, data_dir=data_dir, fold_bn=fold_bn) as run:
        result = evaluate(run.noisy, run.data.test_x, run.data.test_y, repeats=repeats, seed=seed,
                          batch_size=batch_size)
        name = run.data.name
    return CheckpointEvaluation(Path(path), backend, noise, result, name)
