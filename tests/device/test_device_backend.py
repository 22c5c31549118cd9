"""The device backend: tiling, scaling, saturation, caching, placement, repeats, and link faults."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hil.backends.base import ConvParams, SiteCall
from hil.backends.device.backend import DeviceBackend
from hil.backends.device.driver import AmvmDriver
from hil.backends.device.emulator import DeviceEmulator, EmulatorConfig, Faults, LoopbackTransport
from hil.backends.device.transport import DeviceError
from hil.noise import SiteNoise


def backend(faults: Faults | None = None, timeout: float = 0.05, **config: object) -> DeviceBackend:
    emulator = DeviceEmulator(EmulatorConfig(**config))
    return DeviceBackend(AmvmDriver(LoopbackTransport(emulator, faults), timeout=timeout))


CALL = SiteCall(1, "1:fc1", "linear")


def test_linear_tiles_and_matches_the_exact_matmul_up_to_quantisation() -> None:
    torch.manual_seed(0)
    device = backend(rows=16, cols=8, adc_bits=16, full_scale=8.0)
    x, w, b = torch.randn(10, 40), torch.randn(20, 40), torch.randn(20)
    y = device.linear(x, w, b, CALL)
    exact = F.linear(x, w, b)
    assert device.tile_loads == 3 * 3  # ⌈40/16⌉ row blocks × ⌈20/8⌉ column blocks
    assert torch.allclose(y, exact, atol=0.05 * exact.abs().max().item())
    device.linear(x, w, b, CALL)
    assert device.tile_loads == 9  # cached: nothing reloaded
    with torch.no_grad():
        w.mul_(2)
    assert torch.allclose(device.linear(x, w, None, CALL), F.linear(x, w), atol=0.1 * exact.abs().max().item())
    assert device.tile_loads == 18  # changed in place: reloaded


def test_slots_are_reused_least_recently_used_first() -> None:
    device = backend(rows=8, cols=4, slots=2, adc_bits=16, full_scale=8.0)
    x, w = torch.randn(3, 24), torch.randn(8, 24)  # 3 × 2 = 6 tiles through 2 slots
    y = device.linear(x, w, None, CALL)
    assert torch.allclose(y, F.linear(x, w), atol=0.05 * F.linear(x, w).abs().max().item())


def test_saturated_vectors_run_again_at_a_lower_input_scale() -> None:
    device = backend(rows=32, cols=4, full_scale=1.0, adc_bits=14)
    x = torch.ones(4, 32)
    x[1:] *= torch.linspace(0.1, 1, 3)[:, None]
    w = torch.ones(4, 32)
    y = device.linear(x, w, None, CALL)
    assert device.saturation_reruns > 0
    assert torch.allclose(y, F.linear(x, w), rtol=0.05)


def test_conv_runs_as_a_matmul_over_patches() -> None:
    torch.manual_seed(1)
    device = backend(rows=64, cols=16, adc_bits=16, full_scale=8.0)
    x, w, b = torch.randn(2, 3, 9, 9), torch.randn(5, 3, 3, 3), torch.randn(5)
    params = ConvParams(dims=2, stride=2, padding=1)
    y = device.conv(x, w, b, params, SiteCall(1, "1:conv1", "conv"))
    exact = F.conv2d(x, w, b, stride=2, padding=1)
    assert y.shape == exact.shape
    assert torch.allclose(y, exact, atol=0.05 * exact.abs().max().item())


def test_repeats_average_device_noise() -> None:
    x, w = torch.randn(200, 16), torch.randn(8, 16)
    spread = []
    for repeats in (1, 16):
        device = backend(rows=16, cols=8, sigma_add=0.2, seed=3)
        call = SiteCall(1, "1:fc1", "linear", SiteNoise(repeats=repeats))
        spread.append((device.linear(x, w, None, call) - F.linear(x, w)).std().item())
    assert spread[1] < spread[0] / 2.5  # ≈ 1/√16 = 1/4, quantisation floor aside


def test_only_chosen_layers_run_on_the_device() -> None:
    emulator = DeviceEmulator(EmulatorConfig(rows=16, cols=8))
    device = DeviceBackend(AmvmDriver(LoopbackTransport(emulator), timeout=0.05), layers=frozenset({"3:fc2"}))
    x, w = torch.randn(2, 16), torch.randn(8, 16)
    assert torch.equal(device.linear(x, w, None, CALL), F.linear(x, w))  # 1:fc1 stays digital
    assert emulator.executions == 0
    device.linear(x, w, None, SiteCall(3, "3:fc2", "linear"))
    assert emulator.executions == 2


def test_gradients_flow_straight_through() -> None:
    device = backend(rows=16, cols=8)
    x, w = torch.randn(4, 16, requires_grad=True), torch.randn(8, 16, requires_grad=True)
    device.linear(x, w, None, CALL).sum().backward()
    assert torch.allclose(x.grad, w.sum(0).expand(4, 16).detach())


def test_faults_at_a_few_percent_never_change_a_result() -> None:
    """≥ 10,000 frames through drop/flip/truncate/delay/late faults: same numbers as a clean link."""
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((4, 16))).float()
    w = torch.from_numpy(rng.standard_normal((8, 16))).float()
    faults = Faults(drop=0.01, flip=0.02, truncate=0.01, delay=0.01, late=0.01, seed=5, late_s=1.0)
    clean = backend(rows=16, cols=8, sigma_add=0.05, sigma_mul=0.02, seed=9, max_batch=1)
    faulty = backend(faults, timeout=0.002, rows=16, cols=8, sigma_add=0.05, sigma_mul=0.02, seed=9, max_batch=1)
    for _ in range(2500):  # 4 RUN frames per call (max_batch 1) → 10,000 RUN frames
        assert torch.equal(faulty.linear(x, w, None, CALL), clean.linear(x, w, None, CALL))
    stats = faulty.driver.stats
    injected = faulty.driver.transport.injector.counts
    assert stats.requests >= 10_000
    assert stats.corrupt >= injected["flip"] * 0.9  # a flip to 0x00 splits a frame: seen as corrupt or lost
    assert stats.retries <= sum(injected.values()) + stats.corrupt
    assert stats.retries < 0.1 * stats.requests
    assert injected["drop"] > 50 and injected["flip"] > 100


def test_a_disconnect_is_a_clear_error() -> None:
    with pytest.raises(DeviceError, match="link closed by the device"):
        backend(Faults(disconnect=1.0), rows=16, cols=8)
