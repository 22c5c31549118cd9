"""What the walk studies share: the points of a `SweepSpec` over a model's sites, their store keys and rows."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence

from hil._version import __version__
from hil.noise import SiteLike, find_site
from hil.studies.engine import Outcome
from hil.walking.store import PointKey, PointResult
from hil.walking.sweep import SweepPoint, SweepSpec, sweep_points


def select_points(spec: SweepSpec, sites: Sequence[SiteLike]) -> list[SweepPoint]:
    """The points of ``spec`` over ``sites`` (all of them, the global pseudo-site, or the ones it names)."""
    names = [site.name for site in sites]
    if spec.is_global or spec.sites == "all":
        indices: Iterable[int] = range(len(names))
    else:
        indices = [find_site(sites, selector) for selector in spec.sites]
    return sweep_points(spec, names, indices)


def point_result(spec: SweepSpec, point: SweepPoint, outcome: Outcome) -> PointResult:
    """The stored row of a walk point."""
    loss = outcome.loss if outcome.loss is not None and math.isfinite(outcome.loss) else None
    return PointResult(key=point.key, accuracy=float(outcome.accuracy), loss=loss, seed=point.seed(spec.seed),
                       wall_time=outcome.seconds, hil_version=__version__,
                       created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


class SweepStudy:
    """Base of the walk studies: ``points`` of ``spec`` over ``sites``, keyed and stored the same way.

    Args:
        spec: The sweep.
        sites: The traced sites of the model walked.
    """

    def __init__(self, spec: SweepSpec, sites: Sequence[SiteLike]) -> None:
        self.spec = spec
        self.points = select_points(spec, sites)

    def key(self, point: SweepPoint) -> PointKey:
        """The results-store key of ``point``."""
        return point.key

    def result(self, point: SweepPoint, outcome: Outcome) -> PointResult:
        """The stored row of ``point``."""
        return point_result(self.spec, point, outcome)
