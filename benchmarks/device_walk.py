"""Placement walk of LeNet-5 on the emulated device vs on its twin; repetitions it guides, on the device.

An emulated device (hidden per-column gains 5 %, offsets, σa, σm, 8-bit DAC/ADC) is calibrated;
LeNet-5 is trained on mnist5k ([0, 1] pixels, clean). Each Linear/Conv layer then runs alone on the
device (gain/offset corrected with the profile), the rest digital, for ``--draws`` draws; the same
walk runs on ``twin:PROFILE``. Prints each layer's drop with its 95 % interval on both, the most
fragile layer of each, and the seconds spent. Then none / uniform / guided-placement (r ∝ √drop from
the device walk) at budget 2, ``--compare-draws`` paired draws, all on the device. The device is the
emulator in its own process over a pseudo-terminal (AMVM/1), as ``hil demo`` runs it.

    python benchmarks/device_walk.py [--sigma-add 1.5] [--draws 5] [--epochs 10] [--plot STEM]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from emulated_device import chip_with_network, device_flags, print_repetitions

from hil.guided.compare import evaluate_repetitions
from hil.noise import NoiseSpec
from hil.studies.placement import place_checkpoint


def main() -> None:
    parser = device_flags(__doc__, sigma_add=1.5, draws=5, repetitions=True)
    parser.add_argument("--plot", type=Path, default=None, help="also plot both walks as STEM.png/.svg")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        with chip_with_network(root, args) as (device, profile):
            started = time.perf_counter()
            on_device = place_checkpoint(root / "net", device, root / "device", draws=args.draws)
            device_seconds = time.perf_counter() - started
            started = time.perf_counter()
            on_twin = place_checkpoint(root / "net", f"twin:{profile}", root / "twin", draws=args.draws)
            twin_seconds = time.perf_counter() - started
            started = time.perf_counter()
            compared = evaluate_repetitions(root / "net", ("none", "uniform", "guided-placement"),
                                            budget=args.budget, noise=NoiseSpec(), walk=root / "device",
                                            backend=device, repeats=args.compare_draws)
            compare_seconds = time.perf_counter() - started
    print(f"{args.model}, device σa {args.sigma_add}, {args.draws} draws; clean digital {on_device.clean:.1%}")
    print(f"  {'layer':10} {'device drop (pt)':>26} {'twin drop (pt)':>26}")
    for d, t in zip(on_device.layers, on_twin.layers, strict=True):
        print(f"  {d.layer:10} {d.drop * 100:+7.2f} [{d.low * 100:+6.2f}, {d.high * 100:+6.2f}]   "
              f"{t.drop * 100:+7.2f} [{t.low * 100:+6.2f}, {t.high * 100:+6.2f}]")
    same = "same" if on_device.most_fragile == on_twin.most_fragile else "DIFFERENT"
    print(f"most fragile: device {on_device.most_fragile}, twin {on_twin.most_fragile} ({same}); "
          f"{device_seconds:.0f} s on the device, {twin_seconds:.0f} s on the twin "
          f"({device_seconds / max(twin_seconds, 1e-9):.1f}×)")
    print_repetitions(compared, compare_seconds)
    if args.plot:
        from hil.studies.figures import plot_placement

        print("plot:", *plot_placement([on_device, on_twin], args.plot))


if __name__ == "__main__":
    main()
