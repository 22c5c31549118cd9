"""The backend spec parser (table test) and the registry."""

from __future__ import annotations

import pytest
import torch

from hil.backends import BACKENDS, get_backend, parse_backend_spec, register_backend
from hil.backends.spec import BackendSpec
from hil.errors import BackendUnavailableError, ConfigError, UnknownNameError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sim", BackendSpec("sim", None, 0, "sim")),
        ("sim:seed=3", BackendSpec("sim", None, 3, "sim:seed=3")),
        (" sim:seed=12 ", BackendSpec("sim", None, 12, "sim:seed=12")),
        ("gpu", BackendSpec("gpu", None, 0, "gpu")),
        ("gpu:cuda", BackendSpec("gpu", "cuda", 0, "gpu:cuda")),
        ("gpu:cuda:1", BackendSpec("gpu", "cuda:1", 0, "gpu:cuda:1")),
        ("gpu:cuda:1:seed=5", BackendSpec("gpu", "cuda:1", 5, "gpu:cuda:1:seed=5")),
        ("device:serial:/dev/ttyUSB0", BackendSpec("device", "serial:/dev/ttyUSB0", 0, "device:serial:/dev/ttyUSB0")),
        ("device:visa:TCPIP0::10.0.0.5::5025::SOCKET",
         BackendSpec("device", "visa:TCPIP0::10.0.0.5::5025::SOCKET", 0, "device:visa:TCPIP0::10.0.0.5::5025::SOCKET")),
    ],
)
def test_valid_specs(text: str, expected: BackendSpec) -> None:
    assert parse_backend_spec(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "bad backend spec ''; valid forms: sim, sim:seed=3"),
        ("Sim", "bad backend spec 'Sim'"),
        ("sim:foo", "backend 'sim' takes no address"),
        ("sim:seed=x", "seed must be an integer"),
        ("sim:seed=-1", "seed must be ≥ 0"),
        ("sim:speed=1", "backend 'sim' has no option speed; valid: seed"),
        ("sim:seed", "backend 'sim' takes no address"),
        ("sim:seed=", "bad option 'seed='"),
        ("gpu:tpu", "bad gpu device 'tpu'"),
        ("gpu:cuda:x", "bad gpu device 'cuda:x'"),
        ("gpu:seed=1:cuda", "options \\(KEY=VALUE\\) must come last"),
        ("gpu::1", "empty field"),
        ("device", "needs an address"),
    ],
)
def test_invalid_specs(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_backend_spec(text)


def test_unknown_backend_lists_valid_names() -> None:
    with pytest.raises(UnknownNameError, match="unknown backend 'fpga'; choose one of: device, gpu, sim"):
        get_backend("fpga")


def test_device_backend_reports_an_unreachable_device() -> None:
    from hil.backends.device import DeviceError

    with pytest.raises(DeviceError, match="cannot connect to 127.0.0.1:1"):
        get_backend("device:tcp:127.0.0.1:1")


def test_sim_backend_takes_seed() -> None:
    backend = get_backend("sim:seed=9")
    assert backend.name == "sim" and backend.seed == 9 and backend.device == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_gpu_without_cuda_fails_clearly() -> None:
    with pytest.raises(BackendUnavailableError, match="needs CUDA.*use --backend sim"):
        get_backend("gpu")


def test_register_backend_and_duplicates() -> None:
    @register_backend("test-echo")
    def create(spec: BackendSpec) -> object:
        return ("echo", spec.seed)

    try:
        assert get_backend("test-echo:seed=4") == ("echo", 4)
        with pytest.raises(ValueError, match="already registered"):
            register_backend("test-echo")(create)
        with pytest.raises(ValueError, match="already registered"):
            register_backend("sim")(create)
    finally:
        BACKENDS._loaded.pop("test-echo", None)
