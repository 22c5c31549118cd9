"""Walking Noise through a device: `hil walk --backend device:serial:<pty>` runs a seeded walk
point by point through the emulator, `hil report` reads it, and a rerun resumes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hil.backends.device.emulator import EmulatorProcess
from hil.cli import app
from hil.config import TrainConfig
from hil.studies.walk import InferenceWalk
from hil.training import train
from hil.walking.store import ResultStore

runner = CliRunner()
SIGMAS = "0.01,0.1,1,3,10"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("device-walk") / "mlp"
    train(TrainConfig(model="mlp", dataset="digits", epochs=20), out, keep_epochs=False)
    return out


@pytest.fixture(scope="module")
def device() -> Iterator[str]:
    emulator = EmulatorProcess("--port", "pty", "--sigma-add", "0.002", "--seed", "3")
    yield f"device:serial:{emulator.address}"
    emulator.stop()


def walk(checkpoint: Path, backend: str, out: Path, *extra: str) -> dict:
    result = runner.invoke(app, ["walk", "--checkpoint", str(checkpoint), "--backend", backend, "--sites", "1:fc1",
                                 "--sigmas", SIGMAS, "--repeats", "2", "--out", str(out), "--json", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def points(out: Path) -> list[tuple]:
    with ResultStore(out / "results.sqlite") as store:
        experiment = str(store.experiments()[-1]["id"])
        rows = store.results(experiment)
    return sorted((r.key.site, r.key.sigma_add, r.key.repeat, r.accuracy, r.seed) for r in rows)


def test_a_walk_runs_through_the_device_and_reports(checkpoint: Path, device: str, tmp_path: Path) -> None:
    on_device = walk(checkpoint, device, tmp_path / "device")
    assert on_device["config"]["backend"] == device
    (site,) = on_device["sites"]
    assert site["site"] == "1:fc1" and len(site["sigmas"]) == 5
    assert site["mean"][0] > 0.8 > site["mean"][-1]  # the injected noise takes the device's network down
    stored = points(tmp_path / "device")
    assert len(stored) == 5 * 2 and len({p[4] for p in stored}) == 10  # every point seeded on its own
    on_sim = walk(checkpoint, "sim", tmp_path / "sim")
    # same seeds, same injected draws: the device's own small noise and quantisation move accuracies only a little
    for device_mean, sim_mean in zip(site["mean"], on_sim["sites"][0]["mean"], strict=True):
        assert abs(device_mean - sim_mean) < 0.05
    assert [p[4] for p in stored] == [p[4] for p in points(tmp_path / "sim")]

    report = runner.invoke(app, ["report", str(tmp_path / "device"), "--json"])
    assert report.exit_code == 0, report.output
    assert json.loads(report.stdout)["sites"][0]["site"] == "1:fc1"

    again = walk(checkpoint, device, tmp_path / "device")  # everything stored: nothing runs on the device again
    assert again["sites"][0]["mean"] == site["mean"]


def test_a_device_walk_is_not_stacked(checkpoint: Path, device: str) -> None:
    from hil.runs import open_run
    from hil.walking.sweep import SweepSpec

    spec = SweepSpec(noise="add", sigmas=(0.1, 1.0), sites=("1:fc1",), repeats=1)
    with open_run(checkpoint, device) as run:
        study = InferenceWalk(run.noisy, run.data.test_x, run.data.test_y, spec)
        assert not study.stacks
        assert [len(u) for u in study.units(study.points)] == [1, 1]
    with open_run(checkpoint, "sim") as run:
        assert InferenceWalk(run.noisy, run.data.test_x, run.data.test_y, spec).stacks
