"""Noise sites: which torch operations are sites, and the site table of a traced model.

Walking Noise convention (paper 002): the network input, the output of every Linear/Conv,
BatchNorm, activation and pooling layer (max and average), and the network output. Sites are found by intercepting
torch functions while the model runs (`torch.overrides.TorchFunctionMode`), so a user's
functional ops (``F.relu(x)`` inside ``forward``) and skip connections are covered without
knowing the model. When the model returns the last site's tensor unchanged (the usual case:
the final Linear), that site is the output and no separate ``output`` site is added — this
gives the site counts of the paper's code (MLP 8/11, LeNet-5 12/16, CNN-S 8/11).

Matmuls between two activations (``torch.matmul``, attention) are digital, not sites.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F

MATMUL_KINDS = ("linear", "conv")


@dataclass(frozen=True)
class Site:
    """One noise site of a traced model.

    Attributes:
        index: Position in forward order (0 = input).
        name: Stable name ``"{index}:{path}"``, e.g. ``"3:conv2"``.
        path: Module path of the layer (``"conv2"``), or the container path plus the function
            name for functional ops (``"layer1.0.relu"``), ``"input"`` or ``"output"``.
        kind: ``input``, ``linear``, ``conv``, ``bn``, ``act``, ``pool`` or ``output``.
        op: The torch function name (``conv2d``, ``relu``, ...).
        shape: Output shape of one sample (batch dimension removed).
        macs: Multiply-accumulates of one execution for one sample (Linear/Conv sites; 0 for
            digital sites).
    """

    index: int
    name: str
    path: str
    kind: str
    op: str
    shape: tuple[int, ...]
    macs: int = 0

    @property
    def is_matmul(self) -> bool:
        """True for Linear/Conv outputs — what an analog MVM executes."""
        return self.kind in MATMUL_KINDS

    @property
    def numel(self) -> int:
        """Elements per sample at this site."""
        count = 1
        for size in self.shape:
            count *= size
        return count

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {"index": self.index, "name": self.name, "path": self.path, "kind": self.kind,
                "op": self.op, "shape": list(self.shape), "numel": self.numel, "macs": self.macs}


def _site_functions() -> dict[Callable[..., object], str]:
    kinds: dict[Callable[..., object], str] = {
        F.linear: "linear",
        F.conv1d: "conv",
        F.conv2d: "conv",
        F.conv3d: "conv",
        F.batch_norm: "bn",
    }
    activations = [
        F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_,
        F.relu6, F.leaky_relu, F.leaky_relu_, F.elu, F.elu_, F.selu, F.celu, F.gelu, F.silu,
        F.mish, F.hardtanh, F.hardtanh_, F.hardswish, F.hardsigmoid, F.softplus,
        torch.sigmoid, torch.Tensor.sigmoid, torch.tanh, torch.Tensor.tanh,
    ]
    pools = [F.max_pool1d, F.max_pool2d, F.max_pool3d, F.max_pool1d_with_indices,
             F.max_pool2d_with_indices, F.max_pool3d_with_indices, F.adaptive_max_pool1d,
             F.adaptive_max_pool2d, F.adaptive_max_pool3d, F.adaptive_max_pool1d_with_indices,
             F.adaptive_max_pool2d_with_indices, F.adaptive_max_pool3d_with_indices,
             F.avg_pool1d, F.avg_pool2d, F.avg_pool3d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d,
             F.adaptive_avg_pool3d]
    kinds.update(dict.fromkeys(cast(list[Callable[..., object]], activations), "act"))
    kinds.update(dict.fromkeys(cast(list[Callable[..., object]], pools), "pool"))
    return kinds


SITE_FUNCTIONS: dict[Callable[..., object], str] = _site_functions()
"""torch function → site kind. Everything else runs untouched."""


def op_name(func: Callable[..., object]) -> str:
    """Short name of a torch function for site paths (``relu_`` → ``relu``)."""
    return getattr(func, "__name__", "op").rstrip("_") or "op"


def format_site_table(sites: tuple[Site, ...] | list[Site]) -> list[dict[str, object]]:
    """Sites as JSON-ready dicts."""
    return [site.to_dict() for site in sites]
