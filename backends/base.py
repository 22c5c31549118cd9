"""Backend protocol and the small pieces every backend shares.

A backend executes the matrix-vector products of Linear and Conv layers (``linear``, ``conv``)
and perturbs the outputs of digital sites (``perturb``). The wrapper in `hil.wrap` routes each
noise site of a model to one of these calls with a `SiteCall` describing the site.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from hil.noise import CLEAN, SiteNoise

SiteKind = str
"""``input``, ``linear``, ``conv``, ``bn``, ``act``, ``pool`` or ``output``."""


@dataclass(frozen=True)
class ConvParams:
    """Geometry of an N-d convolution (as ``torch.nn.functional.convNd`` takes it)."""

    dims: int
    stride: tuple[int, ...] | int = 1
    padding: tuple[int, ...] | int | str = 0
    dilation: tuple[int, ...] | int = 1
    groups: int = 1


@dataclass(frozen=True)
class SiteCall:
    """One execution of a noise site.

    Attributes:
        index: Position of the site in forward order.
        name: Stable site name, e.g. ``"3:conv2"``.
        kind: Site kind (see `SiteKind`).
        noise: Resolved noise for this site (`hil.noise.CLEAN` when none).
        owns_output: True when the backend may overwrite the tensor it perturbs in place
            (it is a fresh result nobody else references).
    """

    index: int
    name: str
    kind: SiteKind
    noise: SiteNoise = CLEAN
    owns_output: bool = False


@runtime_checkable
class Backend(Protocol):
    """What a backend must do. See `GaussianBackend` for the reference implementation."""

    name: str
    device: torch.device

    def linear(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
               call: SiteCall) -> torch.Tensor:
        """Return ``x @ weight.T + bias`` as the hardware computes it (noise included)."""
        ...

    def conv(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
             params: ConvParams, call: SiteCall) -> torch.Tensor:
        """Return the N-d convolution of ``x`` as the hardware computes it."""
        ...

    def perturb(self, y: torch.Tensor, call: SiteCall) -> torch.Tensor:
        """Return the output of a digital (non-matmul) site with the site's noise applied."""
        ...

    def reseed(self, seed: int) -> None:
        """Restart the noise generator from ``seed`` (same seed → same draws)."""
        ...

    def close(self) -> None:
        """Release hardware resources (ports, sessions). Safe to call twice."""
        ...


@runtime_checkable
class ForksNoiseStreams(Protocol):
    """Optional capability: independent, seeded noise streams that reproduce the backend's noise.

    A backend that has it (``sim``, ``gpu``) lets studies draw many points' noise in one stacked
    forward: the noise-free prefix up to a site is computed once, and each point's draws come from
    its own fork. A backend without it (a device, whose noise is physical) evaluates points one by
    one through the same study code.
    """

    def fork(self, seed: int) -> Backend:
        """A new backend on the same torch device whose draws are seeded by ``seed`` only."""
        ...


@runtime_checkable
class DrawsPerBlock(Protocol):
    """Optional capability: a backend with noise of its own that draws it from streams it is given.

    A backend that has it (``twin``) lets the walk stack draws although its prefix is noisy: the
    prefix up to a site runs with one generator, then ``draw_from`` hands it one generator per
    stacked draw, and every later matmul draws block i of its batch (the batch split into equal
    blocks, one per generator) from generator i, exactly as a batch of block i alone would draw.
    """

    def draw_from(self, generators: Sequence[torch.Generator]) -> None:
        """Draw block i of every later batch from ``generators[i]`` (one generator: the whole batch)."""
        ...


@runtime_checkable
class PlacesLayers(Protocol):
    """Optional capability: choose which Linear/Conv sites run on the hardware, the rest digitally.

    The ``device`` and ``twin`` backends have it; the placement walk moves one layer at a time onto
    the hardware through it, over one open connection.
    """

    def place(self, layers: frozenset[str] | None) -> None:
        """Run only ``layers`` on the hardware (None: every Linear/Conv site)."""
        ...


@runtime_checkable
class AttenuatesInputs(Protocol):
    """Optional capability: use fewer DAC codes for the input of the layers on the hardware.

    With attenuation k ≥ 1 every input vector is scaled to 1/k of the DAC range before it is
    quantised and the result multiplied by k digitally, so additive noise grows k-fold relative to
    the signal: the SNR walk's way to turn up the noise of a chip whose σ is fixed. ``device`` and
    ``twin`` have it.
    """

    def attenuate(self, k: float) -> None:
        """Attenuate the input range by ``k`` (1 = the full DAC range, the default)."""
        ...


def check_attenuation(k: float) -> float:
    """``k`` as a float, or a ConfigError when it is not a finite number ≥ 1."""
    import math

    from hil.errors import ConfigError

    if not isinstance(k, int | float) or not math.isfinite(k) or k < 1:
        raise ConfigError(f"an input attenuation must be a finite number ≥ 1 (1 = full DAC range), got {k!r}")
    return float(k)


def digital_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                 params: ConvParams) -> torch.Tensor:
    """The exact convolution, the one place backends compute a conv digitally."""
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[params.dims]
    return conv(x, weight, bias, params.stride, params.padding, params.dilation, params.groups)


def conv_as_matmul(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, params: ConvParams,
                   matmul: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *, where: str) -> torch.Tensor:
    """A 2-D convolution as ``matmul(patches, weight_matrix)`` over unfolded patches (im2col), bias added digitally.

    The mapping the ``device`` and ``twin`` backends share; ``where`` names the site and the fix in the error.

    Raises:
        ConfigError: Not a 2-D convolution with groups=1 and numeric padding.
    """
    from hil.errors import ConfigError

    if params.dims != 2 or params.groups != 1 or isinstance(params.padding, str):
        raise ConfigError(f"analog tiles map 2-D convolutions with groups=1 and numeric padding; {where}")
    out_shape = digital_conv(x[:1], weight, None, params).shape[-2:]
    patches = F.unfold(x, weight.shape[-2:], dilation=params.dilation, padding=params.padding,
                       stride=params.stride)  # (B, C·kh·kw, L)
    batch, features, positions = patches.shape
    flat = patches.transpose(1, 2).reshape(batch * positions, features)
    y = matmul(flat, weight.reshape(weight.shape[0], -1))
    y = y.reshape(batch, positions, -1).transpose(1, 2).reshape(batch, weight.shape[0], *out_shape)
    return y if bias is None else y + bias.view(1, -1, 1, 1)


def check_placement(layers: frozenset[str] | None, sites: tuple[object, ...], what: str) -> None:
    """Refuse a layer placement (``what``: ``device``, ``twin``) naming no Linear/Conv site of the model.

    Raises:
        ConfigError: A name in ``layers`` is not a Linear/Conv site; the message lists those that are.
    """
    from hil.errors import ConfigError

    if layers is None:
        return
    matmul = [s.name for s in sites if s.is_matmul]  # type: ignore[attr-defined]
    unknown = sorted(layers - set(matmul))
    if unknown:
        raise ConfigError(f"{what} layers {', '.join(unknown)} are not Linear/Conv sites of this model; "
                          f"choose from {', '.join(matmul)}")


def average_executions(execute: Callable[[], torch.Tensor], repeats: int) -> torch.Tensor:
    """Multi-execution hook: run ``execute`` ``repeats`` times and return the mean.

    Each call must draw independent noise (a real device does by nature). The mean of r
    independent executions has its noise std reduced by 1/√r. Used by backends whose
    executions are opaque (hardware); `GaussianBackend` has an exact shortcut instead.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be ≥ 1, got {repeats}")
    total = execute()
    for _ in range(repeats - 1):
        # Out of place: the backend may hand back buffers it reuses, and autograd needs the graph.
        total = total + execute()
    return total / repeats if repeats > 1 else total
