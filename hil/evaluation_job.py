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


def load_checkpoint_data(metadata: dict[str, Any], data_dir: str | None = None) -> Any:
    """The dataset a checkpoint was trained on, split with its seed (so the test split is unseen).

    Raises:
        HilError: Unknown dataset or missing files.
    """
    from hil.data import load_dataset

    data_spec = metadata.get("dataset") or {}
    name = data_spec.get("name", "mnist5k")
    shape = data_spec.get("input_shape")
    return load_dataset(
        name,
        data_dir=data_dir if data_dir is not None else data_spec.get("data_dir"),
        seed=int(data_spec.get("seed", 0)),
        input_shape=tuple(shape) if name == "synthetic" and shape else None,
        num_classes=data_spec.get("num_classes") if name == "synthetic" else None,
    )


def evaluate_checkpoint(path: str | Path, backend: str, noise: NoiseSpec, *, repeats: int = 1,
                        seed: int = 0, data_dir: str | None = None,
                        batch_size: int = 1000) -> CheckpointEvaluation:
    """Load checkpoint ``path`` and measure its test accuracy under ``noise`` on ``backend``.

    The test split is rebuilt from the dataset name and seed stored in the checkpoint, so it is
    the split the model never saw in training.

    Raises:
        HilError: Unusable checkpoint, backend, noise or dataset.
    """
    from hil.backends import get_backend
    from hil.checkpoint import load_checkpoint
    from hil.noisy_model import wrap

    checkpoint = load_checkpoint(path)
    data = load_checkpoint_data(checkpoint.metadata, data_dir)
    name = data.name
    runner = get_backend(backend)
    try:
        noisy = wrap(checkpoint.model, runner, noise)
        result = evaluate(noisy, data.test_x, data.test_y, repeats=repeats, seed=seed,
                          batch_size=batch_size)
    finally:
        runner.close()
    return CheckpointEvaluation(Path(path), backend, noise, result, name)
