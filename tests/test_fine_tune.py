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


def test_fine_tuning_on_an_aged_chip_wins_back_what_the_stale_card_lost(tmp_path: Path) -> None:
    """The chip aged since its calibration (columns' gains and offsets moved): the card, and so the
    device backend's correction, is stale; two epochs with the aged chip in the loop raise its accuracy."""
    from hil.backends.device.emulator import EmulatorProcess
    from hil.evaluation_job import evaluate_checkpoint
    from hil.noise import NoiseSpec

    net = tmp_path / "net"
    train(TrainConfig(model="mlp", dataset="digits", epochs=15, lr=3e-3), net, keep_epochs=False)
    chip = DEVICE.replace("sigma_add = 0.5", "sigma_add = 0.1")
    new = tmp_path / "new.toml"
    new.write_text(chip)
    profile = write_profile(calibrate("sim", CalibrationDesign(samples=3000), emulator_config=str(new)).profile,
                            tmp_path / "profile.toml")
    aged = tmp_path / "aged.toml"
    aged.write_text(chip + "gain_aging = 0.2\noffset_aging = 0.6\n")
    accuracy = {}
    for name, config in (("new", new), ("aged", aged)):
        with EmulatorProcess("--port", "pty", "--config", str(config)) as emulator:
            device = f"device:serial:{emulator.address}#calibration={profile}"
            accuracy[name] = evaluate_checkpoint(net, device, NoiseSpec(), repeats=3).result.mean
            if name == "aged":
                train(TrainConfig(model="mlp", dataset="digits", epochs=2, lr=1e-3, backend=device, init=str(net)),
                      tmp_path / "tuned", keep_epochs=False)
                accuracy["tuned"] = evaluate_checkpoint(tmp_path / "tuned", device, NoiseSpec(), repeats=3).result.mean
    assert accuracy["aged"] < accuracy["new"] - 0.05, accuracy  # the stale correction costs accuracy (≈ 15 pt)
    assert accuracy["tuned"] > accuracy["aged"] + 0.05, accuracy  # and the chip in the loop wins it back
