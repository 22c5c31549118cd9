"""Fold inference-mode BatchNorm into the Linear/Conv before it, as an analog deployment does.

An analog MVM computes ``W x``; a digital BatchNorm after it then scales whatever noise the MVM added
by its gain ``γ / √(var + ε)`` per channel. Deployed networks fold that affine map into the weights
and bias instead (``W' = W · gain``, ``b' = (b − mean) · gain + β``): the clean outputs are the same,
and the MVM's noise lands on the normalised output, unscaled. `fold_batchnorm` does this in place
for any model whose BN layers directly follow their Linear/Conv in a layer stack (MLP, LeNet-5,
VGG-11) and for models that declare the `FoldsBatchNorm` capability (ResNet-18, whose BN sits inside
its blocks). Folded BN layers disappear, and with them their noise sites.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from hil.errors import ModelError

MATMUL_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)


@runtime_checkable
class FoldsBatchNorm(Protocol):
    """A model that folds its own BatchNorm layers (when they are not simply the next layer)."""

    def fold_batchnorm(self) -> None:
        """Fold every BN into the Linear/Conv before it, in place (inference only)."""


def batchnorm_gain(bn: _BatchNorm) -> torch.Tensor:
    """Per-channel gain γ / √(running var + ε) of an inference BatchNorm (γ = 1 without affine weights).

    Raises:
        ModelError: ``bn`` has no running statistics.
    """
    if bn.running_var is None:
        raise ModelError("BatchNorm without running statistics cannot be folded (track_running_stats=False)")
    gain = torch.rsqrt(bn.running_var + bn.eps)
    return gain if bn.weight is None else gain * bn.weight.detach()


def fold_layer(layer: nn.Module, bn: nn.Module) -> None:
    """Fold ``bn`` (inference statistics) into ``layer``'s weight and bias, in place.

    Raises:
        ModelError: ``bn`` has no running statistics, or the shapes do not match.
    """
    if not isinstance(layer, MATMUL_LAYERS) or not isinstance(bn, _BatchNorm):
        raise ModelError(f"cannot fold {type(bn).__name__} into {type(layer).__name__}")
    if bn.running_mean is None or bn.running_var is None:
        raise ModelError("BatchNorm without running statistics cannot be folded (track_running_stats=False)")
    channels = layer.weight.shape[0]
    if bn.running_mean.numel() != channels:
        raise ModelError(f"BatchNorm of {bn.running_mean.numel()} channels after a layer of {channels} outputs")
    with torch.no_grad():
        gain = batchnorm_gain(bn)
        shift = -bn.running_mean * gain + (bn.bias if bn.bias is not None else 0.0)
        bias = layer.bias if layer.bias is not None else torch.zeros_like(bn.running_mean)
        layer.weight.mul_(gain.view(-1, *([1] * (layer.weight.dim() - 1))))
        layer.bias = nn.Parameter(bias * gain + shift)


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every BatchNorm of ``model`` into the Linear/Conv before it, in place; returns how many.

    Raises:
        ModelError: A BatchNorm that does not directly follow a Linear/Conv (nothing to fold it into).
    """
    if isinstance(model, FoldsBatchNorm):
        before = sum(isinstance(m, _BatchNorm) for m in model.modules())
        model.fold_batchnorm()
        return before
    folded = 0
    for container in list(model.modules()):
        children = list(container.named_children())
        for (_, layer), (name, bn) in zip(children, children[1:], strict=False):
            if isinstance(layer, MATMUL_LAYERS) and isinstance(bn, _BatchNorm):
                fold_layer(layer, bn)
                setattr(container, name, nn.Identity())
                folded += 1
    left = [name for name, m in model.named_modules() if isinstance(m, _BatchNorm)]
    if left:
        raise ModelError(f"cannot fold BatchNorm {left[0]}: it does not directly follow a Linear/Conv layer; "
                         f"drop --fold-bn")
    return folded
