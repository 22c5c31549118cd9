"""Noisy-training Walking Noise as a study: train a fresh network per (site, σ, repeat), then test it.

This is the flavour of the paper's main Walking Noise results. Each point is one training run
(seeded from the point) on the base configuration's backend, evaluated under the noise it was
trained with.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hil.config import TrainConfig
from hil.studies.engine import Executor, Outcome, ProgressCallback, StudyRun
from hil.studies.sweep_study import SweepStudy
from hil.walking.store import ResultStore
from hil.walking.sweep import SweepPoint, SweepSpec, point_noise

if TYPE_CHECKING:
    from hil.walking.report import WalkReport


class TrainingWalk(SweepStudy):
    """Train-per-point walk (a `Study` of `SweepPoint`; each unit is one point).

    Args:
        base: Training settings (model, dataset, epochs, backend, ...); its noise is replaced per point.
        spec: The sweep (σ grid, sites, repeats, seed).
        batch_points: Points trained together in one batched pass (`hil.batched_training`); 1 trains each
            alone. The stored numbers are the same either way, up to float rounding.
    """

    def __init__(self, base: TrainConfig, spec: SweepSpec, batch_points: int = 1) -> None:
        from hil.batched_training import check_batchable
        from hil.models import create_model
        from hil.noisy_model import wrap
        from hil.stacked_networks import check_stackable
        from hil.training import load_training_data
        from hil.validation import check_int

        self.base = base
        self.batch_points = check_int(batch_points, "--batch-points", low=1)
        if self.batch_points > 1:
            check_batchable([base])
        data = load_training_data(base)
        self.num_classes = data.num_classes
        self.test_samples = len(data.test_y)
        model = create_model(base.model, bn=base.bn, input_shape=data.input_shape, num_classes=data.num_classes)
        if self.batch_points > 1:
            check_stackable(model, base.model)
        self.sites = wrap(model, "sim").sites
        super().__init__(spec, self.sites)

    def units(self, pending: Sequence[SweepPoint]) -> Iterable[list[SweepPoint]]:
        """``batch_points`` points per unit (the last may hold fewer): each unit is one (batched) training."""
        pending = list(pending)
        size = self.batch_points
        return (pending[start:start + size] for start in range(0, len(pending), size))

    def evaluate(self, unit: list[SweepPoint]) -> list[Outcome]:
        """Train with each point's noise and return its noisy test accuracy (loss not tracked)."""
        from hil.batched_training import train_batched
        from hil.evaluation_job import evaluate_checkpoint
        from hil.training import train

        started = time.perf_counter()
        configs = [self._config(point) for point in unit]
        with tempfile.TemporaryDirectory(prefix="hil-walk-") as folder:
            outs = [Path(folder) / f"point-{index}" for index in range(len(unit))]
            if len(unit) > 1:
                train_batched(configs, outs, keep_epochs=False)
            else:
                train(configs[0], outs[0], keep_epochs=False, overwrite=True)
            accuracies = [evaluate_checkpoint(out, self.base.backend, config.noise, seed=config.seed).result.mean
                          for out, config in zip(outs, configs, strict=True)]
        seconds = (time.perf_counter() - started) / len(unit)  # each point's share of the unit
        return [Outcome(value, None, seconds) for value in accuracies]

    def _config(self, point: SweepPoint) -> TrainConfig:
        return replace(self.base, noise=point_noise(point), seed=point.seed(self.spec.seed) % (2**31))

    def run(self, store: ResultStore, experiment: str, progress: ProgressCallback | None = None,
            executor: Executor | None = None) -> int:
        """Run every point not yet in ``store``; record each as it finishes. Returns points run."""
        return StudyRun(self, store, experiment, executor, progress).run(self.points)


def stored_train_config(config: TrainConfig) -> dict[str, Any]:
    """``config`` as a study records it: walks with the standardisation hil used before preprocessing was a
    setting leave the key out, so they keep (and resume) the experiment ids they had."""
    from hil.data import LEGACY_PREPROCESS

    data = config.to_dict()
    if data["preprocess"] == LEGACY_PREPROCESS:
        del data["preprocess"]
    return data


def walk_training(base: TrainConfig, spec: SweepSpec, out: str | os.PathLike[str], *,
                  progress: Any = None, executor: Executor | str | None = None, batch_points: int = 1) -> WalkReport:
    """Noisy-training Walking Noise: one training per point (``batch_points`` at a time); resumable through ``out``."""
    from hil.studies.engine import get_executor
    from hil.walking.report import fit_experiment, open_store, write_mu

    walk = TrainingWalk(base, spec, batch_points)
    config = {"kind": "train", "train": stored_train_config(base), "num_classes": walk.num_classes,
              "test_samples": walk.test_samples, "sweep": spec.to_dict()}
    with open_store(out) as store:
        experiment = store.register_experiment(config, name=f"walk-train {base.model}")
        walk.run(store, experiment, progress(len(walk.points)) if progress else None, get_executor(executor))
        report = fit_experiment(store, experiment)
    write_mu(report, out)
    return report
