"""Shared fixtures of the study-engine tests."""

from __future__ import annotations

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
