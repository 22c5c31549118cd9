"""The CLI's one pair of consoles and its one JSON emitter (numbers on stdout, progress on stderr)."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def emit_json(data: Any) -> None:
    """Write ``data`` as indented JSON on stdout (what every ``--json`` prints)."""
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def print_wide(console: Console, table: Table, width: int = 130) -> None:
    """Print ``table``; into a pipe or file at ``width`` columns at least (rich would squeeze it to 80)."""
    if console.is_terminal:
        console.print(table)
    else:
        Console(file=console.file, width=max(console.width, width), highlight=False).print(table)


def describe_noise(noise: Any) -> str:
    """Short human description of a NoiseSpec."""
    if noise.is_clean:
        return "no noise"
    parts = []
    if noise.sigma_add:
        parts.append(f"σa={noise.sigma_add:g}")
    if noise.sigma_mul:
        parts.append(f"σm={noise.sigma_mul:g}")
    if noise.sigma_add and noise.sigma_mul:
        parts.append(noise.order)
    sites = noise.sites if isinstance(noise.sites, str) else ",".join(map(str, noise.sites))
    parts.append(f"sites={sites}")
    if noise.repeats > 1:
        parts.append(f"executions={noise.repeats}")
    if noise.overrides:
        parts.append(f"{len(noise.overrides)} per-site overrides")
    return " ".join(parts)
