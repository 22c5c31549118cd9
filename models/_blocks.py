"""Shared helpers for the built-in models."""

from __future__ import annotations

import torch
from torch import nn

from hil.errors import ModelError


def flat_features(features: nn.Module, input_shape: tuple[int, ...], model: str) -> int:
    """Number of features ``features`` produces for one sample of ``input_shape``.

    Raises:
        ModelError: The input is too small (or has the wrong rank) for ``features``.
    """
    try:
        with torch.no_grad():
            out = features(torch.zeros(1, *input_shape))
    except RuntimeError as error:
        first_line = str(error).splitlines()[0]
        raise ModelError(
            f"{model} cannot take inputs of shape {tuple(input_shape)} ({first_line}); "
            f"use a larger input or --model mlp"
        ) from None
    return out[0].numel()


def check_shape(input_shape: tuple[int, ...], rank: int, model: str) -> tuple[int, ...]:
    """Validate ``input_shape`` has ``rank`` positive dims."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != rank or any(s < 1 for s in shape):
        raise ModelError(f"{model} needs an input shape of {rank} positive sizes, got {shape}")
    return shape


class LayerStack(nn.Module):
    """A chain of named layers held as direct attributes, so site names read ``3:conv2``.

    Subclasses call `add` in forward order; `forward` runs the chain.
    """

    def __init__(self) -> None:
        super().__init__()
        self.layer_names: list[str] = []

    def add(self, name: str, layer: nn.Module) -> None:
        """Append ``layer`` under attribute ``name``."""
        self.add_module(name, layer)
        self.layer_names.append(name)

    def run(self, x: torch.Tensor, names: list[str] | None = None) -> torch.Tensor:
        """Run the layers ``names`` (default: all) in order."""
        for name in self.layer_names if names is None else names:
            x = getattr(self, name)(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)
