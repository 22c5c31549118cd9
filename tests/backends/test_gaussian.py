"""The reference Gaussian emulator: distributions, repetitions, gradients, determinism.

Statistical checks compare sample moments with the noise model's theory, with tolerances of
4 standard errors of the estimator at a fixed seed.
"""

from __future__ import annotations

import math

import pytest
import torch

from hil.backends.base import SiteCall, average_executions
from hil.backends.gaussian import GaussianBackend
from hil.noise import NoiseSpec, SiteNoise

N = 200_000
Y = 2.0


def call(noise: SiteNoise, owns_output: bool = True) -> SiteCall:
    return SiteCall(index=1, name="1:fc1", kind="linear", noise=noise, owns_output=owns_output)


def assert_variance(samples: torch.Tensor, expected: float) -> None:
    """Sample variance within 4 standard errors (var of s² for normal data: 2σ⁴/(n−1))."""
    n = samples.numel()
    tolerance = 4 * math.sqrt(2 / (n - 1)) * expected
    assert abs(samples.double().var().item() - expected) < tolerance


def assert_zero_mean(samples: torch.Tensor, variance: float) -> None:
    assert abs(samples.double().mean().item()) < 4 * math.sqrt(variance / samples.numel())


def noisy_output(noise: SiteNoise, grad: bool, seed: int = 0) -> torch.Tensor:
    backend = GaussianBackend(seed=seed)
    y = torch.full((N,), Y, requires_grad=grad)
    if grad:
        return backend.perturb(y, call(noise)).detach()
    with torch.no_grad():
        return backend.perturb(y, call(noise))


def theory_variance(noise: SiteNoise, y: float) -> float:
    """Variance of one execution of the noise model at output value y, averaged over repeats."""
    sa2, sm2 = noise.sigma_add ** 2, noise.sigma_mul ** 2
    if noise.order == "add-first":
        single = sm2 * (y * y + sa2) + sa2
    else:
        single = sm2 * y * y + sa2
    return single / noise.repeats


CASES = [
    SiteNoise(sigma_add=0.3),
    SiteNoise(sigma_mul=0.2),
    SiteNoise(sigma_add=0.3, sigma_mul=0.2),
    SiteNoise(sigma_add=0.3, sigma_mul=0.2, order="add-first"),
    SiteNoise(sigma_add=0.3, sigma_mul=0.2, repeats=4),
    SiteNoise(sigma_add=0.3, sigma_mul=0.2, order="add-first", repeats=3),
    SiteNoise(sigma_mul=0.5, repeats=9),
]


@pytest.mark.parametrize("noise", CASES, ids=repr)
@pytest.mark.parametrize("grad", [False, True], ids=["inference", "training"])
def test_moments_match_noise_model(noise: SiteNoise, grad: bool) -> None:
    error = noisy_output(noise, grad) - Y
    variance = theory_variance(noise, Y)
    assert_zero_mean(error, variance)
    assert_variance(error, variance)


def test_mixed_noise_is_gaussian_per_element() -> None:
    """Mul-first mixed noise at fixed y is N(y, σa² + σm²y²): check the 4th standardized moment ≈ 3."""
    noise = SiteNoise(sigma_add=0.3, sigma_mul=0.2)
    error = (noisy_output(noise, grad=False) - Y).double()
    z = error / math.sqrt(theory_variance(noise, Y))
    kurtosis = (z ** 4).mean().item()
    assert abs(kurtosis - 3.0) < 4 * math.sqrt(96 / N)


def test_multiplicative_noise_scales_with_output() -> None:
    backend = GaussianBackend(seed=1)
    y = torch.linspace(-3, 3, 7).repeat(50_000)
    with torch.no_grad():
        out = backend.perturb(y.clone(), call(SiteNoise(sigma_mul=0.1)))
    zero = y == 0
    assert torch.equal(out[zero], y[zero])  # no additive term: zero stays zero
    ratio = out[~zero] / y[~zero] - 1
    assert_variance(ratio, 0.01)


def test_repeats_reduce_std_by_sqrt_r_against_explicit_averaging() -> None:
    """The mul-first shortcut (σ/√r) matches r explicit executions averaged."""
    noise = SiteNoise(sigma_add=0.2, sigma_mul=0.3)
    backend = GaussianBackend(seed=2)
    y = torch.full((N,), Y)
    with torch.no_grad():
        explicit = average_executions(lambda: backend.perturb(y.clone(), call(noise)), 5)
    shortcut = noisy_output(SiteNoise(sigma_add=0.2, sigma_mul=0.3, repeats=5), grad=False)
    expected = theory_variance(noise, Y) / 5
    assert_variance(explicit - Y, expected)
    assert_variance(shortcut - Y, expected)


def test_average_executions_runs_r_times_and_averages() -> None:
    values = iter([1.0, 2.0, 6.0])
    calls = []

    def execute() -> torch.Tensor:
        calls.append(1)
        return torch.tensor([next(values)])

    assert average_executions(execute, 3).item() == pytest.approx(3.0)
    assert len(calls) == 3
    with pytest.raises(ValueError, match="repeats must be ≥ 1"):
        average_executions(execute, 0)


def test_average_executions_keeps_gradients() -> None:
    weight = torch.tensor([2.0], requires_grad=True)
    out = average_executions(lambda: weight * 3.0, 4)
    out.backward()
    assert weight.grad is not None and weight.grad.item() == pytest.approx(3.0)


def test_constant_gradient_is_the_sampled_gain() -> None:
    backend = GaussianBackend(seed=3)
    y = torch.full((1000,), Y, requires_grad=True)
    out = backend.perturb(y, call(SiteNoise(sigma_mul=0.2)))
    out.sum().backward()
    torch.testing.assert_close(y.grad, out.detach() / Y)
    assert not torch.allclose(y.grad, torch.ones_like(y.grad))


def test_straight_through_gradient_is_one() -> None:
    backend = GaussianBackend(seed=3)
    y = torch.full((1000,), Y, requires_grad=True)
    out = backend.perturb(y, call(SiteNoise(sigma_add=0.1, sigma_mul=0.2, gradient="straight-through")))
    out.sum().backward()
    assert torch.equal(y.grad, torch.ones_like(y))
    assert out.detach().std() > 0.1


def test_same_seed_is_bit_identical_and_reseed_restarts() -> None:
    noise = SiteNoise(sigma_add=0.1, sigma_mul=0.1)
    a = noisy_output(noise, grad=False, seed=5)
    b = noisy_output(noise, grad=False, seed=5)
    c = noisy_output(noise, grad=False, seed=6)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    backend = GaussianBackend(seed=5)
    first = backend.perturb(torch.zeros(10), call(SiteNoise(sigma_add=1.0)))
    backend.reseed(5)
    assert torch.equal(backend.perturb(torch.zeros(10), call(SiteNoise(sigma_add=1.0))), first)


def test_shared_tensor_is_not_modified_in_place() -> None:
    backend = GaussianBackend()
    y = torch.ones(100)
    with torch.no_grad():
        out = backend.perturb(y, call(SiteNoise(sigma_add=1.0), owns_output=False))
    assert torch.equal(y, torch.ones(100))
    assert not torch.equal(out, y)


def test_clean_site_returns_input_untouched() -> None:
    y = torch.randn(10)
    assert GaussianBackend().perturb(y, call(SiteNoise())) is y


@pytest.mark.gpu
def test_gpu_noise_is_drawn_on_device_and_reproducible() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from hil.backends import get_backend

    backend = get_backend("gpu:seed=4")
    y = torch.full((N,), Y, device="cuda")
    with torch.no_grad():
        a = backend.perturb(y.clone(), call(SiteNoise(sigma_add=0.3, sigma_mul=0.2)))
        backend.reseed(4)
        b = backend.perturb(y.clone(), call(SiteNoise(sigma_add=0.3, sigma_mul=0.2)))
    assert a.device.type == "cuda" and torch.equal(a, b)
    assert_variance((a - Y).cpu(), theory_variance(SiteNoise(sigma_add=0.3, sigma_mul=0.2), Y))


def test_noisy_forward_and_backward_never_read_a_value_on_the_host() -> None:
    """What lets ``gpu`` run with no host sync per site (CUDA's sync check agreed on a lent H200).

    The optimiser's step is left out: Adam reads its step counters, which live on the CPU and cost
    no GPU sync (the H200 check ran the whole training step).
    """
    from hil.models import create_model
    from hil.noisy_model import wrap
    from tests.host_syncs import CountHostSyncs

    torch.manual_seed(0)
    noisy = wrap(create_model("lenet5"), "sim:seed=1", NoiseSpec(sigma_add=0.1, sigma_mul=0.1))
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    with CountHostSyncs() as syncs:
        with torch.no_grad():
            noisy.eval()(x)
        torch.nn.functional.cross_entropy(noisy.train()(x), y).backward()
    assert syncs.count == 0
