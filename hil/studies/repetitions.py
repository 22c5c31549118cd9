"""The guided comparison as a study: one point per (repetition strategy, noise draw).

Every strategy is evaluated on the same draws (paired): draw ``r`` reseeds the backend with
``derive_seed(seed, "eval", r)`` whatever the strategy, the executor or the order, so the numbers equal
`hil.evaluation.evaluate` run strategy by strategy. A unit is one strategy's draws (its noise plan is set once).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hil.errors import StudyError
from hil.studies.engine import Executor, Outcome, UnitFailure, get_executor
from hil.walking.store import PointKey, PointResult

if TYPE_CHECKING:
    import torch

    from hil.noise import NoiseSpec
    from hil.noisy_model import NoisyModel


@dataclass(frozen=True)
class DrawPoint:
    """Noise draw ``draw`` of the strategy at ``strategy`` (an index into the study's plans)."""

    strategy: int
    draw: int


class RepetitionStudy:
    """Accuracy of one network under several per-site repetition plans, on paired draws.

    Args:
        noisy: The model wrapped on any backend.
        inputs: Test inputs.
        labels: Test labels.
        plans: ``(strategy name, noise with that strategy's executions per site)`` in report order.
        draws: Noise draws per strategy.
        seed: Seed of the draws.
        batch_size: Evaluation batch size.
    """

    def __init__(self, noisy: NoisyModel, inputs: torch.Tensor, labels: torch.Tensor,
                 plans: Sequence[tuple[str, NoiseSpec]], *, draws: int, seed: int, batch_size: int = 1000) -> None:
        self.noisy = noisy
        self.inputs = inputs
        self.labels = labels
        self.plans = tuple(plans)
        self.seed = seed
        self.batch_size = batch_size
        self.points = [DrawPoint(s, r) for s in range(len(self.plans)) for r in range(draws)]
        self.points_per_draw = len(self.plans)
        """Points that make one draw of every plan (what a device-time budget counts)."""

    def key(self, point: DrawPoint) -> PointKey:
        """Store key: the strategy as the site, its σ, the draw as the repeat."""
        noise = self.plans[point.strategy][1]
        return PointKey(f"strategy:{self.plans[point.strategy][0]}", noise.sigma_add, noise.sigma_mul, point.draw)

    def units(self, pending: Sequence[DrawPoint]) -> Iterable[list[DrawPoint]]:
        """One unit per strategy (its pending draws), in plan order."""
        for strategy in range(len(self.plans)):
            unit = [p for p in pending if p.strategy == strategy]
            if unit:
                yield unit

    def evaluate(self, unit: list[DrawPoint]) -> list[Outcome]:
        """Set the unit's strategy on the model and evaluate each of its draws."""
        from hil.evaluation import evaluate_draw

        self.noisy.set_noise(self.plans[unit[0].strategy][1])
        outcomes = []
        for point in unit:
            started = time.perf_counter()
            accuracy = evaluate_draw(self.noisy, self.inputs, self.labels, seed=self.seed, draw=point.draw,
                                     batch_size=self.batch_size)
            outcomes.append(Outcome(accuracy, None, time.perf_counter() - started))
        return outcomes

    def result(self, point: DrawPoint, outcome: Outcome) -> PointResult:
        """The stored row of ``point`` (version and time: `PointResult`'s defaults)."""
        from hil.seeding import derive_seed

        return PointResult(key=self.key(point), accuracy=outcome.accuracy, loss=None,
                           seed=derive_seed(self.seed, "eval", point.draw), wall_time=outcome.seconds)

    def accuracies(self, executor: Executor | str | None = None) -> list[list[float]]:
        """Run every point on ``executor``; the accuracies per strategy (plan order), per draw (draw order)."""
        found: dict[DrawPoint, float] = {}
        for unit, outcomes in get_executor(executor).map(self.evaluate, self.units(self.points)):
            if isinstance(outcomes, UnitFailure):  # no store to keep partial draws in: the comparison needs all
                raise StudyError(f"{len(unit)} evaluation draws failed after {outcomes.tries} "
                                 f"({outcomes.error[:300]}); rerun the comparison")
            found.update((point, outcome.accuracy) for point, outcome in zip(unit, outcomes, strict=True))
        return [[found[p] for p in self.points if p.strategy == s] for s in range(len(self.plans))]
