"""Allocators: how many executions each noisy site gets from a total budget.

Averaging r independent executions of a site divides its noise standard deviation by √r, so a
budget of repeated executions is best spent where the network is most sensitive. Two rules:

* `allocate_inverse_mu` — the Walking Noise paper's rule: r_i ∝ 1/μ_i (μ_i the site's midpoint
  noise level), normalised to the total n_t and rounded so that the sum is conserved.
* `allocate_sqrt_drop` — from a placement walk on the hardware: r_i ∝ √(drop_i), the drop each
  layer alone costs at the chip's own noise (no model of the chip needed).
* `allocate_greedy` — starting from one execution each, repeatedly buy the execution(s) with the
  largest predicted gain per unit cost, predicting each site's effect from its measured
  accuracy-vs-σ curve at σ_eff = σ/√r.

Both are pure functions of plain numbers (no torch), so their invariants are cheap to test.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from hil.errors import ConfigError
from hil.validation import check_int

SiteCurve = Callable[[float], float]
"""Predicted network accuracy with noise σ at one site only (the site's Walking Noise curve)."""

RETAINED_FLOOR = 1e-4
"""Smallest retained fraction a site can predict; keeps log-retention finite at chance level."""


def _check_total(total: int, sites: int) -> None:
    total = check_int(total, "the total number of executions")
    if sites < 1:
        raise ConfigError("there are no noisy sites to give executions to")
    if total < sites:
        raise ConfigError(f"a budget of {total} executions cannot give each of the {sites} sites one; "
                          f"raise --budget to at least 1 per site")


def largest_remainder(shares: Sequence[float], total: int) -> tuple[int, ...]:
    """Round non-negative ``shares`` (summing to ``total``) to integers with the same sum.

    Every entry gets its floor; the leftover units go to the largest fractional parts (ties: the
    earlier site). Hamilton's method: each result is within 1 of its share.
    """
    floors = [math.floor(s + 1e-9) for s in shares]
    leftover = total - sum(floors)
    order = sorted(range(len(shares)), key=lambda i: (-(shares[i] - floors[i]), i))
    for i in order[:max(leftover, 0)]:
        floors[i] += 1
    return tuple(floors)


def proportional_shares(weights: Sequence[float], total: int, minimum: float = 1.0) -> list[float]:
    """Shares ∝ ``weights`` summing to ``total``, none below ``minimum`` (water-filling).

    Sites whose proportional share falls below the minimum are pinned at it and the rest of the
    total is shared again among the others, until no share is below the minimum.
    """
    shares = [0.0] * len(weights)
    free = set(range(len(weights)))
    remaining = float(total)
    while free:
        weight_sum = sum(weights[i] for i in free)
        pinned = {i for i in free if weight_sum <= 0 or remaining * weights[i] / weight_sum < minimum}
        if not pinned:
            for i in free:
                shares[i] = remaining * weights[i] / weight_sum
            break
        for i in pinned:
            shares[i] = minimum
        remaining -= minimum * len(pinned)
        free -= pinned
    return shares


def allocate_inverse_mu(mu: Sequence[float], total: int) -> tuple[int, ...]:
    """The paper's rule: executions r_i ∝ 1/μ_i, Σ r_i = ``total`` exactly, every r_i ≥ 1.

    Args:
        mu: Midpoint noise level of each site (> 0, finite).
        total: Total executions n_t (≥ number of sites).

    Returns:
        Executions per site.

    Raises:
        ConfigError: A μ is not positive and finite, or the total is below one per site.
    """
    _check_total(total, len(mu))
    for value in mu:
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise ConfigError(f"every site needs a finite midpoint μ > 0 for the 1/μ rule, got {value!r}")
    shares = proportional_shares([1.0 / m for m in mu], total)
    return largest_remainder(shares, total)


DROP_FLOOR = 1e-4
"""Smallest accuracy drop a placed layer counts with (a layer the hardware does not hurt still runs once)."""


def allocate_sqrt_drop(drops: Sequence[float], total: int) -> tuple[int, ...]:
    """Executions r_i ∝ √d_i from each layer's measured accuracy drop d_i on the hardware, Σ r_i = ``total``.

    Averaging r executions divides the noise variance by r; where a layer's drop grows with its
    noise variance (small noise), its drop at r executions is ≈ d_i / r, and minimising Σ d_i / r_i
    under Σ r_i = n_t gives r_i ∝ √d_i (Lagrange). Drops below `DROP_FLOOR` count as the floor.

    Raises:
        ConfigError: A drop is not finite, or the total is below one per layer.
    """
    _check_total(total, len(drops))
    for value in drops:
        if not (isinstance(value, int | float) and math.isfinite(value)):
            raise ConfigError(f"every layer needs a finite measured drop, got {value!r}")
    shares = proportional_shares([math.sqrt(max(d, DROP_FLOOR)) for d in drops], total)
    return largest_remainder(shares, total)


def uniform_allocation(sites: int, executions: int) -> tuple[int, ...]:
    """``executions`` at every one of ``sites`` sites."""
    executions = check_int(executions, "executions per site", low=1)
    return (executions,) * sites


def retained_fraction(accuracy: float, clean: float, chance: float) -> float:
    """Where ``accuracy`` lies between chance (0) and the clean accuracy (1), floored above 0."""
    span = clean - chance
    if not math.isfinite(accuracy) or span <= 0:
        return 1.0
    return min(max((accuracy - chance) / span, RETAINED_FLOOR), 1.0)


def per_site(sigma: float | Sequence[float], count: int) -> list[float]:
    """One σ per site: a scalar is broadcast."""
    if isinstance(sigma, int | float):
        return [float(sigma)] * count
    values = [float(s) for s in sigma]
    if len(values) != count:
        raise ConfigError(f"{len(values)} σ values for {count} sites")
    return values


def predict_accuracy(curves: Sequence[SiteCurve], executions: Sequence[int], sigma: float | Sequence[float], *,
                     clean: float, chance: float) -> float:
    """The greedy rule's model of network accuracy: chance + (clean − chance)·Π_i q_i(σ_i/√r_i)."""
    product = 1.0
    for curve, count, level in zip(curves, executions, per_site(sigma, len(curves)), strict=True):
        site_clean = curve(0.0)
        product *= retained_fraction(curve(level / math.sqrt(count)), site_clean, chance)
    return chance + (clean - chance) * product


def _lookahead(affordable: int) -> list[int]:
    """Purchase sizes tried per step: 1..8, then growing by half (10, 15, 22, …) up to ``affordable``."""
    sizes, k = [], 1
    while k <= affordable:
        sizes.append(k)
        k = k + 1 if k < 8 else k + k // 2
    if affordable >= 1 and sizes[-1] != affordable:
        sizes.append(affordable)
    return sizes


def allocate_greedy(curves: Sequence[SiteCurve], sigma: float | Sequence[float], budget: float, *,
                    costs: Sequence[float] | None = None, clean: Sequence[float] | None = None,
                    chance: float = 0.1, max_executions: int = 1024) -> tuple[int, ...]:
    """Spend ``budget`` on the executions with the largest predicted gain per cost.

    Model: the network keeps the product of the fractions of accuracy each site retains, so with
    r_i executions the predicted accuracy is chance + (clean − chance)·Π_i q_i(σ/√r_i), where
    q_i is site i's retained fraction read off its own accuracy-vs-σ curve. Its logarithm is a sum
    over sites, so extra executions at one site change only that site's term. Because a logistic
    curve is not concave in r (one more execution may gain nothing while three gain a lot), each
    step looks ahead: for every site and counts k of extra executions that still fit (1…8, then
    growing geometrically, and all that fits), the gain per unit cost of buying k at once; the
    best (site, k) is bought. With unit costs the whole
    budget is spent (Σ r_i = budget); with unequal costs, what remains when nothing fits is unspent.

    Args:
        curves: One predicted-accuracy function of σ per site.
        sigma: The noise level of every site (before averaging): one for all, or one per site.
        budget: Total cost to spend, including the first execution of every site.
        costs: Cost of one execution per site (default 1 each).
        clean: Accuracy of each curve at σ = 0 (default: the curve at 0).
        chance: Accuracy of guessing (1/K).
        max_executions: Upper bound on executions at one site.

    Returns:
        Executions per site, each ≥ 1.

    Raises:
        ConfigError: The budget does not cover one execution per site, or costs are not positive.
    """
    count = len(curves)
    costs = [1.0] * count if costs is None else [float(c) for c in costs]
    if len(costs) != count:
        raise ConfigError(f"{len(costs)} costs for {count} sites")
    if any(not math.isfinite(c) or c <= 0 for c in costs):
        raise ConfigError("every site's execution cost must be finite and > 0")
    if count < 1:
        raise ConfigError("there are no noisy sites to give executions to")
    if budget + 1e-9 < sum(costs):
        raise ConfigError(f"a budget of {budget:g} does not pay for one execution at each of the {count} sites "
                          f"(needs {sum(costs):g}); raise --budget")
    tops = [curve(0.0) if clean is None else clean[i] for i, curve in enumerate(curves)]
    levels = per_site(sigma, count)
    cache: dict[tuple[int, int], float] = {}

    def log_retained(site: int, executions: int) -> float:
        key = (site, executions)
        if key not in cache:
            accuracy = curves[site](levels[site] / math.sqrt(executions))
            cache[key] = math.log(retained_fraction(accuracy, tops[site], chance))
        return cache[key]

    executions = [1] * count
    remaining = budget - sum(costs)
    while True:
        # Best purchase by gain per cost; ties go to the smaller purchase, then the site with
        # fewer executions, then the earlier site.
        best_rank: tuple[float, float, int, int] | None = None
        best_purchase = (0, 0)
        for site in range(count):
            affordable = min(int((remaining + 1e-9) // costs[site]), max_executions - executions[site])
            base = log_retained(site, executions[site])
            for k in _lookahead(affordable):
                rate = (log_retained(site, executions[site] + k) - base) / (k * costs[site])
                rank = (rate, -k * costs[site], -executions[site], -site)
                if best_rank is None or rank > best_rank:
                    best_rank, best_purchase = rank, (site, k)
        if best_rank is None:
            return tuple(executions)
        site, k = best_purchase
        executions[site] += k
        remaining -= k * costs[site]
