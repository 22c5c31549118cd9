"""Drift with time on the noise card, against an emulator with known truth: bias, interval coverage, alarms.

Runs N seeded calibrations (default 40 × 10,000 samples, 64 columns, in-process emulator: σa 0.05,
σm 0.03, 8-bit DAC/ADC) of a chip whose offset drifts by ``--offset-rate`` per second and whose σa grows
by ``--sigma-rate`` (relative) per second since power-up, and as many of the same chip held steady. For
the drifting chip: the card's per-second offset and σa slopes against the truth at the run's middle
(σa's relative slope there is rate / (1 + rate · uptime)), how often their 95 % intervals (t with the
fit's degrees of freedom) hold it, and the mean SE over the spread of the estimates (1 when the SEs are
right). For both: how often the card records time drift and the drift diagnostic warns (false alarms on
the steady chip). Then ``--checks`` drifting profiles are checked (`hil calibrate check`) with a run a
fifth as long, so σa at its middle has had less time to grow: how often every item passes with the
profile carried along the card's time drift, and how often σa alone would pass compared as it was.
Last, with ``--ambient K`` (default 3), the same drifting chip in a room whose temperature moves by K (sd)
from run to run and with offset and σa drifting with temperature as well (``--offset-per-kelvin``,
``--sigma-per-kelvin``): the fit must tell temperature from time, so all four slopes' bias and
coverage, and the correlation of the per-kelvin and per-second estimates.

    python benchmarks/drift_card.py [--runs 40] [--offset-rate 0.5] [--sigma-rate 5] [--checks 20] [--ambient 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np

from hil.backends.device.driver import AmvmDriver
from hil.backends.device.emulator import DeviceEmulator, EmulatorConfig, LoopbackTransport
from hil.calibration.card import build_card
from hil.calibration.design import CalibrationDesign, realise
from hil.calibration.diagnostics import drift as drift_diagnostic
from hil.calibration.estimate import estimate
from hil.calibration.job import calibrate, check
from hil.calibration.measure import measure

TRUTH = {"sigma_add": 0.05, "sigma_mul": 0.03, "dac_bits": 8, "adc_bits": 8, "gain_spread": 0.05,
         "offset_spread": 0.02}


def calibrate_once(seed: int, offset_rate: float, sigma_rate: float, samples: int,
                   kelvin: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> dict[str, float]:
    """One calibration; the card's slopes, the truth at the run's middle, and the alarms.

    ``kelvin``: the room's sd from run to run, the offset's and σa's (relative) change per kelvin.
    """
    ambient, offset_per_kelvin, sigma_per_kelvin = kelvin
    emulator = DeviceEmulator(EmulatorConfig(**TRUTH, seed=seed, offset_drift_per_s=offset_rate,
                                             sigma_add_drift_per_s=sigma_rate, ambient_jitter=ambient,
                                             offset_drift=offset_per_kelvin, drift_per_kelvin=sigma_per_kelvin))
    driver = AmvmDriver(LoopbackTransport(emulator), timeout=0.5)
    caps = driver.capabilities()
    plan = realise(CalibrationDesign(samples=samples), caps)
    measurement = measure(driver, plan)
    fit = estimate(measurement)
    card = build_card(measurement, fit, caps.to_dict(), "mul-first")
    zero_runs = np.unique(measurement.order[0])
    middle = float(measurement.clock[zero_runs].mean())  # the device's uptime, as its RUN replies stamp it
    drift = card.drift
    at_middle = 1 + sigma_rate * middle + sigma_per_kelvin * ((drift.reference if drift else 25.0) - 25.0)
    return {"offset": drift.offset_per_second if drift else 0.0,
            "offset_se": drift.offset_per_second_se if drift else 0.0,
            "sigma": drift.sigma_add_per_second if drift else 0.0,
            "sigma_se": drift.sigma_add_per_second_se if drift else 0.0,
            "sigma_truth": sigma_rate / at_middle,
            "offset_kelvin": drift.offset_per_kelvin if drift else 0.0,
            "offset_kelvin_se": drift.offset_se if drift else 0.0,
            "sigma_kelvin": drift.sigma_add_per_kelvin if drift else 0.0,
            "sigma_kelvin_se": drift.sigma_add_se if drift else 0.0,
            "sigma_kelvin_truth": sigma_per_kelvin / at_middle,
            "correlation": drift.correlation if drift else 0.0,
            "t95": drift.critical(0.025) if drift else 1.96,
            "recorded": float(drift is not None and drift.shown_in_time),
            "warned": float(drift_diagnostic(measurement, fit).status == "warn"),
            "duration": drift.duration if drift else float(np.ptp(measurement.times))}


def _covered(rows: list[dict[str, float]], key: str, truth: list[float]) -> str:
    """How often the 95 % interval (t with the fit's dof) holds the truth, and the mean SE over the spread."""
    held = statistics.mean(abs(row[key] - t) <= row["t95"] * row[f"{key}_se"]
                           for row, t in zip(rows, truth, strict=True))
    spread = statistics.stdev(row[key] - t for row, t in zip(rows, truth, strict=True))
    return f"{held:.0%} (mean SE / sd {statistics.mean(row[f'{key}_se'] for row in rows) / spread:.2f})"


def check_shorter(seed: int, offset_rate: float, sigma_rate: float, samples: int, folder: Path
                  ) -> tuple[bool, float, float]:
    """Calibrate, then check with a fifth of the samples: (every item passes, σa's z, σa's z unmoved)."""
    config = folder / f"device{seed}.toml"
    config.write_text("".join(f"{key} = {value!r}\n" for key, value in TRUTH.items()) +
                      f"seed = {seed}\noffset_drift_per_s = {offset_rate!r}\nsigma_add_drift_per_s = {sigma_rate!r}\n")
    profiled = calibrate("sim", CalibrationDesign(samples=samples), emulator_config=str(config))
    items, fresh = check("sim", profiled.profile, samples=samples // 5, emulator_config=str(config))
    old, new = profiled.profile.noise_card().sigma_add.pooled, fresh.profile.noise_card().sigma_add.pooled
    unmoved = (new - old) / float(np.hypot(profiled.fit.sigma_add.se, fresh.fit.sigma_add.se))
    return all(item.ok for item in items), next(item.z for item in items if item.name == "sigma_add"), unmoved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--offset-rate", type=float, default=0.5)
    parser.add_argument("--sigma-rate", type=float, default=5.0)
    parser.add_argument("--checks", type=int, default=20)
    parser.add_argument("--ambient", type=float, default=3.0)
    parser.add_argument("--offset-per-kelvin", type=float, default=0.002)
    parser.add_argument("--sigma-per-kelvin", type=float, default=0.05)
    args = parser.parse_args()
    drifting = [calibrate_once(seed, args.offset_rate, args.sigma_rate, args.samples) for seed in range(args.runs)]
    steady = [calibrate_once(seed, 0.0, 0.0, args.samples) for seed in range(args.runs)]
    print(f"drift with time — {args.runs} calibrations × {args.samples:,} samples, 64 columns, in-process emulator; "
          f"run length median {statistics.median(r['duration'] for r in drifting) * 1e3:.0f} ms")
    offsets = [r["offset"] for r in drifting]
    sigma_error = [r["sigma"] / r["sigma_truth"] - 1 for r in drifting]
    print(f"  offset per s   truth {args.offset_rate:g}: mean {statistics.mean(offsets):.4g} "
          f"(bias {statistics.mean(offsets) / args.offset_rate - 1:+.1%}, sd {statistics.stdev(offsets):.3g}), "
          f"95 % interval holds the truth in {_covered(drifting, 'offset', [args.offset_rate] * args.runs)}")
    print(f"  σa per s       truth at the run's middle {statistics.mean(r['sigma_truth'] for r in drifting):.3g}: "
          f"relative bias {statistics.mean(sigma_error):+.1%} (sd {statistics.stdev(sigma_error):.1%}), "
          f"interval holds it in {_covered(drifting, 'sigma', [r['sigma_truth'] for r in drifting])}")
    for name, rows in (("drifting", drifting), ("steady", steady)):
        print(f"  {name:9s} card records time drift in {statistics.mean(r['recorded'] for r in rows):.0%}, "
              f"drift diagnostic warns in {statistics.mean(r['warned'] for r in rows):.0%}")
    if args.checks:
        with tempfile.TemporaryDirectory() as folder:
            checks = [check_shorter(seed, args.offset_rate, args.sigma_rate, args.samples, Path(folder))
                      for seed in range(args.checks)]
        moved, unmoved = [z for _, z, _ in checks], [z for _, _, z in checks]
        print(f"  check with {args.samples // 5:,} samples of a {args.samples:,}-sample profile ({args.checks} chips): "
              f"all items pass in {statistics.mean(ok for ok, _, _ in checks):.0%}, σa z median "
              f"{statistics.median(moved):+.2f} [{min(moved):+.2f}, {max(moved):+.2f}]; compared unmoved σa "
              f"passes in {statistics.mean(abs(z) <= 4 for z in unmoved):.0%}, "
              f"z median {statistics.median(unmoved):+.2f}")
    if args.ambient:
        together = [calibrate_once(seed, args.offset_rate, args.sigma_rate, args.samples,
                                   (args.ambient, args.offset_per_kelvin, args.sigma_per_kelvin))
                    for seed in range(args.runs)]
        print(f"  room moving {args.ambient:g} K (sd) from run to run, offset {args.offset_per_kelvin:g}/K and σa "
              f"{args.sigma_per_kelvin:g}/K as well; slope estimates' correlation per K vs per s: median "
              f"{statistics.median(r['correlation'] for r in together):+.2f}")
        for label, key, truths in (
                ("offset per K", "offset_kelvin", [args.offset_per_kelvin] * args.runs),
                ("σa per K", "sigma_kelvin", [r["sigma_kelvin_truth"] for r in together]),
                ("offset per s", "offset", [args.offset_rate] * args.runs),
                ("σa per s", "sigma", [r["sigma_truth"] for r in together])):
            errors = [r[key] / t - 1 for r, t in zip(together, truths, strict=True)]
            print(f"    {label:13s} relative bias {statistics.mean(errors):+.1%} (sd {statistics.stdev(errors):.1%}), "
                  f"95 % interval holds the truth in {_covered(together, key, truths)}")


if __name__ == "__main__":
    main()
