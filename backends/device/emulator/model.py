"""The emulated device's hidden truth: its configuration and the analog computation of one RUN.

The model (per column c of a tile, codes normalised to ±1)::

    z_c  = Σ_r w[r, c] · x[r]                                  exact dot product
    z'_c = g_c · z_c · (1 + σm ε1) + o_c + σa ε2                mul-first (or add-first)
    code = clip(round(z'_c / full_scale · adc_max), ±adc_max)   ADC; clipped = saturated

with hidden per-column gain g_c ~ 1 + N(0, gain_spread²), offset o_c ~ N(0, offset_spread²) and
σa scale exp(sigma_add_spread · N(0, 1)) drawn from the seed at power-up, and a temperature that
drifts slowly with use (σa grows by ``drift_per_kelvin`` per kelvin above 25 °C) and, with
``ambient_jitter``, with a room whose temperature moves apart from the chip's use (so a run can tell
temperature from time). Drift with time at any
temperature (``offset_drift_per_s``, ``sigma_add_drift_per_s``) counts from power-up. An aged chip
(``gain_aging``, ``offset_aging``) is the same chip with each column's gain scaled by 1 + N(0, gain_aging²)
and its offset moved by N(0, offset_aging²) since it was new: a calibration made when new is stale on it.
Time is the host's wall clock unless ``seconds_per_vector`` emulates it from the work done, which makes
drift and heating depend on the seed alone.
"""

from __future__ import annotations

import math
import os
import time
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from hil.backends.device.protocol import CAPABILITY_LIMITS, Capabilities
from hil.errors import ConfigError
from hil.noise import ORDERS
from hil.validation import check_choice, check_int, check_keys, check_number, check_size, check_table

AGING_STREAM = 0xA6E
"""Second entry of the seed sequence that draws a chip's aging (gain/offset changes since it was new)."""

AMBIENT_STREAM = 0xA3B
"""Second entry of the seed sequence that draws the room's temperature at each RUN (``ambient_jitter``)."""

MAX_CELLS = 1 << 28
"""Most stored weight cells (rows × cols × slots) an emulator accepts: 512 MiB of int16."""


@dataclass(frozen=True)
class EmulatorConfig:
    """Hidden truth and geometry of an emulated device (TOML keys have the same names).

    Attributes:
        sigma_add: σa, in normalised dot-product units.
        sigma_mul: σm (relative).
        order: ``mul-first`` or ``add-first``.
        seed: Seed of gains, offsets and noise.
        rows: Tile rows.
        cols: Tile columns.
        slots: Tiles held at once.
        dac_bits: Weight/input code resolution.
        adc_bits: Output code resolution.
        full_scale: Dot product mapped to the largest ADC code.
        max_batch: Vectors per RUN.
        max_repeats: Repeats per RUN.
        max_frame: Largest frame body, bytes.
        gain_spread: Std of the per-column gain around 1.
        offset_spread: Std of the per-column offset.
        sigma_add_spread: Relative spread of σa between columns (σa,c = σa · exp(spread · N(0, 1))).
        drift_per_kelvin: Relative σa increase per kelvin above 25 °C.
        offset_drift: Offset change per kelvin above 25 °C (dot-product units).
        heating: Kelvin gained per million MACs (cools back with a 10 s time constant).
        ambient_jitter: Std of the room's temperature around 25 °C, K, drawn afresh at each RUN from a
            stream of its own (0: a steady room). Offsets and σa follow it linearly on both sides of 25 °C.
        offset_drift_per_s: Offset change per second since power-up, at any temperature (dot-product units).
        sigma_add_drift_per_s: Relative σa increase per second since power-up.
        gain_aging: Std of each column's relative gain change since the chip was new (its calibration).
        offset_aging: Std of each column's offset change since the chip was new (dot-product units).
        seconds_per_vector: Emulated time per executed vector, s; 0 follows the host's wall clock. Above 0
            the device's clock (its uptime, heating, cooling and drift with time) moves only with what it
            executed, so a seed gives the same drift on a fast host and a slow one.
    """

    sigma_add: float = 0.0
    sigma_mul: float = 0.0
    order: str = "mul-first"
    seed: int = 0
    rows: int = 256
    cols: int = 64
    slots: int = 16
    dac_bits: int = 8
    adc_bits: int = 12
    full_scale: float = 16.0
    max_batch: int = 1024
    max_repeats: int = 64
    max_frame: int = 4 << 20
    gain_spread: float = 0.0
    offset_spread: float = 0.0
    sigma_add_spread: float = 0.0
    drift_per_kelvin: float = 0.0
    offset_drift: float = 0.0
    heating: float = 0.0
    ambient_jitter: float = 0.0
    offset_drift_per_s: float = 0.0
    sigma_add_drift_per_s: float = 0.0
    gain_aging: float = 0.0
    offset_aging: float = 0.0
    seconds_per_vector: float = 0.0

    def __post_init__(self) -> None:
        for name in ("sigma_add", "sigma_mul", "gain_spread", "offset_spread", "sigma_add_spread",
                     "drift_per_kelvin", "offset_drift", "heating", "ambient_jitter",
                     "offset_drift_per_s", "sigma_add_drift_per_s", "gain_aging", "offset_aging",
                     "seconds_per_vector"):
            check_number(getattr(self, name), f"device {name}", low=0)
        check_choice(self.order, "device order", ORDERS)
        for name, (low, high) in {**CAPABILITY_LIMITS, "seed": (0, 2**63 - 1)}.items():
            check_int(getattr(self, name), f"device {name}", low=low, high=high)
        if not (math.isfinite(self.full_scale) and self.full_scale > 0):
            raise ConfigError(f"device full_scale must be > 0, got {self.full_scale!r}")
        if self.rows * self.cols * self.slots > MAX_CELLS:
            raise ConfigError(f"device rows × cols × slots = {self.rows * self.cols * self.slots:,} cells would need "
                              f"more than {MAX_CELLS * 2 >> 20} MiB of tile memory; use fewer rows, cols or slots")

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str], **overrides: Any) -> EmulatorConfig:
        """Read a device file (``[device]`` table or top level); ``overrides`` win.

        Raises:
            ConfigError: Missing or unreadable file, unknown keys, bad values.
        """
        check_size(Path(path), "device file")
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"device file {path} does not exist; check the --config path") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"device file {path} is not valid TOML ({error}); fix it or drop --config") from None
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"cannot read device file {path}: {error}") from None
        table = data.get("device", data)
        check_keys(check_table(table, f"[device] in {path}"), (f.name for f in fields(cls)), "",
                   where=f" in {path}")
        return cls(**{**table, **{k: v for k, v in overrides.items() if v is not None}})

    def capabilities(self) -> Capabilities:
        """What the device reports in CAPS."""
        return Capabilities(self.rows, self.cols, self.slots, self.dac_bits, self.adc_bits, self.max_batch,
                            self.max_repeats, self.max_frame, self.full_scale)


def with_overrides(config: EmulatorConfig, **values: Any) -> EmulatorConfig:
    """``config`` with the non-None ``values`` replaced."""
    return replace(config, **{k: v for k, v in values.items() if v is not None})


class AnalogArray:
    """The physics of one emulated device: hidden gains and offsets, noise, ADC, heating."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.caps = config.capabilities()
        self.rng = np.random.default_rng(config.seed)
        gains = 1.0 + config.gain_spread * self.rng.standard_normal(config.cols)
        self.gain = gains.astype(np.float64)
        self.offset = config.offset_spread * self.rng.standard_normal(config.cols)
        self.sigma_add_scale = (np.exp(config.sigma_add_spread * self.rng.standard_normal(config.cols))
                                if config.sigma_add_spread else np.ones(config.cols))
        if config.gain_aging or config.offset_aging:
            # a stream of its own: the new chip's gains, offsets and noise stay those of the same seed unaged
            aging = np.random.default_rng([config.seed, AGING_STREAM])
            self.gain = self.gain * (1.0 + config.gain_aging * aging.standard_normal(config.cols))
            self.offset = self.offset + config.offset_aging * aging.standard_normal(config.cols)
        self.heat = 0.0
        self.ambient = np.random.default_rng([config.seed, AMBIENT_STREAM])
        self.room = 0.0  # the room's temperature less 25 °C at the last RUN
        self.executions = 0
        self.powered = self.last_use = self.clock()

    def clock(self) -> float:
        """The device's time, s: emulated from the executions with ``seconds_per_vector``, else the host's."""
        if self.config.seconds_per_vector:
            return self.executions * self.config.seconds_per_vector
        return time.monotonic()

    @property
    def uptime(self) -> float:
        """Seconds since power-up, on the device's clock."""
        return self.clock() - self.powered

    @property
    def temperature(self) -> float:
        """Device temperature, °C (the room's, heated by use that cools off with a 10 s time constant)."""
        now = self.clock()
        self.heat *= math.exp(-(now - self.last_use) / 10.0)
        self.last_use = now
        return 25.0 + self.room + self.heat

    def run(self, tile: np.ndarray, x: np.ndarray, repeats: int) -> tuple[np.ndarray, np.ndarray, float]:
        """ADC codes (repeats × batch × cols), per-vector saturation and the temperature of one RUN."""
        caps = self.caps
        rows, cols = tile.shape
        batch = len(x)
        # integer dot products are exact in float32 while rows·dac_max² < 2²⁴ (8-bit codes: rows ≤ 1040)
        exact32 = rows * caps.dac_max**2 < 2**24
        kind = np.float32 if exact32 else np.float64
        z = (x.astype(kind) @ tile.astype(kind)).astype(np.float64) / caps.dac_max**2  # (batch, cols)
        config = self.config
        if config.ambient_jitter:
            self.room = config.ambient_jitter * float(self.ambient.standard_normal())
        temperature = self.temperature
        warm, uptime = temperature - 25.0, self.last_use - self.powered  # `temperature` set last_use
        sigma_add = config.sigma_add * max(1 + config.drift_per_kelvin * warm + config.sigma_add_drift_per_s * uptime,
                                           0.0)
        gain = self.gain[:cols]
        offset = self.offset[:cols] + config.offset_drift * warm + config.offset_drift_per_s * uptime
        shape = (repeats, batch, cols)
        signal = np.broadcast_to(z * gain, shape)
        mul = 1.0 + self.config.sigma_mul * self.rng.standard_normal(shape) if self.config.sigma_mul else 1.0
        add = sigma_add * self.sigma_add_scale[:cols] * self.rng.standard_normal(shape) if sigma_add else 0.0
        if self.config.order == "mul-first":
            analog = signal * mul + offset + add
        else:
            analog = (signal + offset + add) * mul
        ideal = np.rint(analog / caps.full_scale * caps.adc_max)
        clipped = np.abs(ideal) > caps.adc_max
        codes = np.clip(ideal, -caps.adc_max, caps.adc_max).astype(np.int16)
        self.executions += repeats * batch
        self.heat += self.config.heating * repeats * batch * rows * cols / 1e6
        return codes, clipped.any(axis=(0, 2)), temperature
