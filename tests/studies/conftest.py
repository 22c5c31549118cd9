"""Shared fixtures of the study-engine tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hil.config import TrainConfig
from hil.training import train


@pytest.fixture(scope="package")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLP trained 2 epochs on digits (seed 0), shared by every study test."""
    out = tmp_path_factory.mktemp("studies") / "mlp"
    train(TrainConfig(model="mlp", dataset="digits", epochs=2), out, keep_epochs=False)
    return out


@pytest.fixture(scope="package")
def calibrated_device(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], tuple[Path, Path]]:
    """A factory: an emulated device from a TOML text, calibrated (4,000 samples) → (device file, profile)."""
    from hil.calibration.design import CalibrationDesign
    from hil.calibration.job import calibrate
    from hil.calibration.profile import write_profile

    def make(device: str, name: str) -> tuple[Path, Path]:
        folder = tmp_path_factory.mktemp(name)
        config = folder / "device.toml"
        config.write_text(device)
        profile = calibrate("sim", CalibrationDesign(samples=4000), emulator_config=str(config)).profile
        return config, write_profile(profile, folder / "profile.toml")

    return make
