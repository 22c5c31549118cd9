"""`RunMetadata`: the typed view of a checkpoint's metadata.json, and its checks on untrusted files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hil.checkpoint import read_run_metadata, save_checkpoint
from hil.errors import CheckpointError
from hil.models import create_model
from hil.run_metadata import FORMAT, DatasetInfo, ModelInfo, RunMetadata, TrainingState
from hil.runs import open_run


def _metadata() -> RunMetadata:
    return RunMetadata(model=ModelInfo("mlp", {"bn": False, "input_shape": [1, 8, 8], "num_classes": 10}),
                       dataset=DatasetInfo("digits", None, 3, (1, 8, 8), 10), seed=3,
                       noise={"sigma_add": 0.1}, backend="sim#seed=2",
                       training=TrainingState({"epochs": 1}, 1, ({"epoch": 1},)),
                       metrics={"test_accuracy": 0.5}, extra={"note": "kept"})


def test_round_trip_through_a_checkpoint(tmp_path: Path) -> None:
    model = create_model("mlp", input_shape=(1, 8, 8), num_classes=10)
    save_checkpoint(tmp_path / "run", model, _metadata())
    back = read_run_metadata(tmp_path / "run")
    assert back.model == _metadata().model and back.dataset == _metadata().dataset
    assert (back.seed, back.backend, back.test_accuracy, back.extra) == (3, "sim#seed=2", 0.5, {"note": "kept"})
    assert back.training.epochs_done == 1 and back.training.history == ({"epoch": 1},)
    assert back.hil_version != "" and back.to_dict()["format"] == FORMAT


def test_old_style_metadata_reads_with_defaults() -> None:
    meta = RunMetadata.from_dict({"format": FORMAT, "format_version": 1, "model": {"name": "mlp"}})
    # Written before preprocessing was a setting: the data was standardised then.
    assert meta.dataset == DatasetInfo(preprocess="standard") and meta.training == TrainingState()
    assert meta.calibration is None
    with pytest.raises(CheckpointError, match="no metrics.test_accuracy"):
        _ = meta.test_accuracy


@pytest.mark.parametrize(
    ("change", "fragment"),
    [({"dataset": {"name": "digits", "seed": "3"}}, "dataset.seed must be an integer, got '3'"),
     ({"dataset": {"name": 5}}, "dataset.name must be a string"),
     ({"dataset": {"data_dir": ["/etc"]}}, "dataset.data_dir must be a string"),
     ({"dataset": {"input_shape": [1, 0]}}, "dataset.input_shape must be an integer ≥ 1, got 0"),
     ({"metrics": {"test_accuracy": "high"}}, "metrics.test_accuracy must be a number, got 'high'"),
     ({"training": {"history": {}}}, "training.history must be a list"),
     ({"training": {"epochs_done": -1}}, "training.epochs_done must be an integer ≥ 0"),
     ({"model": {"name": "mlp", "kwargs": [1]}}, "model.kwargs must be a table"),
     ({"backend": 3}, "backend must be a spec string"),
     ({"sites": "all"}, "sites must be a list")],
)
def test_untrusted_fields_get_one_line_errors(change: dict, fragment: str) -> None:
    data = {**_metadata().to_dict(), **change}
    with pytest.raises(CheckpointError) as info:
        RunMetadata.from_dict(data, "ckpt/metadata.json")
    message = str(info.value)
    assert message.startswith("ckpt/metadata.json: ") and fragment in message and "\n" not in message


def test_open_run_refuses_a_checkpoint_with_a_bad_dataset_field(tmp_path: Path) -> None:
    model = create_model("mlp", input_shape=(1, 8, 8), num_classes=10)
    save_checkpoint(tmp_path / "run", model, _metadata())
    path = tmp_path / "run" / "metadata.json"
    data = json.loads(path.read_text())
    data["dataset"]["seed"] = [1]
    path.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="dataset.seed must be an integer"), open_run(tmp_path / "run"):
        pass
