"""Typical weight and input scales of a model's Linear/Conv layers (for σa in network units)."""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn


def matmul_scales(model: nn.Module, inputs: torch.Tensor) -> dict[str, tuple[float, float, int]]:
    """Per Linear/Conv module path: (RMS column weight scale, RMS input-vector scale, fan-in).

    The weight scale of an output column is max |W[c, :]| (what the device backend quantises by);
    the input scale of a vector is its max |x| (for a convolution: of each unfolded patch). Both
    are root mean squares — noise adds as variance, so σ·s·t averages as √E[s²]·√E[t²] — taken on
    ``inputs`` in eval mode without noise.
    """
    found: dict[str, tuple[float, float, int]] = {}
    handles = []
    for path, module in model.named_modules():
        if isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d):
            handles.append(module.register_forward_pre_hook(_recorder(path, found)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(inputs)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return found


def _recorder(path: str, found: dict[str, tuple[float, float, int]]):  # noqa: ANN202
    def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        x = args[0]
        parameter = cast(torch.Tensor, module.weight)
        weight = parameter.detach().reshape(parameter.shape[0], -1)
        weight_scale = float(weight.abs().amax(dim=1).pow(2).mean().sqrt())
        if isinstance(module, nn.Conv2d) and module.groups == 1 and not isinstance(module.padding, str):
            patches = F.unfold(x, module.kernel_size, dilation=module.dilation, padding=module.padding,
                               stride=module.stride)
            vectors = patches.abs().amax(dim=1).flatten()
        else:
            vectors = x.reshape(x.shape[0], -1).abs().amax(dim=1) if x.dim() == 2 else x.abs().flatten(1).amax(dim=1)
        found[path] = (weight_scale, float(vectors.pow(2).mean().sqrt()), weight.shape[1])

    return hook
