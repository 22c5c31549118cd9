"""``--track mlflow``: training and walks logged to MLflow; without the extra, one line naming it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from helpers import error_line
from typer.testing import CliRunner

from hil.cli import app
from hil.tracking import TrackSpec, flatten, metric_key

TRAIN = ["train", "--dataset", "digits", "--model", "mlp", "--epochs", "2", "--batch-size", "512"]


def test_specs_keys_and_flattening() -> None:
    assert TrackSpec.parse("mlflow") == TrackSpec("mlflow", None)
    assert TrackSpec.parse("mlflow:sqlite:///x.db") == TrackSpec("mlflow", "sqlite:///x.db")
    assert metric_key("mu/3:conv2 σm=0.5") == "mu/3_conv2 _m_0.5"
    assert flatten({"a": {"b": 1, "c": {"d": None}}, "e": [1, 2]}) == {"a.b": "1", "a.c.d": "None", "e": "[1, 2]"}


def test_training_and_a_walk_are_logged_to_the_local_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    trained = runner.invoke(app, [*TRAIN, "--sigma-add", "0.05", "--out", "ck", "--track", "mlflow"])
    assert trained.exit_code == 0, trained.output
    walked = runner.invoke(app, ["walk", "--checkpoint", "ck", "--sites", "1:fc1,5:fc3", "--sigmas", "0.1,0.5,1,3",
                                 "--out", "w", "--track", "mlflow"])
    assert walked.exit_code == 0, walked.output
    assert (tmp_path / "mlruns" / "mlflow.db").is_file()
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    runs = {e.name: client.search_runs([e.experiment_id]) for e in client.search_experiments()}
    (train_run,), (walk_run,) = runs["hil train"], runs["hil walk"]
    assert train_run.info.status == walk_run.info.status == "FINISHED"
    assert train_run.data.params["model"] == "mlp" and train_run.data.params["noise.sigma_add"] == "0.05"
    assert [m.step for m in client.get_metric_history(train_run.info.run_id, "test_accuracy")] == [1, 2]
    assert 0 < train_run.data.metrics["clean_accuracy"] <= 1 and "noisy_accuracy" in train_run.data.metrics
    assert [a.path for a in client.list_artifacts(train_run.info.run_id)] == ["metadata.json"]
    import json

    mu = json.loads((tmp_path / "w" / "mu.json").read_text())
    fitted = [site for site in mu["sites"] if site["status"] == "ok"]
    assert fitted, mu
    for site in fitted:
        key = site["site"].replace(":", "_")
        assert walk_run.data.metrics[f"mu/{key}"] == pytest.approx(site["mu"])
        assert walk_run.data.metrics[f"mu_low/{key}"] == pytest.approx(site["mu_low"])
    assert walk_run.data.metrics["failed_points"] == 0
    assert walk_run.data.params["sweep.sigmas"] == "[0.1, 0.5, 1.0, 3.0]"
    assert [a.path for a in client.list_artifacts(walk_run.info.run_id)] == ["mu.json"]


def test_a_failed_run_is_marked_failed(tmp_path: Path) -> None:
    mlflow = pytest.importorskip("mlflow")
    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    result = CliRunner().invoke(app, ["walk", "--checkpoint", str(tmp_path / "absent"), "--out", str(tmp_path / "w"),
                                      "--track", f"mlflow:{uri}"])
    error_line(result, "no checkpoint at")
    experiment = mlflow.MlflowClient(uri).get_experiment_by_name("hil walk")
    (run,) = mlflow.MlflowClient(uri).search_runs([experiment.experiment_id])
    assert run.info.status == "FAILED"


def test_without_mlflow_track_is_one_line_naming_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if the extra were not installed
    out = tmp_path / "ck"
    error_line(CliRunner().invoke(app, [*TRAIN, "--out", str(out), "--track", "mlflow"]),
               "--track mlflow needs MLflow", '".[track]"')
    assert not out.exists()


@pytest.mark.parametrize(("track", "says"), [("wandb", "unknown tracker 'wandb'"), ("mlflow:", "empty URI")])
def test_bad_track_specs_are_one_line(track: str, says: str, tmp_path: Path) -> None:
    error_line(CliRunner().invoke(app, [*TRAIN, "--out", str(tmp_path / "ck"), "--track", track]), says)


def test_an_unreachable_tracking_server_is_one_line_before_any_work(tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    monkeypatch_env = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "2"}
    result = CliRunner().invoke(app, [*TRAIN, "--out", str(tmp_path / "ck"), "--track", "mlflow:http://127.0.0.1:1"],
                                env=monkeypatch_env)
    error_line(result, "cannot log to MLflow at http://127.0.0.1:1", "--track")
    assert not (tmp_path / "ck").exists()
