"""`hil train --resume` never takes a device, a peer or a record path from the checkpoint file (issue 18, finding 1)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from hil.checkpoint import METADATA, read_run_metadata
from hil.cli import app
from hil.config import TrainConfig
from hil.training import train

runner = CliRunner()


def _crafted(tmp_path: Path) -> tuple[Path, Path]:
    """A checkpoint whose metadata names a device backend that would record into ``victim``."""
    checkpoint = tmp_path / "run"
    train(TrainConfig(model="mlp", dataset="digits", epochs=1, batch_size=512), checkpoint)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    spec = f"device:serial:/dev/ptmx#record={victim};timeout=0.05"
    path = checkpoint / METADATA
    data = json.loads(path.read_text())
    data["backend"] = spec
    data["training"]["config"]["backend"] = spec
    path.write_text(json.dumps(data))
    return checkpoint, victim


def test_resume_refuses_a_device_backend_named_by_the_file(tmp_path: Path) -> None:
    checkpoint, victim = _crafted(tmp_path)
    result = runner.invoke(app, ["train", "--resume", str(checkpoint), "--epochs", "2", "--out", str(tmp_path / "b")])
    assert result.exit_code == 1
    assert "does not take a device or a record path from a checkpoint file: give --backend" in result.output
    assert victim.read_text() == "keep me\n" and not (tmp_path / "b").exists()


def test_resume_with_backend_given_trains_there_and_touches_nothing_else(tmp_path: Path) -> None:
    checkpoint, victim = _crafted(tmp_path)
    result = runner.invoke(app, ["train", "--resume", str(checkpoint), "--epochs", "2", "--backend", "sim",
                                 "--out", str(tmp_path / "b"), "--json"])
    assert result.exit_code == 0, result.output
    assert victim.read_text() == "keep me\n"
    resumed = read_run_metadata(tmp_path / "b")
    assert resumed.backend == "sim" and resumed.training.epochs_done == 2


def test_a_plain_sim_checkpoint_resumes_without_the_flag(tmp_path: Path) -> None:
    config = TrainConfig(model="mlp", dataset="digits", epochs=1, batch_size=512, backend="sim#seed=3")
    train(config, tmp_path / "r")
    result = runner.invoke(app, ["train", "--resume", str(tmp_path / "r"), "--epochs", "2",
                                 "--out", str(tmp_path / "b"), "--json"])
    assert result.exit_code == 0, result.output
    assert read_run_metadata(tmp_path / "b").backend == "sim#seed=3"
