"""LeNet-5 as in paper 002: conv6 k5 → pool → conv16 k5 → pool → FC120 → FC84 → FC10."""

from __future__ import annotations

from torch import nn

from hil.models._blocks import LayerStack, check_shape, flat_features


class LeNet5(LayerStack):
    """LeNet-5 with ReLU and max pooling. 12 sites, 16 with BN.

    The first conv pads by 2 (the classic 32×32 geometry on 28×28 MNIST).

    Args:
        bn: BatchNorm after both convs and the two hidden FCs.
        input_shape: (channels, height, width); at least 12×12.
        num_classes: Outputs.
    """

    def __init__(self, bn: bool = False, input_shape: tuple[int, ...] = (1, 28, 28),
                 num_classes: int = 10) -> None:
        super().__init__()
        self.input_shape = check_shape(input_shape, 3, "lenet5")
        self.num_classes = num_classes
        self.bn = bn
        self.add("conv1", nn.Conv2d(self.input_shape[0], 6, 5, padding=2))
        if bn:
            self.add("bn1", nn.BatchNorm2d(6))
        self.add("relu1", nn.ReLU())
        self.add("pool1", nn.MaxPool2d(2))
        self.add("conv2", nn.Conv2d(6, 16, 5))
        if bn:
            self.add("bn2", nn.BatchNorm2d(16))
        self.add("relu2", nn.ReLU())
        self.add("pool2", nn.MaxPool2d(2))
        self.add("flatten", nn.Flatten())
        width = flat_features(self, self.input_shape, "lenet5")
        self.add("fc1", nn.Linear(width, 120))
        if bn:
            self.add("bn3", nn.BatchNorm1d(120))
        self.add("relu3", nn.ReLU())
        self.add("fc2", nn.Linear(120, 84))
        if bn:
            self.add("bn4", nn.BatchNorm1d(84))
        self.add("relu4", nn.ReLU())
        self.add("fc3", nn.Linear(84, num_classes))

    def config(self) -> dict[str, object]:
        """Constructor kwargs that rebuild this model."""
        return {"bn": self.bn, "input_shape": list(self.input_shape), "num_classes": self.num_classes}
