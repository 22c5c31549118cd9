"""Chip-in-the-loop fine-tuning: does training on the device itself raise a network's device accuracy?

An emulated device (hidden per-column gains 5 %, offsets 2 %, σa, σm 0.02, 8-bit DAC/ADC) is
calibrated; LeNet-5 is trained on mnist5k ([0, 1] pixels) for ``--epochs`` on ``twin:PROFILE`` (and,
as a second starting point, clean). Each start is then fine-tuned for ``--tune-epochs`` at a 10×
lower rate with ``hil train --init`` — once with the device in the forward pass (straight-through
backward), once on the twin as the control (same epochs, same rate, no device) — and every network
is evaluated on the device, ``--draws`` times. Prints device accuracies and the differences
(fine-tuned on the device − start, − twin control) with Welch 95 % intervals. The device is the
emulator in its own process over a pseudo-terminal (AMVM/1).

``--gain-aging G --offset-aging O``: the chip served is the calibrated one aged since its calibration
(each column's gain × (1 + N(0, G²)), offset + N(0, O²)), so the card, the twin and the device
backend's correction are stale; the fine-tuning runs on the aged chip. One more line then gives what
recalibrating instead buys: the twin-trained start on the device corrected with a fresh card.

    python benchmarks/fine_tune_device.py [--sigma-add 0.7] [--epochs 10] [--tune-epochs 2] [--draws 8]
                                         [--gain-aging 0.1 --offset-aging 0.3]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from emulated_device import CALIBRATION_SAMPLES, calibrated_chip, device_flags
from scipy import stats

from hil.backends.device.emulator import EmulatorProcess
from hil.calibration.design import CalibrationDesign
from hil.calibration.job import calibrate
from hil.calibration.profile import write_profile
from hil.config import TrainConfig
from hil.evaluation_job import evaluate_checkpoint
from hil.noise import NoiseSpec
from hil.training import train


def welch(a: tuple[float, ...], b: tuple[float, ...]) -> tuple[float, float, float]:
    """Mean of a − b and its Welch 95 % interval."""
    x, y = np.asarray(a), np.asarray(b)
    va, vb = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se = float(np.sqrt(va + vb))
    dof = (va + vb) ** 2 / (va**2 / (len(x) - 1) + vb**2 / (len(y) - 1)) if se > 0 else 1.0
    half = float(stats.t.ppf(0.975, dof)) * se
    diff = float(x.mean() - y.mean())
    return diff, diff - half, diff + half


def main() -> None:
    parser = device_flags(__doc__, sigma_add=0.7, draws=8)
    parser.add_argument("--tune-epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--gain-aging", type=float, default=0.0, help="column gain change since calibration")
    parser.add_argument("--offset-aging", type=float, default=0.0, help="column offset change since calibration")
    args = parser.parse_args()
    aged = bool(args.gain_aging or args.offset_aging)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        config, profile = calibrated_chip(root, args.sigma_add)
        twin = f"twin:{profile}"
        starts = {"twin-trained": twin, "clean-trained": "sim"}
        for name, backend in starts.items():
            train(TrainConfig(model=args.model, dataset="mnist5k", epochs=args.epochs, backend=backend),
                  root / name, keep_epochs=False)
        lines = []
        if aged:
            config = root / "aged.toml"
            config.write_text((root / "device.toml").read_text()
                              + f"gain_aging = {args.gain_aging}\noffset_aging = {args.offset_aging}\n")
        with EmulatorProcess("--port", "pty", "--config", str(config)) as emulator:
            device = f"device:serial:{emulator.address}#calibration={profile}"

            def on_device(path: Path) -> tuple[float, ...]:
                return evaluate_checkpoint(path, device, NoiseSpec(), repeats=args.draws).result.accuracies

            for name in starts:
                start = on_device(root / name)
                tuned = {}
                seconds = {}
                for where, backend in (("device", device), ("twin", twin)):
                    began = time.perf_counter()
                    train(TrainConfig(model=args.model, dataset="mnist5k", epochs=args.tune_epochs, lr=args.lr,
                                      backend=backend, init=str(root / name)), root / f"{name}-{where}",
                          keep_epochs=False)
                    seconds[where] = time.perf_counter() - began
                    tuned[where] = on_device(root / f"{name}-{where}")
                gain = welch(tuned["device"], start)
                versus = welch(tuned["device"], tuned["twin"])
                lines.append(f"  {name:14} start {np.mean(start):6.2%}  +device {np.mean(tuned['device']):6.2%}  "
                             f"+twin {np.mean(tuned['twin']):6.2%}   device−start {gain[0] * 100:+.2f} pt "
                             f"[{gain[1] * 100:+.2f}, {gain[2] * 100:+.2f}]   device−twin {versus[0] * 100:+.2f} pt "
                             f"[{versus[1] * 100:+.2f}, {versus[2] * 100:+.2f}]   "
                             f"({seconds['device']:.0f} s on the device, {seconds['twin']:.0f} s on the twin)")
            if aged:
                fresh = write_profile(calibrate("sim", CalibrationDesign(samples=CALIBRATION_SAMPLES),
                                                emulator_config=str(config)).profile, root / "recalibrated.toml")
                recalibrated = evaluate_checkpoint(root / "twin-trained", f"device:serial:{emulator.address}"
                                                   f"#calibration={fresh}", NoiseSpec(), repeats=args.draws)
                accuracies = recalibrated.result.accuracies
                lines.append(f"  recalibrated instead: twin-trained start on the device corrected with a fresh "
                             f"card {np.mean(accuracies):6.2%}")
    chip = f"aged since calibration (gains {args.gain_aging:g}, offsets {args.offset_aging:g})" if aged else "new"
    print(f"{args.model} on mnist5k, device σa {args.sigma_add}, chip {chip}; start {args.epochs} epochs, fine-tune "
          f"{args.tune_epochs} epochs at lr {args.lr:g}; accuracies on the device, {args.draws} draws each")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
