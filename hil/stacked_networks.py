"""K networks of one architecture run as one: stacked weights, one batched matmul per layer, K noise streams.

Batched training of walk points (`hil.batched_training`) trains K networks that differ only in their noise
and seed. `stack_networks` turns K models into one module of the same structure whose linear and
convolution weights carry a leading K dimension; the batch of a forward is the K networks' batches one
after the other (block ``i`` = rows ``i·B … (i+1)·B − 1`` = network ``i``), so every per-sample layer
(activations, pooling, flatten, residual adds) runs on it unchanged. `StackedBackend` executes each site:
a linear layer as one ``baddbmm``, a convolution as one grouped convolution (or one per network, see
`ConvMode`), then network ``i``'s noise on block ``i``, drawn by network ``i``'s own backend — the same
draws, in the same order and shapes, as training that network alone.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import replace
from typing import Literal

import torch
from torch import nn

from hil.backends.base import Backend, ConvParams, SiteCall, digital_conv
from hil.errors import ConfigError
from hil.noise import SiteNoise
from hil.seeding import derive_seed

ConvMode = Literal["grouped", "per-network"]
"""How a stacked convolution runs: one grouped convolution over all networks (fewer kernel launches: the
choice on a GPU), or one convolution per network (a CPU's convolution kernels are faster ungrouped)."""

_STACKABLE_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def default_conv_mode(device: torch.device) -> ConvMode:
    """``grouped`` on CUDA, ``per-network`` elsewhere (measured: `benchmarks/batched_training.py`)."""
    return "grouped" if device.type == "cuda" else "per-network"


def check_stackable(model: nn.Module, name: str) -> None:
    """Refuse a model that cannot be stacked exactly: state beyond linear/conv weights, or randomness of its own.

    Raises:
        ConfigError: The model has buffers (BatchNorm statistics), parameters outside plain linear and
            convolution layers (quantisers) or dropout.
    """
    problem = None
    if next(model.buffers(), None) is not None:
        problem = "buffers (BatchNorm statistics)"
    elif any(isinstance(module, nn.modules.dropout._DropoutNd) for module in model.modules()):
        problem = "dropout"
    else:
        for module in model.modules():
            own = [p for p, _ in module.named_parameters(recurse=False)]
            if own and (type(module) not in _STACKABLE_LAYERS or not set(own) <= {"weight", "bias"}):
                problem = f"parameters in a {type(module).__name__}"
                break
    if problem is not None:
        raise ConfigError(f"batched training needs a model whose only state is linear and convolution weights; "
                          f"{name} has {problem}: use --batch-points 1 (or a model without BatchNorm/quantisation)")


def stack_networks(models: Sequence[nn.Module]) -> nn.Module:
    """One module like ``models[0]`` whose every parameter is the K models' parameters stacked on a new dim 0.

    Run it only through `StackedBackend` (a plain call would hand 3-d weights to ``F.linear``). Parameter
    order is the models' own, so optimizer state maps parameter by parameter.
    """
    stacked = copy.deepcopy(models[0])
    with torch.no_grad():
        for path, parameter in list(stacked.named_parameters()):
            owner_path, _, attribute = path.rpartition(".")
            owner = stacked.get_submodule(owner_path)
            values = torch.stack([model.get_parameter(path).detach() for model in models])
            setattr(owner, attribute, nn.Parameter(values.to(parameter.device)))
    return stacked


def unstack_into(stacked: nn.Module, models: Sequence[nn.Module]) -> None:
    """Copy network ``i``'s slice of every stacked parameter into ``models[i]``."""
    with torch.no_grad():
        for path, values in stacked.named_parameters():
            for index, model in enumerate(models):
                model.get_parameter(path).copy_(values[index])


def stacked_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``F.linear`` of each network's block of ``x`` with its weight (``weight``: K × out × in)."""
    networks = weight.shape[0]
    rows = x.reshape(networks, -1, x.shape[-1])
    transposed = weight.transpose(1, 2)
    y = torch.bmm(rows, transposed) if bias is None else torch.baddbmm(bias.unsqueeze(1), rows, transposed)
    return y.reshape(*x.shape[:-1], weight.shape[1])


def stacked_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, params: ConvParams,
                 mode: ConvMode) -> torch.Tensor:
    """The convolution of each network's block of ``x`` with its filters (``weight``: K × out × in/groups × k…)."""
    networks = weight.shape[0]
    if mode == "per-network":
        blocks = x.chunk(networks)
        return torch.cat([digital_conv(block, weight[i], None if bias is None else bias[i], params)
                          for i, block in enumerate(blocks)])
    batch, channels, spatial = x.shape[0] // networks, x.shape[1], x.shape[2:]
    side_by_side = x.reshape(networks, batch, channels, *spatial).transpose(0, 1)
    y = digital_conv(side_by_side.reshape(batch, networks * channels, *spatial),
                     weight.reshape(networks * weight.shape[1], *weight.shape[2:]),
                     None if bias is None else bias.reshape(-1), replace(params, groups=params.groups * networks))
    out = weight.shape[1]
    return y.reshape(batch, networks, out, *y.shape[2:]).transpose(0, 1).reshape(networks * batch, out, *y.shape[2:])


class StackedBackend:
    """Executes the sites of a `stack_networks` module: batched matmuls, network ``i``'s noise on block ``i``.

    A `hil.backends.base.Backend` for `hil.NoisyModel` (wrap the stacked module with a clean spec and the
    site table of one of the networks). The noise of a site comes from ``plans[i][site]``, not from the
    wrapper's spec, and is drawn by ``backends[i]``.

    Args:
        backends: One exact backend (``sim``/``gpu``) per network; each keeps its own generator.
        plans: Per network, the resolved noise of every site (``NoiseSpec.resolve``).
        conv_mode: How convolutions run (default: `default_conv_mode` of the backends' device).
    """

    name = "stacked"

    def __init__(self, backends: Sequence[Backend], plans: Sequence[Sequence[SiteNoise]],
                 conv_mode: ConvMode | None = None) -> None:
        if not backends or len(backends) != len(plans):
            raise ValueError("StackedBackend needs one noise plan per backend, at least one")
        self.backends = list(backends)
        self.plans = [list(plan) for plan in plans]
        self.device = self.backends[0].device
        self.conv_mode: ConvMode = conv_mode or default_conv_mode(self.device)
        self._calls: dict[tuple[int, bool], list[SiteCall]] = {}

    def _calls_of(self, call: SiteCall) -> list[SiteCall]:
        key = (call.index, call.owns_output)
        calls = self._calls.get(key)
        if calls is None:
            calls = [replace(call, noise=plan[call.index]) for plan in self.plans]
            self._calls[key] = calls
        return calls

    def linear(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
               call: SiteCall) -> torch.Tensor:
        """One batched matmul for all networks, then each network's noise."""
        return self.perturb(stacked_linear(x, weight, bias), call)

    def conv(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
             params: ConvParams, call: SiteCall) -> torch.Tensor:
        """The networks' convolutions (`conv_mode`), then each network's noise."""
        return self.perturb(stacked_conv(x, weight, bias, params, self.conv_mode), call)

    def perturb(self, y: torch.Tensor, call: SiteCall) -> torch.Tensor:
        """Network ``i``'s noise for this site on block ``i`` of ``y``, drawn by backend ``i``."""
        blocks = y.chunk(len(self.backends))
        perturbed = [backend.perturb(block, site_call)
                     for backend, block, site_call in zip(self.backends, blocks, self._calls_of(call), strict=True)]
        if all(out is block for out, block in zip(perturbed, blocks, strict=True)):
            return y  # clean, or noised in place
        return torch.cat(perturbed)

    def reseed_each(self, seeds: Sequence[int]) -> None:
        """Restart network ``i``'s generator from ``seeds[i]``."""
        for backend, seed in zip(self.backends, seeds, strict=True):
            backend.reseed(seed)

    def reseed(self, seed: int) -> None:
        """Restart every network's generator from a seed derived from (``seed``, its index)."""
        self.reseed_each([derive_seed(seed, "noise", index) for index in range(len(self.backends))])

    def close(self) -> None:
        """Close every network's backend."""
        for backend in self.backends:
            backend.close()
