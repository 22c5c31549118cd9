"""The README's example driver runs, registers, and evaluates a network through the device backend."""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F

from hil.backends import get_backend
from hil.backends.base import SiteCall
from hil.backends.device.driver import Driver

README = Path(__file__).resolve().parents[2] / "README.md"


def example_driver_code() -> str:
    text = README.read_text()
    match = re.search(r"<!-- example-driver -->\s*```python\n(.*?)```", text, re.S)
    assert match, "README lost its example driver block"
    return match.group(1)


def test_readme_driver_is_short_and_works_through_the_device_backend() -> None:
    code = example_driver_code()
    assert len([line for line in code.splitlines() if line.strip()]) <= 35
    namespace: dict[str, object] = {}
    exec(compile(code, "README example driver", "exec"), namespace)  # noqa: S102 - our own README
    assert isinstance(namespace["ExactChip"]("x"), Driver)
    backend = get_backend("device:exactchip:bench-1")
    x, w, b = torch.randn(5, 100), torch.randn(20, 100), torch.randn(20)
    y = backend.linear(x, w, b, SiteCall(1, "1:fc1", "linear"))
    exact = F.linear(x, w, b)
    assert torch.allclose(y, exact, atol=0.1 * exact.abs().max().item())  # 6-bit codes: ~3 % error
    assert backend.tile_loads == 2 * 2
    backend.close()
