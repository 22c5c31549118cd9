"""``sim``: the reference Gaussian emulator on the CPU."""

from __future__ import annotations

from hil.backends.gaussian import GaussianBackend
from hil.backends.spec import BackendSpec


def create_sim_backend(spec: BackendSpec) -> GaussianBackend:
    """Build the ``sim`` backend from a parsed spec (``sim``, ``sim:seed=3``)."""
    return GaussianBackend(device="cpu", seed=spec.seed, name="sim")
