"""The fitting policy for μ: fit the curve model (`hil.walking.curve`) to an accuracy-vs-σ curve.

Model (paper 002, Equation 1; ../shared/design/noise-model.md, "Midpoint noise level")::

    F(σ) = 2·δa / (1 + exp((x(σ) − x(μ)) / s)) + a_min,   δa = (a_max − a_min) / 2

so F(μ) = a_min + δa: μ is the σ at which the accuracy has lost half of its possible drop.

Which x? ``scale="log"`` (the default) fits in x = log10 σ; ``scale="linear"`` fits in x = σ (the paper's
literal form). Log is the right choice for the log-spaced grids (per-site additive 1e-2..1e10 and global
1e-2..1e2): a logistic in σ itself cannot describe a curve whose transition spans decades, and it would see all
points below μ as crowded at σ ≈ 0. Linear is the choice for the multiplicative grid 0..2, which contains σ = 0.
The width ``s`` is always in x units (decades on the log scale); μ and its interval are reported in σ units.

On the log scale a point with σ = 0 (the clean accuracy) sits at x = −∞, where the model equals a_max exactly.
Such points are therefore kept as *a_max anchors*: they enter the χ² as ``(a_max − y)/sem`` and pin the upper
plateau; they do not count as grid points for the "≥ 4 distinct σ" rule or for locating the transition.

Weights: each point is weighted by its standard error (``curve_fit(..., sigma=sem, absolute_sigma=True)``), with
two guards, applied in this order:

* floor — a standard error of 0 (a single repeat, or repeats that agree exactly, e.g. 100 % accuracy) would get
  infinite weight, so every error is at least ``sem_floor`` (default 1e-3: the binomial standard error of an
  accuracy near 99 % on a 10 000-sample test set, about the smallest error a real test set supports) and, when
  ``n_samples`` (the number of predictions behind each mean) is given, at least sqrt(a(1 − a)/n_samples);
* pooling (``pool_sem=True``) — each error is raised to at least the RMS of its own and its two σ neighbours'
  errors. An error from r repeats has r − 1 degrees of freedom; with 3–5 repeats some are far too small by chance,
  those points dominate and the 95 % interval covered the true μ only 87–89 % of the time in simulations (5
  repeats). With pooling it covers 92–96 % for binomial, constant and level-dependent scatter alike.

a_min is 1/K unless the last 3 grid points form a plateau (consistent within noise, or spread < 5 % of the drop)
that lies more than 3 standard errors above 1/K and clearly below a_max; then a_min is a free parameter.

No transition: when every grid point is more than 3 standard errors above the half-way level (μ beyond the
largest σ), or every grid point is more than 3 below it / there is no significant drop at all (μ before the
smallest σ), the result has status "no-transition" and μ = nan. On the log scale only σ = 0 anchors can reveal the
second case when the clean accuracy is high and the grid starts already broken.

Interval: delta method on the parameter covariance in x units, mapped back to σ (so it is asymmetric in σ on the
log scale). When χ²/dof > 1 the covariance is scaled by χ²/dof and a Student-t quantile is used (the PDG "scale
factor"; it covers model mismatch and under-stated errors). When no grid point lies on the fitted slope (within 2
widths of μ) the step is sharper than the grid and the interval is the pair of grid points around μ ("bracket").

Double logistic (two stacked logistics, a first drop to an intermediate plateau, then a second to a_min): tried
when ``allow_double`` and ≥ 8 distinct σ; it wins when its AICc is lower *and* it really shows two steps (each
drop ≥ 10 % of the total, ≥ 2 grid points on the plateau) — AICc alone picked noise-fitting doubles for 3–8 % of
single-step curves. Its μ is the σ where the fitted curve crosses a_min + δa (brentq); the interval is the delta
method on that crossing (numerical gradient of the crossing with respect to the fitted parameters), "delta-crossing".
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace

import numpy as np
from scipy import optimize, stats

from hil.errors import ConfigError
from hil.walking.curve import (
    MODELS,
    SCALES,
    CurveFit,
    ModelFunc,
    ModelSpec,
    Scale,
    from_x,
    mu_double,
    to_x,
)

DEFAULT_SEM_FLOOR = 1e-3
CLEAR = 3.0
"""Clearly above/below a level means by more than this many standard errors."""
EDGE_POINTS = 3
"""How many grid points at each end estimate the upper (a_max) and lower (plateau) levels."""
MIN_POINTS_DOUBLE = 8
MAX_NFEV_SINGLE = 2000
MAX_NFEV_DOUBLE = 300
"""Real two-step curves converge in ~10 evaluations; a double logistic forced onto a single step (or onto a
noise-free curve) wanders along flat directions for hundreds, and is not going to be chosen anyway."""
MIN_STEP_FRACTION = 0.1
MIN_PLATEAU_POINTS = 2
MIN_DISTINCT_SIGMAS = 4
FLAT_FRACTION = 0.05
"""A tail is flat when its spread is within noise or below this fraction of the curve's drop."""

# --------------------------------------------------------------------------- input


@dataclass(frozen=True)
class _Points:
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


def _prepare(
    sigma: object, mean: object, sem: object, scale: str, sem_floor: float, n_samples: int | None, pool_sem: bool
) -> _Points:
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
    return _Points(sigma=s, x=to_x(s, scale), y=y, e=_pool_sem(e) if pool_sem else e)


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


def _check_options(num_classes: object, scale: str, confidence: float, sem_floor: float, n_samples: object) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer) or num_classes < 2:
        raise ConfigError(f"num_classes must be an integer ≥ 2, got {num_classes!r}")
    if scale not in SCALES:
        raise ConfigError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence!r}")
    if not (math.isfinite(sem_floor) and sem_floor > 0):
        raise ConfigError(f"sem_floor must be > 0, got {sem_floor!r}")
    if n_samples is not None and (
        isinstance(n_samples, bool) or not isinstance(n_samples, int | np.integer) or n_samples < 1
    ):
        raise ConfigError(f"n_samples must be a positive integer or None, got {n_samples!r}")


# --------------------------------------------------------------------------- levels and screening


@dataclass(frozen=True)
class _Level:
    value: float
    se: float


def _weighted_level(y: np.ndarray, e: np.ndarray) -> _Level:
    w = 1.0 / e**2
    return _Level(float(np.sum(w * y) / np.sum(w)), float(1.0 / math.sqrt(np.sum(w))))


def _collapse(points: _Points) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per distinct x (finite only): weighted mean and its error — for heuristics, not for the fit."""
    xs = np.unique(points.x[points.grid])
    levels = [_weighted_level(points.y[points.x == v], points.e[points.x == v]) for v in xs]
    return xs, np.array([lv.value for lv in levels]), np.array([lv.se for lv in levels])


def _top_level(points: _Points) -> _Level:
    """a_max estimate: σ = 0 anchors if any (log scale), else the leading points that agree with the first."""
    anchors = ~points.grid
    if np.any(anchors):
        return _weighted_level(points.y[anchors], points.e[anchors])
    _, y, e = _collapse(points)
    lead = [i for i in range(min(EDGE_POINTS, len(y))) if abs(y[i] - y[0]) <= CLEAR * math.hypot(e[i], e[0])]
    return _weighted_level(y[lead], e[lead])


def _tail_plateau(points: _Points, top: _Level, chance: float) -> _Level | None:
    """The high-σ plateau if it is flat, clearly above 1/K and clearly below a_max; else None."""
    _, y, e = _collapse(points)
    ty, te = y[-EDGE_POINTS:], e[-EDGE_POINTS:]
    tail = _weighted_level(ty, te)
    drop = top.value - tail.value
    chi2 = float(np.sum(((ty - tail.value) / te) ** 2))
    within_noise = chi2 <= stats.chi2.ppf(0.99, len(ty) - 1)
    flat = within_noise or (np.ptp(ty) <= FLAT_FRACTION * drop)
    above_chance = tail.value - chance > CLEAR * tail.se
    below_top = drop > CLEAR * math.hypot(top.se, tail.se)
    return tail if (flat and above_chance and below_top) else None


def _no_transition(points: _Points, top: _Level, low: _Level) -> str | None:
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


# --------------------------------------------------------------------------- fitting


@dataclass(frozen=True)
class _Fit:
    spec: ModelSpec
    theta: np.ndarray  # full parameter vector in spec.names order (a_min included)
    cov: np.ndarray  # covariance of the free parameters (absolute sigma)
    free: tuple[int, ...]  # indices of free parameters in theta
    chi2: float
    n: int

    @property
    def k(self) -> int:
        return len(self.free)

    @property
    def dof(self) -> int:
        return self.n - self.k

    @property
    def aic(self) -> float:
        return self.chi2 + 2 * self.k

    @property
    def aicc(self) -> float:
        extra = self.n - self.k - 1
        return self.aic + 2 * self.k * (self.k + 1) / extra if extra > 0 else math.inf

    def param(self, name: str) -> float:
        return float(self.theta[self.spec.names.index(name)])

    def as_dict(self) -> dict[str, float]:
        return {name: float(v) for name, v in zip(self.spec.names, self.theta, strict=True)}


@dataclass(frozen=True)
class _Problem:
    """What every fit shares: data, a_min handling, x range and the smallest width allowed."""

    points: _Points
    a_min: float
    a_min_free: bool
    top: _Level
    s_min: float

    @property
    def x_lo(self) -> float:
        return float(np.min(self.points.x[self.points.grid]))

    @property
    def x_hi(self) -> float:
        return float(np.max(self.points.x[self.points.grid]))

    @property
    def span(self) -> float:
        return self.x_hi - self.x_lo


def _fix_a_min(spec: ModelSpec, a_min: float) -> tuple[ModelFunc, ModelFunc]:
    """The model and its Jacobian with a_min (the last parameter) held at ``a_min``."""

    def func(x: np.ndarray, *theta: float) -> np.ndarray:
        return spec.func(x, *theta, a_min)

    def jac(x: np.ndarray, *theta: float) -> np.ndarray:
        return spec.jac(x, *theta, a_min)[:, :-1]

    return func, jac


def _run_curve_fit(
    problem: _Problem,
    spec: ModelSpec,
    starts: list[np.ndarray],
    bounds: tuple[np.ndarray, np.ndarray],
    max_nfev: int,
) -> _Fit | str:
    """Best of several starts; returns the fit or a message why none converged."""
    pts = problem.points
    n_free = len(spec.names) - (0 if problem.a_min_free else 1)
    func, jac = (spec.func, spec.jac) if problem.a_min_free else _fix_a_min(spec, problem.a_min)
    lo, hi = bounds[0][:n_free], bounds[1][:n_free]
    best: _Fit | None = None
    reason = "no start converged"
    for start in starts:
        p0 = np.clip(start[:n_free], lo + 1e-9 * (hi - lo), hi - 1e-9 * (hi - lo))
        try:
            with warnings.catch_warnings():
                # An inestimable covariance is detected below from non-finite entries; no need for the warning.
                warnings.simplefilter("ignore", optimize.OptimizeWarning)
                # check_finite=False: σ = 0 anchors sit at x = −∞ on purpose (the model gives a_max there).
                popt, pcov = optimize.curve_fit(
                    func, pts.x, pts.y, p0=p0, sigma=pts.e, absolute_sigma=True, bounds=(lo, hi),
                    jac=jac, max_nfev=max_nfev, check_finite=False,
                )  # fmt: skip
        except (RuntimeError, ValueError) as err:  # scipy's "maximum number of function evaluations" and friends
            reason = str(err).splitlines()[0]
            continue
        theta = np.append(popt, [] if problem.a_min_free else [problem.a_min])
        chi2 = float(np.sum(((spec.func(pts.x, *theta) - pts.y) / pts.e) ** 2))
        if not math.isfinite(chi2):
            reason = "non-finite χ² at the optimum"
            continue
        if best is None or chi2 < best.chi2:
            best = _Fit(spec, theta, pcov, tuple(range(n_free)), chi2, len(pts.y))
    return best if best is not None else reason


def _crossing(xs: np.ndarray, ys: np.ndarray, level: float, first: bool = True) -> float:
    """x where the piecewise-linear data first (or last) go from ≥ level to < level; grid middle if never."""
    idx = [i for i in range(len(xs) - 1) if ys[i] >= level > ys[i + 1]]
    if not idx:
        return float((xs[0] + xs[-1]) / 2)
    i = idx[0] if first else idx[-1]
    t = (ys[i] - level) / (ys[i] - ys[i + 1])
    return float(xs[i] + t * (xs[i + 1] - xs[i]))


def _start_width(xs: np.ndarray, ys: np.ndarray, x_cross: float, drop: float, problem: _Problem) -> float:
    # Logistic slope at the midpoint is drop / (4 s): estimate the slope from the two points around the crossing.
    i = int(np.clip(np.searchsorted(xs, x_cross) - 1, 0, len(xs) - 2))
    slope = abs(ys[i] - ys[i + 1]) / (xs[i + 1] - xs[i])
    step = float(np.median(np.diff(xs)))
    guess = drop / (4 * slope) if slope > 0 else step
    return float(np.clip(guess, step / 4, problem.span))


def _fit_single(problem: _Problem) -> _Fit | str:
    xs, ys, _ = _collapse(problem.points)
    top = problem.top.value
    drop = top - problem.a_min
    mu0 = _crossing(xs, ys, problem.a_min + drop / 2)
    s0 = _start_width(xs, ys, mu0, drop, problem)
    lower = np.array([problem.x_lo - problem.span, problem.s_min, 0.0, 0.0])
    upper = np.array([problem.x_hi + problem.span, 2 * problem.span, 1.0, 1.0])
    starts = [np.array([mu0, s0 * f, top, problem.a_min]) for f in (1.0, 0.25, 4.0)]
    return _run_curve_fit(problem, MODELS["logistic"], starts, (lower, upper), MAX_NFEV_SINGLE)


def _fit_double(problem: _Problem) -> _Fit | str:
    xs, ys, _ = _collapse(problem.points)
    top, a_min = problem.top.value, problem.a_min
    drop = top - a_min
    step = float(np.median(np.diff(xs)))
    starts = []
    for frac in (0.3, 0.5, 0.7):
        # Each step's midpoint is where the data cross the middle of that step.
        m1 = _crossing(xs, ys, a_min + drop * (1 + frac) / 2, first=True)
        m2 = max(_crossing(xs, ys, a_min + drop * frac / 2, first=False), m1 + step)
        s = max(step / 2, problem.s_min * 2)
        starts.append(np.array([m1, s, m2 - m1, s, top, frac, a_min]))
    lower = np.array([problem.x_lo - problem.span, problem.s_min, 0.0, problem.s_min, 0.0, 0.0, 0.0])
    upper = np.array([problem.x_hi + problem.span, 2 * problem.span, 2 * problem.span, 2 * problem.span, 1, 1, 1])
    return _run_curve_fit(problem, MODELS["double-logistic"], starts, (lower, upper), MAX_NFEV_DOUBLE)


# --------------------------------------------------------------------------- μ and its interval


def _crossing_gradient(fit: _Fit) -> np.ndarray:
    grad = np.zeros(fit.k)
    for j in range(fit.k):
        h = 1e-6 * max(abs(fit.theta[j]), 1e-3)
        up, down = fit.theta.copy(), fit.theta.copy()
        up[j] += h
        down[j] -= h
        grad[j] = (mu_double(up) - mu_double(down)) / (2 * h)
    return grad


def _mu_and_variance(fit: _Fit) -> tuple[float, float]:
    if fit.spec.name == "logistic":
        return fit.param("mu_x"), float(fit.cov[0, 0])
    grad = _crossing_gradient(fit)
    return mu_double(fit.theta), float(grad @ fit.cov @ grad)


@dataclass(frozen=True)
class _Interval:
    mu_x: float
    se: float
    low_x: float
    high_x: float
    method: str


def _interval(fit: _Fit, problem: _Problem, confidence: float) -> _Interval:
    mu_x, var = _mu_and_variance(fit)
    base = "covariance" if fit.spec.name == "logistic" else "delta-crossing"
    if not (math.isfinite(var) and var >= 0) or _no_point_on_slope(fit, problem, mu_x):
        return _bracket(mu_x, problem)
    quantile = stats.norm.ppf(0.5 + confidence / 2)
    ratio = fit.chi2 / fit.dof if fit.dof > 0 else 1.0
    if ratio > 1:
        var *= ratio
        quantile = stats.t.ppf(0.5 + confidence / 2, fit.dof)
        base += f" ×√(χ²/dof)={math.sqrt(ratio):.2f}"
    se = math.sqrt(var)
    return _Interval(mu_x, se, mu_x - quantile * se, mu_x + quantile * se, base)


def _no_point_on_slope(fit: _Fit, problem: _Problem, mu_x: float) -> bool:
    """True when no grid point lies within 2 widths of μ (where the step is between 12 % and 88 %).

    Then the step is sharper than the grid: χ² is flat in μ between the two neighbouring points and the
    covariance is meaningless (singular or absurdly wide).
    """
    xs = problem.points.x[problem.points.grid]
    return not np.any(np.abs(xs - mu_x) <= 2 * _width_at(fit, mu_x))


def _width_at(fit: _Fit, mu_x: float) -> float:
    """Width s of the logistic step that contains μ (the nearer step for the double logistic)."""
    p = fit.as_dict()
    if fit.spec.name == "logistic":
        return p["s"]
    mu2 = p["mu1_x"] + p["gap"]
    return p["s1"] if abs(mu_x - p["mu1_x"]) <= abs(mu_x - mu2) else p["s2"]


def _bracket(mu_x: float, problem: _Problem) -> _Interval:
    # A step sharper than the grid: the data only say μ lies between the grid points around it (or beyond the
    # first/last point when the fitted step sits outside the grid).
    xs = np.unique(problem.points.x[problem.points.grid])
    i = int(np.searchsorted(xs, mu_x))
    low = float(xs[i - 1]) if i > 0 else -math.inf
    high = float(xs[i]) if i < len(xs) else math.inf
    return _Interval(mu_x, math.nan, low, high, "bracket (step sharper than the grid)")


# --------------------------------------------------------------------------- public API


def fit_midpoint(
    sigma: object,
    mean: object,
    sem: object,
    *,
    num_classes: int,
    scale: Scale = "log",
    allow_double: bool = True,
    confidence: float = 0.95,
    sem_floor: float = DEFAULT_SEM_FLOOR,
    n_samples: int | None = None,
    pool_sem: bool = True,
) -> CurveFit:
    """Fit the midpoint noise level μ of an accuracy-vs-σ curve.

    Args:
        sigma: Noise levels (≥ 0), one per point; repeated σ values are allowed.
        mean: Accuracy per point as a fraction in [0, 1] (mean over repeats).
        sem: Standard error of each mean (0 allowed: floored, see module docstring).
        num_classes: K; a_min is 1/K unless the high-σ plateau is clearly above it.
        scale: "log" fits in log10 σ (σ = 0 points anchor a_max), "linear" fits in σ.
        allow_double: Also try two stacked logistics (≥ 8 points) and keep the one with the lower AICc.
        confidence: Coverage of the μ interval.
        sem_floor: Smallest standard error any point gets.
        n_samples: Test-set size; when given, errors are also floored at the binomial error of one evaluation.
        pool_sem: Raise each error to at least the RMS error over its σ neighbours (see module docstring); turn
            off only when every standard error rests on many (≳ 20) repeats.

    Returns:
        A `CurveFit`. "no-transition" and "failed" are reported in ``status``/``message``, never raised.

    Raises:
        ConfigError: Mismatched lengths, negative σ, NaN values, accuracies outside [0, 1], fewer than 4 distinct
            σ, num_classes < 2, or a bad option.
    """
    _check_options(num_classes, scale, confidence, sem_floor, n_samples)
    points = _prepare(sigma, mean, sem, scale, sem_floor, n_samples, pool_sem)
    options = _Options(scale, 1.0 / int(num_classes), confidence, allow_double)
    if not np.any(np.asarray(sem, dtype=float) > 0) and n_samples is None:
        points = _errors_from_residuals(points, options, sem_floor)
    return _fit_points(points, options)


@dataclass(frozen=True)
class _Options:
    scale: str
    chance: float
    confidence: float
    allow_double: bool


def _fit_points(points: _Points, options: _Options) -> CurveFit:
    top = _top_level(points)
    plateau = _tail_plateau(points, top, options.chance)
    low = plateau if plateau is not None else _Level(options.chance, 0.0)
    base = _Base(options.scale, len(points.y), options.confidence, low.value, plateau is not None, points.note)
    side = _no_transition(points, top, low)
    if side is not None:
        return base.no_transition(side, points, top.value)
    xs = np.unique(points.x[points.grid])
    problem = _Problem(points, low.value, plateau is not None, top, s_min=float(np.min(np.diff(xs))) / 100)
    single = _fit_single(problem)
    double: _Fit | str | None = None
    if options.allow_double and len(xs) >= MIN_POINTS_DOUBLE:
        double = _fit_double(problem)
    return _choose(problem, single, double, base)


def _errors_from_residuals(points: _Points, options: _Options, sem_floor: float) -> _Points:
    """Errors for data without any (one evaluation per σ, test-set size unknown).

    A common floor would weight all points alike, but the scatter of an accuracy is binomial-like, largest on the
    slope where μ is decided; the interval then covered only ~80 % in simulations. Instead the errors get the shape
    sqrt(a(1 − a)) and a scale chosen so that a single logistic has χ²/dof = 1 (≈ 96 % coverage).
    """
    p = np.clip(points.y, 0.01, 0.99)
    shape = np.sqrt(p * (1 - p))
    trial_scale = sem_floor / float(np.min(shape))  # small but plausible, so the 3-SE screens still work
    trial = _fit_points(replace(points, e=trial_scale * shape), replace(options, allow_double=False))
    if trial.status != "ok" or trial.dof <= 0:
        return points
    scale = trial_scale * math.sqrt(trial.chi2 / trial.dof)
    note = "no standard errors given: binomial-shaped errors scaled to the logistic residuals"
    return replace(points, e=np.maximum(scale * shape, sem_floor), note=note)


@dataclass(frozen=True)
class _Base:
    """The fields every outcome shares."""

    scale: str
    n_points: int
    confidence: float
    a_min: float
    a_min_fitted: bool
    note: str

    def empty(self, status: str, message: str, a_max: float) -> CurveFit:
        nan = math.nan
        return CurveFit(
            status=status, model="logistic", mu=nan, mu_low=nan, mu_high=nan, width=nan, a_max=a_max,
            a_min=self.a_min, a_min_fitted=self.a_min_fitted, interval="none", chi2=nan, dof=0, aic=nan,
            message=_join(message, self.note), params={}, scale=self.scale, n_points=self.n_points,
            confidence=self.confidence,
        )  # fmt: skip

    def no_transition(self, side: str, points: _Points, a_max: float) -> CurveFit:
        grid = points.sigma[points.grid]
        if side == "above":
            note = f"accuracy stays above the half-way level up to the largest σ: μ > {grid.max():.4g} (beyond grid)"
        else:
            note = f"accuracy is already below the half-way level at the smallest σ: μ < {grid.min():.4g}"
        return self.empty("no-transition", note, a_max)


def _choose(problem: _Problem, single: _Fit | str, double: _Fit | str | None, base: _Base) -> CurveFit:
    if isinstance(double, _Fit) and isinstance(single, _Fit):
        reason = _not_two_steps(double, problem)
        double = f"rejected: {reason}" if reason else double
    fits = [f for f in (single, double) if isinstance(f, _Fit)]
    if not fits:
        return base.empty("failed", f"logistic fit did not converge: {single}", problem.top.value)
    best = min(fits, key=lambda f: f.aicc)
    note = _choice_note(best, single, double)
    try:
        interval = _interval(best, problem, base.confidence)
    except ValueError as err:  # brentq found no sign change: the double logistic is degenerate
        if best is single or not isinstance(single, _Fit):
            return base.empty("failed", f"could not locate the half-way crossing: {err}", problem.top.value)
        best, note = single, "logistic (double-logistic crossing not found)"
        interval = _interval(best, problem, base.confidence)
    return _result(best, interval, problem, base, note)


def _not_two_steps(fit: _Fit, problem: _Problem) -> str | None:
    """Why a double-logistic fit is not two distinct drops with a plateau between them (None if it is).

    With extra freedom the double logistic happily fits noise: a step of a few percent, a step sharper than the
    grid through one stray point, or two overlapping steps. AICc alone picks such fits for ~5–8 % of single-step
    curves in simulations, so the plateau the paper describes must be visible: each drop ≥ MIN_STEP_FRACTION of
    the total and at least MIN_PLATEAU_POINTS grid points on the plateau (beyond 2 widths from both midpoints).
    """
    p = fit.as_dict()
    if not MIN_STEP_FRACTION <= p["frac"] <= 1 - MIN_STEP_FRACTION:
        return f"one drop is below {MIN_STEP_FRACTION:.0%} of the total"
    xs = np.unique(problem.points.x[problem.points.grid])
    start, end = p["mu1_x"] + 2 * p["s1"], p["mu1_x"] + p["gap"] - 2 * p["s2"]
    on_plateau = int(np.sum((xs >= start) & (xs <= end)))
    if on_plateau < MIN_PLATEAU_POINTS:
        return f"{on_plateau} grid point(s) on the intermediate plateau (need {MIN_PLATEAU_POINTS})"
    return None


def _choice_note(best: _Fit, single: _Fit | str, double: _Fit | str | None) -> str:
    if double is None:
        return f"{best.spec.name} (double logistic not tried)"
    other = double if best is single else single
    if isinstance(other, _Fit):
        return f"{best.spec.name} chosen by AICc ({best.aicc:.1f} vs {other.aicc:.1f} for {other.spec.name})"
    if best is single and other.startswith("rejected"):
        return f"logistic (double logistic {other})"
    return f"{best.spec.name} ({'double-logistic' if best is single else 'logistic'} fit failed: {other})"


def _result(best: _Fit, interval: _Interval, problem: _Problem, base: _Base, note: str) -> CurveFit:
    scale = base.scale
    mu = from_x(interval.mu_x, scale)
    low, high = from_x(interval.low_x, scale), from_x(interval.high_x, scale)
    a_min_note = f"a_min fitted ({best.param('a_min'):.3g})" if base.a_min_fitted else f"a_min = 1/K = {base.a_min:.3g}"
    grid = problem.points.sigma[problem.points.grid]
    outside = "; μ extrapolated outside the grid" if not grid.min() <= mu <= grid.max() else ""
    params = best.as_dict()
    width = _width_at(best, interval.mu_x)
    return CurveFit(
        status="ok", model=best.spec.name, mu=mu, mu_low=low, mu_high=high, width=width,
        a_max=best.param("a_max"), a_min=best.param("a_min"), a_min_fitted=base.a_min_fitted,
        interval=interval.method, chi2=best.chi2, dof=best.dof, aic=best.aic,
        message=_join(note, a_min_note + outside, base.note), params=params, scale=scale,
        mu_x=interval.mu_x, mu_x_se=interval.se, aicc=best.aicc,
        n_points=base.n_points, confidence=base.confidence,
    )  # fmt: skip


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


def _join(*parts: str) -> str:
    return "; ".join(part for part in parts if part)


