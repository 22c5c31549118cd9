"""Noisy-training sweeps: train a fresh network per (site, σ, repeat) with that noise, then test it.

This is the flavour of the paper's main Walking Noise results. Each point is one training run
(seeded from the point), evaluated under the noise it was trained with.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace

from hil.config import TrainConfig
from hil.noise import find_site
from hil.walking.store import ResultStore
from hil.walking.sweep import ProgressCallback, SweepPoint, SweepSpec, _result, point_noise, sweep_points


class TrainingSweep:
    """Train-per-point sweep.

    Args:
        base: Training settings (model, dataset, epochs, ...); its noise is replaced per point.
        spec: The sweep (σ grid, sites, repeats, seed).
    """

    def __init__(self, base: TrainConfig, spec: SweepSpec) -> None:
        from hil.models import create_model
        from hil.noisy_model import wrap
        from hil.training import load_training_data

        self.base = base
        self.spec = spec
        data = load_training_data(base)
        model = create_model(base.model, bn=base.bn, input_shape=data.input_shape, num_classes=data.num_classes)
        self.sites = wrap(model, "sim").sites
        names = [s.name for s in self.sites]
        if spec.is_global or spec.sites == "all":
            indices = list(range(len(names)))
        else:
            indices = [find_site(self.sites, selector) for selector in spec.sites]
        self.points = sweep_points(spec, names, indices)

    def evaluate(self, point: SweepPoint) -> tuple[float, float | None]:
        """Train with the point's noise and return its noisy test accuracy (loss not tracked)."""
        from hil.evaluation_job import evaluate_checkpoint
        from hil.training import train

        seed = point.seed(self.spec.seed) % (2**31)
        config = replace(self.base, noise=point_noise(point), seed=seed)
        with tempfile.TemporaryDirectory(prefix="hil-walk-") as folder:
            train(config, folder, keep_epochs=False, overwrite=True)
            report = evaluate_checkpoint(folder, self.base.backend, point_noise(point), seed=seed)
        return report.result.mean, None

    def run(self, store: ResultStore, experiment: str, progress: ProgressCallback | None = None) -> int:
        """Run every point not yet in ``store``; record each as it finishes. Returns points run."""
        done = store.done(experiment)
        if progress is not None and done:
            progress(sum(1 for p in self.points if p.key in done))
        ran = 0
        for point in self.points:
            if point.key in done:
                continue
            started = time.perf_counter()
            accuracy, loss = self.evaluate(point)
            store.record(experiment, _result(self.spec, point, accuracy, loss if loss is not None else float("nan"),
                                             time.perf_counter() - started))
            ran += 1
            if progress is not None:
                progress(1)
        return ran
