"""Count the points where a forward pass would wait for the GPU, on any device (a CPU proxy for CUDA's sync check).

`torch.cuda.set_sync_debug_mode("error")` needs CUDA. The syncs it reports come from reading a tensor's
value on the host (``int(t)``, ``bool(t)``, ``t.item()``: ``aten._local_scalar_dense``) or from
data-dependent shapes (``nonzero``, masked selection); those operations are counted here on the CPU.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

SYNCING = {torch.ops.aten._local_scalar_dense.default, torch.ops.aten.nonzero.default,
           torch.ops.aten.masked_select.default, torch.ops.aten.unique_dim.default}


class CountHostSyncs(TorchDispatchMode):
    """Counts operations that would synchronise with the GPU; ``.count`` after the block."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:  # noqa: ANN401
        if func in SYNCING:
            self.count += 1
        return func(*args, **(kwargs or {}))
