"""Fit inputs: validation, standard errors (floor, pooling), levels and plateau screening for `hil.walking.fit`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from hil.errors import ConfigError
from hil.validation import check_int
from hil.walking.curve import (
    SCALES,
    to_x,
)

DEFAULT_SEM_FLOOR = 1e-3
CLEAR = 3.0
"""Clearly above/below a level means by more than this many standard errors."""
EDGE_POINTS = 3
"""How many grid points at each end estimate the upper (a_max) and lower (plateau) levels."""
MIN_POINTS_DOUBLE = 8
MIN_STEP_FRACTION = 0.1
MIN_PLATEAU_POINTS = 2
MIN_DISTINCT_SIGMAS = 4
FLAT_FRACTION = 0.05
"""A tail is flat when its spread is within noise or below this fraction of the curve's drop."""


# --------------------------------------------------------------------------- input


@dataclass(frozen=True)
class FitPoints:
    """Validated, σ-sorted data. ``x`` is −∞ for σ = 0 anchors on the log scale."""

    sigma: np.ndarray
    x: np.ndarray
    y: np.ndarray
    e: np.ndarray
    note: str = ""  # how the errors were made, when not simply the given ones

    @property
    def grid(self) -> np.ndarray:
        return np.isfinite(self.x)


def _as_vector(values: object, what: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a sequence of numbers") from None
    if array.ndim != 1:
        raise ConfigError(f"{what} must be one-dimensional, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ConfigError(f"{what} must be finite (no NaN/inf); drop or re-run the bad points")
    return array


def prepare_points(
    sigma: object, mean: object, sem: object, scale: str, sem_floor: float, n_samples: int | None, pool_sem: bool
) -> FitPoints:
    s, y, e = _as_vector(sigma, "sigma"), _as_vector(mean, "mean accuracies"), _as_vector(sem, "sem")
    if not len(s) == len(y) == len(e):
        raise ConfigError(f"sigma, mean and sem must have the same length, got {len(s)}, {len(y)}, {len(e)}")
    if np.any(s < 0):
        raise ConfigError("σ must be ≥ 0")
    if np.any((y < 0) | (y > 1)):
        raise ConfigError("accuracies must be fractions in [0, 1] (not percent)")
    if np.any(e < 0):
        raise ConfigError("standard errors must be ≥ 0")
    grid_sigmas = np.unique(s[s > 0]) if scale == "log" else np.unique(s)
    if len(grid_sigmas) < MIN_DISTINCT_SIGMAS:
        where = " > 0 (σ = 0 only anchors a_max on the log scale)" if scale == "log" else ""
        raise ConfigError(f"need at least {MIN_DISTINCT_SIGMAS} distinct σ{where}, got {len(grid_sigmas)}")
    order = np.argsort(s, kind="stable")
    s, y, e = s[order], y[order], e[order]
    e = _floor_sem(y, e, sem_floor, n_samples)
    return FitPoints(sigma=s, x=to_x(s, scale), y=y, e=_pool_sem(e) if pool_sem else e)


def _pool_sem(e: np.ndarray) -> np.ndarray:
    """Raise each error to at least the RMS error of itself and its σ neighbours.

    A standard error from r repeats has only r − 1 degrees of freedom; with 3–5 repeats some are far too small by
    chance, those points then dominate the fit and the covariance interval undercovers (1000 simulated curves,
    binomial noise, 5 repeats: 0.89 on the 17-point log grid, 0.87 on a 30-point linear grid; pooled: 0.945 and
    0.948). Neighbouring σ have similar scatter, so pooling over a 3-point window gives the weights about three
    times the degrees of freedom without assuming a variance shape (pooling to a binomial shape covered 0.99 for
    non-binomial scatter, i.e. wasted precision).
    """
    var = np.pad(e**2, 1, mode="constant", constant_values=np.nan)
    window = np.stack([var[:-2], var[1:-1], var[2:]])
    return np.maximum(e, np.sqrt(np.nanmean(window, axis=0)))


def _floor_sem(y: np.ndarray, e: np.ndarray, sem_floor: float, n_samples: int | None) -> np.ndarray:
    floor = np.full(y.shape, sem_floor)
    if n_samples is not None:
        # Binomial error of one evaluation; p is kept off 0 and 1 where the formula would give 0 again.
        p = np.clip(y, 1.0 / n_samples, 1.0 - 1.0 / n_samples)
        floor = np.maximum(floor, np.sqrt(p * (1.0 - p) / n_samples))
    return np.maximum(e, floor)


def check_options(num_classes: object, scale: str, confidence: float, sem_floor: float, n_samples: object) -> None:
    check_int(num_classes, "num_classes", low=2)
    if scale not in SCALES:
        raise ConfigError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence!r}")
    if not (math.isfinite(sem_floor) and sem_floor > 0):
        raise ConfigError(f"sem_floor must be > 0, got {sem_floor!r}")
    if n_samples is not None:
        check_int(n_samples, "n_samples", low=1, note="or None")


# --------------------------------------------------------------------------- levels and screening


@dataclass(frozen=True)
class Level:
    value: float
    se: float


def _weighted_level(y: np.ndarray, e: np.ndarray) -> Level:
    w = 1.0 / e**2
    return Level(float(np.sum(w * y) / np.sum(w)), float(1.0 / math.sqrt(np.sum(w))))


def collapse_repeats(points: FitPoints) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per distinct x (finite only): weighted mean and its error — for heuristics, not for the fit."""
    xs = np.unique(points.x[points.grid])
    levels = [_weighted_level(points.y[points.x == v], points.e[points.x == v]) for v in xs]
    return xs, np.array([lv.value for lv in levels]), np.array([lv.se for lv in levels])


def top_level(points: FitPoints) -> Level:
    """a_max estimate: σ = 0 anchors if any (log scale), else the leading points that agree with the first."""
    anchors = ~points.grid
    if np.any(anchors):
        return _weighted_level(points.y[anchors], points.e[anchors])
    _, y, e = collapse_repeats(points)
    lead = [i for i in range(min(EDGE_POINTS, len(y))) if abs(y[i] - y[0]) <= CLEAR * math.hypot(e[i], e[0])]
    return _weighted_level(y[lead], e[lead])


def tail_plateau(points: FitPoints, top: Level, chance: float) -> Level | None:
    """The high-σ plateau if it is flat, clearly above 1/K and clearly below a_max; else None."""
    _, y, e = collapse_repeats(points)
    ty, te = y[-EDGE_POINTS:], e[-EDGE_POINTS:]
    tail = _weighted_level(ty, te)
    drop = top.value - tail.value
    chi2 = float(np.sum(((ty - tail.value) / te) ** 2))
    within_noise = chi2 <= stats.chi2.ppf(0.99, len(ty) - 1)
    flat = within_noise or (np.ptp(ty) <= FLAT_FRACTION * drop)
    above_chance = tail.value - chance > CLEAR * tail.se
    below_top = drop > CLEAR * math.hypot(top.se, tail.se)
    return tail if (flat and above_chance and below_top) else None


def no_transition(points: FitPoints, top: Level, low: Level) -> str | None:
    """'above' when μ lies beyond the largest σ, 'below' when before the smallest; None when it is in reach."""
    if top.value - low.value <= CLEAR * math.hypot(top.se, low.se):
        # No significant drop at all: the curve sits at the plateau, i.e. already broken at the smallest σ.
        return "below"
    half = low.value + (top.value - low.value) / 2
    y, e = points.y[points.grid], points.e[points.grid]
    if np.all(y - CLEAR * e > half):
        return "above"
    if np.all(y + CLEAR * e < half):
        return "below"
    return None


def summarize_repeats(sigma: object, accuracies: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group raw (σ, accuracy) rows per σ.

    Args:
        sigma: σ of each row (≥ 0).
        accuracies: Accuracy of each row (one repeat each).

    Returns:
        (σ sorted unique, mean accuracy, standard error of the mean). The standard error is std(ddof=1)/√n, and
        0 for a σ with a single repeat (`fit_midpoint` floors it).

    Raises:
        ConfigError: Mismatched lengths, no rows, negative σ, or non-finite values.
    """
    s, a = _as_vector(sigma, "sigma"), _as_vector(accuracies, "accuracies")
    if len(s) != len(a):
        raise ConfigError(f"sigma and accuracies must have the same length, got {len(s)} and {len(a)}")
    if len(s) == 0:
        raise ConfigError("no rows to summarise")
    if np.any(s < 0):
        raise ConfigError("σ must be ≥ 0")
    levels, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    means = np.bincount(inverse, weights=a) / counts
    squares = np.bincount(inverse, weights=(a - means[inverse]) ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        sem = np.where(counts > 1, np.sqrt(squares / np.maximum(counts - 1, 1) / counts), 0.0)
    return levels, means, sem


def join_notes(*parts: str) -> str:
    return "; ".join(part for part in parts if part)
