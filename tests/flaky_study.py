"""A toy study whose points fail a chosen number of times (counted in files, so across Ray workers too)."""

from __future__ import annotations

from pathlib import Path

from hil.errors import ConfigError
from hil.studies.engine import Outcome
from hil.walking.store import PointKey, PointResult


class FlakyStudy:
    """Points 0..n-1; point p raises ``RuntimeError`` on its first ``fails[p]`` tries (-1: always).

    ``fatal`` names a point that raises a `HilError` instead (which stops a study).
    """

    def __init__(self, folder: Path, n: int = 4, fails: dict[int, int] | None = None, fatal: int | None = None):
        self.folder, self.points, self.fails, self.fatal = folder, list(range(n)), fails or {}, fatal

    def tries(self, point: int) -> int:
        return len(list(self.folder.glob(f"try-{point}-*")))

    def key(self, point: int) -> PointKey:
        return PointKey("1:fc1", 0.1 * (point + 1), 0.0, 0)

    def units(self, pending: list[int]):  # noqa: ANN201
        return ([p] for p in pending)

    def evaluate(self, unit: list[int]) -> list[Outcome]:
        (point,) = unit
        attempt = self.tries(point)
        (self.folder / f"try-{point}-{attempt}").touch()
        if point == self.fatal:
            raise ConfigError(f"point {point} needs a fix from the user")
        limit = self.fails.get(point, 0)
        if limit < 0 or attempt < limit:
            raise RuntimeError(f"point {point} broke on try {attempt + 1}")
        return [Outcome(0.5 + 0.1 * point, None, 0.0)]

    def result(self, point: int, outcome: Outcome) -> PointResult:
        return PointResult(key=self.key(point), accuracy=outcome.accuracy, loss=None, seed=point, wall_time=0.0)
