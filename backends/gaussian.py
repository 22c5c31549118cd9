"""The reference Gaussian emulator: the noise model of paper 002, on any torch device.

Matmuls are computed exactly (digitally) and noise is added to their outputs; digital sites get
the same noise. Two forms of the same distribution are used:

* Inference (no autograd): mul-first mixed noise y·N(1,σm²) + N(0,σa²) is drawn as
  y + √(σa² + σm²·y²)·N(0,1) — one normal per element, updated in place where allowed.
* Training (autograd): the paper's two-draw form y·M + A with M, A constants for autograd
  (gradient M), or straight-through (gradient 1).

r executions averaged (multi-execution) are exact without r draws for mul-first:
mean of r draws of N(1,σm²) is N(1,σm²/r), same for the additive term. For add-first,
(y + a)·m does not reduce that way, so r executions are drawn explicitly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from hil.backends.base import ConvParams, SiteCall, digital_conv
from hil.noise import SiteNoise


class GaussianBackend:
    """Exact Gaussian noise emulator on one torch device, seeded and deterministic.

    Args:
        device: Where tensors live and noise is drawn (``cpu``, ``cuda:0``, ...).
        seed: Seed of the noise generator.
        name: Registry name reported in metadata.
    """

    def __init__(self, device: str | torch.device = "cpu", seed: int = 0, name: str = "sim") -> None:
        self.name = name
        self.device = torch.device(device)
        self.seed = seed
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self._scratch: dict[int, torch.Tensor] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={str(self.device)!r}, seed={self.seed})"

    def reseed(self, seed: int) -> None:
        """Restart the noise generator from ``seed``."""
        self.seed = seed
        self.generator.manual_seed(seed)

    def fork(self, seed: int) -> GaussianBackend:
        """An independent emulator on the same device, seeded by ``seed`` (`ForksNoiseStreams`)."""
        return GaussianBackend(self.device, seed, self.name)

    def close(self) -> None:
        """Free the scratch buffers (the backend stays usable)."""
        self._scratch.clear()

    def linear(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
               call: SiteCall) -> torch.Tensor:
        """Exact ``F.linear`` followed by the site's noise."""
        return self.perturb(F.linear(x, weight, bias), call)

    def conv(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
             params: ConvParams, call: SiteCall) -> torch.Tensor:
        """Exact convolution followed by the site's noise."""
        return self.perturb(digital_conv(x, weight, bias, params), call)

    def perturb(self, y: torch.Tensor, call: SiteCall) -> torch.Tensor:
        """Apply ``call.noise`` (with its repeats) to ``y``."""
        noise = call.noise
        if noise.is_clean:
            return y
        if torch.is_grad_enabled() and y.requires_grad:
            return self._perturb_differentiable(y, noise)
        if not call.owns_output:
            y = y.clone()
        return self._perturb_in_place(y, noise)

    # -- inference: in place, one draw per element where the identity allows --------------

    def _normal_like(self, y: torch.Tensor, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
        return torch.empty_like(y, memory_format=torch.contiguous_format).normal_(
            mean, std, generator=self.generator)

    def _scratch_like(self, slot: int, y: torch.Tensor) -> torch.Tensor:
        """A reusable buffer shaped like ``y``: large fresh allocations page-fault on every call."""
        count = y.numel()
        buffer = self._scratch.get(slot)
        if buffer is None or buffer.numel() < count or buffer.dtype != y.dtype or buffer.device != y.device:
            buffer = torch.empty(count, dtype=y.dtype, device=y.device)
            self._scratch[slot] = buffer
        return buffer[:count].view(y.shape)

    def _perturb_in_place(self, y: torch.Tensor, noise: SiteNoise) -> torch.Tensor:
        if noise.order == "add-first" and noise.sigma_add and noise.sigma_mul:
            gain, offset = self._add_first_terms(y, noise)
            return y.mul_(gain).add_(offset)
        scale = 1.0 / math.sqrt(noise.repeats)
        sigma_add, sigma_mul = noise.sigma_add * scale, noise.sigma_mul * scale
        eps = self._scratch_like(0, y).normal_(generator=self.generator)
        if not sigma_mul:
            return y.add_(eps, alpha=sigma_add)
        if not sigma_add:
            return y.addcmul_(y, eps, value=sigma_mul)
        # y + sqrt(σa² + σm² y²)·ε: same distribution as y·N(1,σm²) + N(0,σa²), one draw.
        variance = torch.addcmul(y.new_full((), sigma_add * sigma_add), y, y, value=sigma_mul * sigma_mul,
                                 out=self._scratch_like(1, y))
        return y.addcmul_(variance.sqrt_(), eps)

    # -- training: the paper's two-draw form, noise constant for autograd -----------------

    def _perturb_differentiable(self, y: torch.Tensor, noise: SiteNoise) -> torch.Tensor:
        gain: torch.Tensor | None = None
        offset: torch.Tensor | None = None
        with torch.no_grad():
            if noise.order == "add-first" and noise.sigma_add and noise.sigma_mul:
                gain, offset = self._add_first_terms(y, noise)
            else:
                scale = 1.0 / math.sqrt(noise.repeats)
                if noise.sigma_mul:
                    gain = self._normal_like(y, 1.0, noise.sigma_mul * scale)
                if noise.sigma_add:
                    offset = self._normal_like(y, 0.0, noise.sigma_add * scale)
        if noise.gradient == "straight-through":
            with torch.no_grad():
                delta = _affine(y.detach(), gain, offset).sub_(y.detach())
            return y + delta
        return _affine(y, gain, offset)

    def _add_first_terms(self, y: torch.Tensor, noise: SiteNoise) -> tuple[torch.Tensor, torch.Tensor]:
        """Gain M and offset A with mean over r executions of (y + a)·m = y·M + A."""
        gain = torch.zeros_like(y)
        offset = torch.zeros_like(y)
        for _ in range(noise.repeats):
            m = self._normal_like(y, 1.0, noise.sigma_mul)
            a = self._normal_like(y, 0.0, noise.sigma_add)
            gain.add_(m)
            offset.addcmul_(a, m)
        if noise.repeats > 1:
            gain.div_(noise.repeats)
            offset.div_(noise.repeats)
        return gain, offset


def _affine(y: torch.Tensor, gain: torch.Tensor | None, offset: torch.Tensor | None) -> torch.Tensor:
    if gain is None:
        return y if offset is None else y + offset
    return y * gain if offset is None else torch.addcmul(offset, y, gain)

