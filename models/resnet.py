"""ResNet-18 for 32×32 inputs (CIFAR-10, SVHN), as in paper 001.

Paper 001's ResNet-18 is the standard (ImageNet-layout) network run on 32×32 images: its Table II
gives 37.53 M FLOPs and 11.69 M parameters, which is exactly that layout (a CIFAR-layout ResNet-18
has 556 M MACs). ``stem="imagenet"`` (default, ``resnet18``): conv7×7/2(64) → BN → ReLU →
max pool 3×3/2, so the four stages of two BasicBlocks (64, 128, 256, 512 channels, stride 2 from
the second stage with a 1×1 conv + BN shortcut there) see 8, 4, 2, 1 pixels; global average pool;
FC. ``stem="cifar"`` (``resnet18-cifar``): conv3×3(64) → BN → ReLU and no max pool, the common
CIFAR variant (stages at 32…4 pixels, ≈15× the MACs, higher accuracy).

Noise sites follow paper 001's description of a block: "three noisy layers in the stacked layers
(conv, ReLU, conv), one or zero in the skip connection (the 1×1 downsampling conv)". BatchNorm
outputs and the residual add — with the ReLU that follows it — are digital and not sites by
default (the add-and-ReLU runs as ``clamp_min``, which is not a site function). Sites: input, stem
conv, stem ReLU, stem max pool, 8 × 3 block sites, 3 shortcut convs, average pool, FC = 33 (the
paper's count); 32 with the CIFAR stem. With ``noisy_bn=True`` the BN outputs become sites too
(+20) and with ``noisy_add=True`` the post-add ReLU becomes one (+8). `ResNet18.fold_batchnorm`
folds every BN into its conv for inference (``--fold-bn``): the same clean outputs, and a conv's
noise is no longer scaled by the BN gain after it.
"""

from __future__ import annotations

from functools import partial
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from hil.errors import ModelError
from hil.models._blocks import check_shape


class BasicBlock(nn.Module):
    """conv3×3 → BN → ReLU → conv3×3 → BN, plus the (projected) input, then ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int, noisy_bn: bool, noisy_add: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.noisy_bn, self.noisy_add = noisy_bn, noisy_add
        self.folded = False
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(planes))

    def _bn(self, bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
        if self.folded:
            return x  # folded into the conv before it
        if self.noisy_bn:
            return bn(x)
        return _digital_bn(bn, x)

    def fold_batchnorm(self) -> None:
        """Fold the block's BN layers into its convs (inference); `_bn` then passes values through."""
        from hil.models.fold import fold_layer

        fold_layer(self.conv1, self.bn1)
        fold_layer(self.conv2, self.bn2)
        if len(self.shortcut):
            fold_layer(self.shortcut[0], self.shortcut[1])
        self.folded = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self._bn(self.bn1, self.conv1(x)))
        out = self._bn(self.bn2, self.conv2(out))
        skip = x
        if len(self.shortcut):
            skip = self._bn(cast(nn.BatchNorm2d, self.shortcut[1]), self.shortcut[0](x))
        total = out + skip
        return F.relu(total) if self.noisy_add else total.clamp_min(0)


def _digital_bn(bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm without going through ``F.batch_norm`` (so it is no noise site), same numbers."""
    running_mean, running_var, batches = bn.running_mean, bn.running_var, bn.num_batches_tracked
    if running_mean is None or running_var is None or batches is None or bn.momentum is None:
        raise ModelError("digital BatchNorm needs running statistics and a momentum (track_running_stats=True)")
    if bn.training:
        mean = x.mean(dim=(0, 2, 3))
        var = x.var(dim=(0, 2, 3), unbiased=False)
        with torch.no_grad():
            count = x.numel() / x.shape[1]
            running_mean.mul_(1 - bn.momentum).add_(bn.momentum * mean)
            running_var.mul_(1 - bn.momentum).add_(bn.momentum * var * count / max(count - 1, 1))
            batches.add_(1)
    else:
        mean, var = running_mean, running_var
    scale = bn.weight / torch.sqrt(var + bn.eps)
    return x * scale[None, :, None, None] + (bn.bias - mean * scale)[None, :, None, None]


STEMS = ("imagenet", "cifar")
"""Stem layouts: paper 001's conv7×7/2 + max pool, or the CIFAR conv3×3 without pooling."""


class ResNet18(nn.Module):
    """ResNet-18 for 32×32 inputs. ``bn`` is accepted for the registry and ignored: ResNet-18 always has BN.

    Args:
        bn: Ignored (ResNet-18 is defined with BatchNorm; see ``noisy_bn``).
        input_shape: (channels, height, width).
        num_classes: Outputs.
        width: Channel multiplier (1.0 = 64…512 channels).
        noisy_bn: BN outputs are noise sites.
        noisy_add: The ReLU after each residual add is a noise site.
        stem: ``imagenet`` (paper 001: conv7×7 stride 2 and a 3×3 max pool) or ``cifar`` (conv3×3).

    Raises:
        ModelError: Unknown stem or input shape.
    """

    def __init__(self, bn: bool = True, input_shape: tuple[int, ...] = (3, 32, 32), num_classes: int = 10,
                 width: float = 1.0, noisy_bn: bool = False, noisy_add: bool = False,
                 stem: str = "imagenet") -> None:
        super().__init__()
        if stem not in STEMS:
            raise ModelError(f"unknown ResNet-18 stem {stem!r}; choose one of: {', '.join(STEMS)}")
        self.input_shape = check_shape(input_shape, 3, "resnet18")
        self.num_classes, self.width, self.noisy_bn, self.noisy_add = num_classes, width, noisy_bn, noisy_add
        self.stem = stem
        self.bn = True
        self.folded = False
        planes = [max(1, round(p * width)) for p in (64, 128, 256, 512)]
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(self.input_shape[0], planes[0], 7, stride=2, padding=3, bias=False)
            self.pool: nn.Module = nn.MaxPool2d(3, stride=2, padding=1)
        else:
            self.conv1 = nn.Conv2d(self.input_shape[0], planes[0], 3, padding=1, bias=False)
            self.pool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(planes[0])
        self.relu = nn.ReLU()
        blocks, in_planes = [], planes[0]
        for stage, out in enumerate(planes):
            for index in range(2):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(BasicBlock(in_planes, out, stride, noisy_bn, noisy_add))
                in_planes = out
        self.layers = nn.Sequential(*blocks)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)

    def fold_batchnorm(self) -> None:
        """Fold every BN into the conv before it (inference, as an analog deployment does; `hil.models.fold`)."""
        from hil.models.fold import fold_layer

        if self.folded:
            return
        fold_layer(self.conv1, self.bn1)
        for block in self.layers:
            cast(BasicBlock, block).fold_batchnorm()
        self.folded = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stem = self.conv1(x)
        if not self.folded:
            stem = self.bn1(stem) if self.noisy_bn else _digital_bn(self.bn1, stem)
        out = self.relu(stem)
        out = self.layers(self.pool(out))
        out = self.avgpool(out).flatten(1)
        return self.fc(out)

    def config(self) -> dict[str, object]:
        """Constructor kwargs that rebuild this model."""
        return {"input_shape": list(self.input_shape), "num_classes": self.num_classes, "width": self.width,
                "noisy_bn": self.noisy_bn, "noisy_add": self.noisy_add, "stem": self.stem}


resnet18_cifar = partial(ResNet18, stem="cifar")
"""ResNet-18 with the CIFAR stem (conv3×3, no max pool), registered as ``resnet18-cifar``."""
