"""Checkpoints: safetensors + versioned metadata, round trips, no pickle, errors, resume."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch
from helpers import snapshot

from hil import create_model
from hil._version import __version__
from hil.checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    is_checkpoint,
    load_checkpoint,
    load_optimizer_state,
    read_metadata,
    save_checkpoint,
)
from hil.config import TrainConfig
from hil.errors import CheckpointError, ConfigError, HilError, UnknownNameError
from hil.noise import NoiseSpec
from hil.training import TrainResult, train

FAST = TrainConfig(model="mlp", dataset="digits", epochs=1, batch_size=512, noise=NoiseSpec(sigma_add=0.05))


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        assert torch.equal(a[key], b[key]), key


def history_without_timing(result: TrainResult) -> list[dict]:
    return [{k: v for k, v in asdict(r).items() if k != "seconds"} for r in result.history]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrainResult]:
    """A 1-epoch noisy MLP on digits written by `hil.training.train` (read-only for tests)."""
    out = tmp_path_factory.mktemp("trained") / "run"
    return out, train(FAST, out)


def small_model_and_optimizer() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """An MLP with BatchNorm (so buffers and an int64 counter) after one Adam step."""
    torch.manual_seed(0)
    model = create_model("mlp", bn=True, input_shape=(1, 4, 4), num_classes=3, hidden=8)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = torch.randn(16, 1, 4, 4), torch.randint(0, 3, (16,))
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    return model, optimizer


def model_metadata(model: torch.nn.Module) -> dict:
    return {"model": {"name": "mlp", "kwargs": model.config()}}


# -- layout and metadata --------------------------------------------------------------------

def test_checkpoint_files(trained: tuple[Path, TrainResult]) -> None:
    out = trained[0]
    for folder in (out, out / "epochs" / "epoch-0001"):
        assert sorted(p.name for p in folder.iterdir() if p.is_file()) == [
            "metadata.json", "model.safetensors", "optimizer.safetensors"]
    assert sorted(p.name for p in (out / "epochs").iterdir()) == ["epoch-0001"]
    assert not [p for p in out.rglob("*.tmp")]  # atomic writes leave no temporaries
    assert is_checkpoint(out) and is_checkpoint(out / "epochs" / "epoch-0001")
    assert not is_checkpoint(out / "epochs")


def test_metadata_contents(trained: tuple[Path, TrainResult]) -> None:
    out, result = trained
    metadata = read_metadata(out)
    assert metadata["format"] == FORMAT == "hil-checkpoint"
    assert metadata["format_version"] == FORMAT_VERSION
    assert metadata["hil_version"] == __version__
    assert metadata["model"] == {"name": "mlp", "kwargs": {"bn": False, "input_shape": [1, 8, 8],
                                                           "num_classes": 10, "hidden": 64}}
    assert [s["name"] for s in metadata["sites"]] == [
        "0:input", "1:fc1", "2:relu1", "3:fc2", "4:relu2", "5:fc3", "6:relu3", "7:fc4"]
    assert metadata["noise"] == FAST.noise.to_dict()
    assert metadata["backend"] == "sim"
    assert metadata["dataset"] == {"name": "digits", "data_dir": None, "seed": 0, "input_shape": [1, 8, 8],
                                   "num_classes": 10, "preprocess": "paper"}
    assert metadata["seed"] == 0
    assert metadata["metrics"]["test_accuracy"] == result.clean_accuracy
    assert metadata["metrics"]["noisy_test_accuracy"] == result.noisy.mean
    assert metadata["training"]["config"] == FAST.to_dict()
    assert metadata["training"]["epochs_done"] == 1
    assert metadata["training"]["history"] == [asdict(r) for r in result.history]
    assert "param_groups" in metadata["optimizer"]
    epoch = read_metadata(out / "epochs" / "epoch-0001")
    assert epoch["metrics"]["test_accuracy"] == result.history[0].test_accuracy
    assert epoch["training"]["epochs_done"] == 1


def test_weights_file_is_plain_safetensors(trained: tuple[Path, TrainResult]) -> None:
    raw = (trained[0] / "model.safetensors").read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + length])
    model = load_checkpoint(trained[0]).model
    assert set(header) - {"__metadata__"} == set(model.state_dict())
    assert all(entry["dtype"] == "F32" for key, entry in header.items() if key != "__metadata__")


# -- round trips ----------------------------------------------------------------------------

def test_round_trip_restores_weights_metadata_and_optimizer(tmp_path: Path) -> None:
    model, optimizer = small_model_and_optimizer()
    extra = {"note": {"list": [1, 2.5, "x"], "flag": True}}
    path = save_checkpoint(tmp_path / "ckpt", model, {**model_metadata(model), **extra}, optimizer)
    assert path == tmp_path / "ckpt"
    assert sorted(p.name for p in path.iterdir()) == ["metadata.json", "model.safetensors", "optimizer.safetensors"]

    loaded = load_checkpoint(path)
    assert loaded.path == path
    assert not loaded.model.training  # returned in eval mode
    assert_same_tensors(model.state_dict(), loaded.model.state_dict())
    assert loaded.metadata["format"] == FORMAT
    assert loaded.metadata["format_version"] == FORMAT_VERSION
    assert loaded.metadata["hil_version"] == __version__
    assert loaded.metadata["model"] == model_metadata(model)["model"]
    assert loaded.metadata["note"] == extra["note"]

    restored = torch.optim.Adam(loaded.model.parameters(), lr=1.0)
    load_optimizer_state(path, restored, loaded.metadata)
    original_state, restored_state = optimizer.state_dict(), restored.state_dict()
    assert restored_state["param_groups"][0]["lr"] == 1e-2
    for index, values in original_state["state"].items():
        assert_same_tensors(values, restored_state["state"][index])

    # One more identical step on both keeps them bit-identical.
    x, y = torch.randn(8, 1, 4, 4), torch.randint(0, 3, (8,))
    for net, opt in ((model, optimizer), (loaded.model, restored)):
        net.train()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    assert_same_tensors(model.state_dict(), loaded.model.state_dict())


def test_trained_checkpoint_reloads_and_resaves_identically(trained: tuple[Path, TrainResult],
                                                            tmp_path: Path) -> None:
    first = load_checkpoint(trained[0])
    save_checkpoint(tmp_path / "again", first.model, {k: v for k, v in first.metadata.items()
                                                      if k not in ("format", "format_version", "hil_version")})
    second = load_checkpoint(tmp_path / "again")
    assert_same_tensors(first.model.state_dict(), second.model.state_dict())
    assert second.metadata == first.metadata
    assert (tmp_path / "again" / "model.safetensors").read_bytes() == (trained[0] / "model.safetensors").read_bytes()


def test_save_over_existing_checkpoint_leaves_no_temporaries(tmp_path: Path) -> None:
    model, optimizer = small_model_and_optimizer()
    for _ in range(2):
        save_checkpoint(tmp_path, model, model_metadata(model), optimizer)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metadata.json", "model.safetensors",
                                                          "optimizer.safetensors"]


def test_loading_never_unpickles(trained: tuple[Path, TrainResult], monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("a checkpoint was unpickled")

    class ForbiddenUnpickler:
        def __init__(self, *args: object, **kwargs: object) -> None:
            forbidden()

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", ForbiddenUnpickler)
    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(torch.serialization, "load", forbidden)

    for path in (trained[0], trained[0] / "epochs" / "epoch-0001"):
        checkpoint = load_checkpoint(path)
        optimizer = torch.optim.Adam(checkpoint.model.parameters())
        load_optimizer_state(path, optimizer, checkpoint.metadata)
        assert optimizer.state_dict()["state"]


# -- metadata errors ------------------------------------------------------------------------

def write_metadata(path: Path, metadata: object) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "metadata.json").write_text(metadata if isinstance(metadata, str) else json.dumps(metadata))


def test_newer_format_version(tmp_path: Path) -> None:
    model, _ = small_model_and_optimizer()
    save_checkpoint(tmp_path, model, model_metadata(model))
    metadata = json.loads((tmp_path / "metadata.json").read_text())
    metadata["format_version"] = FORMAT_VERSION + 1
    write_metadata(tmp_path, metadata)
    for load in (read_metadata, load_checkpoint):
        with pytest.raises(CheckpointError) as info:
            load(tmp_path)
        message = str(info.value)
        assert "newer" in message and "upgrade" in message
        assert f"format version {FORMAT_VERSION + 1}" in message
        assert __version__ in message


@pytest.mark.parametrize(
    ("metadata", "fragment"),
    [({"model": {"name": "mlp"}}, "is not a hil checkpoint"),
     ({"format": "other-tool", "format_version": 1, "model": {"name": "mlp"}}, "is not a hil checkpoint"),
     ([1, 2, 3], "is not a hil checkpoint"),
     ("{not json", "cannot read"),
     ({"format": FORMAT, "model": {"name": "mlp"}}, "invalid format_version None"),
     ({"format": FORMAT, "format_version": 0, "model": {"name": "mlp"}}, "invalid format_version 0"),
     ({"format": FORMAT, "format_version": "1", "model": {"name": "mlp"}}, "invalid format_version '1'"),
     ({"format": FORMAT, "format_version": 1}, "does not name its model"),
     ({"format": FORMAT, "format_version": 1, "model": {"kwargs": {}}}, "does not name its model")],
    ids=["no-format", "other-format", "list", "bad-json", "no-version", "version-0", "version-string",
         "no-model", "model-without-name"],
)
def test_not_a_checkpoint(metadata: object, fragment: str, tmp_path: Path) -> None:
    write_metadata(tmp_path, metadata)
    with pytest.raises(CheckpointError, match="metadata.json") as info:
        load_checkpoint(tmp_path)
    assert fragment in str(info.value)


def test_missing_folder_and_missing_metadata(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="the directory does not exist"):
        load_checkpoint(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="metadata.json is missing"):
        load_checkpoint(tmp_path)
    assert not is_checkpoint(tmp_path) and not is_checkpoint(tmp_path / "missing")
    assert isinstance(CheckpointError("x"), HilError)


def test_unknown_model_name(tmp_path: Path) -> None:
    write_metadata(tmp_path, {"format": FORMAT, "format_version": 1, "model": {"name": "resnet"}})
    with pytest.raises(UnknownNameError, match="unknown model 'resnet'"):
        load_checkpoint(tmp_path)


def test_model_kwargs_the_model_does_not_take(tmp_path: Path) -> None:
    model, _ = small_model_and_optimizer()
    metadata = model_metadata(model)
    metadata["model"]["kwargs"]["width_multiplier"] = 2
    save_checkpoint(tmp_path, model, metadata)
    with pytest.raises(CheckpointError, match="width_multiplier"):
        load_checkpoint(tmp_path)


# -- weight errors --------------------------------------------------------------------------

@pytest.mark.parametrize(
    "corrupt",
    [lambda raw: b"", lambda raw: raw[:7], lambda raw: raw[: len(raw) // 2], lambda raw: b"junk" * 64,
     lambda raw: struct.pack("<Q", 10**12) + raw[8:], lambda raw: raw[:8] + b"{broken" + raw[15:], None],
    ids=["empty", "short", "truncated", "junk", "huge-header", "bad-header-json", "missing"],
)
def test_corrupt_weights(corrupt, tmp_path: Path) -> None:
    model, _ = small_model_and_optimizer()
    save_checkpoint(tmp_path, model, model_metadata(model))
    weights = tmp_path / "model.safetensors"
    if corrupt is None:
        weights.unlink()
    else:
        weights.write_bytes(corrupt(weights.read_bytes()))
    with pytest.raises(CheckpointError, match="cannot read weights .*model.safetensors"):
        load_checkpoint(tmp_path)


def test_wrong_shape(tmp_path: Path) -> None:
    model, _ = small_model_and_optimizer()
    metadata = model_metadata(model)
    metadata["model"]["kwargs"]["hidden"] = 5
    save_checkpoint(tmp_path, model, metadata)
    with pytest.raises(CheckpointError, match=r"do not fit the model: \w+\.\w+ has shape \(8,\) in the "
                                              r"checkpoint but \(5,\) in the model"):
        load_checkpoint(tmp_path)


def test_missing_and_unexpected_keys(tmp_path: Path) -> None:
    model, _ = small_model_and_optimizer()
    metadata = model_metadata(model)
    metadata["model"]["kwargs"]["bn"] = False  # saved with BatchNorm, rebuilt without it
    save_checkpoint(tmp_path, model, metadata)
    with pytest.raises(CheckpointError, match=r"unexpected \['bn1\..*--bn"):
        load_checkpoint(tmp_path)


def test_corrupt_or_missing_optimizer_state(tmp_path: Path) -> None:
    model, optimizer = small_model_and_optimizer()
    save_checkpoint(tmp_path / "with", model, model_metadata(model), optimizer)
    save_checkpoint(tmp_path / "without", model, model_metadata(model))
    fresh = torch.optim.Adam(model.parameters())
    with pytest.raises(CheckpointError, match="no optimizer state"):
        load_optimizer_state(tmp_path / "without", fresh, read_metadata(tmp_path / "without"))
    (tmp_path / "with" / "optimizer.safetensors").write_bytes(b"garbage!" * 4)
    with pytest.raises(CheckpointError, match="cannot read weights .*optimizer.safetensors"):
        load_optimizer_state(tmp_path / "with", fresh, read_metadata(tmp_path / "with"))


# -- write errors ---------------------------------------------------------------------------

def test_save_below_a_file(tmp_path: Path) -> None:
    model, _ = small_model_and_optimizer()
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    with pytest.raises(CheckpointError, match=f"cannot write checkpoint to {blocker / 'ckpt'}"):
        save_checkpoint(blocker / "ckpt", model, model_metadata(model))
    assert blocker.read_text() == "a file, not a folder"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores directory permissions")
def test_save_into_read_only_folder(tmp_path: Path) -> None:
    model, _ = small_model_and_optimizer()
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(CheckpointError, match="cannot write checkpoint"):
            save_checkpoint(locked, model, model_metadata(model))
        with pytest.raises(CheckpointError, match="cannot write checkpoint"):
            save_checkpoint(locked / "sub", model, model_metadata(model))
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


# -- training: overwrite and resume ---------------------------------------------------------

def test_train_refuses_existing_checkpoint_unless_overwrite(trained: tuple[Path, TrainResult],
                                                            tmp_path: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(trained[0], out)
    before = snapshot(out)
    with pytest.raises(ConfigError, match="already holds a checkpoint"):
        train(FAST, out)
    assert snapshot(out) == before
    replaced = train(replace(FAST, seed=1), out, overwrite=True, keep_epochs=False)
    assert read_metadata(out)["seed"] == 1
    assert replaced.path == out


def test_overwrite_leaves_no_epoch_checkpoints_of_the_old_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(replace(FAST, epochs=2), out)
    train(replace(FAST, seed=9), out, overwrite=True)
    for epoch in (out / "epochs").iterdir():
        assert read_metadata(epoch)["seed"] == 9, f"{epoch.name} is left over from the replaced run"


def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path: Path) -> None:
    two = replace(FAST, epochs=2, seed=3, noise=NoiseSpec(sigma_add=0.1))
    straight = train(two, tmp_path / "straight")
    train(replace(two, epochs=1), tmp_path / "first")
    before = snapshot(tmp_path / "first")
    resumed = train(two, tmp_path / "resumed", resume_from=tmp_path / "first")
    assert snapshot(tmp_path / "first") == before  # resuming elsewhere leaves the source alone
    # Resuming from the uninterrupted run's own epoch checkpoint gives the same run again.
    from_epoch = train(two, tmp_path / "from-epoch", resume_from=tmp_path / "straight" / "epochs" / "epoch-0001")

    reference = load_checkpoint(tmp_path / "straight")
    for result in (resumed, from_epoch):
        checkpoint = load_checkpoint(result.path)
        assert_same_tensors(reference.model.state_dict(), checkpoint.model.state_dict())
        assert history_without_timing(result) == history_without_timing(straight)
        assert [r["epoch"] for r in checkpoint.metadata["training"]["history"]] == [1, 2]
        assert checkpoint.metadata["training"]["epochs_done"] == 2
        assert result.clean_accuracy == straight.clean_accuracy
        assert result.noisy == straight.noisy
        assert (result.path / "optimizer.safetensors").read_bytes() == (
            tmp_path / "straight" / "optimizer.safetensors").read_bytes()
    assert sorted(p.name for p in (tmp_path / "resumed" / "epochs").iterdir()) == ["epoch-0002"]


@pytest.mark.parametrize(
    "change",
    [{"lr": 0.01}, {"seed": 1}, {"batch_size": 64}, {"clamp_weights": True},
     {"noise": NoiseSpec(sigma_add=0.2)}],
    ids=["lr", "seed", "batch_size", "clamp_weights", "noise"],
)
def test_resume_with_changed_settings(change: dict, trained: tuple[Path, TrainResult], tmp_path: Path) -> None:
    before = snapshot(trained[0])
    config = replace(FAST, epochs=2, **change)
    with pytest.raises(ConfigError, match="settings differ from the checkpoint's; only --epochs may change"):
        train(config, tmp_path / "out", resume_from=trained[0])
    assert not (tmp_path / "out").exists()
    assert snapshot(trained[0]) == before


def test_resume_may_change_the_backend(trained: tuple[Path, TrainResult], tmp_path: Path) -> None:
    # The caller chooses where a resumed run trains; a checkpoint file never does.
    result = train(replace(FAST, epochs=2, backend="sim#seed=1"), tmp_path / "out", resume_from=trained[0])
    assert len(result.history) == 2


def test_resume_when_already_finished(trained: tuple[Path, TrainResult], tmp_path: Path) -> None:
    before = snapshot(trained[0])
    with pytest.raises(ConfigError, match="already finished 1 epochs; pass --epochs greater than 1"):
        train(FAST, tmp_path / "out", resume_from=trained[0])
    assert not (tmp_path / "out").exists()
    assert snapshot(trained[0]) == before


def test_resume_from_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        train(replace(FAST, epochs=2), tmp_path / "out", resume_from=tmp_path / "missing")
    assert not (tmp_path / "out").exists()
