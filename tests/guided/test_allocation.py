"""Allocators: invariants on random inputs, and the behaviour each rule promises."""

from __future__ import annotations

import math
import random

import pytest

from hil.errors import ConfigError
from hil.guided.allocation import (
    allocate_greedy,
    allocate_inverse_mu,
    largest_remainder,
    predict_accuracy,
    proportional_shares,
    uniform_allocation,
)


def logistic_curve(mu: float, width: float = 0.15, clean: float = 0.97, chance: float = 0.1):
    def curve(sigma: float) -> float:
        if sigma <= 0:
            return clean
        return chance + (clean - chance) / (1 + math.exp((math.log10(sigma) - math.log10(mu)) / width))

    return curve


@pytest.mark.parametrize("trial", range(300))
def test_inverse_mu_conserves_the_total_and_gives_every_site_one(trial: int) -> None:
    rng = random.Random(trial)
    sites = rng.randint(1, 33)
    mu = [10 ** rng.uniform(-2, 3) for _ in range(sites)]
    total = sites * rng.randint(1, 8) + rng.randint(0, sites)
    executions = allocate_inverse_mu(mu, total)
    assert sum(executions) == total
    assert all(isinstance(r, int) and r >= 1 for r in executions)
    shares = proportional_shares([1 / m for m in mu], total)
    assert all(abs(r - s) < 1 + 1e-9 for r, s in zip(executions, shares, strict=True))
    # more sensitive (smaller μ) never gets fewer executions than a less sensitive site, beyond rounding
    for i in range(sites):
        for j in range(sites):
            if mu[i] < mu[j]:
                assert executions[i] >= executions[j] - 1


def test_inverse_mu_is_proportional_when_nothing_hits_the_floor() -> None:
    assert allocate_inverse_mu([1.0, 2.0, 4.0], 14) == (8, 4, 2)
    assert allocate_inverse_mu([1.0, 1.0, 1.0], 9) == (3, 3, 3)


def test_inverse_mu_pins_robust_sites_at_one_and_reshares_the_rest() -> None:
    # 1/μ shares of 10 executions: 9.9, 0.099, 0.0099 → the two robust sites get 1, the rest goes to site 0
    assert allocate_inverse_mu([1.0, 100.0, 1000.0], 10) == (8, 1, 1)


def test_largest_remainder_gives_leftovers_to_the_largest_fractions() -> None:
    assert largest_remainder([1.6, 1.3, 2.1], 5) == (2, 1, 2)
    assert largest_remainder([2.5, 2.5], 5) == (3, 2)  # tie → earlier site


@pytest.mark.parametrize(("mu", "total", "match"), [
    ([1.0, 2.0], 1, "at least 1 per site"),
    ([1.0, float("nan")], 4, "finite midpoint"),
    ([1.0, 0.0], 4, "finite midpoint"),
    ([], 4, "no noisy sites"),
])
def test_inverse_mu_rejects_bad_input(mu: list[float], total: int, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        allocate_inverse_mu(mu, total)


def test_uniform_allocation() -> None:
    assert uniform_allocation(4, 3) == (3, 3, 3, 3)
    with pytest.raises(ConfigError):
        uniform_allocation(4, 0)


@pytest.mark.parametrize("trial", range(100))
def test_greedy_spends_exactly_the_budget_with_unit_costs(trial: int) -> None:
    rng = random.Random(1000 + trial)
    sites = rng.randint(1, 16)
    curves = [logistic_curve(10 ** rng.uniform(-1, 1), rng.uniform(0.05, 0.4)) for _ in range(sites)]
    budget = sites * rng.randint(1, 5)
    executions = allocate_greedy(curves, 10 ** rng.uniform(-1, 1), budget)
    assert sum(executions) == budget
    assert min(executions) >= 1


@pytest.mark.parametrize("trial", range(100))
def test_greedy_never_overspends_weighted_costs(trial: int) -> None:
    rng = random.Random(2000 + trial)
    sites = rng.randint(1, 12)
    curves = [logistic_curve(10 ** rng.uniform(-1, 1)) for _ in range(sites)]
    costs = [rng.choice([1.0, 7.0, 120.0, 2400.0]) for _ in range(sites)]
    budget = rng.randint(1, 4) * sum(costs)
    executions = allocate_greedy(curves, 1.0, budget, costs=costs)
    spent = sum(r * c for r, c in zip(executions, costs, strict=True))
    assert spent <= budget + 1e-6
    assert min(executions) >= 1
    open_costs = [c for c, r in zip(costs, executions, strict=True) if r < 1024]  # 1024 = max_executions
    assert not open_costs or budget - spent < min(open_costs)  # whatever is left buys nothing more


def test_greedy_feeds_the_fragile_site_and_leaves_robust_sites_alone() -> None:
    # σ = 1: site 0 (μ = 0.8) is past its midpoint, site 1 (μ = 1.2) on its slope, sites 2, 3 are far more robust
    curves = [logistic_curve(0.8), logistic_curve(1.2), logistic_curve(50.0), logistic_curve(80.0)]
    executions = allocate_greedy(curves, 1.0, 12)
    assert executions[2] == executions[3] == 1
    assert executions[0] > executions[1] > 1


def test_greedy_beats_or_matches_inverse_mu_under_its_own_model() -> None:
    rng = random.Random(7)
    wins = 0
    for _ in range(40):
        mus = [10 ** rng.uniform(-0.3, 1.0) for _ in range(8)]
        curves = [logistic_curve(m, rng.uniform(0.08, 0.3)) for m in mus]
        sigma = min(mus) * 1.2
        greedy = allocate_greedy(curves, sigma, 24)
        paper = allocate_inverse_mu(mus, 24)
        g = predict_accuracy(curves, greedy, sigma, clean=0.97, chance=0.1)
        p = predict_accuracy(curves, paper, sigma, clean=0.97, chance=0.1)
        assert g >= p - 1e-9
        wins += g > p + 1e-6
    assert wins > 20


def test_greedy_looks_ahead_over_a_flat_start() -> None:
    # site 0 is far past its midpoint: one extra execution gains nothing visible, eight gain everything
    steep = logistic_curve(1.0, width=0.02)
    executions = allocate_greedy([steep, logistic_curve(100.0)], 2.5, 10)
    assert executions[0] >= 7


def test_greedy_rejects_a_budget_below_one_execution_each() -> None:
    with pytest.raises(ConfigError, match="raise --budget"):
        allocate_greedy([logistic_curve(1.0)] * 3, 1.0, 2)
    with pytest.raises(ConfigError, match="> 0"):
        allocate_greedy([logistic_curve(1.0)], 1.0, 2, costs=[0.0])


def test_sqrt_drop_spends_the_total_in_proportion_to_the_root_of_each_drop() -> None:
    from hil.guided.allocation import allocate_sqrt_drop

    assert allocate_sqrt_drop([0.01, 0.04, 0.16], 14) == (2, 4, 8)
    assert sum(allocate_sqrt_drop([0.3, -0.01, 0.0, 0.05], 12)) == 12
    assert min(allocate_sqrt_drop([0.3, -0.01, 0.0, 0.05], 12)) == 1  # a layer the chip does not hurt: once
    with pytest.raises(ConfigError, match="finite measured drop"):
        allocate_sqrt_drop([0.1, float("nan")], 4)
