"""What the device benchmarks share: the emulated chip, its calibration, and their common flags.

The chip: hidden per-column gains (5 % spread) and offsets (2 %), σa (a flag), σm 0.02, 8-bit DAC and ADC,
seed 11. Imported by ``snr_walk.py``, ``device_walk.py``, ``guided_snr_device.py`` and ``fine_tune_device.py``
(run from this folder's parent as ``python benchmarks/NAME.py``, so this module is on the path).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hil.calibration.design import CalibrationDesign
from hil.calibration.job import calibrate
from hil.calibration.profile import write_profile
from hil.config import TrainConfig
from hil.training import train

DEVICE = ("sigma_add = {sigma_add}\nsigma_mul = 0.02\ngain_spread = 0.05\noffset_spread = 0.02\n"
          "dac_bits = 8\nadc_bits = 8\nseed = 11\n")
CALIBRATION_SAMPLES = 10_000


def device_flags(doc: str, *, sigma_add: float, draws: int, epochs: int = 10,
                 repetitions: bool = False) -> argparse.ArgumentParser:
    """A parser with the flags every device benchmark takes: --model, --sigma-add, --draws, --epochs.

    ``repetitions`` adds what a repetition comparison on the device takes: --budget (2), --compare-draws (10).
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--sigma-add", type=float, default=sigma_add, help="the chip's hidden σa")
    parser.add_argument("--draws", type=int, default=draws)
    parser.add_argument("--epochs", type=int, default=epochs, help="epochs of the network's training")
    if repetitions:
        parser.add_argument("--budget", type=int, default=2, help="executions per layer on average")
        parser.add_argument("--compare-draws", type=int, default=10, help="paired draws per strategy")
    return parser


def calibrated_chip(root: Path, sigma_add: float) -> tuple[Path, Path]:
    """Write the chip's device file under ``root``, calibrate it in-process → (device file, profile)."""
    config = root / "device.toml"
    config.write_text(DEVICE.format(sigma_add=sigma_add))
    calibration = calibrate("sim", CalibrationDesign(samples=CALIBRATION_SAMPLES), emulator_config=str(config))
    return config, write_profile(calibration.profile, root / "profile.toml")


@contextmanager
def chip_with_network(root: Path, args: Any) -> Iterator[tuple[str, Path]]:
    """Calibrate the chip, train ``args.model`` clean on mnist5k into ``root/net``, serve the chip over a pty.

    Yields:
        The device backend spec (gain/offset corrected with the profile) and the profile's path.
    """
    from hil.backends.device.emulator import EmulatorProcess

    config, profile = calibrated_chip(root, args.sigma_add)
    train(TrainConfig(model=args.model, dataset="mnist5k", epochs=args.epochs), root / "net", keep_epochs=False)
    with EmulatorProcess("--port", "pty", "--config", str(config)) as emulator:
        yield f"device:serial:{emulator.address}#calibration={profile}", profile


def print_repetitions(compared: Any, seconds: float) -> None:
    """A repetition comparison on the device: accuracy, paired Δ vs uniform [95 %], executions, prediction."""
    import math

    print(f"repetitions on the device, budget {compared.budget}, {compared.strategies[0].result.repeats} paired draws "
          f"({seconds:.0f} s):")
    differences = {d.strategy: d for d in compared.differences}
    for item in compared.strategies:
        name, result = item.allocation.strategy, item.result
        diff = differences.get(name)
        text = "" if diff is None else (f"Δ vs uniform {diff.mean * 100:+.2f} pt "
                                        f"[{diff.low * 100:+.2f}, {diff.high * 100:+.2f}]")
        predicted = item.allocation.predicted
        guess = f"  predicted {predicted:.1%}" if math.isfinite(predicted) else ""
        print(f"  {name:17} {result.mean:6.2%} ± {result.std:5.2%}  {text:38} executions "
              f"{list(item.allocation.executions)}{guess}")
