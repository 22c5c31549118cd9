"""Curve fits for `hil.walking.fit`: least squares per model, the crossing μ and its interval."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from hil.walking.curve import (
    MODELS,
    ModelFunc,
    ModelSpec,
    mu_double,
)
from hil.walking.fit_data import FitPoints, Level, collapse_repeats

MAX_NFEV_SINGLE = 2000
MAX_NFEV_DOUBLE = 300
"""Real two-step curves converge in ~10 evaluations; a double logistic forced onto a single step (or onto a
noise-free curve) wanders along flat directions for hundreds, and is not going to be chosen anyway."""

# --------------------------------------------------------------------------- fitting


@dataclass(frozen=True)
class ModelFit:
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
class FitProblem:
    """What every fit shares: data, a_min handling, x range and the smallest width allowed."""

    points: FitPoints
    a_min: float
    a_min_free: bool
    top: Level
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
    problem: FitProblem,
    spec: ModelSpec,
    starts: list[np.ndarray],
    bounds: tuple[np.ndarray, np.ndarray],
    max_nfev: int,
) -> ModelFit | str:
    """Best of several starts; returns the fit or a message why none converged."""
    pts = problem.points
    n_free = len(spec.names) - (0 if problem.a_min_free else 1)
    func, jac = (spec.func, spec.jac) if problem.a_min_free else _fix_a_min(spec, problem.a_min)
    lo, hi = bounds[0][:n_free], bounds[1][:n_free]
    best: ModelFit | None = None
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
            best = ModelFit(spec, theta, pcov, tuple(range(n_free)), chi2, len(pts.y))
    return best if best is not None else reason


def _crossing(xs: np.ndarray, ys: np.ndarray, level: float, first: bool = True) -> float:
    """x where the piecewise-linear data first (or last) go from ≥ level to < level; grid middle if never."""
    idx = [i for i in range(len(xs) - 1) if ys[i] >= level > ys[i + 1]]
    if not idx:
        return float((xs[0] + xs[-1]) / 2)
    i = idx[0] if first else idx[-1]
    t = (ys[i] - level) / (ys[i] - ys[i + 1])
    return float(xs[i] + t * (xs[i + 1] - xs[i]))


def _start_width(xs: np.ndarray, ys: np.ndarray, x_cross: float, drop: float, problem: FitProblem) -> float:
    # Logistic slope at the midpoint is drop / (4 s): estimate the slope from the two points around the crossing.
    i = int(np.clip(np.searchsorted(xs, x_cross) - 1, 0, len(xs) - 2))
    slope = abs(ys[i] - ys[i + 1]) / (xs[i + 1] - xs[i])
    step = float(np.median(np.diff(xs)))
    guess = drop / (4 * slope) if slope > 0 else step
    return float(np.clip(guess, step / 4, problem.span))


def fit_single(problem: FitProblem) -> ModelFit | str:
    xs, ys, _ = collapse_repeats(problem.points)
    top = problem.top.value
    drop = top - problem.a_min
    mu0 = _crossing(xs, ys, problem.a_min + drop / 2)
    s0 = _start_width(xs, ys, mu0, drop, problem)
    lower = np.array([problem.x_lo - problem.span, problem.s_min, 0.0, 0.0])
    upper = np.array([problem.x_hi + problem.span, 2 * problem.span, 1.0, 1.0])
    starts = [np.array([mu0, s0 * f, top, problem.a_min]) for f in (1.0, 0.25, 4.0)]
    return _run_curve_fit(problem, MODELS["logistic"], starts, (lower, upper), MAX_NFEV_SINGLE)


def fit_double(problem: FitProblem) -> ModelFit | str:
    xs, ys, _ = collapse_repeats(problem.points)
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


def _crossing_gradient(fit: ModelFit) -> np.ndarray:
    grad = np.zeros(fit.k)
    for j in range(fit.k):
        h = 1e-6 * max(abs(fit.theta[j]), 1e-3)
        up, down = fit.theta.copy(), fit.theta.copy()
        up[j] += h
        down[j] -= h
        grad[j] = (mu_double(up) - mu_double(down)) / (2 * h)
    return grad


def _mu_and_variance(fit: ModelFit) -> tuple[float, float]:
    if fit.spec.name == "logistic":
        return fit.param("mu_x"), float(fit.cov[0, 0])
    grad = _crossing_gradient(fit)
    return mu_double(fit.theta), float(grad @ fit.cov @ grad)


@dataclass(frozen=True)
class MuInterval:
    mu_x: float
    se: float
    low_x: float
    high_x: float
    method: str


def mu_interval(fit: ModelFit, problem: FitProblem, confidence: float) -> MuInterval:
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
    return MuInterval(mu_x, se, mu_x - quantile * se, mu_x + quantile * se, base)


def _no_point_on_slope(fit: ModelFit, problem: FitProblem, mu_x: float) -> bool:
    """True when no grid point lies within 2 widths of μ (where the step is between 12 % and 88 %).

    Then the step is sharper than the grid: χ² is flat in μ between the two neighbouring points and the
    covariance is meaningless (singular or absurdly wide).
    """
    xs = problem.points.x[problem.points.grid]
    return not np.any(np.abs(xs - mu_x) <= 2 * width_at(fit, mu_x))


def width_at(fit: ModelFit, mu_x: float) -> float:
    """Width s of the logistic step that contains μ (the nearer step for the double logistic)."""
    p = fit.as_dict()
    if fit.spec.name == "logistic":
        return p["s"]
    mu2 = p["mu1_x"] + p["gap"]
    return p["s1"] if abs(mu_x - p["mu1_x"]) <= abs(mu_x - mu2) else p["s2"]


def _bracket(mu_x: float, problem: FitProblem) -> MuInterval:
    # A step sharper than the grid: the data only say μ lies between the grid points around it (or beyond the
    # first/last point when the fitted step sits outside the grid).
    xs = np.unique(problem.points.x[problem.points.grid])
    i = int(np.searchsorted(xs, mu_x))
    low = float(xs[i - 1]) if i > 0 else -math.inf
    high = float(xs[i]) if i < len(xs) else math.inf
    return MuInterval(mu_x, math.nan, low, high, "bracket (step sharper than the grid)")
