"""Helpers shared by the tests: tiny dataset files in the real formats, folder snapshots."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np


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
