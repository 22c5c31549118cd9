"""The noise card: everything a calibration measured that a digital twin needs to reproduce the device.

Per device column k (device units, codes normalised to ±1), the card says::

    code = clip(round_ADC( g_k · z · (1 + σm,k ε1) + o_k + σa,k ε2 ))     mul-first (or add-first)

plus the converters (DAC/ADC bits, full scale = saturation level), the tile geometry and, when the
run shows it, drift of the offset and of σa with temperature and with time.

Per-column σa,k² and σm,k² come from one Gamma GLM per column (as the pooled fit, `estimate.py`),
then are shrunk towards the pooled value by the DerSimonian–Laird random-effects estimate of the
between-column spread τ²: a column is trusted on its own only as far as the columns really differ.
Cochran's Q (χ² with K − 1 degrees of freedom) tests whether they differ at all. The ADC's Δ²/12
is kept apart from σa² so the twin can quantise explicitly instead of adding it as noise.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, fields
from typing import Any

import numpy as np
from scipy import optimize, special, stats

from hil.calibration.estimate import Z95, CalibrationFit
from hil.calibration.measure import Measurement
from hil.errors import ConfigError
from hil.noise import ORDERS
from hil.validation import check_choice, check_int, check_number

HETEROGENEITY_ALPHA = 0.001
"""Columns are said to differ in a noise term when Cochran's Q has p below this."""
DRIFT_T = 3.0
"""A drift slope is recorded as shown when |slope / se| exceeds this, on a normal scale: with the fit's
residual degrees of freedom known, the threshold is the t quantile of the same two-sided tail
(`DRIFT_TAIL`; 4.3 with 8 dof), so a steady device's short run does not record drift more often."""
DRIFT_TAIL = float(stats.norm.sf(DRIFT_T))
"""One-sided tail beyond `DRIFT_T` (0.00135)."""
COLLINEAR = 0.9
"""Above this |correlation| of temperature and time over the runs, drift is fitted on temperature alone."""
MAX_UPTIME = 1e10
"""Device clock stamps at or beyond this (over 300 years of uptime) are a peer's nonsense, not a clock."""


@dataclass(frozen=True)
class ColumnTerm:
    """One noise term per column (σa or σm): pooled value, raw and shrunk per-column values, the test.

    Attributes:
        pooled: The pooled estimate (inverse-variance weighted mean of the columns' variances, as σ).
        raw: Per column, its own estimate.
        shrunk: Per column, shrunk towards ``pooled`` (what the twin uses).
        low: Per column, lower 95 % bound of ``shrunk``.
        high: Per column, upper 95 % bound of ``shrunk``.
        tau: Between-column standard deviation of the variance term (0: columns alike).
        q: Cochran's Q statistic.
        p_value: Its p-value against χ²(K − 1).
    """

    pooled: float
    raw: tuple[float, ...]
    shrunk: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    tau: float
    q: float
    p_value: float

    @property
    def columns_differ(self) -> bool:
        """True when the test says the columns' values differ."""
        return self.p_value < HETEROGENEITY_ALPHA

    def to_dict(self) -> dict[str, Any]:
        """Plain form."""
        return {"pooled": self.pooled, "raw": list(self.raw), "shrunk": list(self.shrunk), "low": list(self.low),
                "high": list(self.high), "tau": self.tau, "q": self.q, "p_value": self.p_value,
                "columns_differ": self.columns_differ}

    @classmethod
    def uniform(cls, value: float, cols: int) -> ColumnTerm:
        """Every column at ``value`` (a profile without per-column estimates)."""
        same = (float(value),) * cols
        return cls(float(value), same, same, same, same, 0.0, 0.0, 1.0)

    @classmethod
    def from_dict(cls, data: Any, name: str, cols: int) -> ColumnTerm:
        """Read the plain form, checking every field.

        Raises:
            ConfigError: A missing or malformed field, or a column count other than ``cols``.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"card.{name} must be a table")
        lists = {}
        for key in ("raw", "shrunk", "low", "high"):
            values = data.get(key)
            if not isinstance(values, list) or len(values) != cols:
                raise ConfigError(f"card.{name}.{key} must list {cols} numbers (one per column)")
            lists[key] = tuple(check_number(v, f"card.{name}.{key}", low=0) for v in values)
        return cls(check_number(data.get("pooled"), f"card.{name}.pooled", low=0), lists["raw"], lists["shrunk"],
                   lists["low"], lists["high"], check_number(data.get("tau", 0.0), f"card.{name}.tau", low=0),
                   check_number(data.get("q", 0.0), f"card.{name}.q", low=0),
                   check_number(data.get("p_value", 1.0), f"card.{name}.p_value", low=0, high=1))


@dataclass(frozen=True)
class Drift:
    """How the offset and σa move with temperature and with time (from the zero level of the calibration run).

    Both are fitted together (one least-squares fit per quantity on temperature and time, each regressor
    only when it varied), so temperature and time effects are told apart as far as the run separates them;
    the standard errors say how far. Where the temperature follows the time closely (|r| > `COLLINEAR`:
    a device heating as it runs) the run cannot separate them, and drift is fitted on temperature alone
    (per-second slopes 0). The card's values hold at the run's mean temperature and mean time.

    Attributes:
        reference: Mean temperature of the run, °C (the card's values hold there).
        span: Temperature range seen, kelvin (0: it never moved; the per-kelvin slopes are then 0).
        offset_per_kelvin: Offset change per kelvin (device units), with ``offset_se``.
        offset_se: Its standard error.
        sigma_add_per_kelvin: Relative σa change per kelvin, with ``sigma_add_se``.
        sigma_add_se: Its standard error.
        duration: Seconds from the first to the last run (0 in cards written before time drift was fitted).
        offset_per_second: Offset change per second at constant temperature, with ``offset_per_second_se``.
        offset_per_second_se: Its standard error.
        sigma_add_per_second: Relative σa change per second at constant temperature.
        sigma_add_per_second_se: Its standard error.
        dof: Residual degrees of freedom of the fit (runs less fitted terms; 0 in cards written before it
            was kept: the normal `DRIFT_T` then stands in for the t quantile).
        middle: Seconds from the start of the measurement to its mean time, where the card's values hold
            (cards written before it was kept read ``duration / 2``).
        uptime: The device's own clock there, s (0: the device reports no running clock). With it a
            later run can tell how much longer the device has been up; without it only the run's own
            seconds count.
        correlation: Correlation of each per-kelvin slope's estimate with the per-second one (the same for
            offset and σa: one design; about −r for temperature and time correlated r over the runs; 0 when
            only one was fitted, and in cards written before it was kept). Moving by both at once needs it.
    """

    reference: float
    span: float
    offset_per_kelvin: float
    offset_se: float
    sigma_add_per_kelvin: float
    sigma_add_se: float
    duration: float = 0.0
    offset_per_second: float = 0.0
    offset_per_second_se: float = 0.0
    sigma_add_per_second: float = 0.0
    sigma_add_per_second_se: float = 0.0
    dof: int = 0
    middle: float = 0.0
    uptime: float = 0.0
    correlation: float = 0.0

    def critical(self, tail: float = DRIFT_TAIL) -> float:
        """Two-sided critical |slope / se| for a one-sided ``tail`` (t with `dof`; normal when unknown).

        ``critical(0.025)`` gives the multiplier of a 95 % interval.
        """
        return float(stats.t.isf(tail, self.dof) if self.dof > 0 else stats.norm.isf(tail))

    def _slopes(self) -> tuple[tuple[float, float], ...]:
        return ((self.offset_per_kelvin, self.offset_se), (self.sigma_add_per_kelvin, self.sigma_add_se),
                (self.offset_per_second, self.offset_per_second_se),
                (self.sigma_add_per_second, self.sigma_add_per_second_se))

    @property
    def shown(self) -> bool:
        """True when any slope stands out of its noise (|t| beyond `critical`)."""
        return _stands_out(self._slopes(), self.critical())

    @property
    def shown_in_time(self) -> bool:
        """True when a per-second slope stands out of its noise."""
        return _stands_out(self._slopes()[2:], self.critical())

    def at(self, temperature: float | None = None, elapsed: float | None = None) -> tuple[float, float]:
        """(offset shift, σa factor) at ``temperature`` °C and ``elapsed`` s after the run's middle.

        None leaves that condition at the calibration's own. The σa factor is floored at 0; these are
        straight lines fitted over the run's span and extrapolate beyond it only as far as drift is linear.
        """
        kelvin = 0.0 if temperature is None else temperature - self.reference
        seconds = 0.0 if elapsed is None else elapsed
        shift = self.offset_per_kelvin * kelvin + self.offset_per_second * seconds
        factor = max(0.0, 1 + self.sigma_add_per_kelvin * kelvin + self.sigma_add_per_second * seconds)
        return shift, factor

    def at_se(self, kelvin: float, seconds: float) -> tuple[float, float]:
        """Standard errors of `at`'s (offset shift, σa factor − 1) ``kelvin`` and ``seconds`` from the card's.

        Both slopes' errors count with their `correlation`: a run whose temperature rose with time fits
        the two slopes anticorrelated, so a move along both partly cancels their errors (or adds them).
        """
        def combined(kelvin_se: float, second_se: float) -> float:
            a, b = kelvin * kelvin_se, seconds * second_se
            return math.sqrt(max(a * a + b * b + 2 * self.correlation * a * b, 0.0))

        return (combined(self.offset_se, self.offset_per_second_se),
                combined(self.sigma_add_se, self.sigma_add_per_second_se))

    def to_dict(self) -> dict[str, Any]:
        """Plain form."""
        data: dict[str, Any] = {item.name: getattr(self, item.name) for item in fields(self)}
        data["shown"] = self.shown
        return data

    @classmethod
    def from_dict(cls, data: Any) -> Drift:
        """Read the plain form (the per-second fields may be absent: cards written before them).

        Raises:
            ConfigError: A missing or malformed field.
        """
        if not isinstance(data, dict):
            raise ConfigError("card.drift must be a table")
        values: dict[str, Any] = {
            item.name: check_number(data.get(item.name, None if item.default is MISSING else item.default),
                                    f"card.drift.{item.name}")
            for item in fields(cls) if item.name != "dof"}  # a field without a default is required
        values["dof"] = check_int(data.get("dof", 0), "card.drift.dof", low=0)
        if "middle" not in data:
            values["middle"] = values["duration"] / 2
        for key in ("span", "duration", "offset_se", "sigma_add_se", "offset_per_second_se",
                    "sigma_add_per_second_se", "middle", "uptime"):
            if values[key] < 0:
                raise ConfigError(f"card.drift.{key} must be ≥ 0, got {values[key]!r}")
        if not -1 <= values["correlation"] <= 1:
            raise ConfigError(f"card.drift.correlation must be within [-1, 1], got {values['correlation']!r}")
        return cls(**values)


def _stands_out(slopes: tuple[tuple[float, float], ...], critical: float) -> bool:
    """True when any (slope, se) has |slope| > ``critical`` · se (slopes without an SE never do)."""
    return any(abs(value) > critical * se for value, se in slopes if se > 0)


@dataclass(frozen=True)
class NoiseCard:
    """What the twin needs to reproduce a device (see the module docstring).

    Attributes:
        rows: Tile rows.
        cols: Tile columns.
        dac_bits: Signed DAC resolution of weight and input codes.
        adc_bits: Signed ADC resolution.
        full_scale: Dot product mapped to the largest ADC code (the saturation level).
        order: ``mul-first`` or ``add-first``.
        gain: Per column gain.
        offset: Per column offset (device units).
        sigma_add: Per column σa (device units, ADC quantisation excluded).
        sigma_mul: Per column σm (relative).
        quantisation_variance: Δ²/12 of the ADC (device units²), apart from σa².
        drift: Drift with temperature and time, when the temperature moved or a time slope stood out.
    """

    rows: int
    cols: int
    dac_bits: int
    adc_bits: int
    full_scale: float
    order: str
    gain: tuple[float, ...]
    offset: tuple[float, ...]
    sigma_add: ColumnTerm
    sigma_mul: ColumnTerm
    quantisation_variance: float
    drift: Drift | None = None

    def __post_init__(self) -> None:
        check_int(self.rows, "card.rows", low=1, high=65535)
        check_int(self.cols, "card.cols", low=1, high=65535)
        check_int(self.dac_bits, "card.dac_bits", low=2, high=16)
        check_int(self.adc_bits, "card.adc_bits", low=2, high=16)
        check_number(self.full_scale, "card.full_scale", low=0)
        if self.full_scale <= 0:
            raise ConfigError(f"card.full_scale must be > 0, got {self.full_scale!r}")
        check_choice(self.order, "card.order", ORDERS)
        for name in ("gain", "offset"):
            values = getattr(self, name)
            if len(values) != self.cols:
                raise ConfigError(f"card.{name} must list {self.cols} numbers (one per column)")
        if any(g <= 0 for g in self.gain):
            raise ConfigError("card.gain must be > 0 in every column")

    @property
    def dac_max(self) -> int:
        """Largest DAC code."""
        return 2 ** (self.dac_bits - 1) - 1

    @property
    def adc_max(self) -> int:
        """Largest ADC code."""
        return 2 ** (self.adc_bits - 1) - 1

    def to_dict(self) -> dict[str, Any]:
        """Plain form (the profile's ``card`` table)."""
        data = {"rows": self.rows, "cols": self.cols, "dac_bits": self.dac_bits, "adc_bits": self.adc_bits,
                "full_scale": self.full_scale, "saturation": self.full_scale, "order": self.order,
                "gain": list(self.gain), "offset": list(self.offset), "sigma_add": self.sigma_add.to_dict(),
                "sigma_mul": self.sigma_mul.to_dict(), "quantisation_variance": self.quantisation_variance}
        if self.drift is not None:
            data["drift"] = self.drift.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Any) -> NoiseCard:
        """Read the plain form, checking every field.

        Raises:
            ConfigError: A missing or malformed field.
        """
        if not isinstance(data, dict):
            raise ConfigError("card must be a table")
        cols = check_int(data.get("cols"), "card.cols", low=1, high=65535)
        per_column = {}
        for name in ("gain", "offset"):
            values = data.get(name)
            if not isinstance(values, list):
                raise ConfigError(f"card.{name} must list one number per column")
            per_column[name] = tuple(check_number(v, f"card.{name}") for v in values)
        drift = data.get("drift")
        return cls(rows=check_int(data.get("rows"), "card.rows", low=1, high=65535), cols=cols,
                   dac_bits=check_int(data.get("dac_bits"), "card.dac_bits", low=2, high=16),
                   adc_bits=check_int(data.get("adc_bits"), "card.adc_bits", low=2, high=16),
                   full_scale=check_number(data.get("full_scale"), "card.full_scale", low=0),
                   order=check_choice(data.get("order", "mul-first"), "card.order", ORDERS),
                   gain=per_column["gain"], offset=per_column["offset"],
                   sigma_add=ColumnTerm.from_dict(data.get("sigma_add"), "sigma_add", cols),
                   sigma_mul=ColumnTerm.from_dict(data.get("sigma_mul"), "sigma_mul", cols),
                   quantisation_variance=check_number(data.get("quantisation_variance", 0.0),
                                                      "card.quantisation_variance", low=0),
                   drift=None if drift is None else Drift.from_dict(drift))


# -- building a card from a calibration run ------------------------------------------------------

def _shrink(values: np.ndarray, variances: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float, float, float]:
    """DerSimonian–Laird shrinkage of per-column estimates towards their pool: (shrunk, se, pool, τ², Q, p)."""
    variances = np.maximum(variances, 1e-300)
    weights = 1.0 / variances
    centre = float(np.sum(weights * values) / np.sum(weights))
    q = float(np.sum(weights * (values - centre) ** 2))
    df = len(values) - 1
    denominator = float(np.sum(weights) - np.sum(weights**2) / np.sum(weights))
    tau2 = max(0.0, (q - df) / denominator) if df > 0 and denominator > 0 else 0.0
    keep = tau2 / (tau2 + variances)
    shrunk = centre + keep * (values - centre)
    se = np.sqrt(keep * variances)  # posterior sd (the pool's own error, over K columns, is left out)
    p = float(stats.chi2.sf(q, df)) if df > 0 else 1.0
    return shrunk, se, centre, tau2, q, p


def _sigma_term(variance_values: np.ndarray, variance_se: np.ndarray) -> ColumnTerm:
    """A σ per column from per-column variance estimates, shrunk towards their pool."""
    shrunk, se, centre, tau2, q, p = _shrink(variance_values, variance_se**2)
    root = np.sqrt(np.maximum(shrunk, 0.0))
    low = np.sqrt(np.maximum(shrunk - Z95 * se, 0.0))
    high = np.sqrt(np.maximum(shrunk + Z95 * se, 0.0))
    raw = np.sqrt(np.maximum(variance_values, 0.0))
    return ColumnTerm(math.sqrt(max(centre, 0.0)), tuple(raw.tolist()), tuple(root.tolist()), tuple(low.tolist()),
                      tuple(high.tolist()), math.sqrt(tau2), q, p)


def quantised_normal(values: np.ndarray, lsb: float) -> tuple[float, float, float, float]:
    """Maximum-likelihood (mean, σ) of a normal seen through an ADC of step ``lsb``: (μ, σ, se μ, se σ).

    Each sample is a code c = round(y / lsb); its likelihood is the normal's mass on
    [(c − ½)·lsb, (c + ½)·lsb]. Unlike σ² = S² − Δ²/12 (Sheppard), this stays unbiased when σ is
    below an ADC step, where how the grid falls relative to the mean changes the sample variance.
    """
    codes, counts = np.unique(np.rint(np.asarray(values) / lsb).astype(np.int64), return_counts=True)
    lower, upper = (codes - 0.5) * lsb, (codes + 0.5) * lsb
    mean0 = float(np.sum(codes * counts) / counts.sum() * lsb)
    spread0 = math.sqrt(max(float(np.sum(counts * (codes * lsb - mean0) ** 2) / counts.sum()) - lsb**2 / 12,
                            (lsb / 4) ** 2))

    def interval_terms(theta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        # σ, each step's ends a and b in σ units, and the normal's mass Φ(b) − Φ(a) on it
        mean, sigma = theta[0], math.exp(theta[1])
        a, b = (lower - mean) / sigma, (upper - mean) / sigma
        return sigma, a, b, np.maximum(special.ndtr(b) - special.ndtr(a), 1e-300)

    def negative_log_likelihood(theta: np.ndarray) -> float:
        return -float(np.sum(counts * np.log(interval_terms(theta)[3])))

    def value_and_gradient(theta: np.ndarray) -> tuple[float, np.ndarray]:
        # −Σ n log(Φ(b) − Φ(a)) and its derivatives in μ and log σ, from one evaluation of the terms
        sigma, a, b, mass = interval_terms(theta)
        density_a, density_b = _PDF_SCALE * np.exp(-a * a / 2), _PDF_SCALE * np.exp(-b * b / 2)
        weights = counts / mass
        return -float(np.sum(counts * np.log(mass))), np.array(
            [float(np.sum(weights * (density_b - density_a))) / sigma,
             float(np.sum(weights * (b * density_b - a * density_a)))])

    result = optimize.minimize(value_and_gradient, np.array([mean0, math.log(spread0)]), jac=True, method="BFGS")
    mean, sigma = float(result.x[0]), math.exp(float(result.x[1]))
    hessian = _hessian(negative_log_likelihood, result.x)
    try:
        cov = np.linalg.inv(hessian)
        mean_se, log_sigma_se = math.sqrt(max(cov[0, 0], 0.0)), math.sqrt(max(cov[1, 1], 0.0))
    except np.linalg.LinAlgError:
        mean_se, log_sigma_se = math.inf, math.inf
    return mean, sigma, mean_se, sigma * log_sigma_se


_PDF_SCALE = 1.0 / math.sqrt(2.0 * math.pi)


def _hessian(function: Any, x: np.ndarray) -> np.ndarray:
    """Central-difference Hessian of ``function`` at ``x``."""
    step = 1e-4 * np.maximum(np.abs(x), 1.0)
    size = len(x)
    hessian = np.empty((size, size))
    for i in range(size):
        for j in range(size):
            ei, ej = np.eye(size)[i] * step[i], np.eye(size)[j] * step[j]
            hessian[i, j] = (function(x + ei + ej) - function(x + ei - ej) - function(x - ei + ej)
                             + function(x - ei - ej)) / (4 * step[i] * step[j])
    return hessian


def _per_column_sigmas(measurement: Measurement, fit: CalibrationFit) -> tuple[np.ndarray, ...]:
    """(σa², se, σm², se) per column from quantised-normal fits at the zero and the top level.

    σa,k is the zero level's σ; the top level's σ² minus σa,k², over (g_k z_top)², is σm,k² (the variance
    model's two ends, the design's D-optimal levels).
    """
    zero, top = measurement.samples[0], measurement.samples[-1]
    u_top = (fit.columns.gain * measurement.z[-1]) ** 2
    cols = zero.shape[1]
    a, a_se, b, b_se = (np.empty(cols) for _ in range(4))
    for k in range(cols):
        _, sigma0, _, se0 = quantised_normal(zero[:, k], measurement.lsb)
        _, sigma1, _, se1 = quantised_normal(top[:, k], measurement.lsb)
        a[k], a_se[k] = sigma0**2, 2 * sigma0 * se0
        b[k] = (sigma1**2 - sigma0**2) / u_top[k] if u_top[k] > 0 else 0.0
        b_se[k] = math.hypot(2 * sigma1 * se1, a_se[k]) / u_top[k] if u_top[k] > 0 else math.inf
    return a, a_se, b, b_se


def _slopes(regressors: list[np.ndarray], responses: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Least-squares slopes of the response columns on the (centred) regressors together.

    Returns:
        (slopes, covariance, correlation): slopes[i, j] of response j on regressor i, covariance[i] the
        covariance of (slopes[i, 0], slopes[i, 1], …) across the responses, and correlation[i, k] that of
        the estimates of slopes[i, j] and slopes[k, j] (the same for every response: one design); None
        without a residual degree of freedom or with a singular design.
    """
    design = np.column_stack([np.ones(len(responses)), *(r - r.mean() for r in regressors)])
    if len(responses) <= design.shape[1]:
        return None
    try:
        unscaled = np.linalg.inv(design.T @ design)
    except np.linalg.LinAlgError:
        return None
    beta = unscaled @ design.T @ responses
    residual = responses - design @ beta
    residual_covariance = residual.T @ residual / (len(responses) - design.shape[1])
    block = unscaled[1:, 1:]
    scale = np.sqrt(np.diagonal(block))
    return beta[1:], np.diagonal(block)[:, None, None] * residual_covariance[None], block / np.outer(scale, scale)


def _quantised_moments(mean: np.ndarray, sigma: np.ndarray, lsb: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of round(y / lsb) · lsb for y ~ N(mean, sigma²), per element (exact sum over the codes)."""
    low = int(np.floor(float(np.min(mean - 8 * sigma)) / lsb)) - 1
    high = int(np.ceil(float(np.max(mean + 8 * sigma)) / lsb)) + 1
    levels = np.arange(low, high + 1)[:, None] * lsb
    mass = (special.ndtr((levels + lsb / 2 - mean) / sigma) - special.ndtr((levels - lsb / 2 - mean) / sigma))
    first = np.sum(levels * mass, axis=0)
    return first, np.sum(levels**2 * mass, axis=0) - first**2


def _adc_jacobian(mean: np.ndarray, sigma_squared: np.ndarray, lsb: float) -> np.ndarray:
    """How the ADC passes a small offset shift a and a relative σa change r on to what the run reads.

    Returns:
        2 × 2: rows the column-averaged mean code and sample variance, columns d/da and d/dr, at each
        column's offset and σa² (exact sums over the codes). Without an ADC it is [[1, 0], [0, 2 σa²]];
        σa 0.4 LSB near a code moves the mean 0.95× and S² 1.25×, and each reads a little of the other.
    """
    sigma = np.sqrt(np.maximum(sigma_squared, 1e-300))
    shift, step = 1e-3 * lsb, 0.01
    by_offset = [np.array(_quantised_moments(mean + sign * shift, sigma, lsb)) for sign in (1, -1)]
    by_sigma = [np.array(_quantised_moments(mean, sigma * (1 + sign * step), lsb)) for sign in (1, -1)]
    return np.column_stack([np.mean(by_offset[0] - by_offset[1], axis=1) / (2 * shift),
                            np.mean(by_sigma[0] - by_sigma[1], axis=1) / (2 * step)])


def run_middle(measurement: Measurement) -> tuple[float, float]:
    """When the zero level's runs were made, on average: (seconds into the measurement, device clock).

    The seconds count on the device's clock where it ticks, else on the host's (`run_seconds`), so they
    share an axis with the card's slopes and duration.

    The device clock is 0 when the device reports none that runs (every RUN stamped alike, or none recorded).
    """
    runs = np.unique(measurement.order[0])
    middle = float(run_seconds(measurement, runs).mean())
    uptime = float(measurement.clock[runs].mean()) if device_clock_ticks(measurement, runs) else 0.0
    return middle, uptime


def device_clock_ticks(measurement: Measurement, run_ids: np.ndarray) -> bool:
    """Whether every RUN, ``run_ids`` among them, carries a usable stamp of the device's own clock, each later
    than the one before.

    A peer's timestamps that are NaN, negative or beyond `MAX_UPTIME`, or that do not increase from RUN to
    RUN (no clock, one too coarse to tell two RUNs apart, a device restarted mid-run), give no clock to
    time the runs by.
    """
    clock = measurement.clock
    return (len(clock) > max(1, int(run_ids.max())) and bool(np.all(np.isfinite(clock)))
            and float(np.min(clock)) >= 0 and float(np.max(clock)) < MAX_UPTIME and bool(np.all(np.diff(clock) > 0)))


def run_seconds(measurement: Measurement, run_ids: np.ndarray) -> np.ndarray:
    """When each of ``run_ids`` ran, s: on the device's clock where it ticks, else on the host's.

    The device's clock is the time its drift follows; the host's adds the link's latency and any pause
    between RUNs that the device did not see (or, on an emulator with ``seconds_per_vector``, is not its time).
    """
    if device_clock_ticks(measurement, run_ids):
        return measurement.clock[run_ids] - float(measurement.clock[0])
    times = measurement.times
    return times[run_ids] if len(times) > run_ids.max() else np.zeros(len(run_ids))


def run_temperature(measurement: Measurement) -> float:
    """Mean temperature of the zero level's runs (°C), where the card's σa and drift hold; NaN if not recorded."""
    runs = np.unique(measurement.order[0])
    temperatures = measurement.temperatures
    return float(temperatures[runs].mean()) if len(runs) and len(temperatures) > runs.max() else math.nan


@dataclass(frozen=True)
class DriftFit:
    """A drift fit and where it puts σa against the σa² pooled over its run.

    Attributes:
        drift: The slopes.
        sigma_factor: σa² at the run's middle over the σa² the fit was given (below 1 where the drift
            spread σa over the run or a moving offset read as noise in the pooled σa²).
    """

    drift: Drift
    sigma_factor: float = 1.0

    def middle(self, pooled: np.ndarray) -> np.ndarray:
        """σa² at the run's middle from the σa² the fit was given."""
        return pooled * self.sigma_factor


NEWTON_STEPS = 30
"""Newton steps `_read_through_adc` takes before it calls a run's moments unmatched (5 or fewer in practice)."""
SIGMA_FACTOR_RANGE = (0.02, 50.0)
"""σa factors a run may read back as, relative to the card's σa: beyond, the run is broken, not drifting."""


def _read_through_adc(means: np.ndarray, squares: np.ndarray, offsets: np.ndarray, sigma_squared: np.ndarray,
                      lsb: float) -> np.ndarray:
    """Per run, the offset shift a and σa factor s whose quantised moments are what the run read.

    ``means`` are the runs' mean codes less the mean of ``offsets``, ``squares`` their within-run sample
    variances, both averaged over the columns; each column is N(offset + a, s² σ²) through the ADC. Solved
    exactly (Newton on the 2 × 2 system, `_adc_jacobian` at the current point) rather than linearised once:
    a σa that moves ±15 % over the runs bends the ADC's response enough to read the offset slope 8 % low.

    Returns:
        (runs, 2): a and s per run; NaN where the moments cannot be matched.
    """
    sigma = np.sqrt(np.maximum(sigma_squared, 1e-300))
    centre = float(np.mean(offsets))
    reach = 4 * lsb + 8 * float(np.max(sigma))  # an offset shift beyond this reads no column's noise
    solved = np.full((len(means), 2), np.nan)
    for run, (mean, square) in enumerate(zip(means, squares, strict=True)):
        if not (np.isfinite(mean) and np.isfinite(square) and square > 0 and abs(mean) < reach):
            continue  # no σa gives a variance ≤ 0; a shift out of reach is a broken run, not drift
        point = np.array([mean, 1.0])
        for _ in range(NEWTON_STEPS):
            code, variance = _quantised_moments(offsets + point[0], sigma * point[1], lsb)
            residual = np.array([np.mean(code) - centre - mean, np.mean(variance) - square])
            jacobian = _adc_jacobian(offsets + point[0], sigma_squared * point[1] ** 2, lsb)
            jacobian[:, 1] /= point[1]  # per unit of s, not of s's relative change
            try:
                step = np.linalg.solve(jacobian, residual)
            except np.linalg.LinAlgError:
                break
            point = np.array([point[0] - step[0], max(point[1] - step[1], 0.5 * point[1])])
            if not (abs(point[0]) < reach and SIGMA_FACTOR_RANGE[0] < point[1] < SIGMA_FACTOR_RANGE[1]):
                break  # left the box the moments can come from: unmatched
            if abs(step[0]) < 1e-9 * lsb and abs(step[1]) < 1e-9:
                solved[run] = point
                break
    return solved


def fit_drift(measurement: Measurement, fit: CalibrationFit, sigma_add_squared: np.ndarray) -> DriftFit | None:
    """Offset and σa vs temperature and time from the zero level's runs, whether or not they moved.

    Each run's mean code and sample variance are read back through the ADC to the offset shift and σa
    factor that give them (`_read_through_adc`: below one ADC step a straight read of the mean is 5 % low
    and of the variance 25 % high, and each reads a little of the other); those are fitted on temperature
    and time together by least squares.

    Args:
        measurement: The calibration run.
        fit: Its fit (per-column offsets).
        sigma_add_squared: Per column σa² (the card's, fitted through the ADC) the runs' σa factors
            multiply; their spread over the columns shapes the ADC's response.

    Returns:
        The fitted slopes (0 with SE 0 for a condition that never varied; σa's relative to σa at the run's
        middle) and σa² there against ``sigma_add_squared``; None when the run cannot give them (fewer than
        3 zero-level runs read back, no temperature or time recorded).
    """
    temperatures = measurement.temperatures
    zero, runs = measurement.samples[0], measurement.order[0]
    run_ids = np.unique(runs)
    if len(run_ids) < 3 or len(temperatures) <= run_ids.max():
        return None
    centred = zero - fit.columns.offset[None, :]
    means = np.array([centred[runs == r].mean() for r in run_ids])
    squares = np.array([np.mean(np.var(zero[runs == r], axis=0, ddof=1)) if np.sum(runs == r) > 1 else np.nan
                        for r in run_ids])  # within a run, so a drifting offset does not count as noise
    read = _read_through_adc(means, squares, fit.columns.offset, np.asarray(sigma_add_squared, dtype=np.float64),
                             measurement.lsb)
    keep = np.all(np.isfinite(read), axis=1)
    temps = temperatures[run_ids]
    seconds = run_seconds(measurement, run_ids)
    if keep.sum() < 3:
        return None
    conditions = {name: values for name, values in (("kelvin", temps), ("second", seconds))
                  if float(np.ptp(values[keep])) > 0}
    if len(conditions) == 2 and abs(np.corrcoef(temps[keep], seconds[keep])[0, 1]) > COLLINEAR:
        del conditions["second"]  # a device heating as it runs: the run cannot tell time from temperature
    if not conditions:
        return None
    regressors = [values[keep] - values[keep].mean() for values in conditions.values()]
    middle, uptime = run_middle(measurement)
    at_middle = float(np.mean(read[keep, 1]))  # the intercept on centred regressors: s at the mean conditions
    fitted = _slopes(regressors, read[keep])
    per: dict[str, tuple[float, float, float, float]] = {}  # condition → offset slope, se, σa slope, se
    if fitted is not None:
        for name, slope, covariance in zip(conditions, *fitted[:2], strict=True):
            spread = np.sqrt(np.maximum(np.diagonal(covariance), 0.0))
            per[name] = (float(slope[0]), float(spread[0]), float(slope[1]) / at_middle, float(spread[1]) / at_middle)
    kelvin, second = per.get("kelvin", (0.0,) * 4), per.get("second", (0.0,) * 4)
    correlation = float(np.clip(fitted[2][0, 1], -1, 1)) if fitted is not None and len(per) == 2 else 0.0
    drift = Drift(reference=float(temps.mean()), span=float(np.ptp(temperatures)),
                  offset_per_kelvin=kelvin[0], offset_se=kelvin[1],
                  sigma_add_per_kelvin=kelvin[2], sigma_add_se=kelvin[3], duration=float(np.ptp(seconds)),
                  offset_per_second=second[0], offset_per_second_se=second[1],
                  sigma_add_per_second=second[2], sigma_add_per_second_se=second[3],
                  dof=max(int(keep.sum()) - 1 - len(conditions), 0) if per else 0,
                  middle=max(middle, 0.0), uptime=uptime,
                  correlation=correlation)
    return DriftFit(drift, at_middle**2 if per else 1.0)


def measure_drift(measurement: Measurement, fit: CalibrationFit, sigma_add_squared: np.ndarray) -> DriftFit | None:
    """The card's drift: `fit_drift` when the temperature moved or a per-second slope stands out.

    Returns:
        None for a device steady over the run (nothing the twin should reproduce).
    """
    fitted = fit_drift(measurement, fit, sigma_add_squared)
    if fitted is None:
        return None
    drift = fitted.drift
    return fitted if drift.offset_se > 0 or drift.sigma_add_se > 0 or drift.shown_in_time else None


def build_card(measurement: Measurement, fit: CalibrationFit, capabilities: dict[str, Any], order: str) -> NoiseCard:
    """The noise card of one calibration run."""
    a, a_se, b, b_se = _per_column_sigmas(measurement, fit)
    drifted = measure_drift(measurement, fit, a)
    if drifted is not None:  # the card's σa holds at the run's middle, as its drift does (σm is a difference
        a, a_se = drifted.middle(a), drifted.middle(a_se)  # of two levels: unaffected)
    sigma_add, sigma_mul = _sigma_term(a, a_se), _sigma_term(b, b_se)
    return NoiseCard(rows=int(capabilities["rows"]), cols=int(capabilities["cols"]),
                     dac_bits=int(capabilities["dac_bits"]), adc_bits=int(capabilities["adc_bits"]),
                     full_scale=float(capabilities["full_scale"]), order=order,
                     gain=tuple(fit.columns.gain.tolist()), offset=tuple(fit.columns.offset.tolist()),
                     sigma_add=sigma_add, sigma_mul=sigma_mul, quantisation_variance=fit.quantisation,
                     drift=None if drifted is None else drifted.drift)
