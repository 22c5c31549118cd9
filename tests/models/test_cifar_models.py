"""VGG-11 and ResNet-18: site counts, training on a CIFAR-10 loader fixture, float and quantised."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import hil
from hil.checkpoint import load_checkpoint
from hil.config import TrainConfig
from hil.errors import ModelError
from hil.models import create_model
from hil.training import train


@pytest.mark.parametrize(("name", "kwargs", "count"), [
    ("vgg11", {}, 27), ("vgg11", {"bn": True}, 37), ("resnet18", {}, 33), ("resnet18-cifar", {}, 32),
    ("resnet18", {"noisy_add": True}, 41), ("resnet18", {"noisy_bn": True}, 53)])
def test_site_counts(name: str, kwargs: dict, count: int) -> None:
    assert len(hil.wrap(create_model(name, **kwargs), "sim").sites) == count


def test_resnet18_is_the_paper_network() -> None:
    """Paper 001, Table II: 37.53 M FLOPs, 11.69 M parameters (at 1000 outputs), 33 noisy layers."""
    wrapped = hil.wrap(create_model("resnet18", num_classes=1000), "sim")
    assert sum(p.numel() for p in wrapped.parameters()) == 11_689_512
    macs = sum(site.macs for site in wrapped.sites if site.kind in ("conv", "linear"))
    assert 36.5e6 < macs < 37.6e6
    names = [site.name for site in wrapped.sites]
    assert names[:4] == ["0:input", "1:conv1", "2:relu", "3:pool"]
    assert names[-2:] == ["31:avgpool", "32:fc"]
    assert sum("shortcut" in name for name in names) == 3


def test_resnet_stem_choice_and_checkpoint_config() -> None:
    cifar = create_model("resnet18-cifar", width=0.25)
    assert cifar.config()["stem"] == "cifar"
    assert create_model("resnet18", width=0.25, stem="cifar").config() == cifar.config()
    with pytest.raises(ModelError, match="unknown ResNet-18 stem 'vgg'; choose one of: imagenet, cifar"):
        create_model("resnet18", stem="vgg")


def test_resnet_digital_batchnorm_matches_torch() -> None:
    torch.manual_seed(0)
    digital = create_model("resnet18", width=0.25)
    noisy_bn = create_model("resnet18", width=0.25, noisy_bn=True)
    noisy_bn.load_state_dict(digital.state_dict())
    x = torch.randn(4, 3, 32, 32)
    for model in (digital, noisy_bn):
        model.train()
        model(x)  # one step of running statistics
    digital.eval()
    noisy_bn.eval()
    assert torch.allclose(digital(x), noisy_bn(x), atol=1e-4)
    assert torch.allclose(digital.bn1.running_var, noisy_bn.bn1.running_var, atol=1e-5)


@pytest.mark.parametrize(("model", "quant"), [("vgg11", None), ("resnet18", None), ("vgg11", 8), ("resnet18", 4),
                                                     ("resnet18-cifar", None)])
def test_train_on_cifar_fixture(tmp_path: Path, model: str, quant: int | None) -> None:
    from helpers import write_cifar

    data_dir = write_cifar(tmp_path / "data", per_batch=4)
    out = tmp_path / "run"
    result = train(TrainConfig(model=model, dataset="cifar10", data_dir=str(data_dir), epochs=1, batch_size=8,
                               quant=quant, noise=hil.NoiseSpec(sigma_add=0.05)), out, keep_epochs=False)
    assert 0.0 <= result.clean_accuracy <= 1.0
    loaded = load_checkpoint(out)
    assert len(hil.wrap(loaded.model, "sim").sites) == {"vgg11": 27, "resnet18": 33, "resnet18-cifar": 32}[model]
