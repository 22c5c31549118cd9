"""Helpers shared by the tests: tiny dataset files in the real formats, folder snapshots."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def write_cifar(folder: Path, per_batch: int = 4) -> Path:
    root = folder / "cifar-10-batches-py"
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"batch_label": name.encode(), b"labels": [int(v) for v in rng.integers(0, 10, per_batch)],
                 b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"filenames": [b"x.png"] * per_batch}
        (root / name).write_bytes(pickle.dumps(batch, protocol=2))
    return folder


def snapshot(root: Path) -> dict[str, tuple[str, bytes | None, int]]:
    """Every file's bytes and mtime and every folder's mtime under ``root`` (root included)."""
    if not root.exists():
        return {}
    state: dict[str, tuple[str, bytes | None, int]] = {".": ("d", None, root.stat().st_mtime_ns)}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_dir():
            state[key] = ("d", None, path.stat().st_mtime_ns)
        else:
            state[key] = ("f", path.read_bytes(), path.stat().st_mtime_ns)
    return state


def plain(text: str) -> str:
    """``text`` without ANSI escapes (in case the environment forces colour)."""
    return ANSI.sub("", text)


def error_line(result, *fragments: str) -> str:
    """Assert ``result`` is a handled error: exit 1, one ``error:`` line on stderr, nothing else."""
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    # A crash (uncaught exception) also reads as exit code 1 under CliRunner; a handled
    # HilError leaves typer's SystemExit(1) behind instead.
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.stdout == ""
    assert "Traceback" not in result.output
    # The training progress display may leave a blank line before the error; the message
    # itself is a single line.
    lines = [line for line in plain(result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("error: "), line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line
