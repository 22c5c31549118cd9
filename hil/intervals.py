"""The Student-t interval of a mean, as every study table reports it (torch-free)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean of the finite ``values`` and its Student-t ``confidence`` interval.

    Returns:
        ``(mean, low, high)``; all nan without a finite value, the interval nan with fewer than two.
    """
    from scipy import stats

    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan, math.nan, math.nan
    mean = statistics.fmean(finite)
    if len(finite) < 2:
        return mean, math.nan, math.nan
    quantile = float(stats.t.ppf(0.5 + confidence / 2, len(finite) - 1))
    half = quantile * statistics.stdev(finite) / math.sqrt(len(finite))
    return mean, mean - half, mean + half
