"""Does a steady chip read as steady? The drift fit's t statistics on an emulator that does not drift.

Runs N seeded calibrations (default 500 × 4,000 samples, 64 columns, in-process emulator: σa 0.05,
σm 0.03, 8-bit DAC/ADC, no drift, no heating) and fits the card's drift on each, recorded or not. Under
no drift each per-second slope over its SE follows Student's t with the fit's residual degrees of freedom
(8 for the usual 10 zero-level runs): the script prints each statistic's sd against t's (with a bootstrap
95 % interval over the seeds), a Kolmogorov–Smirnov p against t, how often |t| passes the record
threshold against the nominal two-sided rate, and how often the card records time drift.

    python benchmarks/drift_null.py [--runs 500] [--samples 4000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import stats

from hil.backends.device.driver import AmvmDriver
from hil.backends.device.emulator import DeviceEmulator, EmulatorConfig, LoopbackTransport
from hil.calibration.card import DRIFT_TAIL, build_card, fit_drift
from hil.calibration.design import CalibrationDesign, realise
from hil.calibration.estimate import estimate
from hil.calibration.measure import measure

TRUTH = {"sigma_add": 0.05, "sigma_mul": 0.03, "dac_bits": 8, "adc_bits": 8, "gain_spread": 0.05,
         "offset_spread": 0.02}


def steady_fit(seed: int, samples: int) -> tuple[float, float, int, bool]:
    """One steady calibration: (offset t, σa t, residual dof, card records time drift)."""
    emulator = DeviceEmulator(EmulatorConfig(**TRUTH, seed=seed))
    driver = AmvmDriver(LoopbackTransport(emulator), timeout=0.5)
    caps = driver.capabilities()
    measurement = measure(driver, realise(CalibrationDesign(samples=samples), caps))
    fit = estimate(measurement)
    card = build_card(measurement, fit, caps.to_dict(), "mul-first")
    fitted = fit_drift(measurement, fit, np.square(np.asarray(card.sigma_add.raw)))
    if fitted is None:
        raise SystemExit("the run gave no drift fit (fewer than 3 zero-level runs?); raise --samples")
    drift = fitted.drift
    return (drift.offset_per_second / drift.offset_per_second_se,
            drift.sigma_add_per_second / drift.sigma_add_per_second_se, drift.dof,
            card.drift is not None and card.drift.shown_in_time)


def _bootstrap_sd(values: np.ndarray, rounds: int = 1000) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    sds = [rng.choice(values, len(values)).std(ddof=1) for _ in range(rounds)]
    return float(np.percentile(sds, 2.5)), float(np.percentile(sds, 97.5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--samples", type=int, default=4000)
    args = parser.parse_args()
    started = time.monotonic()
    rows = [steady_fit(1000 + seed, args.samples) for seed in range(args.runs)]
    dofs = {dof for _, _, dof, _ in rows}
    if len(dofs) != 1:
        raise SystemExit(f"the fits had different residual dof {sorted(dofs)}; fix --samples")
    dof = dofs.pop()
    threshold = float(stats.t.isf(DRIFT_TAIL, dof))
    print(f"steady chip — {args.runs} calibrations × {args.samples:,} samples, 64 columns, in-process emulator, "
          f"{time.monotonic() - started:.0f} s; t({dof}) sd {np.sqrt(dof / (dof - 2)):.3f}, "
          f"record threshold |t| > {threshold:.2f} (nominal {2 * DRIFT_TAIL:.2%} per slope)")
    for index, name in enumerate(("offset per s", "σa per s")):
        values = np.array([row[index] for row in rows])
        low, high = _bootstrap_sd(values)
        print(f"  {name:13s} t sd {values.std(ddof=1):.3f} [{low:.3f}, {high:.3f}]  "
              f"KS p {stats.kstest(values, stats.t(dof).cdf).pvalue:.2f}  "
              f"|t| > {threshold:.2f} in {np.mean(np.abs(values) > threshold):.2%}")
    print(f"  card records time drift in {np.mean([row[3] for row in rows]):.2%} "
          f"(nominal {1 - (1 - 2 * DRIFT_TAIL) ** 2:.2%} for two slopes)")


if __name__ == "__main__":
    main()
