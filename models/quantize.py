"""Quantisation-aware training with Brevitas: swap a model's layers for quantised ones.

As in paper 001: uniform quantisation, per-channel weight scales on convolutions, per-tensor on
fully connected layers and activations, the same bit width everywhere. Activation scaling is
``dynamic`` (a per-tensor scale initialised from statistics and learned) or ``const:s`` (a fixed
step size s: activations are s·{0, 1, …, 2^b − 1}). The quantised layers keep the float model's
names, so the noise sites (``1:conv1``, ``2:relu1``, …) and their counts are unchanged, and noise
is injected at the quantised layers' outputs before the next activation quantiser.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from torch import nn

from hil.errors import ConfigError

BITS = (2, 4, 8, 16)


@dataclass(frozen=True)
class QuantConfig:
    """How to quantise.

    Attributes:
        bits: Bit width of weights and activations.
        act_scaling: ``dynamic`` or ``const:<step size>``.
    """

    bits: int = 8
    act_scaling: str = "dynamic"

    def __post_init__(self) -> None:
        if isinstance(self.bits, bool) or self.bits not in BITS:
            raise ConfigError(f"quantisation bits (--quant; hil harden: --bits) must be one of "
                              f"{', '.join(map(str, BITS))}, got {self.bits!r}")
        _ = self.const_scale  # validates act_scaling

    @property
    def const_scale(self) -> float | None:
        """The constant step size, or None for dynamic scaling."""
        if self.act_scaling == "dynamic":
            return None
        kind, _, value = str(self.act_scaling).partition(":")
        try:
            scale = float(value)
        except ValueError:
            scale = math.nan
        if kind != "const" or not (math.isfinite(scale) and scale > 0):
            raise ConfigError(f"activation scaling (--act-scaling; hil harden: --scaling) must be dynamic or "
                              f"const:<s> with s > 0 (e.g. const:2), "
                              f"got {self.act_scaling!r}")
        return scale

    def to_dict(self) -> dict[str, Any]:
        """Plain form (checkpoint metadata)."""
        return {"bits": self.bits, "act_scaling": self.act_scaling}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QuantConfig:
        """Inverse of `to_dict`."""
        unknown = sorted(set(data) - {"bits", "act_scaling"})
        if unknown:
            raise ConfigError(f"unknown quantisation key(s) {', '.join(unknown)}; valid: bits, act_scaling")
        return cls(**data)


def _act_quant(config: QuantConfig) -> Any:
    from brevitas.core.scaling import ScalingImplType
    from brevitas.quant.scaled_int import Uint8ActPerTensorFloat

    scale = config.const_scale
    if scale is None:
        return Uint8ActPerTensorFloat
    threshold = scale * (2**config.bits - 1)

    class ConstantStepAct(Uint8ActPerTensorFloat):  # step size = threshold / (2^b − 1) = s
        scaling_impl_type = ScalingImplType.CONST
        scaling_const = threshold
        max_val = threshold

    return ConstantStepAct


def _replacement(module: nn.Module, config: QuantConfig) -> nn.Module | None:
    import brevitas.nn as qnn
    from brevitas.quant.scaled_int import Int8WeightPerChannelFloat, Int8WeightPerTensorFloat

    quant_conv = next((q for f, q in ((nn.Conv1d, qnn.QuantConv1d), (nn.Conv2d, qnn.QuantConv2d))
                       if isinstance(module, f) and not isinstance(module, q)), None)
    if isinstance(module, nn.Linear) and not isinstance(module, qnn.QuantLinear):
        layer = qnn.QuantLinear(module.in_features, module.out_features, bias=module.bias is not None,
                                weight_quant=Int8WeightPerTensorFloat, weight_bit_width=config.bits)
    elif quant_conv is not None:
        layer = quant_conv(
            module.in_channels, module.out_channels, module.kernel_size, stride=module.stride,
            padding=module.padding, dilation=module.dilation, groups=module.groups, bias=module.bias is not None,
            weight_quant=Int8WeightPerChannelFloat, weight_bit_width=config.bits)
    elif type(module) is nn.ReLU:
        return qnn.QuantReLU(act_quant=_act_quant(config), bit_width=config.bits)
    else:
        return None
    layer.weight.data.copy_(module.weight.data)
    if module.bias is not None:
        layer.bias.data.copy_(module.bias.data)
    return layer


def quantize(model: nn.Module, config: QuantConfig) -> nn.Module:
    """Replace Linear/Conv/ReLU layers of ``model`` in place by Brevitas quantised ones; returns it.

    Functional ReLUs inside a custom ``forward`` (``F.relu(x)``) stay float: give the model
    ``nn.ReLU`` modules to quantise its activations.
    """
    for name, child in list(model.named_children()):
        replacement = _replacement(child, config)
        if replacement is not None:
            setattr(model, name, replacement)
        else:
            quantize(child, config)
    model.quant_config = config  # type: ignore[assignment]  # nn.Module's __setattr__ is typed for tensors/modules
    return model


def is_quantized(model: nn.Module) -> bool:
    """True when `quantize` was applied."""
    return isinstance(getattr(model, "quant_config", None), QuantConfig)
