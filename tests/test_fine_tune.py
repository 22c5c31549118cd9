"""Fine-tuning from a checkpoint's weights (``hil train --init``), e.g. with the device in the loop."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hil.calibration.design import CalibrationDesign
from hil.calibration.job import calibrate
from hil.calibration.profile import write_profile
from hil.checkpoint import load_checkpoint, read_run_metadata
from hil.cli import app
from hil.config import TrainConfig
from hil.errors import ConfigError
from hil.training import train

DEVICE = "sigma_add = 0.5\nsigma_mul = 0.02\ngain_spread = 0.05\noffset_spread = 0.02\ndac_bits = 8\nadc_bits = 8\n"


@pytest.fixture(scope="module")
def start(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("finetune")
    (folder / "device.toml").write_text(DEVICE)
    profile = calibrate("sim", CalibrationDesign(samples=3000), emulator_config=str(folder / "device.toml")).profile
    net = folder / "net"
    train(TrainConfig(model="mlp", dataset="digits", epochs=2), net, keep_epochs=False)
    return net, write_profile(profile, folder / "profile.toml")


def test_init_starts_from_the_weights_and_records_where_from(start: tuple[Path, Path], tmp_path: Path) -> None:
    net, profile = start
    result = train(TrainConfig(model="mlp", dataset="digits", epochs=1, lr=1e-4, backend=f"twin:{profile}",
                               init=str(net)), tmp_path / "tuned", keep_epochs=False)
    before = load_checkpoint(net).model.state_dict()
    after = load_checkpoint(tmp_path / "tuned").model.state_dict()
    assert before.keys() == after.keys()
    change = max(float((after[k] - before[k]).abs().max()) for k in before)
    scale = max(float(before[k].abs().max()) for k in before)
    assert 0 < change < 0.1 * scale  # moved by one epoch at a small rate, not re-initialised
    assert result.noisy is not None and 0 < result.noisy.mean <= 1  # accuracy on the twin itself is reported
    stored = read_run_metadata(tmp_path / "tuned").training.config
    assert stored["init"] == str(net) and stored["backend"] == f"twin:{profile}"


def test_init_refuses_another_model(start: tuple[Path, Path], tmp_path: Path) -> None:
    net, _ = start
    with pytest.raises(ConfigError, match=r"holds model 'mlp' \(asked 'lenet5'\)"):
        train(TrainConfig(model="lenet5", dataset="digits", epochs=1, init=str(net)), tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_cli_fine_tunes_on_the_device(start: tuple[Path, Path], tmp_path: Path) -> None:
    net, profile = start
    runner = CliRunner()
    device = "device:tcp:127.0.0.1:1#timeout=0.2"  # nothing listens: a clear error, no checkpoint
    failed = runner.invoke(app, ["train", "--init", str(net), "--backend", device, "--epochs", "1",
                                 "--out", str(tmp_path / "none")])
    assert failed.exit_code == 1 and "Traceback" not in failed.output
    assert not (tmp_path / "none").exists()
    done = runner.invoke(app, ["train", "--init", str(net), "--backend", f"twin:{profile}", "--epochs", "1",
                               "--lr", "1e-4", "--out", str(tmp_path / "t"), "--no-epoch-checkpoints"])
    assert done.exit_code == 0, done.output
    assert f"on twin:{profile}" in done.output.replace("\n", "")
    both = runner.invoke(app, ["train", "--init", str(net), "--resume", str(net), "--epochs", "3"])
    assert both.exit_code == 1 and "give one" in both.output
