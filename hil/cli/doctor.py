"""``hil doctor``: what this installation has (versions, CUDA, native codecs, ports), thin over `hil.doctor`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from hil.cli.console import emit_json, stdout


def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON on stdout.")] = False,
) -> None:
    """Versions, CUDA, whether cobs/crc32c run natively, serial ports and VISA backends; exit 1 if one limits hil."""
    from dataclasses import asdict

    from hil.doctor import checks

    found = checks()
    if as_json:
        emit_json({"checks": [asdict(check) for check in found]})
    else:
        table = Table(title="hil doctor")
        for column in ("check", "found", "advice"):
            table.add_column(column)
        for check in found:
            table.add_row(check.name, check.value if check.ok else f"[red]{check.value}[/red]", check.advice)
        stdout.print(table)
    if not all(check.ok for check in found):
        raise typer.Exit(1)
