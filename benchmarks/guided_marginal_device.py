"""Repetitions guided by a marginal walk on the emulated device vs uniform, both evaluated on the device.

The chip of ``emulated_device.py`` (σa a flag, default 1.0) is calibrated; LeNet-5 is trained clean on mnist5k
([0, 1] pixels, ``--epochs``). A marginal walk runs on the device: every Linear/Conv layer on the chip, uniform
executions at ``--budget``, each layer's executions ±1, ``--draws`` paired draws, one exchange per ``--rounds``.
Then none / uniform / guided-marginal at the same budget, ``--compare-draws`` paired draws on the device, seeded
apart from the walk's (the choice is tested on fresh draws). Prints the walk's table, each strategy's accuracy,
the paired difference to uniform with its 95 % interval, executions and device seconds. Goal (issue 16): guided
beats uniform at budget 2 with an interval excluding 0.

    python benchmarks/guided_marginal_device.py [--sigma-add 1.0] [--draws 5] [--rounds 1] [--compare-draws 10]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from emulated_device import chip_with_network, device_flags, print_repetitions

from hil.guided.compare import evaluate_repetitions
from hil.noise import NoiseSpec
from hil.studies.marginal import marginal_walk_checkpoint


def main() -> None:
    parser = device_flags(__doc__, sigma_add=1.0, draws=5, repetitions=True)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        with chip_with_network(root, args) as (device, _profile):
            started = time.perf_counter()
            walked = marginal_walk_checkpoint(root / "net", device, root / "marginal", budget=args.budget,
                                              draws=args.draws, rounds=args.rounds)
            walk_seconds = time.perf_counter() - started
            started = time.perf_counter()
            compared = evaluate_repetitions(root / "net", ("none", "uniform", "guided"), budget=args.budget,
                                            noise=NoiseSpec(), walk=root / "marginal", backend=device,
                                            repeats=args.compare_draws)
            compare_seconds = time.perf_counter() - started
    print(f"{args.model}, device σa {args.sigma_add}; marginal walk {args.draws} draws, "
          f"{len(walked.rounds)} round(s) ({walk_seconds:.0f} s on the device)")
    for number, row in enumerate(walked.rounds, start=1):
        print(f"  round {number}: executions {list(row.executions)} accuracy {row.accuracy:.2%}")
        for layer, up, down in zip(walked.layers, row.up, row.down, strict=True):
            fewer = "—" if down is None else f"{-down * 100:+.2f}"
            print(f"    {layer:8} one more {up * 100:+.2f} pt   one fewer {fewer} pt")
        print(f"    chosen {list(row.chosen)} (predicted {row.predicted_gain * 100:+.2f} pt)")
    print_repetitions(compared, compare_seconds)


if __name__ == "__main__":
    main()
