"""Folding inference BatchNorm into the layer before it: same clean outputs, noise no longer scaled by the BN gain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from hil.cli import app
from hil.config import TrainConfig
from hil.errors import ModelError
from hil.models import create_model
from hil.models.fold import fold_batchnorm
from hil.noise import NoiseSpec
from hil.noisy_model import wrap
from hil.training import train

runner = CliRunner()


def _with_statistics(model: nn.Module, shape: tuple[int, ...]) -> nn.Module:
    torch.manual_seed(0)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(32, *shape) * 3 + 1)
    return model.eval()


@pytest.mark.parametrize(("name", "kwargs", "folded", "sites"), [
    ("mlp", {"bn": True}, 3, (11, 8)),
    ("lenet5", {"bn": True}, 4, (16, 12)),
    ("vgg11", {"bn": True, "input_shape": (3, 32, 32)}, 10, (37, 27)),
    ("resnet18", {"input_shape": (1, 28, 28)}, 20, (33, 33)),
])
def test_folding_keeps_the_clean_outputs(name: str, kwargs: dict, folded: int, sites: tuple[int, int]) -> None:
    model = _with_statistics(create_model(name, **kwargs), create_model(name, **kwargs).input_shape)
    x = torch.randn(16, *model.input_shape)
    with torch.no_grad():
        before, count = model(x), len(wrap(model, "sim").sites)
        assert fold_batchnorm(model) == folded
        after = model(x)
    assert torch.allclose(before, after, atol=1e-4, rtol=1e-4)
    assert (count, len(wrap(model, "sim").sites)) == sites  # folded BN layers are no sites any more


def test_a_folded_layer_carries_unscaled_noise() -> None:
    # One Linear followed by a BN of gain 10: noise at the Linear output reaches the network output ×10
    # while the BN is digital, ×1 once it is folded into the weights.
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.bn = nn.BatchNorm1d(4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.bn(self.fc(x))

    net = Net().eval()
    with torch.no_grad():
        net.bn.running_var.fill_(0.01)  # gain 1/√0.01 = 10
    x = torch.zeros(20000, 4)
    noise = NoiseSpec(sigma_add=0.1, sites=("1:fc",))

    def spread() -> float:
        noisy = wrap(net, "sim", noise)
        with torch.no_grad():
            return float((noisy(x) - net(x)).std())

    assert spread() == pytest.approx(1.0, rel=0.05)
    fold_batchnorm(net)
    assert spread() == pytest.approx(0.1, rel=0.05)


def test_a_batchnorm_with_nothing_to_fold_into_is_refused() -> None:
    model = nn.Sequential(nn.ReLU(), nn.BatchNorm1d(3)).eval()
    with pytest.raises(ModelError, match="does not directly follow a Linear/Conv layer; drop --fold-bn"):
        fold_batchnorm(model)


def test_cli_fold_bn_evaluates_the_same_clean_accuracy_and_walks_separately(tmp_path: Path) -> None:
    train(TrainConfig(model="mlp", bn=True, dataset="digits", epochs=3), tmp_path / "bn", keep_epochs=False)
    args = ["evaluate", "--checkpoint", str(tmp_path / "bn"), "--json"]
    plain, folded = runner.invoke(app, args), runner.invoke(app, [*args, "--fold-bn"])
    assert plain.exit_code == folded.exit_code == 0, plain.output + folded.output
    assert json.loads(folded.stdout)["accuracy"]["mean"] == pytest.approx(json.loads(plain.stdout)["accuracy"]["mean"],
                                                                          abs=0.003)
    walk = ["walk", "--checkpoint", str(tmp_path / "bn"), "--global", "--sigmas", "0.01,0.1,0.3,1,3,10", "--repeats",
            "1", "--out", str(tmp_path / "walk"), "--json"]
    first, second = runner.invoke(app, walk), runner.invoke(app, [*walk, "--fold-bn"])
    assert first.exit_code == second.exit_code == 0, first.output + second.output
    assert json.loads(second.stdout)["config"]["fold_bn"] is True
    assert json.loads(first.stdout)["experiment"] != json.loads(second.stdout)["experiment"]
    refused = runner.invoke(app, ["walk", "--train-per-point", "--model", "mlp", "--fold-bn"])
    assert refused.exit_code == 1 and "--fold-bn walks a trained --checkpoint" in refused.output
