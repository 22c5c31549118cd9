"""The placement walk: one layer at a time on the hardware at its native noise, the rest digital.

For every Linear/Conv site L of a trained network, L's matmuls run on a backend that can place
layers (`PlacesLayers`: ``device``, ``twin``) and every other site runs exactly; each of ``draws``
independent draws gives an accuracy, and L's *drop* is the clean digital accuracy minus their mean,
with a Student-t 95 % interval over the draws. It needs no model of the chip: it is the direct answer
to "which layer does my chip hurt", measured on the chip. A last row, ``all``, places every layer.

Device time is the scarce resource: points are stored as they finish (a rerun resumes), and with a
budget the first point is timed and the walk refused, naming what fits, when the rest would not.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from hil.backends.base import PlacesLayers
from hil.errors import ConfigError
from hil.intervals import mean_interval
from hil.noisy_model import NoisyModel
from hil.seeding import derive_seed
from hil.studies.engine import Outcome, ProgressCallback, StudyRun
from hil.walking.records import PointKey, PointResult
from hil.walking.store import ResultStore

ALL_LAYERS = "all"
"""The placement row with every Linear/Conv site on the hardware."""


@dataclass(frozen=True)
class PlacementPoint:
    """One draw with one layer (or ``all``) on the hardware.

    Attributes:
        layer: Site name, or ``all``.
        index: The site's index in forward order (−1 for ``all``).
        draw: Draw number.
    """

    layer: str
    index: int
    draw: int

    def seed(self, base: int) -> int:
        """Seed of this point's draws (from the point alone, never from run order)."""
        return derive_seed(base, "placement", self.index + 1, self.draw)


@dataclass(frozen=True)
class LayerPlacement:
    """What one placement measured.

    Attributes:
        layer: Site name, or ``all``.
        accuracy: Mean accuracy over the draws.
        drop: Clean digital accuracy minus ``accuracy``.
        low: Lower end of the drop's 95 % interval.
        high: Upper end.
        draws: Accuracy of each draw.
    """

    layer: str
    accuracy: float
    drop: float
    low: float
    high: float
    draws: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain form."""
        return {"layer": self.layer, "accuracy": self.accuracy, "drop": self.drop, "low": self.low,
                "high": self.high, "draws": list(self.draws)}


@dataclass(frozen=True)
class PlacementReport:
    """A placement walk: the clean accuracy and one row per layer (then ``all``)."""

    backend: str
    clean: float
    layers: tuple[LayerPlacement, ...]

    @property
    def most_fragile(self) -> str:
        """The single layer whose placement costs the most accuracy."""
        return max((row for row in self.layers if row.layer != ALL_LAYERS), key=lambda row: row.drop).layer

    def to_dict(self) -> dict[str, Any]:
        """Plain form (``placement.json``)."""
        return {"backend": self.backend, "clean": self.clean, "most_fragile": self.most_fragile,
                "layers": [row.to_dict() for row in self.layers]}


class PlacementStudy:
    """The placement walk as a `Study` of `PlacementPoint` (points one by one: one hardware link).

    Args:
        noisy: The model wrapped on a backend that `PlacesLayers`.
        inputs: Test inputs.
        labels: Test labels.
        seed: Base seed of the draws.
        batch_size: Test samples per forward.
    """

    def __init__(self, noisy: NoisyModel, inputs: torch.Tensor, labels: torch.Tensor, *, seed: int = 0,
                 batch_size: int = 1000) -> None:
        if not isinstance(noisy.backend, PlacesLayers):
            raise ConfigError(f"a placement walk needs a backend that places layers (device:…, twin:…), "
                              f"not {noisy.backend.name!r}; give --backend device:ADDRESS or twin:PROFILE")
        self.noisy = noisy.eval()
        self.backend: Any = noisy.backend
        self.inputs, self.labels = inputs, labels
        self.seed, self.batch_size = seed, batch_size
        self.matmul = tuple((site.name, site.index) for site in noisy.sites if site.is_matmul)
        self.layers = tuple(name for name, _ in self.matmul)
        self.points_per_draw = len(self.layers) + 1

    def points(self, draws: int) -> list[PlacementPoint]:
        """Every layer, then ``all``, ``draws`` times each."""
        return [PlacementPoint(layer, index, draw) for layer, index in (*self.matmul, (ALL_LAYERS, -1))
                for draw in range(draws)]

    def key(self, point: PlacementPoint) -> PointKey:
        """Stored as (layer, σ 0, σ 0, draw): the noise is the hardware's own."""
        return PointKey(point.layer, 0.0, 0.0, point.draw)

    def units(self, pending: Sequence[PlacementPoint]) -> Iterable[list[PlacementPoint]]:
        """One point per unit."""
        return ([point] for point in pending)

    def evaluate(self, unit: list[PlacementPoint]) -> list[Outcome]:
        """Accuracy and loss of each point with its layer on the hardware."""
        outcomes = []
        for point in unit:
            started = time.perf_counter()
            self.backend.place(None if point.layer == ALL_LAYERS else frozenset({point.layer}))
            self.backend.reseed(point.seed(self.seed))
            accuracy, loss = self._accuracy()
            outcomes.append(Outcome(accuracy, loss, time.perf_counter() - started))
        return outcomes

    def result(self, point: PlacementPoint, outcome: Outcome) -> PointResult:
        """The stored row."""
        return PointResult(self.key(point), outcome.accuracy, outcome.loss, point.seed(self.seed), outcome.seconds)

    def _accuracy(self) -> tuple[float, float]:
        correct, loss = 0.0, 0.0
        device = self.backend.device
        with torch.no_grad():
            for start in range(0, len(self.labels), self.batch_size):
                x = self.inputs[start:start + self.batch_size].to(device)
                y = self.labels[start:start + self.batch_size].to(device)
                logits = self.noisy(x)
                correct += (logits.argmax(dim=1) == y).sum().item()
                loss += F.cross_entropy(logits, y, reduction="sum").item()
        return correct / len(self.labels), loss / len(self.labels)


def summarise(results: Sequence[PointResult], layers: Sequence[str], clean: float, backend: str) -> PlacementReport:
    """One row per layer (in ``layers`` order, then ``all``) from stored points."""
    rows = []
    for layer in (*layers, ALL_LAYERS):
        draws = tuple(r.accuracy for r in sorted(results, key=lambda r: r.key.repeat) if r.key.site == layer)
        if not draws:
            continue
        mean, low, high = mean_interval(draws)
        rows.append(LayerPlacement(layer, mean, clean - mean, clean - high, clean - low, draws))
    return PlacementReport(backend, clean, tuple(rows))


def place_checkpoint(checkpoint: str | os.PathLike[str], backend: str | Any, out: str | os.PathLike[str], *,
                     draws: int = 5, seed: int = 0, budget_s: float | None = None, data_dir: str | None = None,
                     progress: Any = None) -> PlacementReport:
    """The placement walk of ``checkpoint`` on ``backend`` into ``OUT/results.sqlite``, ``OUT/placement.json``
    and its figure ``OUT/placement.png``/``.svg`` (drop per layer with its interval).

    ``backend`` is a spec or an open backend object (then named by its ``name`` in the store).
    ``progress`` is a factory: called with the number of points, it returns the per-point callback.

    Raises:
        ConfigError: A backend that cannot place layers, ``draws`` < 2, or a budget the walk does not fit.
        HilError: Bad checkpoint, unreachable device.
    """
    import json

    from hil.backends.spec import parse_backend_spec
    from hil.checkpoint import WEIGHTS
    from hil.evaluation import accuracy
    from hil.noisy_model import wrap
    from hil.runs import open_run
    from hil.walking.report import file_digest, open_store

    if draws < 2:
        raise ConfigError(f"--repeats must be ≥ 2 for a placement walk (an interval needs two draws), got {draws}")
    chosen = parse_backend_spec(backend) if isinstance(backend, str) else backend
    label = chosen.text if isinstance(backend, str) else str(backend.name)
    with open_run(checkpoint, chosen, data_dir=data_dir) as run:
        study = PlacementStudy(run.noisy, run.data.test_x, run.data.test_y, seed=seed)
        clean = accuracy(wrap(run.checkpoint.model, "sim"), run.data.test_x, run.data.test_y)
        config = {"kind": "placement", "checkpoint": str(Path(checkpoint).resolve()),
                  "weights": file_digest(Path(checkpoint) / WEIGHTS), "dataset": run.data.name,
                  "backend": label, "draws": draws, "seed": seed}
        points = study.points(draws)
        with open_store(out) as store:
            experiment = store.register_experiment(config, name=f"placement {Path(checkpoint).name}")
            callback: ProgressCallback | None = progress(len(points)) if progress else None
            run_within_budget(study, store, experiment, points, budget_s, callback)
            report = summarise(store.results(experiment), study.layers, clean, label)
    target = Path(out) / "placement.json"
    target.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    from hil.studies.figures import plot_placement

    plot_placement([report], Path(out) / "placement")
    return report


def run_within_budget(study: Any, store: ResultStore, experiment: str, points: Sequence[Any],
                      budget_s: float | None, progress: ProgressCallback | None) -> None:
    """Run ``points``; with a budget, time the first pending one and refuse (naming what fits) when the rest
    would not fit. ``study.points_per_draw`` points make one draw (what ``--repeats`` counts)."""
    runner = StudyRun(study, store, experiment, None, progress)
    done = store.done(experiment)
    pending = [p for p in points if study.key(p) not in done]
    if budget_s is None or not pending:
        runner.run(points)
        return
    started = time.perf_counter()
    runner.run(pending[:1])  # the probe is a real point: it is kept
    per_point = time.perf_counter() - started
    needed = per_point * (len(pending) - 1)
    if needed > budget_s:
        affordable = int((budget_s + per_point) / per_point) // study.points_per_draw
        raise ConfigError(f"the walk needs ≈ {needed:.0f} s more of device time but --budget-s is "
                          f"{budget_s:g}; raise --budget-s or lower --repeats to ≤ {max(affordable, 2)} "
                          f"(the point measured is kept: a rerun resumes)")
    runner.run(points)
