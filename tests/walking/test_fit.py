"""Midpoint fit: recovery, interval coverage, a_min plateau, double logistic, no-transition, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize
from scipy.special import expit

from hil.errors import ConfigError
from hil.walking import fit_data, fit_solvers
from hil.walking.fit import CurveFit, fit_midpoint, summarize_repeats

LOG_GRID = np.logspace(-2, 2, 17)  # the global-sweep grid
LINEAR_GRID = np.linspace(0.0, 2.0, 21)  # the multiplicative grid, σ = 0 included


def logistic(x: np.ndarray, mu_x: float, s: float, a_max: float, a_min: float) -> np.ndarray:
    return a_min + (a_max - a_min) * expit((mu_x - x) / s)


def two_steps(x: np.ndarray, mu1: float, mu2: float, s: float, a_max: float, a_mid: float, a_min: float) -> np.ndarray:
    return a_min + (a_max - a_mid) * expit((mu1 - x) / s) + (a_mid - a_min) * expit((mu2 - x) / s)


def measure(rng: np.random.Generator, sigma: np.ndarray, p: np.ndarray, repeats: int = 5, n: int = 1000):
    """Binomial accuracies of ``repeats`` evaluations on ``n`` test samples, summarised per σ."""
    rows = rng.binomial(n, np.repeat(p, repeats)) / n
    return summarize_repeats(np.repeat(sigma, repeats), rows)


def contains(result: CurveFit, mu: float) -> bool:
    return result.status == "ok" and result.mu_low <= mu <= result.mu_high


# --------------------------------------------------------------------------- recovery


@pytest.mark.parametrize(("mu", "s"), [(0.4, 0.2), (0.05, 0.1), (10.0, 0.35)])
def test_noise_free_log_curve_is_recovered_exactly(mu: float, s: float) -> None:
    y = logistic(np.log10(LOG_GRID), math.log10(mu), s, 0.98, 0.1)
    result = fit_midpoint(LOG_GRID, y, np.zeros_like(y), num_classes=10)
    assert result.status == "ok" and result.model == "logistic" and result.scale == "log"
    assert result.mu == pytest.approx(mu, rel=1e-6)
    assert result.width == pytest.approx(s, rel=1e-5)
    assert result.a_max == pytest.approx(0.98, abs=1e-6)
    assert result.a_min == 0.1 and not result.a_min_fitted
    assert result.mu_low < mu < result.mu_high
    assert result.chi2 == pytest.approx(0.0, abs=1e-6) and result.dof == 17 - 3


def test_noise_free_linear_curve_is_recovered_exactly() -> None:
    y = logistic(LINEAR_GRID, 0.8, 0.1, 0.95, 0.1)
    result = fit_midpoint(LINEAR_GRID, y, np.zeros_like(y), num_classes=10, scale="linear")
    assert result.status == "ok" and result.scale == "linear"
    assert result.mu == pytest.approx(0.8, rel=1e-6)
    assert result.width == pytest.approx(0.1, rel=1e-5)
    assert result.predict(LINEAR_GRID) == pytest.approx(y, abs=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_noisy_curve_recovers_mu_s_and_a_min(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sigma, mean, sem = measure(rng, LOG_GRID, logistic(np.log10(LOG_GRID), -0.4, 0.25, 0.97, 0.1))
    result = fit_midpoint(sigma, mean, sem, num_classes=10)
    assert contains(result, 10**-0.4)
    assert result.width == pytest.approx(0.25, rel=0.3)
    assert result.a_min == 0.1 and result.a_max == pytest.approx(0.97, abs=0.01)


def test_sigma_zero_anchors_a_max_on_log_scale() -> None:
    x = np.log10(LOG_GRID)
    sigma = np.concatenate([[0.0, 0.0], LOG_GRID])
    y = np.concatenate([[0.98, 0.98], logistic(x, 0.5, 0.3, 0.98, 0.1)])
    result = fit_midpoint(sigma, y, np.full(y.shape, 0.005), num_classes=10)
    assert result.status == "ok" and result.n_points == 19
    assert result.mu == pytest.approx(10**0.5, rel=1e-4)
    assert result.predict(np.array([0.0]))[0] == pytest.approx(result.a_max)


# --------------------------------------------------------------------------- interval coverage


def coverage(scale: str, points: int, runs: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(runs):
        if scale == "log":
            grid, mu_x, s = np.logspace(-2, 2, points), rng.uniform(-1, 1), rng.uniform(0.1, 0.4)
            x, true_mu = np.log10(grid), 10**mu_x
        else:
            grid, mu_x, s = np.linspace(0, 2, points), rng.uniform(0.5, 1.5), rng.uniform(0.05, 0.2)
            x, true_mu = grid, mu_x
        sigma, mean, sem = measure(rng, grid, logistic(x, mu_x, s, 0.98, 0.1))
        # The double logistic is off here: this measures the single-logistic interval, and it halves the runtime.
        result = fit_midpoint(sigma, mean, sem, num_classes=10, scale=scale, allow_double=False)
        hits += contains(result, true_mu)
    return hits / runs


@pytest.mark.parametrize(("scale", "points"), [("log", 17), ("linear", 30)])
def test_95_percent_interval_covers_the_true_mu(scale: str, points: int) -> None:
    # Binomial noise, n = 1000 test samples, 5 repeats per point (seed 11: 0.94 log/17, 0.91 linear/30).
    assert 0.88 <= coverage(scale, points, runs=200, seed=11) <= 0.99


# --------------------------------------------------------------------------- a_min


def test_plateau_above_chance_fits_a_min() -> None:
    rng = np.random.default_rng(3)
    sigma, mean, sem = measure(rng, LOG_GRID, logistic(np.log10(LOG_GRID), 0.0, 0.2, 0.95, 0.3))
    result = fit_midpoint(sigma, mean, sem, num_classes=10)
    assert result.a_min_fitted and result.a_min == pytest.approx(0.3, abs=0.01)
    assert "a_min fitted" in result.message
    assert contains(result, 1.0)


def test_plateau_at_chance_keeps_a_min_fixed() -> None:
    rng = np.random.default_rng(4)
    sigma, mean, sem = measure(rng, LOG_GRID, logistic(np.log10(LOG_GRID), 0.0, 0.2, 0.95, 0.1))
    result = fit_midpoint(sigma, mean, sem, num_classes=10)
    assert not result.a_min_fitted and result.a_min == 0.1 and result.params["a_min"] == 0.1


# --------------------------------------------------------------------------- double logistic


def true_crossing(curve, a_max: float, a_min: float) -> float:
    return float(optimize.brentq(lambda x: curve(np.array(x)) - (a_max + a_min) / 2, -10, 10))


@pytest.mark.parametrize(("plateau", "seed"), [(0.4, 0), (0.6, 1)])
def test_two_step_curve_picks_double_logistic(plateau: float, seed: int) -> None:
    grid = np.linspace(0, 2, 31)
    rng = np.random.default_rng(seed)

    def curve(x: np.ndarray) -> np.ndarray:
        return two_steps(x, 0.45, 1.3, 0.06, 0.9, plateau, 0.1)

    sigma, mean, sem = measure(rng, grid, curve(grid))
    result = fit_midpoint(sigma, mean, sem, num_classes=10, scale="linear")
    assert result.model == "double-logistic" and "chosen by AICc" in result.message
    assert result.interval.startswith("delta-crossing")
    a_mid = result.params["a_min"] + result.params["frac"] * (result.params["a_max"] - result.params["a_min"])
    assert a_mid == pytest.approx(plateau, abs=0.03)
    assert contains(result, true_crossing(curve, 0.9, 0.1))
    # μ is where the fitted curve crosses half of the full drop.
    half = (result.a_max + result.a_min) / 2
    assert result.predict(np.array([result.mu]))[0] == pytest.approx(half, abs=1e-9)


def test_two_step_curve_without_double_falls_back_to_logistic() -> None:
    grid = np.linspace(0, 2, 31)
    sigma, mean, sem = measure(np.random.default_rng(0), grid, two_steps(grid, 0.45, 1.3, 0.06, 0.9, 0.4, 0.1))
    result = fit_midpoint(sigma, mean, sem, num_classes=10, scale="linear", allow_double=False)
    assert result.model == "logistic" and "not tried" in result.message


def test_single_step_curves_do_not_pick_double_logistic() -> None:
    rng = np.random.default_rng(21)
    grid = np.logspace(-2, 2, 30)
    models = []
    for _ in range(20):
        curve = logistic(np.log10(grid), rng.uniform(-1, 1), rng.uniform(0.1, 0.4), 0.98, 0.1)
        sigma, mean, sem = measure(rng, grid, curve)
        models.append(fit_midpoint(sigma, mean, sem, num_classes=10).model)
    assert models.count("double-logistic") <= 1  # measured 0 of 200


def test_few_points_skip_double_logistic() -> None:
    grid = np.logspace(-2, 2, 7)
    y = logistic(np.log10(grid), 0.0, 0.4, 0.9, 0.1)
    result = fit_midpoint(grid, y, np.full(7, 0.01), num_classes=10)
    assert result.status == "ok" and result.model == "logistic" and "not tried" in result.message


# --------------------------------------------------------------------------- no transition, steps, failures


def test_curve_that_never_drops_is_no_transition_above() -> None:
    y = logistic(np.log10(LOG_GRID), 3.0, 0.2, 0.98, 0.1)
    result = fit_midpoint(LOG_GRID, y, np.full(17, 0.005), num_classes=10)
    assert result.status == "no-transition" and math.isnan(result.mu)
    assert "beyond grid" in result.message and "100" in result.message


def test_curve_at_chance_everywhere_is_no_transition_below() -> None:
    rng = np.random.default_rng(5)
    sigma, mean, sem = measure(rng, LOG_GRID, np.full(17, 0.1))
    result = fit_midpoint(sigma, mean, sem, num_classes=10)
    assert result.status == "no-transition" and "smallest σ" in result.message and math.isnan(result.mu)


def test_clean_anchor_reveals_curve_already_broken_at_smallest_sigma() -> None:
    y = logistic(np.log10(LOG_GRID), -3.0, 0.2, 0.98, 0.1)
    result = fit_midpoint(np.r_[0.0, LOG_GRID], np.r_[0.98, y], np.full(18, 0.005), num_classes=10)
    assert result.status == "no-transition" and "μ < 0.01" in result.message


def test_step_sharper_than_grid_reports_bracketing_points() -> None:
    y = np.where(LINEAR_GRID < 0.75, 0.95, 0.1)
    result = fit_midpoint(LINEAR_GRID, y, np.full(21, 0.005), num_classes=10, scale="linear")
    assert result.status == "ok" and result.interval.startswith("bracket")
    assert (result.mu_low, result.mu_high) == pytest.approx((0.7, 0.8))
    assert 0.7 <= result.mu <= 0.8


def test_optimiser_failure_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Optimal parameters not found: maximum number of function evaluations exceeded")

    monkeypatch.setattr(fit_solvers.optimize, "curve_fit", refuse)
    y = logistic(np.log10(LOG_GRID), 0.0, 0.2, 0.98, 0.1)
    result = fit_midpoint(LOG_GRID, y, np.full(17, 0.005), num_classes=10)
    assert result.status == "failed" and "maximum number of function evaluations" in result.message
    assert math.isnan(result.mu) and np.all(np.isnan(result.predict(LOG_GRID)))


# --------------------------------------------------------------------------- standard errors


def test_single_evaluation_per_sigma_without_errors_still_covers() -> None:
    # One evaluation per σ (sem all 0, test-set size unknown): errors are taken from the residuals (measured 0.945).
    rng = np.random.default_rng(6)
    x = np.log10(LOG_GRID)
    hits = 0
    for _ in range(40):
        mu_x, s = rng.uniform(-1, 1), rng.uniform(0.1, 0.4)
        acc = rng.binomial(10_000, logistic(x, mu_x, s, 0.98, 0.1)) / 10_000
        result = fit_midpoint(LOG_GRID, acc, np.zeros(17), num_classes=10, allow_double=False)
        assert result.status == "ok" and math.isfinite(result.mu_x_se) and result.mu_x_se > 0
        assert "errors scaled to the logistic residuals" in result.message
        hits += contains(result, 10**mu_x)
    assert hits >= 34


def test_known_test_set_size_gives_binomial_errors() -> None:
    rng = np.random.default_rng(7)
    acc = rng.binomial(10_000, logistic(np.log10(LOG_GRID), 0.2, 0.25, 0.98, 0.1)) / 10_000
    result = fit_midpoint(LOG_GRID, acc, np.zeros(17), num_classes=10, n_samples=10_000)
    assert contains(result, 10**0.2) and result.chi2 / result.dof < 3 and "residuals" not in result.message


def test_zero_sem_point_is_floored_not_infinitely_weighted() -> None:
    y = logistic(np.log10(LOG_GRID), 0.0, 0.3, 0.98, 0.1) + np.where(np.arange(17) == 8, 0.02, 0.0)
    sem = np.full(17, 0.01)
    exact, floored = sem.copy(), sem.copy()
    exact[8], floored[8] = 0.0, 1e-3  # repeats that agreed exactly vs the default floor
    zero = fit_midpoint(LOG_GRID, y, exact, num_classes=10, pool_sem=False)
    assert zero.status == "ok" and math.isfinite(zero.chi2) and math.isfinite(zero.mu_x_se)
    assert zero.mu == fit_midpoint(LOG_GRID, y, floored, num_classes=10, pool_sem=False).mu
    raised = fit_midpoint(LOG_GRID, y, exact, num_classes=10, pool_sem=False, sem_floor=0.01)
    assert raised.mu == fit_midpoint(LOG_GRID, y, sem, num_classes=10, pool_sem=False).mu
    with pytest.raises(ConfigError, match="sem_floor"):
        fit_midpoint(LOG_GRID, y, sem, num_classes=10, sem_floor=0.0)


def test_pooling_raises_an_accidentally_tiny_error_to_its_neighbours() -> None:
    sem = np.array([0.01, 0.01, 0.0001, 0.01, 0.01])
    pooled = fit_data._pool_sem(sem)
    assert pooled[2] == pytest.approx(math.sqrt((0.01**2 * 2 + 0.0001**2) / 3))
    assert pooled[0] == pytest.approx(0.01) and np.all(pooled >= sem)


# --------------------------------------------------------------------------- bad input


GOOD_Y = logistic(np.log10(LOG_GRID), 0.0, 0.3, 0.98, 0.1)


@pytest.mark.parametrize(
    ("sigma", "mean", "sem", "kwargs", "message"),
    [
        (LOG_GRID, GOOD_Y[:-1], np.zeros(17), {}, "same length"),
        (-LOG_GRID, GOOD_Y, np.zeros(17), {}, "σ must be ≥ 0"),
        (LOG_GRID[:3], GOOD_Y[:3], np.zeros(3), {}, "at least 4 distinct σ"),
        (np.r_[0.0, 0.0, LOG_GRID[:3]], np.r_[0.98, 0.98, GOOD_Y[:3]], np.zeros(5), {}, "σ = 0 only anchors"),
        (LOG_GRID, np.r_[GOOD_Y[:-1], np.nan], np.zeros(17), {}, "finite"),
        (LOG_GRID, GOOD_Y * 100, np.zeros(17), {}, "not percent"),
        (LOG_GRID, GOOD_Y, -np.ones(17), {}, "standard errors must be ≥ 0"),
        (LOG_GRID, GOOD_Y, np.zeros(17), {"num_classes": 1}, "num_classes"),
        (LOG_GRID, GOOD_Y, np.zeros(17), {"num_classes": True}, "num_classes"),
        (LOG_GRID, GOOD_Y, np.zeros(17), {"num_classes": 2.5}, "num_classes"),
        (LOG_GRID, GOOD_Y, np.zeros(17), {"scale": "ln"}, "scale"),
        (LOG_GRID, GOOD_Y, np.zeros(17), {"confidence": 95}, "confidence"),
        (LOG_GRID, GOOD_Y, np.zeros(17), {"n_samples": 0}, "n_samples"),
        (np.ones((2, 17)), GOOD_Y, np.zeros(17), {}, "one-dimensional"),
    ],
)
def test_bad_input_raises_config_error(sigma, mean, sem, kwargs: dict, message: str) -> None:
    options = {"num_classes": 10, **kwargs}
    with pytest.raises(ConfigError, match=message):
        fit_midpoint(sigma, mean, sem, **options)


# --------------------------------------------------------------------------- summarize_repeats


def test_summarize_repeats_groups_sorts_and_computes_standard_error() -> None:
    sigma = [1.0, 0.1, 1.0, 0.1, 1.0, 10.0]
    acc = [0.5, 0.9, 0.7, 0.8, 0.6, 0.1]
    levels, mean, sem = summarize_repeats(sigma, acc)
    assert levels.tolist() == [0.1, 1.0, 10.0]
    assert mean == pytest.approx([0.85, 0.6, 0.1])
    expected = [np.std([0.9, 0.8], ddof=1) / math.sqrt(2), np.std([0.5, 0.7, 0.6], ddof=1) / math.sqrt(3), 0.0]
    assert sem == pytest.approx(expected)


@pytest.mark.parametrize(
    ("sigma", "acc", "message"),
    [([0.1, 0.2], [0.5], "same length"), ([], [], "no rows"), ([-1.0], [0.5], "≥ 0"), ([0.1], [math.nan], "finite")],
)
def test_summarize_repeats_rejects_bad_rows(sigma: list, acc: list, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        summarize_repeats(sigma, acc)


# --------------------------------------------------------------------------- predict and to_dict


def test_predict_and_to_dict_are_plot_and_json_ready() -> None:
    y = logistic(np.log10(LOG_GRID), 0.0, 0.3, 0.98, 0.1)
    result = fit_midpoint(LOG_GRID, y, np.full(17, 0.005), num_classes=10)
    dense = np.logspace(-3, 3, 50).reshape(5, 10)
    assert result.predict(dense).shape == (5, 10)
    assert result.predict(np.array([1.0]))[0] == pytest.approx((0.98 + 0.1) / 2)
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["status"] == "ok" and data["mu"] == pytest.approx(1.0) and data["params"]["s"] == pytest.approx(0.3)
    required = "status model mu mu_low mu_high width a_max a_min a_min_fitted interval chi2 dof aic message params"
    assert set(data) >= {*required.split(), "scale"}


def test_no_transition_to_dict_turns_nan_into_none() -> None:
    result = fit_midpoint(LOG_GRID, np.full(17, 0.97), np.full(17, 0.005), num_classes=10)
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["status"] == "no-transition" and data["mu"] is None and data["params"] == {}
    assert np.all(np.isnan(result.predict(LOG_GRID)))


# --------------------------------------------------------------------------- never raises on valid curves


@settings(max_examples=15, deadline=None, derandomize=True)
@given(
    mu_x=st.floats(-3, 3),
    s=st.floats(0.01, 2),
    a_max=st.floats(0.3, 1.0),
    noise=st.floats(0, 0.05),
    seed=st.integers(0, 2**16),
)
def test_valid_curves_never_raise(mu_x: float, s: float, a_max: float, noise: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = np.clip(logistic(np.log10(LOG_GRID), mu_x, s, a_max, 0.1) + rng.normal(0, noise, 17), 0, 1)
    result = fit_midpoint(LOG_GRID, y, np.full(17, noise), num_classes=10)
    assert result.status in {"ok", "no-transition", "failed"}
    if result.status == "ok":
        assert result.mu_low <= result.mu <= result.mu_high
    json.dumps(result.to_dict(), allow_nan=False)
