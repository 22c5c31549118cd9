"""``gpu``: the Gaussian emulator on CUDA, noise drawn on the device (no host sync per site)."""

from __future__ import annotations

import torch

from hil.backends.gaussian import GaussianBackend
from hil.backends.spec import BackendSpec
from hil.errors import BackendUnavailableError


def create_gpu_backend(spec: BackendSpec) -> GaussianBackend:
    """Build the ``gpu`` backend (``gpu``, ``gpu:cuda:1``, ``gpu:cuda:1:seed=3``).

    Raises:
        BackendUnavailableError: No CUDA, or the requested device index does not exist.
            It never falls back to the CPU silently.
    """
    if not torch.cuda.is_available():
        raise BackendUnavailableError(
            "backend 'gpu' needs CUDA, but torch.cuda.is_available() is False on this machine "
            f"(torch {torch.__version__}); use --backend sim, or install a CUDA build of torch"
        )
    device = torch.device(spec.address or "cuda")
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise BackendUnavailableError(
            f"backend {spec.text!r}: CUDA device {device.index} does not exist "
            f"({count} visible); use gpu:cuda:0..{count - 1}"
        )
    return GaussianBackend(device=device, seed=spec.seed, name="gpu")
