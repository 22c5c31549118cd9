"""The one parser for backend spec strings (torch-free).

Grammar: ``NAME[:ADDRESS][:KEY=VALUE[,KEY=VALUE...]]``

=====================  ==========================================================
``sim``                reference Gaussian emulator on the CPU, seed 0
``sim:seed=3``         same, seed 3
``gpu``                same noise model on ``cuda`` (current CUDA device)
``gpu:cuda:1``         on CUDA device 1; ``gpu:cuda:1:seed=3`` with seed 3
``device:ADDRESS``     analog tile device: serial:PATH, tcp:HOST:PORT, replay:FILE, NAME:ADDR
=====================  ==========================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hil.errors import ConfigError

VALID_FORMS = "sim, sim:seed=3, gpu, gpu:cuda:1, gpu:cuda:1:seed=3, device:<address>"
_GPU_ADDRESS = re.compile(r"cuda(:\d+)?")
_OPTIONS = {"sim": {"seed"}, "gpu": {"seed"}}


@dataclass(frozen=True)
class BackendSpec:
    """A parsed backend spec.

    Attributes:
        name: Registry name of the backend (``sim``, ``gpu``, ``device``, or a user's).
        address: Where it runs (``cuda:1``, a serial port, ...), or None for the default.
        seed: Seed of the backend's noise generator.
        text: The original spec string.
    """

    name: str
    address: str | None = None
    seed: int = 0
    text: str = ""


def parse_backend_spec(text: str) -> BackendSpec:
    """Parse a backend spec string.

    Raises:
        ConfigError: Malformed spec; the message lists the valid forms.
    """
    if not isinstance(text, str):
        raise ConfigError(f"backend spec must be a string, got {text!r}; valid forms: {VALID_FORMS}")
    raw = text.strip()
    name, _, rest = raw.partition(":")
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
        raise ConfigError(f"bad backend spec {text!r}; valid forms: {VALID_FORMS}")
    if name == "device":
        # The address grammar (serial, VISA resource strings with '::', TCP) belongs to the
        # device backend; keep it verbatim.
        if not rest:
            raise ConfigError(f"backend spec {text!r} needs an address, e.g. device:serial:/dev/ttyUSB0")
        return BackendSpec(name="device", address=rest, text=raw)
    parts = [p for p in rest.split(":")] if rest else []
    address_parts: list[str] = []
    options: dict[str, str] = {}
    for part in parts:
        if "=" in part:
            for item in part.split(","):
                key, eq, value = item.partition("=")
                if not eq or not key or not value:
                    raise ConfigError(f"bad option {item!r} in backend spec {text!r}; use KEY=VALUE")
                options[key] = value
        elif options:
            raise ConfigError(f"bad backend spec {text!r}: options (KEY=VALUE) must come last")
        elif part:
            address_parts.append(part)
        else:
            raise ConfigError(f"bad backend spec {text!r}: empty field; valid forms: {VALID_FORMS}")
    address = ":".join(address_parts) or None
    allowed = _OPTIONS.get(name, {"seed"})
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigError(
            f"backend {name!r} has no option {', '.join(unknown)}; valid: {', '.join(sorted(allowed))}"
        )
    if name == "sim" and address is not None:
        raise ConfigError(f"backend 'sim' takes no address, got {address!r}; e.g. sim or sim:seed=3")
    if name == "gpu" and address is not None and not _GPU_ADDRESS.fullmatch(address):
        raise ConfigError(f"bad gpu device {address!r}; use gpu, gpu:cuda or gpu:cuda:1")
    seed = 0
    if "seed" in options:
        try:
            seed = int(options["seed"])
        except ValueError:
            raise ConfigError(f"seed must be an integer in backend spec {text!r}") from None
        if seed < 0:
            raise ConfigError(f"seed must be ≥ 0 in backend spec {text!r}")
    return BackendSpec(name=name, address=address, seed=seed, text=raw)
