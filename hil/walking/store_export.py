"""Export a `ResultStore`'s points to CSV or Parquet (atomically: a failed export leaves no half file)."""

from __future__ import annotations

import contextlib
import csv
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from hil.errors import StoreError

if TYPE_CHECKING:
    from hil.walking.store import ResultStore

COLUMNS: tuple[str, ...] = (
    "experiment",
    "site",
    "sigma_add",
    "sigma_mul",
    "repeat",
    "accuracy",
    "loss",
    "seed",
    "wall_time",
    "hil_version",
    "created",
)
"""Columns of `ResultStore.export_csv` and `ResultStore.export_parquet`, in order."""


def _rows(store: ResultStore, experiment: str | None) -> list[tuple[object, ...]]:
    """Export rows in `COLUMNS` order: experiments in registration order, each in `results` order."""
    if experiment is None:
        ids = [str(entry["id"]) for entry in store.experiments()]
    else:
        ids = [experiment]
    rows: list[tuple[object, ...]] = []
    for id_ in ids:
        for result in store.results(id_):
            key = result.key
            rows.append(
                (
                    id_,
                    key.site,
                    key.sigma_add,
                    key.sigma_mul,
                    key.repeat,
                    result.accuracy,
                    result.loss,
                    result.seed,
                    result.wall_time,
                    result.hil_version,
                    result.created,
                )
            )
    return rows


@contextlib.contextmanager
def _atomic_target(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path next to ``path`` that replaces ``path`` on success (no half-written exports)."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, target)
    except OSError as exc:
        raise StoreError(f"cannot write {target}: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


def export_csv(store: ResultStore, path: str | os.PathLike[str], experiment: str | None = None) -> int:
    """Write the points of ``experiment`` (all experiments if None) to a CSV file; return the rows written.

    The header is `COLUMNS`, including an ``experiment`` column (the id) in both cases. Floats are written
    with ``repr`` so they parse back exactly; a missing loss is an empty field, NaN is ``nan``.

    Raises:
        StoreError: No such experiment, or the file cannot be written.
    """
    rows = _rows(store, experiment)
    with _atomic_target(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    return len(rows)


def export_parquet(store: ResultStore, path: str | os.PathLike[str], experiment: str | None = None) -> int:
    """Write the points of ``experiment`` (all experiments if None) to a Parquet file; return the rows written.

    Same columns as `export_csv`; floats are float64, ``repeat`` and ``seed`` int64, a missing loss is null.

    Raises:
        StoreError: pyarrow is not installed, no such experiment, or the file cannot be written.
    """
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise StoreError(
            "Parquet export needs pyarrow, which is not installed: pip install pyarrow, or install hil with the "
            "parquet extra (or use export_csv)"
        ) from None
    rows = _rows(store, experiment)
    types = {
        "experiment": pa.string(),
        "site": pa.string(),
        "repeat": pa.int64(),
        "seed": pa.int64(),
        "hil_version": pa.string(),
        "created": pa.string(),
    }
    schema = pa.schema([(name, types.get(name, pa.float64())) for name in COLUMNS])
    table = pa.Table.from_pydict(
        {name: [row[index] for row in rows] for index, name in enumerate(COLUMNS)}, schema=schema
    )
    with _atomic_target(path) as tmp:
        pq.write_table(table, tmp)
    return len(rows)
