"""Preprocessing is a setting: recorded in the checkpoint, used again by every verb that reads it.

The default is the paper's (Walking Noise feeds [0, 1] pixels); ``standard`` is the standardisation hil
used before, and checkpoints written then (no ``dataset.preprocess``) keep it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from hil.checkpoint import METADATA, read_run_metadata
from hil.cli import app
from hil.config import TrainConfig
from hil.data import load_dataset
from hil.errors import ConfigError
from hil.runs import open_run
from hil.studies.harden import run_study
from hil.training import train

runner = CliRunner()
FAST = {"model": "mlp", "dataset": "digits", "epochs": 1, "batch_size": 512}


def _strip_preprocess(checkpoint: Path) -> None:
    """Make ``checkpoint`` look like one written before preprocessing was recorded."""
    path = checkpoint / METADATA
    data = json.loads(path.read_text())
    del data["dataset"]["preprocess"]
    del data["training"]["config"]["preprocess"]
    path.write_text(json.dumps(data))


def test_the_checkpoint_records_the_preprocessing_and_open_run_uses_it(tmp_path: Path) -> None:
    for name in ("paper", "standard"):
        train(TrainConfig(**FAST, preprocess=name), tmp_path / name, keep_epochs=False)
        assert read_run_metadata(tmp_path / name).dataset.preprocess == name
        with open_run(tmp_path / name) as run:
            assert run.data.preprocess == name
            expected = load_dataset("digits", preprocess=name)
            assert torch.equal(run.data.test_x, expected.test_x)


def test_a_checkpoint_without_the_field_is_read_as_standardised(tmp_path: Path) -> None:
    train(TrainConfig(**FAST, preprocess="standard"), tmp_path / "old", keep_epochs=False)
    _strip_preprocess(tmp_path / "old")
    metadata = read_run_metadata(tmp_path / "old")
    assert metadata.dataset.preprocess == "standard"
    assert metadata.training.config["preprocess"] == "standard"  # so a resume keeps it
    with open_run(tmp_path / "old") as run:
        assert run.data.preprocess == "standard"
        assert abs(float(run.data.train_x.mean())) < 1e-4
    result = runner.invoke(app, ["evaluate", "--checkpoint", str(tmp_path / "old"), "--json"])
    assert result.exit_code == 0, result.output
    # Same clean accuracy as training recorded: the data was prepared as it was then.
    assert json.loads(result.stdout)["accuracy"]["mean"] == pytest.approx(metadata.test_accuracy)


def test_resuming_an_old_checkpoint_keeps_its_standardisation(tmp_path: Path) -> None:
    train(TrainConfig(**FAST, preprocess="standard"), tmp_path / "old", keep_epochs=False)
    _strip_preprocess(tmp_path / "old")
    result = runner.invoke(app, ["train", "--resume", str(tmp_path / "old"), "--epochs", "2", "--out",
                                 str(tmp_path / "more"), "--json"])
    assert result.exit_code == 0, result.output
    assert read_run_metadata(tmp_path / "more").dataset.preprocess == "standard"


def test_cli_flag_and_its_errors(tmp_path: Path) -> None:
    args = ["train", "--model", "mlp", "--dataset", "digits", "--epochs", "1", "--json"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "s"), "--preprocess", "standard"])
    assert result.exit_code == 0, result.output
    assert read_run_metadata(tmp_path / "s").dataset.preprocess == "standard"
    bad = runner.invoke(app, [*args, "--out", str(tmp_path / "x"), "--preprocess", "minmax"])
    assert bad.exit_code == 1 and "preprocess must be one of paper, standard" in bad.output
    assert not (tmp_path / "x").exists()
    walk = runner.invoke(app, ["walk", "--checkpoint", str(tmp_path / "s"), "--preprocess", "paper"])
    assert walk.exit_code == 1 and "walked with the preprocessing it was trained with" in walk.output
    resume = runner.invoke(app, ["train", "--resume", str(tmp_path / "s"), "--preprocess", "paper"])
    assert resume.exit_code == 1 and "only --epochs may be given (got preprocess)" in resume.output


def test_bad_preprocess_in_a_checkpoint_is_one_line(tmp_path: Path) -> None:
    train(TrainConfig(**FAST), tmp_path / "run", keep_epochs=False)
    path = tmp_path / "run" / METADATA
    data = json.loads(path.read_text())
    data["dataset"]["preprocess"] = "whiten"
    path.write_text(json.dumps(data))
    result = runner.invoke(app, ["evaluate", "--checkpoint", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert "dataset.preprocess must be one of paper, standard, got 'whiten'" in result.output


def test_a_study_folder_refuses_checkpoints_trained_with_other_settings(tmp_path: Path) -> None:
    base = TrainConfig(model="mlp", dataset="digits", epochs=1, preprocess="standard")
    sigmas = (0.1, 0.3, 1.0, 3.0, 10.0)
    run_study(base, tmp_path, bits=(), scalings=(), repeats=1, walk_repeats=1, sigmas=sigmas, noisy=False)
    summary = json.loads((tmp_path / "harden.json").read_text())
    assert summary["preprocess"] == "standard"
    with pytest.raises(ConfigError, match="trained with other settings"):
        run_study(TrainConfig(model="mlp", dataset="digits", epochs=1), tmp_path, bits=(), scalings=(), repeats=1,
                  walk_repeats=1, sigmas=sigmas, noisy=False)
