"""Training: accuracy on embedded MNIST, the benefit of noisy training, schedule, clamping, progress."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from hil.checkpoint import load_checkpoint
from hil.config import TrainConfig
from hil.evaluation_job import evaluate_checkpoint
from hil.noise import NoiseSpec
from hil.training import EpochRecord, cosine_lr, train

EPOCHS = 15


@pytest.fixture(scope="module")
def clean_lenet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("clean") / "lenet"
    train(TrainConfig(model="lenet5", dataset="mnist5k", epochs=EPOCHS, seed=0), out, keep_epochs=False)
    return out


@pytest.fixture(scope="module")
def noisy_lenet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("noisy") / "lenet"
    train(TrainConfig(model="lenet5", dataset="mnist5k", epochs=EPOCHS, seed=0, noise=NoiseSpec(sigma_add=0.5)),
          out, keep_epochs=False)
    return out


def test_lenet5_reaches_93_percent_clean_on_mnist5k(clean_lenet: Path) -> None:
    # On [0, 1] pixels (the paper's data, the default) 15 epochs reach 94.3 %; standardised inputs reached
    # ≥ 95 % (they train a little faster), so the bar is 93 %.
    metadata = load_checkpoint(clean_lenet).metadata
    assert metadata["metrics"]["test_accuracy"] >= 0.93
    assert metadata["dataset"] == {"name": "mnist5k", "data_dir": None, "seed": 0, "input_shape": [1, 28, 28],
                                   "num_classes": 10, "preprocess": "paper"}


def test_noisy_training_holds_more_accuracy_under_that_noise(clean_lenet: Path, noisy_lenet: Path) -> None:
    noise = NoiseSpec(sigma_add=0.5)
    clean_trained = evaluate_checkpoint(clean_lenet, "sim", noise, repeats=5, seed=1).result
    noise_trained = evaluate_checkpoint(noisy_lenet, "sim", noise, repeats=5, seed=1).result
    # Measured 2026-11-23: ≈ 0.78 vs ≈ 0.90; the gap is > 10× the spread over draws.
    assert noise_trained.mean - clean_trained.mean > 0.05
    assert noise_trained.mean - clean_trained.mean > 4 * math.hypot(clean_trained.sem, noise_trained.sem)


def test_cosine_schedule() -> None:
    assert cosine_lr(1e-3, 0, 10) == pytest.approx(1e-3)
    assert cosine_lr(1e-3, 5, 10) == pytest.approx(5e-4)
    assert cosine_lr(1e-3, 10, 10) == pytest.approx(0.0)


class CountingProgress:
    def __init__(self) -> None:
        self.started: tuple[int, int, int] | None = None
        self.steps = 0
        self.records: list[EpochRecord] = []

    def start(self, epochs: int, steps_per_epoch: int, first_epoch: int) -> None:
        self.started = (epochs, steps_per_epoch, first_epoch)

    def step(self, epoch: int, loss: float) -> None:
        assert math.isfinite(loss)
        self.steps += 1

    def epoch_done(self, record: EpochRecord) -> None:
        self.records.append(record)


def test_progress_reports_every_step_and_epoch(tmp_path: Path) -> None:
    progress = CountingProgress()
    result = train(TrainConfig(model="mlp", dataset="digits", epochs=2, batch_size=128), tmp_path / "run",
                   progress=progress)
    assert progress.started == (2, 12, 0)  # 1437 training digits → 11 full batches + 1 partial
    assert progress.steps == 24
    assert [r.epoch for r in progress.records] == [1, 2]
    assert list(result.history) == progress.records
    assert (tmp_path / "run" / "epochs" / "epoch-0002" / "metadata.json").is_file()


def test_weight_clamping_keeps_weights_in_unit_range(tmp_path: Path) -> None:
    config = TrainConfig(model="mlp", dataset="digits", epochs=1, lr=0.5, clamp_weights=True)
    train(config, tmp_path / "run", keep_epochs=False)
    model = load_checkpoint(tmp_path / "run").model
    weights = [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert max(w.abs().max().item() for w in weights) <= 1.0
    assert max(w.abs().max().item() for w in weights) == pytest.approx(1.0)  # lr 0.5 does hit the bound


def test_cnn_s_trains_on_synthetic_data_of_its_shape(tmp_path: Path) -> None:
    result = train(TrainConfig(model="cnn-s", bn=True, dataset="synthetic", epochs=1,
                               noise=NoiseSpec(sigma_add=0.1, sites="matmul")), tmp_path / "run", keep_epochs=False)
    metadata = load_checkpoint(tmp_path / "run").metadata
    assert metadata["model"]["kwargs"]["input_shape"] == [1, 10, 49]
    assert len(metadata["sites"]) == 11
    assert result.noisy is not None and 0.0 <= result.noisy.mean <= 1.0


def test_same_seed_trains_identical_weights(tmp_path: Path) -> None:
    config = TrainConfig(model="mlp", dataset="digits", epochs=1, noise=NoiseSpec(sigma_add=0.2, sigma_mul=0.1))
    train(config, tmp_path / "a", keep_epochs=False)
    train(config, tmp_path / "b", keep_epochs=False)
    a, b = load_checkpoint(tmp_path / "a").model, load_checkpoint(tmp_path / "b").model
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
