"""Backends that execute a network's matmuls and noise sites (torch-free until one is built).

Built-ins: ``sim`` (reference Gaussian emulator, CPU) and ``gpu`` (the same on CUDA).
``device:…`` runs matmuls on an analog tile device (`hil.backends.device`); ``twin:PROFILE`` is a
digital twin of a calibrated device, driven by its noise card (`hil.backends.twin`). Add your own with
`register_backend`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hil.backends.spec import VALID_FORMS, BackendOption, BackendSpec, declare_options, parse_backend_spec
from hil.errors import UnknownNameError
from hil.registry import Registry

if TYPE_CHECKING:
    from hil.backends.base import Backend

BACKENDS: Registry[Any] = Registry(
    "backend",
    {
        "sim": "hil.backends.sim:create_sim_backend",
        "gpu": "hil.backends.gpu:create_gpu_backend",
        "device": "hil.backends.device.backend:create_device_backend",
        "twin": "hil.backends.twin:create_twin_backend",
    },
)
"""Backend name → factory ``(BackendSpec) -> Backend``."""


def register_backend(name: str, options: tuple[BackendOption, ...] | None = None):  # noqa: ANN201 - decorator
    """Register a backend factory ``(BackendSpec) -> Backend`` under ``name``.

    ``options`` declares the ``#key=value`` options its specs take (default: ``seed`` only).
    """
    decorate = BACKENDS.register(name)

    def register(factory: Any) -> Any:
        result = decorate(factory)
        if options is not None:
            declare_options(name, options)
        return result

    return register


def backend_names() -> list[str]:
    """Names of all registered backends."""
    return BACKENDS.names()


def get_backend(spec: str | BackendSpec) -> Backend:
    """Build a backend from a spec string such as ``sim:seed=3`` or ``gpu:cuda:1``.

    Raises:
        ConfigError: Malformed spec.
        UnknownNameError: No backend of that name.
        BackendUnavailableError: The backend cannot run here (e.g. ``gpu`` without CUDA).
    """
    parsed = parse_backend_spec(spec) if isinstance(spec, str) else spec
    if parsed.name not in BACKENDS:
        raise UnknownNameError(
            f"unknown backend {parsed.name!r}; choose one of: {', '.join(backend_names())} "
            f"(forms: {VALID_FORMS})"
        )
    return BACKENDS.get(parsed.name)(parsed)


__all__ = ["BACKENDS", "BackendOption", "BackendSpec", "backend_names", "get_backend", "parse_backend_spec",
           "register_backend"]
