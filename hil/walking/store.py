"""Resumable results store for Walking Noise sweeps: one SQLite file, one row per evaluated point.

A sweep evaluates many independent points ``(experiment, site, σa, σm, repeat) → accuracy``. Points are
expensive and a sweep may be killed at any moment (even by SIGKILL), so every `ResultStore.record` is its own
committed transaction: re-running the same command asks `ResultStore.done` (or `ResultStore.pending`) which
points exist, computes only the others, and ends with the same numbers as an uninterrupted run. No point is lost
except the one being computed, and none is stored twice: the table has a UNIQUE constraint on the point key and
the first write wins.

Several processes (e.g. Ray workers on one machine) may write to the same store at once: the database runs in WAL
journal mode and every connection waits up to ``timeout`` seconds for a lock (reads included) before failing
with a `StoreError`.

Schema (version `SCHEMA_VERSION`)::

    meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)
        -- 'schema_version' (this contract never changes), 'created', 'hil_version' (of the creator)
    experiments(id TEXT PRIMARY KEY, name TEXT, config TEXT NOT NULL, created TEXT NOT NULL)
        -- id = config_hash(config); config is canonical JSON
    points(id INTEGER PRIMARY KEY, experiment TEXT NOT NULL REFERENCES experiments(id),
           site TEXT NOT NULL, sigma_add REAL NOT NULL, sigma_mul REAL NOT NULL, repeat INTEGER NOT NULL,
           accuracy REAL NOT NULL, loss REAL, seed INTEGER NOT NULL, wall_time REAL NOT NULL,
           hil_version TEXT NOT NULL, created TEXT NOT NULL,
           UNIQUE(experiment, site, sigma_add, sigma_mul, repeat))

Floats are stored as IEEE-754 doubles and come back bit-exactly. SQLite has no NaN, so a NaN accuracy, loss or
wall time is stored as the text ``'NaN'`` (read back as ``float('nan')``); σ values must be finite.

Example:
    >>> with ResultStore("sweep.sqlite") as store:  # doctest: +SKIP
    ...     exp = store.register_experiment(config, name="lenet-add")
    ...     for key in store.pending(exp, keys):
    ...         store.record(exp, PointResult(key, accuracy=evaluate(key), loss=None, seed=0, wall_time=1.2))
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from hil._version import __version__
from hil.errors import ConfigError, StoreError
from hil.validation import check_number
from hil.walking.records import PointFailure, PointKey, PointResult, canonical_json, config_hash, utc_now
from hil.walking.store_export import COLUMNS

SCHEMA_VERSION = 1
"""Version of the on-disk schema this hil writes; a store with a newer version is refused."""

__all__ = [
    "COLUMNS",
    "SCHEMA_VERSION", "PointFailure", "PointKey", "PointResult", "ResultStore", "canonical_json", "config_hash",
    "utc_now"]

_SQLITE_MAGIC = b"SQLite format 3\x00"
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_NAN_TEXT = "NaN"

_SCHEMA = """
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE experiments (
    id TEXT PRIMARY KEY,
    name TEXT,
    config TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE points (
    id INTEGER PRIMARY KEY,
    experiment TEXT NOT NULL REFERENCES experiments(id),
    site TEXT NOT NULL,
    sigma_add REAL NOT NULL,
    sigma_mul REAL NOT NULL,
    repeat INTEGER NOT NULL,
    accuracy REAL NOT NULL,
    loss REAL,
    seed INTEGER NOT NULL,
    wall_time REAL NOT NULL,
    hil_version TEXT NOT NULL,
    created TEXT NOT NULL,
    UNIQUE (experiment, site, sigma_add, sigma_mul, repeat)
);
"""

_POINT_FIELDS = "site, sigma_add, sigma_mul, repeat, accuracy, loss, seed, wall_time, hil_version, created"

_FAILURES = """
CREATE TABLE IF NOT EXISTS failures (
    experiment TEXT NOT NULL REFERENCES experiments(id),
    site TEXT NOT NULL,
    sigma_add REAL NOT NULL,
    sigma_mul REAL NOT NULL,
    repeat INTEGER NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (experiment, site, sigma_add, sigma_mul, repeat)
)
"""
"""Points whose evaluation failed after its retries (added beside schema 1: older hil ignore the table). A point
that later succeeds leaves it; `ResultStore.done` never counts a failure, so a rerun retries it."""


def _encode_float(value: float | None) -> float | str | None:
    return _NAN_TEXT if value is not None and math.isnan(value) else value


def _decode_float(value: float | str | None) -> float | None:
    return float(value) if isinstance(value, str) else value


class ResultStore:
    """Results of sweep points in one SQLite file (created if missing, with its parent folders).

    A context manager; `close` is idempotent. One instance may be shared by threads (calls are serialised);
    each process opens its own instance. Writes from several processes on one machine are safe.

    Args:
        path: The database file.
        timeout: Seconds any read or write waits for another process's lock before `StoreError`.
        read_only: Open an existing store for reading only: the file is never created, migrated or switched
            to WAL, and writes fail (for ``hil report``, ``results export`` and readers of a received store).

    Raises:
        StoreError: The file is not an SQLite database, is SQLite but not a hil results store, has a newer
            schema version (upgrade hil), is locked for longer than ``timeout``, or cannot be opened.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0, read_only: bool = False) -> None:
        self._timeout = check_number(timeout, "timeout", low=0, note="of seconds")
        self._path = Path(path)
        self._read_only = read_only
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        if read_only and not self._path.is_file():
            raise StoreError(f"no results store at {self._path}; run the study with --out first")
        self._check_file()
        try:
            target = self._read_only_uri() if read_only else str(self._path)
            self._conn = sqlite3.connect(
                target, timeout=self._timeout, isolation_level=None, check_same_thread=False, uri=read_only
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open results store {self._path}: {exc}") from None
        try:
            with self._translate():
                self._open()
        except BaseException:
            self._conn.close()
            self._conn = None
            raise

    # ------------------------------------------------------------------ opening

    def _read_only_uri(self) -> str:
        """``mode=ro``, plus ``immutable=1`` when no writer is active, so reading creates no ``-wal``/``-shm``.

        A WAL store read with plain ``mode=ro`` gets both sidecar files created and left behind (a read-only
        connection may not delete them). Without a ``-wal`` file no writer has the store open and everything is
        in the main file, so it is read as immutable; with one, the writer's sidecars are used as they are.
        """
        uri = f"{self._path.resolve().as_uri()}?mode=ro"
        if not self._path.with_name(self._path.name + "-wal").exists():
            uri += "&immutable=1"
        return uri

    def _check_file(self) -> None:
        """Refuse a path that is not (empty or) SQLite before SQLite touches it."""
        path = self._path
        if path.exists():
            if not path.is_file():
                raise StoreError(f"results store {path} is not a file; pass the path of a .sqlite file")
            with path.open("rb") as handle:
                head = handle.read(len(_SQLITE_MAGIC))
            if head and head != _SQLITE_MAGIC:
                raise StoreError(
                    f"{path} is not an SQLite database, so not a hil results store; pass a new file path "
                    "(the file was left untouched)"
                )
        else:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the folder of results store {path}: {exc}") from None

    def _open(self) -> None:
        conn = self._connection()
        conn.execute("PRAGMA foreign_keys = ON")
        # Read-only checks first, so that a foreign or newer file is not modified.
        if self._read_only:
            if self._schema_version() is None:
                raise StoreError(f"results store {self._path} is empty; run the study with --out first")
            return
        if self._schema_version() is None:
            self._set_wal()
            self._create_schema()
        elif conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            self._set_wal()
        conn.execute(_FAILURES)

    def _schema_version(self) -> int | None:
        """Schema version of the file, None for an empty database.

        Raises:
            StoreError: SQLite but not a hil store, or a schema this hil cannot read.
        """
        conn = self._connection()
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            return None
        row = (
            conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() if "meta" in tables else None
        )
        if row is None:
            raise StoreError(
                f"{self._path} is an SQLite database but not a hil results store (no schema version in a 'meta' "
                "table); pass a new file path (the file was left untouched)"
            )
        try:
            version = int(row[0])
        except ValueError:
            raise StoreError(f"results store {self._path} has a malformed schema version {row[0]!r}") from None
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"results store {self._path} has schema version {version}, written by a newer hil; this hil "
                f"{__version__} reads up to version {SCHEMA_VERSION}: upgrade hil (pip install -U hil)"
            )
        if version < 1:
            raise StoreError(f"results store {self._path} has an invalid schema version {version}")
        return version

    def _set_wal(self) -> None:
        """Switch to WAL, retrying while another process holds a lock (this pragma may skip the busy handler)."""
        conn = self._connection()
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as exc:
                if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)
        if str(mode).lower() != "wal":
            raise StoreError(
                f"cannot put results store {self._path} in WAL journal mode (got {mode!r}); put it on a local "
                "filesystem"
            )

    def _create_schema(self) -> None:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            if self._schema_version() is None:  # nobody created it while we waited for the write lock
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [("schema_version", str(SCHEMA_VERSION)), ("created", utc_now()), ("hil_version", __version__)],
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------------ helpers

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"results store {self._path} is closed; open a new ResultStore")
        return self._conn

    @contextlib.contextmanager
    def _translate(self) -> Iterator[None]:
        """Turn sqlite3 errors into `StoreError` messages that name the fix."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "locked" in text or "busy" in text:
                raise StoreError(
                    f"results store {self._path} stayed locked by another process for more than "
                    f"{self._timeout:g} s; retry, or open it with a larger timeout= (stores on network "
                    "filesystems such as NFS are not supported)"
                ) from None
            raise StoreError(f"results store {self._path}: {text}") from None
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"results store {self._path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"results store {self._path} is not a valid SQLite database ({exc}); pass a new file path"
            ) from None
        except sqlite3.Error as exc:
            raise StoreError(f"results store {self._path}: {exc}") from None

    @contextlib.contextmanager
    def _use(self) -> Iterator[sqlite3.Connection]:
        """The open connection, used by one thread at a time, with sqlite3 errors as `StoreError`."""
        with self._lock, self._translate():
            yield self._connection()

    def _require(self, conn: sqlite3.Connection, experiment: str) -> None:
        if conn.execute("SELECT 1 FROM experiments WHERE id = ?", (experiment,)).fetchone() is None:
            known = [row[0] for row in conn.execute("SELECT id FROM experiments ORDER BY rowid")]
            raise StoreError(
                f"no experiment {experiment!r} in results store {self._path} (known: {', '.join(known) or 'none'}); "
                "call register_experiment(config) first and use the id it returns"
            )

    @staticmethod
    def _result(row: tuple[object, ...]) -> PointResult:
        site, sigma_add, sigma_mul, repeat, accuracy, loss, seed, wall_time, hil_version, created = row
        return PointResult(
            key=PointKey(site, sigma_add, sigma_mul, repeat),  # type: ignore[arg-type]
            accuracy=_decode_float(accuracy),  # type: ignore[arg-type]
            loss=_decode_float(loss),  # type: ignore[arg-type]
            seed=seed,  # type: ignore[arg-type]
            wall_time=_decode_float(wall_time),  # type: ignore[arg-type]
            hil_version=hil_version,  # type: ignore[arg-type]
            created=created,  # type: ignore[arg-type]
        )

    # ------------------------------------------------------------------ public API

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @property
    def closed(self) -> bool:
        """Whether `close` was called."""
        return self._conn is None

    def close(self) -> None:
        """Close the connection (idempotent). The last connection to close removes the ``-wal``/``-shm`` files."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResultStore({str(self._path)!r}{', closed' if self.closed else ''})"

    def register_experiment(self, config: Mapping[str, object], *, name: str | None = None) -> str:
        """Register an experiment config (idempotent) and return its id, `config_hash` of ``config``.

        Experiments are keyed by the hash; ``name`` is only a label, so two configs may share a name. Registering
        an existing config again changes nothing, except that it sets the name if the experiment had none.

        Raises:
            ConfigError: ``config`` is not JSON-serialisable or ``name`` is not a string.
            StoreError: The store is closed or locked.
        """
        if name is not None and not isinstance(name, str):
            raise ConfigError(f"experiment name must be a string or None, got {name!r}")
        text = canonical_json(config)
        experiment = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
        with self._use() as conn:
            conn.execute(
                "INSERT INTO experiments (id, name, config, created) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET name = excluded.name "
                "WHERE experiments.name IS NULL AND excluded.name IS NOT NULL",
                (experiment, name, text, utc_now()),
            )
        return experiment

    def experiments(self) -> list[dict[str, object]]:
        """All experiments in registration order, as dicts with keys ``id``, ``name``, ``config`` (parsed),
        ``created`` and ``points`` (number of recorded points)."""
        with self._use() as conn:
            rows = conn.execute(
                "SELECT e.id, e.name, e.config, e.created, "
                "(SELECT COUNT(*) FROM points AS p WHERE p.experiment = e.id) "
                "FROM experiments AS e ORDER BY e.rowid"
            ).fetchall()
        return [
            {"id": id_, "name": name, "config": json.loads(config), "created": created, "points": points}
            for id_, name, config, created, points in rows
        ]

    def config(self, experiment: str) -> dict[str, object]:
        """The config registered under ``experiment`` (tuples come back as lists).

        Raises:
            StoreError: No such experiment.
        """
        with self._use() as conn:
            self._require(conn, experiment)
            (text,) = conn.execute("SELECT config FROM experiments WHERE id = ?", (experiment,)).fetchone()
        return json.loads(text)

    def done(self, experiment: str) -> set[PointKey]:
        """Keys of the points of ``experiment`` already recorded.

        Raises:
            StoreError: No such experiment.
        """
        with self._use() as conn:
            self._require(conn, experiment)
            rows = conn.execute(
                "SELECT site, sigma_add, sigma_mul, repeat FROM points WHERE experiment = ?", (experiment,)
            ).fetchall()
        return {PointKey(*row) for row in rows}

    def pending(self, experiment: str, keys: Iterable[PointKey]) -> list[PointKey]:
        """``keys`` not yet recorded for ``experiment``, in their order, without duplicates.

        Raises:
            StoreError: No such experiment.
        """
        done = self.done(experiment)
        return [key for key in dict.fromkeys(keys) if key not in done]

    def record(self, experiment: str, result: PointResult) -> bool:
        """Store one point in its own committed transaction; return False if the point already existed.

        The first write of a point wins: a duplicate (same experiment, site, σa, σm and repeat) is ignored, even
        with other values. Floats are stored exactly.

        Raises:
            StoreError: No such experiment, or the store is closed or locked for longer than the timeout.
        """
        if not isinstance(result, PointResult):
            raise ConfigError(f"record() needs a PointResult, got {type(result).__name__}")
        key = result.key
        params = (
            experiment,
            key.site,
            key.sigma_add,
            key.sigma_mul,
            key.repeat,
            _encode_float(result.accuracy),
            _encode_float(result.loss),
            result.seed,
            _encode_float(result.wall_time),
            result.hil_version,
            result.created,
        )
        with self._use() as conn:
            try:
                cursor = conn.execute(
                    f"INSERT INTO points (experiment, {_POINT_FIELDS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (experiment, site, sigma_add, sigma_mul, repeat) DO NOTHING",
                    params,
                )
            except sqlite3.IntegrityError as exc:
                if "FOREIGN KEY" in str(exc):
                    self._require(conn, experiment)
                raise
            if cursor.rowcount == 1:
                conn.execute("DELETE FROM failures WHERE experiment = ? AND site = ? AND sigma_add = ? AND "
                             "sigma_mul = ? AND repeat = ?", params[:5])
            return cursor.rowcount == 1

    def record_failure(self, experiment: str, key: PointKey, error: str, attempts: int) -> None:
        """Record that ``key`` failed after ``attempts`` tries with ``error`` (replacing an earlier failure).

        Raises:
            StoreError: No such experiment, or the store is read-only, closed or locked.
        """
        with self._use() as conn:
            self._require(conn, experiment)
            conn.execute(
                "INSERT OR REPLACE INTO failures (experiment, site, sigma_add, sigma_mul, repeat, error, attempts, "
                "created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (experiment, key.site, key.sigma_add, key.sigma_mul, key.repeat, error[:2000], attempts, utc_now()))

    def failures(self, experiment: str) -> list[PointFailure]:
        """Points of ``experiment`` that failed and have not succeeded since, by key.

        Raises:
            StoreError: No such experiment.
        """
        with self._use() as conn:
            self._require(conn, experiment)
            has_table = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'failures'").fetchone()
            if has_table is None:  # a store written before failures were recorded, opened read-only
                return []
            rows = conn.execute(
                "SELECT site, sigma_add, sigma_mul, repeat, error, attempts, created FROM failures "
                "WHERE experiment = ? ORDER BY site, sigma_add, sigma_mul, repeat", (experiment,)).fetchall()
        return [PointFailure(PointKey(*row[:4]), row[4], row[5], row[6]) for row in rows]

    def results(self, experiment: str) -> list[PointResult]:
        """All points of ``experiment`` in a deterministic order.

        Sites come in the order in which their first point was recorded (a sequential sweep records them in
        model order; with parallel workers that order depends on scheduling, so sort by ``key`` if you need an
        order independent of history); within a site, points are sorted by (σa, σm, repeat).

        Raises:
            StoreError: No such experiment.
        """
        with self._use() as conn:
            self._require(conn, experiment)
            rows = conn.execute(
                "WITH first AS (SELECT site, MIN(id) AS first_id FROM points WHERE experiment = ? GROUP BY site) "
                f"SELECT {', '.join('p.' + name.strip() for name in _POINT_FIELDS.split(','))} "
                "FROM points AS p JOIN first AS f ON f.site = p.site WHERE p.experiment = ? "
                "ORDER BY f.first_id, p.sigma_add, p.sigma_mul, p.repeat",
                (experiment, experiment),
            ).fetchall()
        return [self._result(row) for row in rows]

    def export_csv(self, path: str | os.PathLike[str], experiment: str | None = None) -> int:
        """Write the points of ``experiment`` (all if None) to CSV; see `hil.walking.store_export.export_csv`."""
        from hil.walking.store_export import export_csv

        return export_csv(self, path, experiment)

    def export_parquet(self, path: str | os.PathLike[str], experiment: str | None = None) -> int:
        """Write the points of ``experiment`` (all if None) to Parquet; see `hil.walking.store_export`."""
        from hil.walking.store_export import export_parquet

        return export_parquet(self, path, experiment)
