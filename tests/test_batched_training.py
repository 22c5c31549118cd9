"""Batched training of K points equals K separate trainings (weights, losses, accuracies, optimizer state)."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

from hil.backends.base import ConvParams
from hil.batched_training import check_batchable, train_batched
from hil.checkpoint import OPTIMIZER, load_checkpoint
from hil.cli import app
from hil.config import TrainConfig
from hil.errors import ConfigError
from hil.noise import NoiseSpec
from hil.stacked_networks import check_stackable, stack_networks, stacked_conv, stacked_linear, unstack_into
from hil.studies.training_walk import TrainingWalk
from hil.training import train
from hil.walking.store import ResultStore
from hil.walking.sweep import SweepSpec
from tests.helpers import plain

NOISES = (NoiseSpec(sigma_add=0.1), NoiseSpec(sigma_add=0.05, sigma_mul=0.1, sites=("1:conv1", "7:fc1")),
          NoiseSpec(sigma_add=0.2, sigma_mul=0.1, order="add-first", gradient="straight-through"), NoiseSpec())


def _configs(model: str, epochs: int = 1) -> list[TrainConfig]:
    noises = [noise if model == "lenet5" or noise.sites == "all" else replace(noise, sites=("1:fc1",))
              for noise in NOISES]
    return [TrainConfig(model=model, dataset="mnist5k", epochs=epochs, batch_size=256, seed=seed, noise=noise)
            for seed, noise in zip((11, 12, 13, 14), noises, strict=True)]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path).model.state_dict()


@pytest.mark.parametrize("model", ["mlp", "lenet5"])
def test_batched_training_equals_separate_trainings(tmp_path: Path, model: str) -> None:
    configs = _configs(model)
    alone = [train(config, tmp_path / f"alone-{i}", keep_epochs=False) for i, config in enumerate(configs)]
    together = train_batched(configs, [tmp_path / f"together-{i}" for i in range(len(configs))], keep_epochs=False)
    for one, batched in zip(alone, together, strict=True):
        expected, got = _weights(one.path), _weights(batched.path)
        assert expected.keys() == got.keys()
        for key in expected:
            torch.testing.assert_close(got[key], expected[key], rtol=1e-4, atol=1e-5)
        assert batched.clean_accuracy == one.clean_accuracy
        assert (batched.noisy is None) == (one.noisy is None)
        if one.noisy is not None and batched.noisy is not None:
            assert batched.noisy.accuracies == one.noisy.accuracies
        for a, b in zip(one.history, batched.history, strict=True):
            assert b.loss == pytest.approx(a.loss, rel=1e-5)
            assert (b.train_accuracy, b.test_accuracy, b.lr, b.epoch) == (a.train_accuracy, a.test_accuracy,
                                                                           a.lr, a.epoch)
        meta_a = json.loads((one.path / "metadata.json").read_text())
        meta_b = json.loads((batched.path / "metadata.json").read_text())
        for key in ("model", "sites", "noise", "dataset", "seed", "metrics"):
            assert meta_b[key] == meta_a[key], key
        assert (batched.path / OPTIMIZER).is_file()


def test_epoch_seconds_leave_out_the_epochs_test_in_both_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    import hil.batched_training
    import hil.training
    from hil.evaluation import accuracy

    def slow_test(*args: object) -> float:
        time.sleep(1.0)
        return accuracy(*args)  # type: ignore[arg-type]

    for module in (hil.training, hil.batched_training):
        monkeypatch.setattr(module, "accuracy", slow_test)
    config = replace(_configs("mlp")[0], dataset="digits")
    alone = train(config, tmp_path / "alone", keep_epochs=False)
    together = train_batched([config], [tmp_path / "together"], keep_epochs=False)[0]
    assert alone.history[0].seconds < 1.0 and together.history[0].seconds < 1.0  # each test slept 1 s


def test_a_batched_checkpoint_resumes_like_a_separate_one(tmp_path: Path) -> None:
    """The optimizer state saved per network is its slice of the stacked Adam: resuming continues exactly."""
    configs = _configs("mlp", epochs=1)[:2]
    batched = train_batched(configs, [tmp_path / "b0", tmp_path / "b1"])
    for index, config in enumerate(configs):
        longer = replace(config, epochs=2)
        resumed = train(longer, tmp_path / f"resumed-{index}", resume_from=batched[index].path)
        straight = train(longer, tmp_path / f"straight-{index}")
        for key, value in _weights(straight.path).items():
            torch.testing.assert_close(_weights(resumed.path)[key], value, rtol=1e-4, atol=1e-5)
        assert (batched[index].path / "epochs" / "epoch-0001" / "metadata.json").is_file()


def test_stacked_layers_equal_each_network_alone() -> None:
    torch.manual_seed(0)
    networks, batch = 3, 4
    x = torch.randn(networks * batch, 5, 7)
    weight, bias = torch.randn(networks, 6, 7), torch.randn(networks, 6)
    expected = torch.cat([F.linear(x[i * batch:(i + 1) * batch], weight[i], bias[i]) for i in range(networks)])
    torch.testing.assert_close(stacked_linear(x, weight, bias), expected)
    torch.testing.assert_close(stacked_linear(x, weight, None),
                               torch.cat([F.linear(x[i * batch:(i + 1) * batch], weight[i]) for i in range(3)]))
    images = torch.randn(networks * batch, 4, 9, 9, requires_grad=True)
    filters = torch.randn(networks, 6, 2, 3, 3, requires_grad=True)
    offsets = torch.randn(networks, 6, requires_grad=True)
    params = ConvParams(dims=2, stride=2, padding=1, groups=2)
    alone = torch.cat([F.conv2d(images[i * batch:(i + 1) * batch], filters[i], offsets[i], 2, 1, 1, 2)
                       for i in range(networks)])
    gradients = torch.autograd.grad(alone.square().sum(), (images, filters, offsets))
    for mode in ("grouped", "per-network"):
        got = stacked_conv(images, filters, offsets, params, mode)
        torch.testing.assert_close(got, alone, rtol=1e-5, atol=1e-5)
        for mine, theirs in zip(torch.autograd.grad(got.square().sum(), (images, filters, offsets)), gradients,
                                strict=True):
            torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-4)
    signal = torch.randn(networks * batch, 2, 11)
    kernels = torch.randn(networks, 3, 2, 5)
    torch.testing.assert_close(
        stacked_conv(signal, kernels, None, ConvParams(dims=1, padding="same"), "grouped"),
        torch.cat([F.conv1d(signal[i * batch:(i + 1) * batch], kernels[i], padding="same") for i in range(3)]),
        rtol=1e-5, atol=1e-5)


def test_stack_and_unstack_round_trip() -> None:
    torch.manual_seed(1)
    models = [nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 3)) for _ in range(3)]
    stacked = stack_networks(models)
    assert stacked[2].weight.shape == (3, 3, 8)
    copies = [nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 3)) for _ in range(3)]
    unstack_into(stacked, copies)
    for model, copy in zip(models, copies, strict=True):
        for (name, value), (_, other) in zip(model.named_parameters(), copy.named_parameters(), strict=True):
            assert torch.equal(value, other), name


@pytest.mark.parametrize(("model", "problem"), [
    (nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)), "buffers"),
    (nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.1)), "dropout"),
    (nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4)), "LayerNorm"),
])
def test_models_with_more_state_are_refused(model: nn.Module, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        check_stackable(model, "net")


@pytest.mark.parametrize(("change", "message"), [
    ({"epochs": 2}, "differ only in their noise and seed"),
    ({"bn": True}, "--bn"),
    ({"quant": 4}, "--quant"),
    ({"backend": "twin:profile.toml"}, "not 'twin'"),
])
def test_runs_that_cannot_be_batched_are_refused(change: dict[str, object], message: str) -> None:
    base = TrainConfig(model="mlp", dataset="mnist5k", epochs=1)
    others = replace(base, seed=3, **change) if "epochs" in change else replace(base, **change)
    configs = [base, others] if "epochs" in change else [others, replace(others, seed=3)]
    with pytest.raises(ConfigError, match=message):
        check_batchable(configs)


def test_output_folders_are_checked_before_training(tmp_path: Path) -> None:
    configs = _configs("mlp")[:2]
    with pytest.raises(ConfigError, match="one distinct output directory per run"):
        train_batched(configs, [tmp_path / "same", tmp_path / "same"])
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        train_batched(configs, [tmp_path / "free", tmp_path / "taken"])
    assert not (tmp_path / "free").exists()
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"


def test_a_batched_walk_stores_what_a_walk_point_by_point_stores(tmp_path: Path) -> None:
    base = TrainConfig(model="mlp", dataset="mnist5k", epochs=1, batch_size=256)
    spec = SweepSpec(noise="add", sigmas=(0.1, 0.5, 2.0), sites=("1:fc1", "4:relu2"), repeats=1, seed=5)
    stored = []
    for batch_points in (1, 4):
        walk = TrainingWalk(base, spec, batch_points)
        assert [len(unit) for unit in walk.units(walk.points)] == ([1] * 6 if batch_points == 1 else [4, 2])
        with ResultStore(tmp_path / f"walk-{batch_points}.sqlite") as store:
            experiment = store.register_experiment({"kind": "train"}, name="batched")
            assert walk.run(store, experiment) == 6
            results = store.results(experiment)
            stored.append(sorted((r.key.site, r.key.sigma_add, r.key.repeat, r.accuracy) for r in results))
    assert stored[0] == stored[1]


def test_cli_batch_points_needs_a_training_walk_and_a_stackable_model() -> None:
    runner = CliRunner()
    refused = runner.invoke(app, ["walk", "--checkpoint", "net", "--batch-points", "2"])
    assert refused.exit_code == 1
    assert "--batch-points batches trainings" in plain(refused.output)
    refused = runner.invoke(app, ["walk", "--train-per-point", "--model", "mlp", "--bn", "--batch-points", "2"])
    assert refused.exit_code == 1
    assert "does not cover --bn" in plain(refused.output)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_batched_training_on_the_gpu_matches_separate_gpu_trainings(tmp_path: Path) -> None:
    """On CUDA convolutions run grouped (another summation order): accuracies agree, weights to float noise."""
    configs = [replace(config, backend="gpu") for config in _configs("lenet5")]
    alone = [train(config, tmp_path / f"alone-{i}", keep_epochs=False) for i, config in enumerate(configs)]
    together = train_batched(configs, [tmp_path / f"together-{i}" for i in range(len(configs))], keep_epochs=False)
    for one, batched in zip(alone, together, strict=True):
        assert abs(batched.clean_accuracy - one.clean_accuracy) <= 0.03  # TF32 convolutions on both sides
        for key, value in _weights(one.path).items():
            torch.testing.assert_close(_weights(batched.path)[key], value, rtol=1e-2, atol=1e-2)
