"""The one grammar of backend spec strings, parsed once into a typed `BackendSpec` (torch-free).

Grammar: ``NAME[:ADDRESS][#KEY=VALUE[;KEY=VALUE...]]``. Each backend declares its options
(`BACKEND_OPTIONS`, or ``register_backend(name, options=...)``); values are converted and checked
here, and an unknown option is an error listing the valid ones.

=====================================  ====================================================
``sim``, ``sim#seed=3``                reference Gaussian emulator on the CPU (seed 0, 3)
``gpu``, ``gpu:cuda:1#seed=3``         same noise model on CUDA (current device, device 1)
``device:ADDRESS[#OPTIONS]``           analog tile device: serial:PATH, tcp:HOST:PORT, visa:RESOURCE,
                                       replay:FILE, NAME:ADDR; options record, layers, timeout,
                                       calibration, visa_library, seed
``twin:PROFILE[#OPTIONS]``             digital twin of a calibrated device (its noise card); options
                                       layers, correct, per_column, temperature, elapsed, uptime,
                                       on, seed
=====================================  ====================================================

The earlier spelling with options after a colon (``sim:seed=3``, ``gpu:cuda:1:seed=3``) still
parses for every backend but ``device`` and ``twin``, whose addresses may hold ``=``, ``,`` and ``:``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from hil.errors import ConfigError

VALID_FORMS = ("sim, sim:seed=3 (or sim#seed=3), gpu, gpu:cuda:1, gpu:cuda:1#seed=3, device:<address>[#key=value;…], "
               "twin:<profile>[#key=value;…]")
_GPU_ADDRESS = re.compile(r"cuda(:\d+)?")
_TORCH_DEVICE = re.compile(r"cpu|cuda(:\d+)?")
ADDRESSED = {"device": "device:serial:/dev/ttyUSB0", "twin": "twin:profile.toml"}
"""Backends whose address is taken verbatim (it may hold colons) and is required, with an example."""
_NAME = re.compile(r"[a-z][a-z0-9_-]*")


@dataclass(frozen=True)
class BackendOption:
    """One option a backend (or an executor) takes.

    Attributes:
        name: The key in the spec (``seed``).
        convert: Turns the text value into the typed value; raises ConfigError with the fix.
        help: What it does (shown in errors and docs).
    """

    name: str
    convert: Callable[[str], Any]
    help: str


def integer_at_least(minimum: int) -> Callable[[str], int]:
    """An option converter: an integer ≥ ``minimum``."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ConfigError(f"must be an integer, got {text!r}") from None
        if value < minimum:
            raise ConfigError(f"must be ≥ {minimum}, got {value}")
        return value

    return convert


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"must be a number of seconds, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ConfigError("must be > 0 seconds")
    return value


def non_negative_number(text: str) -> float:
    """An option converter: a finite number ≥ 0."""
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"must be a number, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"must be a finite number ≥ 0, got {text!r}")
    return value


def non_empty_text(text: str) -> str:
    """An option converter: any text but the empty one."""
    if not text:
        raise ConfigError("is empty")
    return text


def _names(text: str) -> tuple[str, ...]:
    names = tuple(item.strip() for item in text.split(",") if item.strip())
    if not names:
        raise ConfigError("is empty; name sites such as 1:fc1,3:fc2 (hil sites --model …)")
    return names


def _boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"must be true or false, got {text!r}")


def _celsius(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"must be a temperature in °C, got {text!r}") from None
    if not (math.isfinite(value) and -273.15 < value < 1000):
        raise ConfigError(f"must be a temperature in °C, got {text!r}")
    return value


_DURATION_UNITS = {"": 1.0, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def _duration(meaning: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        match = re.fullmatch(r"\s*([0-9.eE+-]+)\s*(s|min|h|d)?\s*", text)
        try:
            value = float(match.group(1)) * _DURATION_UNITS[match.group(2) or ""] if match else math.nan
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"must be {meaning} such as 600, 90s, 30min, 2h or 1d, got {text!r}")
        return value

    return parse


_elapsed = _duration("a time after the calibration")


def _torch_device(text: str) -> str:
    if not _TORCH_DEVICE.fullmatch(text):
        raise ConfigError(f"must be cpu, cuda or cuda:N, got {text!r}")
    return text


SEED = BackendOption("seed", integer_at_least(0), "seed of the backend's noise generator")
BACKEND_OPTIONS: dict[str, tuple[BackendOption, ...]] = {
    "sim": (SEED,),
    "gpu": (SEED,),
    "device": (
        SEED,
        BackendOption("record", non_empty_text, "write every exchange to this recording file (serial:, tcp:)"),
        BackendOption("layers", _names, "only these Linear/Conv sites run on the device"),
        BackendOption("timeout", _seconds, "seconds to wait for each reply"),
        BackendOption("calibration", non_empty_text, "calibration profile whose gain/offset correct the outputs"),
        BackendOption("visa_library", non_empty_text, "pyvisa library for visa: (@py, or FILE.yaml@sim)"),
    ),
    "twin": (
        SEED,
        BackendOption("layers", _names, "only these Linear/Conv sites run on the twin"),
        BackendOption("correct", _boolean, "undo the card's gain/offset as device:…#calibration= does (true)"),
        BackendOption("per_column", _boolean, "per-column σa/σm from the card (true) or the pooled values"),
        BackendOption("temperature", _celsius, "device temperature to reproduce with the card's drift (°C)"),
        BackendOption("elapsed", _elapsed, "time since the calibration to reproduce with the card's drift "
                                           "(seconds, or 30min, 2h, 1d)"),
        BackendOption("uptime", _duration("a time on the device's clock"),
                      "the device's uptime to reproduce (its clock, as RUN replies stamp it): the card's time "
                      "drift from its calibration's uptime"),
        BackendOption("on", _torch_device, "torch device the twin computes on: cpu (default), cuda, cuda:1"),
    ),
}
"""Backend name → the options it takes. Backends registered without a declaration take ``seed``."""


def declare_options(name: str, options: tuple[BackendOption, ...]) -> None:
    """Declare the options of backend ``name`` (called by ``register_backend(name, options=...)``)."""
    BACKEND_OPTIONS[name] = options


def options_of(name: str) -> dict[str, BackendOption]:
    """The options backend ``name`` takes, by key."""
    return {option.name: option for option in BACKEND_OPTIONS.get(name, (SEED,))}


@dataclass(frozen=True)
class BackendSpec:
    """A parsed backend spec.

    Attributes:
        name: Registry name of the backend (``sim``, ``gpu``, ``device``, or a user's).
        address: Where it runs (``cuda:1``, ``serial:/dev/ttyUSB0``, ...), or None for the default.
        options: Typed option values given in the spec (read-only).
        text: The spec string as given (stripped).
    """

    name: str
    address: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    text: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BackendSpec):
            return NotImplemented
        return (self.name, self.address, dict(self.options), self.text) == (
            other.name, other.address, dict(other.options), other.text)

    def __hash__(self) -> int:
        return hash((self.name, self.address, tuple(sorted(self.options.items())), self.text))

    @property
    def seed(self) -> int:
        """Seed of the backend's noise generator (``#seed=``, default 0)."""
        return int(self.options.get("seed", 0))

    def option(self, key: str, default: Any = None) -> Any:
        """The typed value of option ``key``, or ``default`` when the spec does not give it."""
        return self.options.get(key, default)

    def with_option(self, key: str, value: str, flag: str) -> BackendSpec:
        """This spec with option ``key`` set from a command-line ``flag`` (refused when the spec has it)."""
        if key in self.options:
            raise ConfigError(f"give {key} once: either {flag} or #{key}= in the backend spec")
        allowed = options_of(self.name)
        if key not in allowed:
            raise ConfigError(f"{flag} needs a device backend (--backend device:…) or another that takes {key}=; "
                              f"{self.name!r} does not")
        converted = _convert(allowed[key], value, flag)
        text = f"{self.text}{';' if '#' in self.text else '#'}{key}={value}"
        return BackendSpec(self.name, self.address, {**self.options, key: converted}, text)


def _convert(option: BackendOption, value: str, where: str) -> Any:
    try:
        return option.convert(value)
    except ConfigError as error:
        raise ConfigError(f"{option.name} {error} in {where}") from None


def parse_options(items: list[str], allowed: dict[str, BackendOption], *, kind: str, name: str,
                  text: str) -> dict[str, Any]:
    """Typed values of ``KEY=VALUE`` items, each key one of ``allowed`` (the ``#k=v;…`` part of a spec).

    Shared by backend specs and executor specs (`hil.studies.engine`), so both read and refuse alike.

    Args:
        items: The ``KEY=VALUE`` texts.
        allowed: Declared options by key.
        kind: ``"backend"`` or ``"executor"`` (for messages).
        name: The backend's or executor's name.
        text: The whole spec (for messages).

    Raises:
        ConfigError: An item without ``=``, an unknown or repeated key, or a value its option refuses.
    """
    parsed: dict[str, Any] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key or not value:
            raise ConfigError(f"bad option {item!r} in {kind} spec {text!r}; use KEY=VALUE")
        if key not in allowed:
            raise ConfigError(f"bad {name} option {item!r}: {kind} {name!r} has no option {key}; "
                              f"valid: {', '.join(sorted(allowed)) or 'none'}")
        if key in parsed:
            raise ConfigError(f"option {key} is given twice in {kind} spec {text!r}")
        parsed[key] = _convert(allowed[key], value, f"{kind} spec {text!r}")
    return parsed


def _legacy_split(name: str, rest: str, text: str) -> tuple[str | None, list[str]]:
    """Address and option items of the colon spelling ``NAME[:ADDRESS][:KEY=VALUE[,KEY=VALUE]]``."""
    address_parts: list[str] = []
    items: list[str] = []
    for part in rest.split(":") if rest else []:
        if "=" in part:
            items.extend(part.split(","))
        elif items:
            raise ConfigError(f"bad backend spec {text!r}: options (KEY=VALUE) must come last")
        elif part:
            address_parts.append(part)
        else:
            raise ConfigError(f"bad backend spec {text!r}: empty field; valid forms: {VALID_FORMS}")
    return ":".join(address_parts) or None, items


def parse_backend_spec(text: str) -> BackendSpec:
    """Parse a backend spec string (see the module docstring for the grammar).

    Raises:
        ConfigError: Malformed spec, unknown or bad option; the message names the valid forms.
    """
    if not isinstance(text, str):
        raise ConfigError(f"backend spec must be a string, got {text!r}; valid forms: {VALID_FORMS}")
    raw = text.strip()
    head, hashed, option_text = raw.partition("#")
    name, _, rest = head.partition(":")
    if not _NAME.fullmatch(name):
        raise ConfigError(f"bad backend spec {text!r}; valid forms: {VALID_FORMS}")
    items = [item for item in option_text.split(";") if item] if hashed else []
    if name not in ADDRESSED:
        address, legacy = _legacy_split(name, rest, text)
        items = legacy + items
    else:
        address = rest or None
    if name in ADDRESSED and address is None:
        raise ConfigError(f"backend spec {text!r} needs an address, e.g. {ADDRESSED[name]}")
    if name == "sim" and address is not None:
        raise ConfigError(f"backend 'sim' takes no address, got {address!r}; e.g. sim, sim#seed=3 or sim:seed=3")
    if name == "gpu" and address is not None and not _GPU_ADDRESS.fullmatch(address):
        raise ConfigError(f"bad gpu device {address!r}; use gpu, gpu:cuda or gpu:cuda:1")
    options = parse_options(items, options_of(name), kind="backend", name=name, text=text)
    return BackendSpec(name=name, address=address, options=options, text=raw)
