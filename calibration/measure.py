"""Run a calibration plan on a device: load the known tile, run every level, keep every sample."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from hil.backends.device.driver import Driver
from hil.calibration.design import Plan
from hil.errors import ConfigError

SLOT = 0


@dataclass(frozen=True)
class Measurement:
    """Raw calibration data.

    Attributes:
        plan: The realised design.
        samples: One array per level, shape (n_level, cols), in dot-product units (code × LSB).
        order: Per level, the run index (time order) of each sample row.
        temperatures: Device temperature of each RUN, in run order.
        times: Host seconds from the start of the measurement to each RUN's reply, in run order (any driver
            has a clock here, whatever its devices report); empty when not recorded.
        clock: The device's own clock (the RUN reply's timestamp, s) at each RUN, in run order; empty when
            not recorded. It tells how long a device had been up, which the host's clock cannot.
        lsb: One ADC step in dot-product units (full_scale / adc_max).
        identity: Device identity.
        seconds: Device time used.
        saturated: Per level, how many RUN vectors had a saturated output (in any repeat).
        vectors: Per level, how many RUN vectors were sent.
    """

    plan: Plan
    samples: tuple[np.ndarray, ...]
    order: tuple[np.ndarray, ...]
    temperatures: np.ndarray
    lsb: float
    identity: str
    seconds: float
    saturated: tuple[int, ...] = ()
    vectors: tuple[int, ...] = ()
    times: np.ndarray = field(default_factory=lambda: np.zeros(0))
    clock: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def z(self) -> np.ndarray:
        """Exact dot product of each level."""
        return np.array([level.z for level in self.plan.levels])


def _chunk(caps, cols: int) -> tuple[int, int]:  # noqa: ANN001
    repeats = max(1, min(caps.max_repeats, 64))
    batch = max(1, min(caps.max_batch, (caps.max_frame - 256) // (2 * cols * repeats)))
    return batch, repeats


def measure(driver: Driver, plan: Plan, *, budget_s: float | None = None,
            progress: Callable[[int, int], None] | None = None) -> Measurement:
    """Run ``plan`` on ``driver`` in interleaved rounds.

    Args:
        driver: An open device driver.
        plan: Levels and sample counts (from `hil.calibration.design.realise`).
        budget_s: Device time allowed; the design is checked against it after a probe run.
        progress: Called with (samples done, samples total).

    Raises:
        ConfigError: The budget is too small for the design (nothing is written then).
    """
    caps = driver.capabilities()
    lsb = caps.full_scale / caps.adc_max
    tile = np.full((plan.rows, plan.cols), caps.dac_max, dtype=np.int16)
    started = time.monotonic()
    driver.load_tile(SLOT, tile)
    batch, repeats = _chunk(caps, plan.cols)
    per_run = batch * repeats
    total = sum(level.samples for level in plan.levels)
    if budget_s is not None:
        probe_started = time.monotonic()
        driver.run(SLOT, np.zeros((batch, plan.rows), dtype=np.int16), repeats)
        per_sample = (time.monotonic() - probe_started) / per_run
        needed = per_sample * total
        if needed > budget_s:
            affordable = int(budget_s / per_sample)
            raise ConfigError(f"the design needs ≈ {needed:.1f} s of device time but --budget-s is {budget_s:g}; "
                              f"raise --budget-s or lower --samples to ≤ {affordable}")
    collected: list[list[np.ndarray]] = [[] for _ in plan.levels]
    order: list[list[np.ndarray]] = [[] for _ in plan.levels]
    temperatures: list[float] = []
    times: list[float] = []
    clock: list[float] = []
    saturated = [0] * len(plan.levels)
    sent = [0] * len(plan.levels)
    run_index = 0
    done = 0
    rounds = plan.design.rounds
    for round_index in range(rounds):
        for level_index, level in enumerate(plan.levels):
            share = level.samples * (round_index + 1) // rounds - level.samples * round_index // rounds
            while share > 0:
                vectors = min(batch, math.ceil(share / repeats))
                x = np.full((vectors, plan.rows), level.code, dtype=np.int16)
                reply = driver.run(SLOT, x, repeats)
                values = reply.codes.reshape(-1, plan.cols)[:share].astype(np.float64) * lsb
                collected[level_index].append(values)
                order[level_index].append(np.full(len(values), run_index))
                temperatures.append(reply.temperature)
                times.append(time.monotonic() - started)
                clock.append(reply.timestamp)
                saturated[level_index] += int(reply.saturated.sum())
                sent[level_index] += vectors
                run_index += 1
                share -= len(values)
                done += len(values)
                if progress is not None:
                    progress(done, total)
    return Measurement(plan, tuple(np.concatenate(c) for c in collected), tuple(np.concatenate(o) for o in order),
                       np.array(temperatures), lsb, driver.identity,
                       time.monotonic() - started, tuple(saturated), tuple(sent), np.array(times),
                       np.array(clock))
