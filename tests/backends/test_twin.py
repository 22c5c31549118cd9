"""The twin backend reproduces the device backend's forward pass from a calibration's noise card."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch

from hil.backends import get_backend, parse_backend_spec
from hil.backends.base import SiteCall
from hil.backends.device.backend import DeviceBackend
from hil.backends.twin import TwinBackend
from hil.backends.twin import _elapsed_since_calibration as twin_elapsed
from hil.calibration.card import Drift
from hil.calibration.design import CalibrationDesign
from hil.calibration.job import calibrate, open_calibration_device
from hil.calibration.profile import write_profile
from hil.errors import BackendUnavailableError, ConfigError
from hil.noise import SiteNoise

DEVICE = ("sigma_add = 0.05\nsigma_mul = 0.03\ngain_spread = 0.05\noffset_spread = 0.02\ndac_bits = 8\n"
          "adc_bits = 8\nseed = 3\nrows = 64\ncols = 16\n")


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):  # noqa: ANN001, ANN201
    folder = tmp_path_factory.mktemp("twin")
    config = folder / "device.toml"
    config.write_text(DEVICE)
    result = calibrate("sim", CalibrationDesign(samples=10_000), emulator_config=str(config))
    return write_profile(result.profile, folder / "profile.toml"), config, result.profile


def _device(config, profile) -> DeviceBackend:  # noqa: ANN001
    return DeviceBackend(open_calibration_device("sim", emulator_config=str(config)), correction=profile.correction())


def _call(repeats: int = 1) -> SiteCall:
    return SiteCall(0, "0:fc", "linear", SiteNoise(repeats=repeats))


def test_spec_needs_the_profile_and_checks_options(calibrated) -> None:  # noqa: ANN001
    path = calibrated[0]
    spec = parse_backend_spec(f"twin:{path}#seed=4;correct=false;temperature=30;on=cpu;layers=1:fc1")
    assert (spec.address, spec.seed, spec.option("correct"), spec.option("temperature")) == (str(path), 4, False, 30.0)
    assert parse_backend_spec(f"twin:{path}#elapsed=2h").option("elapsed") == 7200.0
    assert parse_backend_spec(f"twin:{path}#elapsed=90").option("elapsed") == 90.0
    for bad in ("-5", "soon", "2 weeks", "inf"):
        with pytest.raises(ConfigError, match="elapsed must be a time after the calibration"):
            parse_backend_spec(f"twin:{path}#elapsed={bad}")
    with pytest.raises(ConfigError, match="needs an address, e.g. twin:profile.toml"):
        parse_backend_spec("twin")
    with pytest.raises(ConfigError, match="correct must be true or false"):
        parse_backend_spec(f"twin:{path}#correct=maybe")
    with pytest.raises(ConfigError, match="on must be cpu, cuda or cuda:N"):
        parse_backend_spec(f"twin:{path}#on=tpu")
    with pytest.raises(ConfigError, match="does not exist; make one with hil calibrate"):
        get_backend("twin:/nonexistent/profile.toml")
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailableError, match="drop on="):
            get_backend(f"twin:{path}#on=cuda")


@pytest.mark.parametrize("positive", [False, True], ids=["signed", "saturating"])
def test_twin_errors_match_the_device(calibrated, positive: bool) -> None:  # noqa: ANN001
    path, config, profile = calibrated
    twin, device = get_backend(f"twin:{path}#seed=1"), _device(config, profile)
    generator = torch.Generator().manual_seed(0)
    if positive:  # same-sign inputs and weights drive the ADC into saturation: re-runs on both
        x, w = torch.rand(400, 100, generator=generator), torch.rand(24, 100, generator=generator)
    else:
        x, w = torch.randn(1500, 100, generator=generator), 0.1 * torch.randn(24, 100, generator=generator)
    exact = x @ w.T
    errors = {name: backend.linear(x, w, None, _call(2)) - exact for name, backend in (("twin", twin),
                                                                                      ("device", device))}
    twin_std, device_std = errors["twin"].std(dim=0), errors["device"].std(dim=0)
    assert torch.allclose(twin_std, device_std, rtol=0.15)  # column by column (gains differ per column)
    assert abs(errors["twin"].mean() - errors["device"].mean()) < 0.2 * device_std.mean()
    if positive:
        assert device.saturation_reruns > 100
        assert twin.saturation_reruns == pytest.approx(device.saturation_reruns, rel=0.1)
    else:
        assert twin.saturation_reruns == 0 == device.saturation_reruns
    device.close()


def test_twin_is_seeded_and_its_gradient_is_straight_through(calibrated) -> None:  # noqa: ANN001
    twin = get_backend(f"twin:{calibrated[0]}#seed=5")
    x = torch.randn(30, 70, requires_grad=True)
    w = torch.randn(20, 70, requires_grad=True)
    twin.reseed(9)
    first = twin.linear(x, w, None, _call())
    twin.reseed(9)
    assert torch.equal(first, twin.linear(x, w, None, _call()))
    assert not torch.equal(first, twin.linear(x, w, None, _call()))
    first.sum().backward()
    # atol: the backward matmul and sum(dim=0) add 20 floats in different orders (an entry near 0 failed rtol)
    assert torch.allclose(x.grad, w.sum(dim=0).expand_as(x).detach(), atol=1e-5)


def test_repeats_average_the_noise_and_uncorrected_twin_shows_the_gains(calibrated) -> None:  # noqa: ANN001
    path, _, profile = calibrated
    x, w = torch.randn(3000, 64), 0.1 * torch.randn(16, 64)
    exact = x @ w.T
    twin = get_backend(f"twin:{path}")
    single = (twin.linear(x, w, None, _call(1)) - exact).std()
    averaged = (twin.linear(x, w, None, _call(4)) - exact).std()
    assert averaged < 0.7 * single
    raw = get_backend(f"twin:{path}#correct=false").linear(x, w, None, _call(1))
    ratio = (raw * exact).sum(dim=0) / (exact * exact).sum(dim=0)
    gains = torch.tensor(profile.estimates["gain"]["values"][:16])
    assert torch.allclose(ratio, gains.to(ratio.dtype), atol=0.02)


def test_layers_outside_the_placement_run_digitally(calibrated) -> None:  # noqa: ANN001
    twin = TwinBackend(read_card(calibrated[2]), layers=frozenset({"2:fc2"}))
    x, w = torch.randn(5, 10), torch.randn(3, 10)
    assert torch.equal(twin.linear(x, w, None, _call()), x @ w.T)


def test_convolution_matches_unfolded_linear(calibrated) -> None:  # noqa: ANN001
    from hil.backends.base import ConvParams

    twin = TwinBackend(read_card(calibrated[2]), seed=0)
    x, w = torch.randn(4, 3, 8, 8), torch.randn(5, 3, 3, 3)
    y = twin.conv(x, w, None, ConvParams(dims=2, padding=1), SiteCall(0, "0:conv", "conv", SiteNoise()))
    exact = torch.nn.functional.conv2d(x, w, padding=1)
    assert y.shape == exact.shape
    assert (y - exact).std() < 0.1 * exact.std()


def read_card(profile):  # noqa: ANN001, ANN201
    return profile.noise_card()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_twin_on_cuda_matches_cpu_statistics(calibrated) -> None:  # noqa: ANN001
    path = calibrated[0]
    x, w = torch.randn(2000, 100), 0.1 * torch.randn(24, 100)
    exact = x @ w.T
    cpu = get_backend(f"twin:{path}").linear(x, w, None, _call())
    cuda = get_backend(f"twin:{path}#on=cuda").linear(x.cuda(), w.cuda(), None, _call()).cpu()
    assert torch.allclose((cuda - exact).std(dim=0), (cpu - exact).std(dim=0), rtol=0.15)


def test_draws_per_block_equal_separate_batches(calibrated) -> None:  # noqa: ANN001
    """A batch stacked from blocks draws block i from generator i, as that block alone would."""
    twin = get_backend(f"twin:{calibrated[0]}")
    weight = torch.randn(40, 150, generator=torch.Generator().manual_seed(1))
    blocks = [torch.randn(7, 150, generator=torch.Generator().manual_seed(i)) for i in (2, 3, 4)]
    call = _call(repeats=2)

    def generators() -> list[torch.Generator]:
        return [torch.Generator().manual_seed(10 + i) for i in range(3)]

    alone = []
    for block, generator in zip(blocks, generators(), strict=True):
        twin.draw_from([generator])
        alone.append(twin.linear(block, weight, None, call))
    twin.draw_from(generators())
    stacked = twin.linear(torch.cat(blocks), weight, None, call)
    assert torch.equal(stacked, torch.cat(alone))
    with pytest.raises(ValueError, match="does not split into 3 equal stacked draws"):
        twin.linear(torch.randn(8, 150), weight, None, call)
    twin.reseed(0)  # one stream again: any batch size
    assert twin.linear(torch.randn(8, 150), weight, None, call).shape == (8, 40)


@pytest.mark.parametrize("model_name", ["mlp", "lenet5"])
def test_twin_walk_stacks_draws_with_the_one_point_numbers(calibrated, model_name: str) -> None:  # noqa: ANN001
    from dataclasses import replace

    from hil.models import create_model
    from hil.noisy_model import wrap
    from hil.studies.walk import InferenceWalk
    from hil.walking.sweep import SweepSpec

    torch.manual_seed(0)
    model = create_model(model_name).eval()
    inputs = torch.rand(60, 1, 28, 28)
    labels = torch.randint(0, 10, (60,))
    spec = SweepSpec(noise="add", sigmas=[0.05, 0.5, 5.0], sites=["0:input", "7:fc1", "11:fc3"]
                     if model_name == "lenet5" else "all", repeats=2, batch_size=25)
    measured = {}
    for cached in (True, False):
        walk = InferenceWalk(wrap(model, get_backend(f"twin:{calibrated[0]}#seed=2")), inputs, labels,
                             replace(spec, cached_prefix=cached))
        units = list(walk.units(walk.points))
        assert (max(map(len, units)) > 1) is cached
        measured[cached] = {p.key: (o.accuracy, o.loss) for unit in units
                            for p, o in zip(unit, walk.evaluate(unit), strict=True)}
    assert measured[True] == measured[False]
    # every point draws its own twin noise: the same σ at another repeat gives another loss
    losses = {(key.site, key.sigma_add): set() for key in measured[True]}
    for key, (_, loss) in measured[True].items():
        losses[key.site, key.sigma_add].add(loss)
    assert all(len(values) == 2 for values in losses.values())


def test_twin_waits_for_the_device_once_per_layer_when_nothing_saturates(calibrated) -> None:  # noqa: ANN001
    """The saturation check is the only host read on the twin's path (CUDA's sync check, run on a lent H200,
    saw one; docs/benchmarks.md); the counters stay on the device until read."""
    from hil.models import create_model
    from hil.noisy_model import wrap
    from tests.host_syncs import CountHostSyncs

    torch.manual_seed(0)
    model = wrap(create_model("mlp"), f"twin:{calibrated[0]}#seed=2", example_input=torch.zeros(2, 1, 28, 28)).eval()
    layers = sum(1 for site in model.sites if site.is_matmul)
    x = 0.01 * torch.rand(16, 1, 28, 28)  # small inputs and weights scaled per tile: no ADC clipping
    with torch.no_grad(), CountHostSyncs() as syncs:
        model(x)
    assert model.backend.saturation_reruns == 0
    assert syncs.count == layers


def test_twin_reproduces_the_card_drift_after_some_time(calibrated) -> None:  # noqa: ANN001
    card = dataclasses.replace(calibrated[2].noise_card(), drift=Drift(
        reference=25.0, span=0.0, offset_per_kelvin=0.0, offset_se=0.0, sigma_add_per_kelvin=0.0, sigma_add_se=0.0,
        duration=200.0, offset_per_second=0.001, offset_per_second_se=1e-5, sigma_add_per_second=0.002,
        sigma_add_per_second_se=1e-5))
    generator = torch.Generator().manual_seed(0)
    x, w = torch.randn(2000, 64, generator=generator), 0.1 * torch.randn(16, 64, generator=generator)
    errors = {}
    for elapsed in (None, 100.0):
        twin = TwinBackend(card, seed=2, elapsed=elapsed)
        errors[elapsed] = twin.linear(x, w, None, _call()) - x @ w.T
    # 100 s later: offsets moved by 0.1 device units (uncorrected, since the card's offsets are stale), σa × 1.2
    assert errors[100.0].mean() > errors[None].mean() + 0.5 * abs(errors[None]).mean()
    assert errors[100.0].std() > errors[None].std()


def test_twin_warns_when_asked_for_a_drift_its_card_lacks(calibrated) -> None:  # noqa: ANN001
    steady = dataclasses.replace(calibrated[2].noise_card(), drift=None)
    with pytest.warns(RuntimeWarning, match="no drift with time .* #elapsed= changes nothing"):
        TwinBackend(steady, elapsed=3600.0)
    in_time_only = dataclasses.replace(steady, drift=Drift(
        reference=25.0, span=0.0, offset_per_kelvin=0.0, offset_se=0.0, sigma_add_per_kelvin=0.0, sigma_add_se=0.0,
        duration=1.0, offset_per_second=0.001, offset_per_second_se=1e-5))
    with pytest.warns(RuntimeWarning, match="no drift with temperature"):
        TwinBackend(in_time_only, temperature=40.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TwinBackend(in_time_only, elapsed=0.8)  # what the card has, within its run's second: no warning
        TwinBackend(in_time_only, elapsed=-1.0)
        TwinBackend(steady)
    further = r"#elapsed=3600 carries the card's time drift 3.6e\+03× further than the 1 s"
    with pytest.warns(RuntimeWarning, match=further):
        TwinBackend(in_time_only, elapsed=3600.0)  # a straight line over one second, carried an hour


def test_twin_reads_the_time_since_calibration_off_the_devices_clock(calibrated) -> None:  # noqa: ANN001
    path = calibrated[0]
    assert parse_backend_spec(f"twin:{path}#uptime=2h").option("uptime") == 7200.0
    with pytest.raises(ConfigError, match="uptime must be a time on the device's clock"):
        parse_backend_spec(f"twin:{path}#uptime=-3")
    clocked = Drift(reference=25.0, span=0.0, offset_per_kelvin=0.0, offset_se=0.0, sigma_add_per_kelvin=0.0,
                    sigma_add_se=0.0, duration=60.0, offset_per_second=0.001, offset_per_second_se=1e-5,
                    uptime=500.0)
    assert twin_elapsed(clocked, None, 530.0) == 30.0  # 30 s later on the device's clock
    assert twin_elapsed(clocked, 12.0, None) == 12.0 and twin_elapsed(None, None, None) is None
    with pytest.raises(ConfigError, match="not both"):
        twin_elapsed(clocked, 12.0, 530.0)
    with pytest.raises(ConfigError, match=r"calibration.s 500 s on the device.s clock \(restarted since\?\)"):
        twin_elapsed(clocked, None, 100.0)
    unclocked = dataclasses.replace(clocked, uptime=0.0)
    for drift in (unclocked, None):
        with pytest.raises(ConfigError, match="recorded the device's clock .* give #elapsed="):
            twin_elapsed(drift, None, 530.0)
    assert calibrated[2].noise_card().drift is None  # a steady emulator: the factory refuses #uptime= in one line
    with pytest.raises(ConfigError, match="needs a card whose calibration recorded the device's clock"):
        get_backend(f"twin:{path}#uptime=1h")
