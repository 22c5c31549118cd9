"""The calibration measurement design: which output levels, how many samples each.

For the variance model v(z) = σa² + σm²·(g z)² a D-optimal design puts half the samples at z = 0
and half at the largest level (≈ 70 % of the ADC full scale, to stay clear of saturation); a few
intermediate levels with a small share of the samples make lack of fit visible.

Levels are realised with one known tile: every weight code at +dac_max, so every column computes
z = rows_used · x_code / dac_max for an input vector with all codes equal to x_code. The exact z
of each level follows from the integer codes actually sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hil.backends.device.protocol import Capabilities
from hil.errors import ConfigError
from hil.validation import check_int


@dataclass(frozen=True)
class CalibrationDesign:
    """What to measure.

    Attributes:
        samples: Total executions (vector runs), each giving one value per column.
        top: Largest level as a fraction of the ADC full scale.
        intermediate: Levels between 0 and ``top`` (for lack of fit).
        intermediate_share: Fraction of the samples spent on them.
        rounds: The design is run in this many interleaved rounds (drift does not alias to levels).
    """

    samples: int = 10_000
    top: float = 0.7
    intermediate: int = 4
    intermediate_share: float = 0.1
    rounds: int = 10

    def __post_init__(self) -> None:
        check_int(self.samples, "--samples", low=40)
        if not 0 < self.top <= 1:
            raise ConfigError(f"the top level must be in (0, 1] of full scale, got {self.top!r}")
        if self.intermediate < 0 or not 0 <= self.intermediate_share < 1:
            raise ConfigError("intermediate levels must be ≥ 0 and their share in [0, 1)")
        if self.rounds < 1:
            raise ConfigError("rounds must be ≥ 1")

    def fractions(self) -> list[float]:
        """Levels as fractions of ``top``: 0, the intermediates, 1."""
        steps = [(i + 1) / (self.intermediate + 1) for i in range(self.intermediate)]
        return [0.0, *steps, 1.0]

    def counts(self) -> list[int]:
        """Samples per level (same order as `fractions`), summing to ``samples``."""
        inner = round(self.samples * self.intermediate_share) if self.intermediate else 0
        each = inner // self.intermediate if self.intermediate else 0
        ends = self.samples - each * self.intermediate
        return [ends - ends // 2, *([each] * self.intermediate), ends // 2]

    def to_dict(self) -> dict[str, float]:
        """JSON/TOML-ready form."""
        return {"samples": self.samples, "top": self.top, "intermediate": self.intermediate,
                "intermediate_share": self.intermediate_share, "rounds": self.rounds}


@dataclass(frozen=True)
class Level:
    """One realised level: the input code sent and the exact dot product it gives."""

    code: int
    z: float
    samples: int


@dataclass(frozen=True)
class Plan:
    """A design realised on a device's capabilities."""

    design: CalibrationDesign
    rows: int
    cols: int
    levels: tuple[Level, ...] = field(default_factory=tuple)


def realise(design: CalibrationDesign, caps: Capabilities) -> Plan:
    """Input codes for each level on a device (all tile rows, all columns, weights at +dac_max).

    Raises:
        ConfigError: The device cannot reach two distinct levels.
    """
    rows, cols = caps.rows, caps.cols
    per_code = rows / caps.dac_max  # z of one input code step with every weight at +dac_max
    top_code = min(caps.dac_max, math.floor(design.top * caps.full_scale / per_code))
    if top_code < 1:
        raise ConfigError(f"the device's full scale {caps.full_scale:g} is below one input step "
                          f"({per_code:g}); calibration needs a larger full scale or fewer rows")
    levels = []
    for fraction, count in zip(design.fractions(), design.counts(), strict=True):
        code = round(fraction * top_code)
        levels.append(Level(code, code * per_code, count))
    merged: dict[int, Level] = {}
    for level in levels:  # coarse DACs can map two fractions to one code
        if level.code in merged:
            old = merged[level.code]
            merged[level.code] = Level(old.code, old.z, old.samples + level.samples)
        else:
            merged[level.code] = level
    if len(merged) < 2:
        raise ConfigError("the device resolves fewer than two calibration levels")
    return Plan(design, rows, cols, tuple(sorted(merged.values(), key=lambda lv: lv.code)))
