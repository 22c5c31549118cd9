"""Calibration estimators on the emulator with known truth: bias, coverage, efficiency vs the CRLB.

Runs N seeded calibrations (default 200 × 10,000 samples, 64 columns) of an emulator with
σa = 0.05, σm = 0.03, gain spread 5 %, offset spread 0.1, and compares three estimators of
(σa, σm) on the same data: the Gamma GLM by IRLS (hil's), OLS on the sample variances, and
weighted least squares with weights 1/S⁴ from the same samples (the biased shortcut).
Efficiency = CRLB / observed variance over the runs.

    python benchmarks/calibration_efficiency.py [--runs 200] [--samples 10000]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from hil.backends.device.driver import AmvmDriver
from hil.backends.device.emulator import DeviceEmulator, EmulatorConfig, LoopbackTransport
from hil.calibration.design import CalibrationDesign, realise
from hil.calibration.estimate import estimate, fisher, fit_variance_ols, variance_design
from hil.calibration.measure import measure

SIGMA_ADD, SIGMA_MUL = 0.05, 0.03


def inverse_s4(u: np.ndarray, s2: np.ndarray) -> tuple[float, float]:
    design = variance_design(u)
    w = 1 / s2**2
    a, b = np.linalg.solve(design.T @ (design * w[:, None]), design.T @ (w * s2))
    return float(a), float(b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--samples", type=int, default=10_000)
    args = parser.parse_args()
    rows = {"glm": [], "ols": [], "1/S⁴": []}
    covered = [0, 0]
    crlb = None
    started = time.perf_counter()
    for seed in range(args.runs):
        config = EmulatorConfig(sigma_add=SIGMA_ADD, sigma_mul=SIGMA_MUL, seed=1000 + seed, gain_spread=0.05,
                                offset_spread=0.1)
        driver = AmvmDriver(LoopbackTransport(DeviceEmulator(config)), timeout=0.5)
        measurement = measure(driver, realise(CalibrationDesign(samples=args.samples), driver.capabilities()))
        fit = estimate(measurement)
        q = fit.quantisation
        u, s2 = fit.regressors.ravel(), fit.sample_variances.ravel()
        rows["glm"].append((fit.sigma_add.value, fit.sigma_mul.value))
        for name, (a, b) in (("ols", fit_variance_ols(u, s2)), ("1/S⁴", inverse_s4(u, s2))):
            rows[name].append((math.sqrt(max(a - q, 0)), math.sqrt(max(b, 0))))
        covered[0] += fit.sigma_add.covers(SIGMA_ADD)
        covered[1] += fit.sigma_mul.covers(SIGMA_MUL)
        if crlb is None:
            cov = np.linalg.inv(fisher(u, fit.dof.ravel(), SIGMA_ADD**2 + q, SIGMA_MUL**2))
            crlb = (cov[0, 0] / (4 * SIGMA_ADD**2), cov[1, 1] / (4 * SIGMA_MUL**2))
    seconds = time.perf_counter() - started
    print(f"calibration estimators — {args.runs} calibrations × {args.samples} samples × 64 columns "
          f"({seconds:.0f} s), truth σa = {SIGMA_ADD}, σm = {SIGMA_MUL}")
    print(f"  {'estimator':10} {'mean σa':>9} {'bias':>7} {'eff σa':>7} {'mean σm':>9} {'bias':>7} {'eff σm':>7}")
    for name, values in rows.items():
        data = np.array(values)
        eff = (crlb[0] / data[:, 0].var(ddof=1), crlb[1] / data[:, 1].var(ddof=1))
        bias = (data[:, 0].mean() / SIGMA_ADD - 1, data[:, 1].mean() / SIGMA_MUL - 1)
        print(f"  {name:10} {data[:, 0].mean():9.5f} {bias[0]:+7.2%} {eff[0]:7.2f} "
              f"{data[:, 1].mean():9.5f} {bias[1]:+7.2%} {eff[1]:7.2f}")
    print(f"  95 % interval coverage (GLM, delta method): σa {covered[0] / args.runs:.3f}, "
          f"σm {covered[1] / args.runs:.3f} (goal ≥ 0.90)")
    print("  efficiency = CRLB / observed variance (goal ≥ 0.8 for the GLM)")


if __name__ == "__main__":
    main()
