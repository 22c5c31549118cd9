"""σ grids for sweeps: the paper's defaults and a small parser for user grids."""

from __future__ import annotations

import math

from hil.errors import ConfigError

NOISE_KINDS = ("add", "mul", "mixed")


def log_grid(low: float, high: float, count: int) -> tuple[float, ...]:
    """``count`` log-spaced values from ``low`` to ``high`` (both > 0, ends included)."""
    if count == 1:
        return (float(low),)
    step = (math.log10(high) - math.log10(low)) / (count - 1)
    return tuple(float(10 ** (math.log10(low) + i * step)) for i in range(count))


def linear_grid(low: float, high: float, count: int) -> tuple[float, ...]:
    """``count`` evenly spaced values from ``low`` to ``high`` (ends included)."""
    if count == 1:
        return (float(low),)
    return tuple(float(low + i * (high - low) / (count - 1)) for i in range(count))


def default_sigmas(noise: str, global_sweep: bool) -> tuple[float, ...]:
    """Grids of the paper's code: global 1e-2..1e2 (17 log points); per site additive/mixed
    1e-2..1e10 (4 per decade, 49 points); multiplicative 0..2 linear (21 points)."""
    if global_sweep:
        return log_grid(1e-2, 1e2, 17)
    if noise == "mul":
        return linear_grid(0.0, 2.0, 21)
    return log_grid(1e-2, 1e10, 49)


def parse_sigmas(text: str) -> tuple[float, ...]:
    """Parse ``0.1,0.5,1`` or ``log:1e-2:1e2:17`` or ``lin:0:2:21`` into a sorted σ tuple.

    Raises:
        ConfigError: Malformed text, negative or non-finite σ, log grid touching 0.
    """
    form = "use 0.1,0.5,1 or log:LOW:HIGH:COUNT or lin:LOW:HIGH:COUNT"
    kind = text.split(":", 1)[0] if text.startswith(("log:", "lin:")) else "list"
    try:
        if kind == "list":
            values = tuple(float(item) for item in text.split(",") if item.strip())
        else:
            _, low, high, count = text.split(":")
            low_v, high_v, count_v = float(low), float(high), int(count)
    except ValueError:
        raise ConfigError(f"bad σ grid {text!r}; {form}") from None
    if kind != "list":
        if count_v < 1 or not low_v < high_v:
            raise ConfigError(f"bad σ grid {text!r}: need LOW < HIGH and COUNT ≥ 1; {form}")
        if kind == "log" and low_v <= 0:
            raise ConfigError(f"bad σ grid {text!r}: a log grid needs LOW > 0; {form}")
        values = log_grid(low_v, high_v, count_v) if kind == "log" else linear_grid(low_v, high_v, count_v)
    if not values or any(not math.isfinite(v) or v < 0 for v in values):
        raise ConfigError(f"bad σ grid {text!r}: σ must be finite and ≥ 0; {form}")
    return tuple(sorted(set(values)))
