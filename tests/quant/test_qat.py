"""Quantisation-aware training with Brevitas: sites unchanged, constant steps, training, checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import hil
from hil.checkpoint import load_checkpoint
from hil.cli import app
from hil.config import TrainConfig
from hil.errors import ConfigError
from hil.models import create_model
from hil.models.quantize import QuantConfig, is_quantized, quantize


@pytest.mark.parametrize(("model", "bn", "count"), [("mlp", False, 8), ("mlp", True, 11), ("lenet5", False, 12),
                                                    ("lenet5", True, 16), ("cnn-s", False, 8), ("cnn-s", True, 11)])
def test_quantised_models_keep_their_sites(model: str, bn: bool, count: int) -> None:
    float_sites = [s.name for s in hil.wrap(create_model(model, bn=bn), "sim").sites]
    quantised = quantize(create_model(model, bn=bn), QuantConfig(4, "const:2"))
    assert [s.name for s in hil.wrap(quantised, "sim").sites] == float_sites
    assert len(float_sites) == count and is_quantized(quantised)


def test_constant_scaling_puts_activations_on_a_fixed_grid() -> None:
    model = quantize(create_model("mlp", input_shape=(1, 8, 8)), QuantConfig(4, "const:0.5"))
    seen = []
    model.relu1.register_forward_hook(lambda module, args, out: seen.append(out))
    model(torch.randn(16, 1, 8, 8) * 5)
    values = seen[0]
    assert torch.allclose(values / 0.5, (values / 0.5).round(), atol=1e-5)
    assert values.max() <= 0.5 * 15 + 1e-6


@pytest.mark.parametrize(("bits", "scaling", "message"), [(3, "dynamic", "one of 2, 4, 8, 16"),
                                                          (4, "const:0", "const:<s> with s > 0"),
                                                          (4, "fixed", "dynamic or const")])
def test_bad_quantisation_settings(bits: int, scaling: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        QuantConfig(bits, scaling)


def test_act_scaling_without_quant_is_refused() -> None:
    with pytest.raises(ConfigError, match="add --quant"):
        TrainConfig(model="mlp", dataset="digits", act_scaling="const:2")


def test_qat_train_save_load_and_evaluate_under_noise(tmp_path: Path) -> None:
    out = tmp_path / "q"
    result = CliRunner().invoke(app, ["train", "--model", "lenet5", "--dataset", "mnist5k", "--epochs", "1",
                                      "--quant", "4", "--act-scaling", "const:1", "--sigma-add", "0.1",
                                      "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["model"]["quant"] == {"bits": 4, "act_scaling": "const:1"}
    loaded = load_checkpoint(out)
    assert is_quantized(loaded.model)
    assert isinstance(loaded.model.conv1, __import__("brevitas").nn.QuantConv2d)
    evaluated = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(out), "--sigma-add", "0.1", "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["accuracy"]["mean"] > 0.3
    assert "metadata.json" in {p.name for p in out.iterdir()} and not list(out.glob("*.pt"))  # no pickles


@pytest.mark.parametrize("bits", [2, 16])
def test_two_and_sixteen_bits_train_a_step(bits: int) -> None:
    model = quantize(create_model("mlp", input_shape=(1, 8, 8)), QuantConfig(bits, "dynamic"))
    noisy = hil.wrap(model, "sim", hil.NoiseSpec(sigma_add=0.1))
    optimizer = torch.optim.Adam(noisy.parameters(), lr=1e-3)
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,))
    loss = torch.nn.functional.cross_entropy(noisy(x), y)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and model.fc1.weight.grad is not None
