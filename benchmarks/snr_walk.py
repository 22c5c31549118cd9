"""SNR walk of LeNet-5 on the emulated device vs on its twin, beside a Gaussian ``sim`` walk in the same units.

An emulated device (hidden per-column gains 5 %, offsets 2 %, σa, σm 0.02, 8-bit DAC/ADC) is
calibrated; LeNet-5 is trained on mnist5k ([0, 1] pixels, clean, 10 epochs). Each Linear/Conv layer
then runs alone on the device (over a pseudo-terminal, AMVM/1, gain/offset corrected with the
profile) with its input range attenuated by k on a log grid, the rest digital; the same walk runs
on ``twin:PROFILE``; a ``sim`` walk adds Gaussian noise of σ_eff(k) at the same site (additive only:
no σm, no quantisation). Prints μ per layer (network units) with 95 % intervals, whether the device's
and the twin's intervals overlap, and the seconds each took.

    python benchmarks/snr_walk.py [--sigma-add 0.3] [--draws 3] [--epochs 10]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from emulated_device import chip_with_network, device_flags

from hil.studies.snr import DEFAULT_ATTENUATIONS, snr_walk_checkpoint
from hil.studies.walk import walk_checkpoint
from hil.walking.sweep import SweepSpec


def _mu(fit) -> str:  # noqa: ANN001
    if fit.status != "ok":
        return f"{'–':>8} {fit.status:>20}"
    return f"{fit.mu:8.3f} [{fit.mu_low:7.3f}, {fit.mu_high:7.3f}]"


def main() -> None:
    args = device_flags(__doc__, sigma_add=0.3, draws=3).parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        with chip_with_network(root, args) as (device, profile):
            started = time.perf_counter()
            on_device = snr_walk_checkpoint(root / "net", device, root / "device", draws=args.draws)
            device_seconds = time.perf_counter() - started
        started = time.perf_counter()
        on_twin = snr_walk_checkpoint(root / "net", f"twin:{profile}", root / "twin", draws=args.draws)
        twin_seconds = time.perf_counter() - started
        gaussian = {}
        for row in on_twin.layers:
            spec = SweepSpec(noise="add", sigmas=tuple(k * row.sigma.total for k in DEFAULT_ATTENUATIONS),
                             sites=(row.layer,), repeats=args.draws)
            walked = walk_checkpoint(root / "net", spec, root / f"sim-{row.layer.replace(':', '-')}")
            gaussian[row.layer] = walked.sites[0].fit
    print(f"{args.model}, device σa {args.sigma_add}, {args.draws} draws × {len(DEFAULT_ATTENUATIONS)} k "
          f"(1…{DEFAULT_ATTENUATIONS[-1]:g}); clean digital {on_device.clean:.1%}; μ in network units")
    print(f"  {'layer':8} {'σ(k=1)':>8} {'device μ [95 %]':>27} {'twin μ [95 %]':>27} {'sim μ [95 %]':>27} overlap")
    agree = 0
    for d, t in zip(on_device.layers, on_twin.layers, strict=True):
        both = d.fit.status == t.fit.status == "ok"
        overlap = both and d.fit.mu_low <= t.fit.mu_high and t.fit.mu_low <= d.fit.mu_high
        agree += overlap
        print(f"  {d.layer:8} {d.sigma.total:8.4f} {_mu(d.fit):>27} {_mu(t.fit):>27} {_mu(gaussian[d.layer]):>27} "
              f"{'yes' if overlap else 'NO'}")
    print(f"device and twin μ intervals overlap at {agree}/{len(on_device.layers)} layers; "
          f"{device_seconds:.0f} s on the device, {twin_seconds:.0f} s on the twin")


if __name__ == "__main__":
    main()
