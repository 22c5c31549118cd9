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
        ("sim", BackendSpec("sim", None, {}, "sim")),
        ("sim#seed=3", BackendSpec("sim", None, {"seed": 3}, "sim#seed=3")),
        ("sim:seed=3", BackendSpec("sim", None, {"seed": 3}, "sim:seed=3")),  # the earlier spelling
        (" sim:seed=12 ", BackendSpec("sim", None, {"seed": 12}, "sim:seed=12")),
        ("gpu", BackendSpec("gpu", None, {}, "gpu")),
        ("gpu:cuda", BackendSpec("gpu", "cuda", {}, "gpu:cuda")),
        ("gpu:cuda:1", BackendSpec("gpu", "cuda:1", {}, "gpu:cuda:1")),
        ("gpu:cuda:1#seed=5", BackendSpec("gpu", "cuda:1", {"seed": 5}, "gpu:cuda:1#seed=5")),
        ("gpu:cuda:1:seed=5", BackendSpec("gpu", "cuda:1", {"seed": 5}, "gpu:cuda:1:seed=5")),
        ("device:serial:/dev/ttyUSB0", BackendSpec("device", "serial:/dev/ttyUSB0", {}, "device:serial:/dev/ttyUSB0")),
        ("device:visa:TCPIP0::10.0.0.5::5025::SOCKET",
         BackendSpec("device", "visa:TCPIP0::10.0.0.5::5025::SOCKET", {},
                     "device:visa:TCPIP0::10.0.0.5::5025::SOCKET")),
        ("device:tcp:127.0.0.1:5025#layers=1:fc1, 3:fc2;timeout=0.5;seed=2",
         BackendSpec("device", "tcp:127.0.0.1:5025", {"layers": ("1:fc1", "3:fc2"), "timeout": 0.5, "seed": 2},
                     "device:tcp:127.0.0.1:5025#layers=1:fc1, 3:fc2;timeout=0.5;seed=2")),
        ("device:replay:a=b.hilrec", BackendSpec("device", "replay:a=b.hilrec", {}, "device:replay:a=b.hilrec")),
    ],
)
def test_valid_specs(text: str, expected: BackendSpec) -> None:
    assert parse_backend_spec(text) == expected
    assert parse_backend_spec(text).seed == expected.option("seed", 0)


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
        ("sim#speed=1", "backend 'sim' has no option speed; valid: seed"),
        ("sim#seed=1;seed=2", "option seed is given twice"),
        ("device:serial:/dev/x#speed=9", "bad device option 'speed=9': backend 'device' has no option speed; "
                                         "valid: calibration, layers, record, seed, timeout, visa_library"),
        ("device:serial:/dev/x#timeout=0", "timeout must be > 0 seconds"),
        ("device:serial:/dev/x#timeout=soon", "timeout must be a number of seconds"),
        ("device:serial:/dev/x#layers=,", "layers is empty"),
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


def test_a_flag_adds_an_option_once() -> None:
    spec = parse_backend_spec("device:serial:/dev/x#timeout=1")
    added = spec.with_option("layers", "1:fc1,3:fc2", "--device-layers")
    assert added.option("layers") == ("1:fc1", "3:fc2") and added.option("timeout") == 1.0
    assert parse_backend_spec(added.text) == added
    with pytest.raises(ConfigError, match="give layers once: either --device-layers or #layers="):
        added.with_option("layers", "1:fc1", "--device-layers")
    with pytest.raises(ConfigError, match="--device-layers needs a device backend"):
        parse_backend_spec("sim").with_option("layers", "1:fc1", "--device-layers")


def test_a_registered_backend_declares_its_options() -> None:
    from hil.backends import BackendOption

    @register_backend("test-opts", options=(BackendOption("gain", float, "a gain"),))
    def create(spec: BackendSpec) -> object:
        return spec.option("gain")

    try:
        assert get_backend("test-opts#gain=2.5") == 2.5
        with pytest.raises(ConfigError, match="has no option seed; valid: gain"):
            parse_backend_spec("test-opts#seed=1")
    finally:
        BACKENDS._loaded.pop("test-opts", None)
