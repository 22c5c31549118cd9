"""VGG-11 for 32×32 inputs (CIFAR-10, SVHN), as in paper 001: 8 convs, 5 max pools, 3 FCs."""

from __future__ import annotations

from torch import nn

from hil.models._blocks import LayerStack, check_shape, flat_features

VGG11_LAYOUT: tuple[int | str, ...] = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG11(LayerStack):
    """VGG-11: conv3×3 blocks (64, M, 128, M, 256×2, M, 512×2, M, 512×2, M) → FC4096 → FC4096 → FC.

    27 noise sites without BN (input, 8 conv, 8 ReLU, 5 pool, 3 FC, 2 ReLU); 37 with BN after every
    conv and hidden FC. ``width`` scales the channel counts (1.0 = the paper's network) and
    ``hidden`` the FC width, for quick tests on small machines.

    Args:
        bn: BatchNorm after every conv and hidden FC.
        input_shape: (channels, height, width), at least 32×32.
        num_classes: Outputs.
        width: Channel multiplier.
        hidden: Units of the two hidden FC layers.
    """

    def __init__(self, bn: bool = False, input_shape: tuple[int, ...] = (3, 32, 32), num_classes: int = 10,
                 width: float = 1.0, hidden: int = 4096) -> None:
        super().__init__()
        self.input_shape = check_shape(input_shape, 3, "vgg11")
        self.num_classes, self.bn, self.width, self.hidden = num_classes, bn, width, hidden
        channels, conv, pool = self.input_shape[0], 0, 0
        for item in VGG11_LAYOUT:
            if item == "M":
                pool += 1
                self.add(f"pool{pool}", nn.MaxPool2d(2))
                continue
            conv += 1
            out = max(1, round(int(item) * width))
            self.add(f"conv{conv}", nn.Conv2d(channels, out, 3, padding=1))
            if bn:
                self.add(f"bn{conv}", nn.BatchNorm2d(out))
            self.add(f"relu{conv}", nn.ReLU())
            channels = out
        self.add("flatten", nn.Flatten())
        features = flat_features(self, self.input_shape, "vgg11")
        for index, (fan_in, fan_out) in enumerate(((features, hidden), (hidden, hidden)), start=1):
            self.add(f"fc{index}", nn.Linear(fan_in, fan_out))
            if bn:
                self.add(f"bn_fc{index}", nn.BatchNorm1d(fan_out))
            self.add(f"relu_fc{index}", nn.ReLU())
        self.add("fc3", nn.Linear(hidden, num_classes))

    def config(self) -> dict[str, object]:
        """Constructor kwargs that rebuild this model."""
        return {"bn": self.bn, "input_shape": list(self.input_shape), "num_classes": self.num_classes,
                "width": self.width, "hidden": self.hidden}
