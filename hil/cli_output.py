"""Console output shared by the CLI modules."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def print_wide(console: Console, table: Table, width: int = 130) -> None:
    """Print ``table``; into a pipe or file at ``width`` columns at least (rich would squeeze it to 80)."""
    if console.is_terminal:
        console.print(table)
    else:
        Console(file=console.file, width=max(console.width, width), highlight=False).print(table)
