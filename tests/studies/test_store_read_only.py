"""Reading a results store never rewrites it (issue 18, finding 6: report/export switched it to WAL)."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hil.cli import app
from hil.errors import StoreError
from hil.studies.walk import walk_checkpoint
from hil.walking.store import ResultStore
from hil.walking.sweep import SweepSpec


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_report_and_export_leave_a_received_store_as_it_was(checkpoint: Path, tmp_path: Path) -> None:
    folder = tmp_path / "walk"
    walk_checkpoint(checkpoint, SweepSpec(sigmas=(0.1, 0.3, 1.0, 3.0), sites=("1:fc1",), repeats=2), folder)
    store = folder / "results.sqlite"
    with sqlite3.connect(store) as connection:  # as a store arrives by mail or from an older tool
        connection.execute("PRAGMA journal_mode = DELETE")
    before = _digest(store)
    runner = CliRunner()
    report = runner.invoke(app, ["report", str(folder)])
    assert report.exit_code == 0, report.output
    export = runner.invoke(app, ["results", "export", str(folder), "--csv", str(tmp_path / "rows.csv")])
    assert export.exit_code == 0, export.output
    assert _digest(store) == before
    with sqlite3.connect(store) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_a_read_only_store_refuses_writes_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no results store at"):
        ResultStore(tmp_path / "none.sqlite", read_only=True)
    assert not (tmp_path / "none.sqlite").exists()
    ResultStore(tmp_path / "s.sqlite").close()
    with ResultStore(tmp_path / "s.sqlite", read_only=True) as store:
        assert store.experiments() == []
        with pytest.raises(StoreError):
            store.register_experiment({"kind": "x"})


def test_reading_a_wal_store_leaves_no_sidecar_files(checkpoint: Path, tmp_path: Path) -> None:
    folder = tmp_path / "walk"
    walk_checkpoint(checkpoint, SweepSpec(sigmas=(0.1, 0.3, 1.0, 3.0), sites=("1:fc1",), repeats=1), folder)
    with sqlite3.connect(folder / "results.sqlite") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # as hil writes it
    connection.close()
    with ResultStore(folder / "results.sqlite", read_only=True) as store:
        assert len(store.experiments()) == 1
    assert CliRunner().invoke(app, ["report", str(folder), "--json"]).exit_code == 0
    sidecars = [p.name for p in folder.iterdir() if p.name.endswith(("-wal", "-shm"))]
    assert sidecars == []  # before: results.sqlite-wal and -shm were left behind by every read
    with ResultStore(folder / "results.sqlite") as writer:  # while a writer holds the store, readers share its files
        with ResultStore(folder / "results.sqlite", read_only=True) as reader:
            assert reader.experiments() == writer.experiments()
