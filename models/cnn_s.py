"""CNN-S keyword-spotting network of paper 002 (GSC MFCC input 1×10×49)."""

from __future__ import annotations

from torch import nn

from hil.models._blocks import LayerStack, check_shape, flat_features


class CNNS(LayerStack):
    """Conv28 k(4,10) s(1,2) → ReLU → Conv30 k(4,10) → ReLU → FC128 → ReLU → FC(num_classes).

    8 sites, 11 with BN (after both convs and FC128).

    Args:
        bn: BatchNorm variant.
        input_shape: (channels, MFCC coefficients, frames); default (1, 10, 49).
        num_classes: Outputs (12 for GSC).
    """

    def __init__(self, bn: bool = False, input_shape: tuple[int, ...] = (1, 10, 49),
                 num_classes: int = 12) -> None:
        super().__init__()
        self.input_shape = check_shape(input_shape, 3, "cnn-s")
        self.num_classes = num_classes
        self.bn = bn
        self.add("conv1", nn.Conv2d(self.input_shape[0], 28, (4, 10), stride=(1, 2)))
        if bn:
            self.add("bn1", nn.BatchNorm2d(28))
        self.add("relu1", nn.ReLU())
        self.add("conv2", nn.Conv2d(28, 30, (4, 10)))
        if bn:
            self.add("bn2", nn.BatchNorm2d(30))
        self.add("relu2", nn.ReLU())
        self.add("flatten", nn.Flatten())
        width = flat_features(self, self.input_shape, "cnn-s")
        self.add("fc1", nn.Linear(width, 128))
        if bn:
            self.add("bn3", nn.BatchNorm1d(128))
        self.add("relu3", nn.ReLU())
        self.add("fc2", nn.Linear(128, num_classes))

    def config(self) -> dict[str, object]:
        """Constructor kwargs that rebuild this model."""
        return {"bn": self.bn, "input_shape": list(self.input_shape), "num_classes": self.num_classes}
