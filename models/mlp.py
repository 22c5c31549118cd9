"""MLP of paper 002: three hidden FC-64 layers (+BN) and an output FC."""

from __future__ import annotations

import math

from torch import nn

from hil.errors import ModelError
from hil.models._blocks import LayerStack


class MLP(LayerStack):
    """Flatten → [FC64 → (BN) → ReLU] × 3 → FC(num_classes). 8 sites, 11 with BN.

    Args:
        bn: Add BatchNorm after each hidden FC.
        input_shape: One sample's shape; flattened.
        num_classes: Outputs.
        hidden: Width of the hidden layers.
    """

    def __init__(self, bn: bool = False, input_shape: tuple[int, ...] = (1, 28, 28),
                 num_classes: int = 10, hidden: int = 64) -> None:
        super().__init__()
        if num_classes < 2 or hidden < 1 or not input_shape or min(input_shape) < 1:
            raise ModelError(
                f"mlp needs num_classes ≥ 2, hidden ≥ 1 and a positive input shape, "
                f"got {num_classes}, {hidden}, {tuple(input_shape)}"
            )
        self.input_shape = tuple(int(s) for s in input_shape)
        self.num_classes = num_classes
        self.bn = bn
        self.hidden = hidden
        self.add("flatten", nn.Flatten())
        width = math.prod(self.input_shape)
        for i in (1, 2, 3):
            self.add(f"fc{i}", nn.Linear(width, hidden))
            if bn:
                self.add(f"bn{i}", nn.BatchNorm1d(hidden))
            self.add(f"relu{i}", nn.ReLU())
            width = hidden
        self.add("fc4", nn.Linear(hidden, num_classes))

    def config(self) -> dict[str, object]:
        """Constructor kwargs that rebuild this model."""
        return {"bn": self.bn, "input_shape": list(self.input_shape),
                "num_classes": self.num_classes, "hidden": self.hidden}
