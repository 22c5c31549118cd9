"""Repetitions guided by an SNR walk on the emulated device vs uniform, both evaluated on the device.

The chip of ``emulated_device.py`` (σa a flag) is calibrated; LeNet-5 is trained clean on mnist5k ([0, 1]
pixels, ``--epochs``). An SNR walk runs on the device (each Linear/Conv layer alone, input attenuated by k, the
rest digital; ``--draws`` draws per k), then none / uniform / guided-snr at ``--budget`` executions per layer on
average, ``--compare-draws`` paired draws, all on the device (gain/offset corrected with the profile). Prints
each strategy's accuracy, the paired difference to uniform with its 95 % interval, the executions and the
device seconds. Goal (issue 16): guided beats uniform at budget 2 with an interval excluding 0.

    python benchmarks/guided_snr_device.py [--sigma-add 1.5] [--budget 2] [--compare-draws 10]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from emulated_device import chip_with_network, device_flags, print_repetitions

from hil.guided.compare import evaluate_repetitions
from hil.noise import NoiseSpec
from hil.studies.snr import snr_walk_checkpoint


def main() -> None:
    args = device_flags(__doc__, sigma_add=1.5, draws=3, repetitions=True).parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        with chip_with_network(root, args) as (device, profile):
            started = time.perf_counter()
            walked = snr_walk_checkpoint(root / "net", device, root / "snr", profile=profile, draws=args.draws)
            walk_seconds = time.perf_counter() - started
            started = time.perf_counter()
            compared = evaluate_repetitions(root / "net", ("none", "uniform", "guided-greedy"), budget=args.budget,
                                            noise=NoiseSpec(), walk=root / "snr", backend=device,
                                            repeats=args.compare_draws)
            compare_seconds = time.perf_counter() - started
    print(f"{args.model}, device σa {args.sigma_add}; clean digital {walked.clean:.1%}; SNR walk {args.draws} draws "
          f"({walk_seconds:.0f} s on the device)")
    for row in walked.layers:
        mu = f"{row.fit.mu:.3f}" if row.fit.status == "ok" else row.fit.status
        print(f"  {row.layer:8} native σ {row.sigma.total:.4f}  μ {mu}  (k at μ {row.mu_attenuation:.2f})")
    print_repetitions(compared, compare_seconds)


if __name__ == "__main__":
    main()
