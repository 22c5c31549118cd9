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
from dataclasses import dataclass, replace

import numpy as np

from hil.walking.curve import (
    CurveFit,
    Scale,
    from_x,
)
from hil.walking.fit_data import (
    DEFAULT_SEM_FLOOR,
    MIN_PLATEAU_POINTS,
    MIN_POINTS_DOUBLE,
    MIN_STEP_FRACTION,
    FitPoints,
    Level,
    check_options,
    join_notes,
    no_transition,
    prepare_points,
    summarize_repeats,
    tail_plateau,
    top_level,
)
from hil.walking.fit_solvers import FitProblem, ModelFit, MuInterval, fit_double, fit_single, mu_interval, width_at

__all__ = ["CurveFit", "fit_midpoint", "summarize_repeats"]

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
    check_options(num_classes, scale, confidence, sem_floor, n_samples)
    points = prepare_points(sigma, mean, sem, scale, sem_floor, n_samples, pool_sem)
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


def _fit_points(points: FitPoints, options: _Options) -> CurveFit:
    top = top_level(points)
    plateau = tail_plateau(points, top, options.chance)
    low = plateau if plateau is not None else Level(options.chance, 0.0)
    base = _Base(options.scale, len(points.y), options.confidence, low.value, plateau is not None, points.note)
    side = no_transition(points, top, low)
    if side is not None:
        return base.no_transition(side, points, top.value)
    xs = np.unique(points.x[points.grid])
    problem = FitProblem(points, low.value, plateau is not None, top, s_min=float(np.min(np.diff(xs))) / 100)
    single = fit_single(problem)
    double: ModelFit | str | None = None
    if options.allow_double and len(xs) >= MIN_POINTS_DOUBLE:
        double = fit_double(problem)
    return _choose(problem, single, double, base)


def _errors_from_residuals(points: FitPoints, options: _Options, sem_floor: float) -> FitPoints:
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
            message=join_notes(message, self.note), params={}, scale=self.scale, n_points=self.n_points,
            confidence=self.confidence,
        )  # fmt: skip

    def no_transition(self, side: str, points: FitPoints, a_max: float) -> CurveFit:
        grid = points.sigma[points.grid]
        if side == "above":
            note = f"accuracy stays above the half-way level up to the largest σ: μ > {grid.max():.4g} (beyond grid)"
        else:
            note = f"accuracy is already below the half-way level at the smallest σ: μ < {grid.min():.4g}"
        return self.empty("no-transition", note, a_max)


def _choose(problem: FitProblem, single: ModelFit | str, double: ModelFit | str | None, base: _Base) -> CurveFit:
    if isinstance(double, ModelFit) and isinstance(single, ModelFit):
        reason = _not_two_steps(double, problem)
        double = f"rejected: {reason}" if reason else double
    fits = [f for f in (single, double) if isinstance(f, ModelFit)]
    if not fits:
        return base.empty("failed", f"logistic fit did not converge: {single}", problem.top.value)
    best = min(fits, key=lambda f: f.aicc)
    note = _choice_note(best, single, double)
    try:
        interval = mu_interval(best, problem, base.confidence)
    except ValueError as err:  # brentq found no sign change: the double logistic is degenerate
        if best is single or not isinstance(single, ModelFit):
            return base.empty("failed", f"could not locate the half-way crossing: {err}", problem.top.value)
        best, note = single, "logistic (double-logistic crossing not found)"
        interval = mu_interval(best, problem, base.confidence)
    return _result(best, interval, problem, base, note)


def _not_two_steps(fit: ModelFit, problem: FitProblem) -> str | None:
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


def _choice_note(best: ModelFit, single: ModelFit | str, double: ModelFit | str | None) -> str:
    if double is None:
        return f"{best.spec.name} (double logistic not tried)"
    other = double if best is single else single
    if isinstance(other, ModelFit):
        return f"{best.spec.name} chosen by AICc ({best.aicc:.1f} vs {other.aicc:.1f} for {other.spec.name})"
    if best is single and other.startswith("rejected"):
        return f"logistic (double logistic {other})"
    return f"{best.spec.name} ({'double-logistic' if best is single else 'logistic'} fit failed: {other})"


def _result(best: ModelFit, interval: MuInterval, problem: FitProblem, base: _Base, note: str) -> CurveFit:
    scale = base.scale
    mu = from_x(interval.mu_x, scale)
    low, high = from_x(interval.low_x, scale), from_x(interval.high_x, scale)
    a_min_note = f"a_min fitted ({best.param('a_min'):.3g})" if base.a_min_fitted else f"a_min = 1/K = {base.a_min:.3g}"
    grid = problem.points.sigma[problem.points.grid]
    outside = "; μ extrapolated outside the grid" if not grid.min() <= mu <= grid.max() else ""
    params = best.as_dict()
    width = width_at(best, interval.mu_x)
    return CurveFit(
        status="ok", model=best.spec.name, mu=mu, mu_low=low, mu_high=high, width=width,
        a_max=best.param("a_max"), a_min=best.param("a_min"), a_min_fitted=base.a_min_fitted,
        interval=interval.method, chi2=best.chi2, dof=best.dof, aic=best.aic,
        message=join_notes(note, a_min_note + outside, base.note), params=params, scale=scale,
        mu_x=interval.mu_x, mu_x_se=interval.se, aicc=best.aicc,
        n_points=base.n_points, confidence=base.confidence,
    )  # fmt: skip
