"""Site enumeration and routing for built-in and never-seen models."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hil import NoiseSpec, SiteError, create_model, wrap
from hil.backends.gaussian import GaussianBackend


@pytest.mark.parametrize(
    ("name", "bn", "count"),
    [("mlp", False, 8), ("mlp", True, 11), ("lenet5", False, 12), ("lenet5", True, 16),
     ("cnn-s", False, 8), ("cnn-s", True, 11)],
)
def test_site_counts_match_paper_code(name: str, bn: bool, count: int) -> None:
    assert len(wrap(create_model(name, bn=bn)).sites) == count


def test_cnn_s_site_names() -> None:
    names = [s.name for s in wrap(create_model("cnn-s")).sites]
    assert names == ["0:input", "1:conv1", "2:relu1", "3:conv2", "4:relu2", "5:fc1", "6:relu3", "7:fc2"]


def test_lenet_kinds_and_shapes() -> None:
    sites = wrap(create_model("lenet5", bn=True)).sites
    assert [s.kind for s in sites] == ["input", "conv", "bn", "act", "pool", "conv", "bn", "act", "pool",
                                       "linear", "bn", "act", "linear", "bn", "act", "linear"]
    assert sites[1].shape == (6, 28, 28) and sites[4].shape == (6, 14, 14) and sites[-1].shape == (10,)


class Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.relu(self.fc(x))  # functional op + skip connection


class UserNet(nn.Module):
    """A model hil has never seen: functional ops, skip connections, nested containers."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(6, 8)
        self.blocks = nn.ModuleList([Block(8), Block(8)])
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.stem(x))
        for block in self.blocks:
            h = block(h)
        return self.head(h).softmax(dim=-1)


def test_never_seen_model_with_functional_ops_and_skips() -> None:
    noisy = wrap(UserNet(), example_input=torch.randn(4, 6))
    assert [s.name for s in noisy.sites] == [
        "0:input", "1:stem", "2:tanh", "3:blocks.0.fc", "4:blocks.0.relu", "5:blocks.1.fc",
        "6:blocks.1.relu", "7:head", "8:output"]
    assert [s.kind for s in noisy.sites][-2:] == ["linear", "output"]


def test_model_without_input_shape_is_traced_on_first_forward() -> None:
    noisy = wrap(UserNet())
    with pytest.raises(SiteError, match="not been traced"):
        _ = noisy.sites
    noisy(torch.randn(5, 6))
    assert len(noisy.sites) == 9


@pytest.mark.parametrize(
    "activation",
    [F.relu, torch.relu, lambda x: x.relu(), lambda x: F.relu(x, inplace=True), F.relu6, F.leaky_relu, F.gelu,
     F.silu, F.elu, torch.sigmoid, torch.tanh, F.tanh, F.sigmoid, F.hardtanh, F.hardswish, F.softplus, F.mish],
)
def test_every_supported_activation_is_a_site(activation) -> None:  # noqa: ANN001
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return activation(self.fc(x)) * 2  # "* 2" keeps an output site

    sites = wrap(Net(), example_input=torch.randn(2, 4)).sites
    assert [s.kind for s in sites] == ["input", "linear", "act", "output"]


@pytest.mark.parametrize("pool", [lambda x: F.max_pool2d(x, 2), nn.MaxPool2d(2), nn.MaxPool2d(2, return_indices=True),
                                  nn.AdaptiveMaxPool2d(1), lambda x: F.avg_pool2d(x, 2), nn.AvgPool2d(2),
                                  nn.AdaptiveAvgPool2d(1), lambda x: F.adaptive_avg_pool2d(x, 1)])
def test_max_and_average_pools_are_sites(pool) -> None:  # noqa: ANN001
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = pool(self.conv(x))
            return (out[0] if isinstance(out, tuple) else out).flatten(1).sum(1)

    sites = wrap(Net(), example_input=torch.randn(2, 1, 4, 4)).sites
    assert [s.kind for s in sites] == ["input", "conv", "pool", "output"]


def test_conv1d_and_conv3d_are_matmul_sites() -> None:
    net = nn.Sequential(nn.Conv1d(2, 3, 3), nn.Flatten(), nn.Linear(3 * 6, 2))
    sites = wrap(net, example_input=torch.randn(2, 2, 8)).sites
    assert [s.kind for s in sites] == ["input", "conv", "linear"]
    net3 = nn.Sequential(nn.Conv3d(1, 2, 2, stride=2), nn.Flatten())
    noisy = wrap(net3, "sim", NoiseSpec(), example_input=torch.randn(2, 1, 4, 4, 4))
    assert [s.kind for s in noisy.sites] == ["input", "conv"]
    x = torch.randn(2, 1, 4, 4, 4)
    torch.testing.assert_close(noisy(x), net3(x))


class Switching(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.extra = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc(x)
        return F.relu(x) if self.extra else x


def test_changed_forward_is_detected() -> None:
    model = Switching()
    noisy = wrap(model, example_input=torch.randn(2, 4))
    model.extra = True
    with pytest.raises(SiteError, match="same site operations in every forward"):
        noisy(torch.randn(2, 4))
    noisy.retrace(torch.randn(2, 4))
    assert len(noisy.sites) == 3


class Recording(GaussianBackend):
    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[str, str]] = []

    def linear(self, x, weight, bias, call):  # noqa: ANN001, ANN201
        self.log.append(("linear", call.name))
        return super().linear(x, weight, bias, call)

    def conv(self, x, weight, bias, params, call):  # noqa: ANN001, ANN201
        self.log.append(("conv", call.name))
        return super().conv(x, weight, bias, params, call)

    def perturb(self, y, call):  # noqa: ANN001, ANN201
        self.log.append(("perturb", call.name))
        return super().perturb(y, call)


def test_every_matmul_goes_through_the_backend_even_when_clean() -> None:
    backend = Recording()
    noisy = wrap(create_model("lenet5"), backend)
    backend.log.clear()
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(noisy(x), noisy.model(x))
    matmuls = [name for kind, name in backend.log if kind in ("linear", "conv")]
    assert matmuls == ["1:conv1", "4:conv2", "7:fc1", "9:fc2", "11:fc3"]
    digital = [name for kind, name in backend.log if kind == "perturb" and name not in matmuls]
    assert digital == ["0:input", "2:relu1", "3:pool1", "5:relu2", "6:pool2", "8:relu3", "10:relu4"]


def test_noise_at_the_last_site_has_the_requested_std() -> None:
    noisy = wrap(create_model("mlp"), "sim:seed=1", NoiseSpec.single("7:fc4", sigma_add=0.5))
    noisy.eval()
    x = torch.randn(2000, 1, 28, 28)
    with torch.no_grad():
        error = noisy(x) - noisy.model(x)
    n = error.numel()
    assert abs(error.var().item() - 0.25) < 4 * math.sqrt(2 / n) * 0.25


def test_matmul_only_noise_leaves_activations_clean() -> None:
    net = nn.Sequential(nn.Linear(4, 64), nn.ReLU())
    x = torch.randn(256, 4)
    with torch.no_grad():
        matmul_only = wrap(net, "sim", NoiseSpec(sigma_add=1.0, sites="matmul"), example_input=x)(x)
        everywhere = wrap(net, "sim", NoiseSpec(sigma_add=1.0), example_input=x)(x)
    assert (matmul_only >= 0).all()
    assert (everywhere < 0).any()


def test_input_and_inplace_results_are_not_overwritten() -> None:
    class InPlace(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.fc(x)
            return F.relu_(h) + 0

    x = torch.randn(8, 4)
    original = x.clone()
    noisy = wrap(InPlace(), "sim", NoiseSpec(sigma_add=0.5), example_input=x)
    with torch.no_grad():
        noisy(x)
    assert torch.equal(x, original)


def test_same_seed_gives_bit_identical_outputs_and_gradients() -> None:
    def run(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        torch.manual_seed(0)
        noisy = wrap(create_model("lenet5", bn=True), f"sim:seed={seed}", NoiseSpec(sigma_add=0.1, sigma_mul=0.1))
        x = torch.randn(16, 1, 28, 28)
        noisy.train()
        loss = noisy(x).square().mean()
        loss.backward()
        noisy.eval()
        with torch.no_grad():
            out = noisy(x)
        return out, noisy.model.conv1.weight.grad

    a, b, c = run(3), run(3), run(4)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_noise_seed_in_spec_reseeds_backend() -> None:
    x = torch.randn(4, 1, 28, 28)
    outputs = []
    for backend_seed in (1, 2):
        torch.manual_seed(0)
        noisy = wrap(create_model("lenet5"), f"sim:seed={backend_seed}", NoiseSpec(sigma_add=0.2, seed=42)).eval()
        with torch.no_grad():
            outputs.append(noisy(x))
    assert torch.equal(*outputs)


def test_unknown_site_in_spec_fails_at_wrap() -> None:
    with pytest.raises(SiteError, match="no site named 'conv9'; sites are: 0:input, 1:conv1"):
        wrap(create_model("lenet5"), "sim", NoiseSpec.single("conv9", sigma_add=0.1))


@pytest.mark.parametrize("order", ["mul-first", "add-first"])
def test_site_executions_average_noise_down_by_r(order: str) -> None:
    """Multi-execution through the wrapper: r executions at a site cut its noise variance by r."""
    from hil.noise import SiteOverride

    torch.manual_seed(0)
    model = create_model("mlp")
    x = torch.randn(2000, 1, 28, 28)
    spec = NoiseSpec(sigma_add=0.5, sigma_mul=0.2, order=order, sites=("7:fc4",))
    variances = []
    for executions in (1, 4):
        noisy = wrap(model, "sim:seed=2", spec.with_overrides(SiteOverride("7:fc4", repeats=executions))).eval()
        assert noisy.site_noise[7].repeats == executions
        with torch.no_grad():
            clean = model(x)
            error = noisy(x) - clean
        variances.append(error.double().var().item())
    y2 = clean.double().square().mean().item()
    single = 0.2**2 * (y2 + (0.25 if order == "add-first" else 0.0)) + 0.25
    tolerance = 4 * math.sqrt(2 / error.numel()) * single  # generous: y varies across elements
    assert abs(variances[0] - single) < 2 * tolerance
    assert abs(variances[1] - single / 4) < 2 * tolerance / 4
