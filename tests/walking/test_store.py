"""Results store: exact round trips, first write wins, schema checks, exports, SIGKILL resume, concurrent writers."""

from __future__ import annotations

import csv
import importlib.util
import math
import signal
import sqlite3
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from hil.errors import ConfigError, HilError
from hil.walking.store import (
    COLUMNS,
    SCHEMA_VERSION,
    PointKey,
    PointResult,
    ResultStore,
    StoreError,
    config_hash,
)

CONFIG = {"model": "lenet", "dataset": "mnist", "noise": "add", "sigmas": [0.01, 0.1, 1.0], "repeats": 2}


def _result(site: str, sigma_add: float, sigma_mul: float = 0.0, repeat: int = 0, accuracy: float = 0.5, **kw):
    kw.setdefault("loss", 1.25)
    kw.setdefault("seed", 7)
    kw.setdefault("wall_time", 0.5)
    return PointResult(PointKey(site, sigma_add, sigma_mul, repeat), accuracy, **kw)


def _bits(value: float) -> bytes:
    return struct.pack("<d", value)


def _duplicates(path: Path) -> int:
    """Rows minus distinct point keys, read with plain sqlite3."""
    with sqlite3.connect(path) as conn:
        (total,) = conn.execute("SELECT COUNT(*) FROM points").fetchone()
        (distinct,) = conn.execute(
            "SELECT COUNT(*) FROM (SELECT DISTINCT experiment, site, sigma_add, sigma_mul, repeat FROM points)"
        ).fetchone()
    conn.close()
    return total - distinct


@pytest.fixture
def store(tmp_path: Path):
    with ResultStore(tmp_path / "results.sqlite", timeout=5.0) as opened:
        yield opened


# ---------------------------------------------------------------------------- keys, results, hashes


def test_point_key_validates_and_normalises() -> None:
    key = PointKey("3:conv2", 1, -0.0, 2)
    assert key.sigma_add == 1.0 and isinstance(key.sigma_add, float)
    assert _bits(key.sigma_mul) == _bits(0.0)
    for bad in (
        lambda: PointKey("", 0.1, 0.0, 0),
        lambda: PointKey("global", -0.1, 0.0, 0),
        lambda: PointKey("global", math.nan, 0.0, 0),
        lambda: PointKey("global", 0.1, math.inf, 0),
        lambda: PointKey("global", 0.1, 0.0, -1),
        lambda: PointKey("global", 0.1, 0.0, 1.0),
        lambda: _result("global", 0.1, seed=2**64 - 1),
    ):
        with pytest.raises(ConfigError):
            bad()
    assert sorted([PointKey("b", 1.0, 0.0, 0), PointKey("a", 2.0, 0.0, 0)])[0].site == "a"


def test_config_hash_is_stable_under_key_order_and_differs_between_configs() -> None:
    shuffled = {"repeats": 2, "sigmas": [0.01, 0.1, 1.0], "noise": "add", "dataset": "mnist", "model": "lenet"}
    assert config_hash(CONFIG) == config_hash(shuffled)
    assert config_hash({"a": {"x": 1, "y": 2}}) == config_hash({"a": {"y": 2, "x": 1}})
    assert len(config_hash(CONFIG)) == 16 and int(config_hash(CONFIG), 16) >= 0
    assert config_hash(CONFIG) != config_hash({**CONFIG, "repeats": 3})
    assert config_hash({"sigma": 1}) != config_hash({"sigma": 1.5})
    with pytest.raises(ConfigError):
        config_hash({"path": Path("x")})
    with pytest.raises(ConfigError):
        config_hash({"sigma": math.nan})


# ---------------------------------------------------------------------------- round trips


def test_record_round_trip_duplicate_ignored_and_done(store: ResultStore) -> None:
    exp = store.register_experiment(CONFIG, name="lenet-add")
    first = _result("3:conv2", 0.1, accuracy=0.9, loss=0.3, seed=11, wall_time=1.5)
    assert store.record(exp, first) is True
    assert store.record(exp, _result("3:conv2", 0.1, accuracy=0.1, loss=9.0, seed=99)) is False
    assert store.record(exp, _result("3:conv2", 0.1, repeat=1)) is True
    assert store.record(exp, _result("global", 0.1, loss=None)) is True
    assert store.done(exp) == {
        PointKey("3:conv2", 0.1, 0.0, 0),
        PointKey("3:conv2", 0.1, 0.0, 1),
        PointKey("global", 0.1, 0.0, 0),
    }
    results = store.results(exp)
    assert results[0] == first  # every field, created and hil_version included: the first write won
    assert results[-1].loss is None
    assert len(results) == 3 == store.experiments()[0]["points"]
    keys = [PointKey("global", 0.1, 0.0, 0), PointKey("global", 0.2, 0.0, 0), PointKey("global", 0.2, 0.0, 0)]
    assert store.pending(exp, keys) == [PointKey("global", 0.2, 0.0, 0)]


def test_floats_round_trip_bit_exactly(store: ResultStore) -> None:
    exp = store.register_experiment(CONFIG)
    tricky = 0.1 + 0.2
    assert tricky != 0.3
    store.record(exp, _result("a", tricky, 5e-324, accuracy=tricky, loss=1 / 3, wall_time=1e300))
    store.record(exp, _result("b", 1e10, 2.0, accuracy=1.0, loss=math.nan, wall_time=0.0))
    store.record(exp, _result("c", 0.0, 0.0, accuracy=0.0, loss=math.inf, seed=-(2**63)))
    a, b, c = store.results(exp)
    for got, want in [
        (a.key.sigma_add, tricky),
        (a.key.sigma_mul, 5e-324),
        (a.accuracy, tricky),
        (a.loss, 1 / 3),
        (a.wall_time, 1e300),
        (b.key.sigma_add, 1e10),
        (b.accuracy, 1.0),
        (c.loss, math.inf),
    ]:
        assert isinstance(got, float) and _bits(got) == _bits(want)
    assert b.loss is not None and math.isnan(b.loss)
    assert c.seed == -(2**63)
    assert PointKey("a", 0.1 + 0.2, 5e-324, 0) in store.done(exp)
    assert PointKey("a", 0.3, 5e-324, 0) not in store.done(exp)


def test_results_order_sites_by_first_record_then_sigmas(store: ResultStore) -> None:
    exp = store.register_experiment(CONFIG)
    recorded = [
        ("3:conv2", 1.0, 0.0, 0),
        ("global", 0.5, 0.0, 0),
        ("3:conv2", 0.1, 0.0, 1),
        ("0:fc1", 2.0, 0.0, 0),
        ("3:conv2", 0.1, 0.0, 0),
        ("global", 0.5, 0.1, 0),
        ("3:conv2", 0.1, 0.5, 0),
        ("global", 0.01, 0.0, 0),
    ]
    for site, sigma_add, sigma_mul, repeat in recorded:
        store.record(exp, _result(site, sigma_add, sigma_mul, repeat))
    assert [tuple(vars(r.key).values()) for r in store.results(exp)] == [
        ("3:conv2", 0.1, 0.0, 0),
        ("3:conv2", 0.1, 0.0, 1),
        ("3:conv2", 0.1, 0.5, 0),
        ("3:conv2", 1.0, 0.0, 0),
        ("global", 0.01, 0.0, 0),
        ("global", 0.5, 0.0, 0),
        ("global", 0.5, 0.1, 0),
        ("0:fc1", 2.0, 0.0, 0),
    ]


def test_experiments_are_keyed_by_hash_and_names_are_labels(store: ResultStore) -> None:
    exp = store.register_experiment({**CONFIG, "sigmas": (0.01, 0.1, 1.0)})
    assert exp == config_hash(CONFIG)  # a tuple is stored as a list
    assert store.register_experiment(CONFIG, name="first") == exp  # idempotent, sets the missing name
    assert store.register_experiment(CONFIG, name="second") == exp  # the first name stays
    other = store.register_experiment({**CONFIG, "noise": "mul"}, name="first")
    assert other != exp
    store.record(other, _result("global", 0.1))
    listed = store.experiments()
    assert [(e["id"], e["name"], e["points"]) for e in listed] == [(exp, "first", 0), (other, "first", 1)]
    assert listed[0]["config"] == CONFIG == store.config(exp)
    assert isinstance(listed[0]["created"], str) and listed[0]["created"].endswith("+00:00")
    with pytest.raises(ConfigError):
        store.register_experiment({"bad": {1, 2}})


def test_unknown_experiment_and_closed_store_raise_store_error(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "s.sqlite")
    store.register_experiment(CONFIG)
    for call in (
        lambda: store.record("0123456789abcdef", _result("global", 0.1)),
        lambda: store.done("nope"),
        lambda: store.results("nope"),
        lambda: store.config("nope"),
        lambda: store.export_csv(tmp_path / "x.csv", "nope"),
    ):
        with pytest.raises(StoreError, match="register_experiment"):
            call()
    assert not (tmp_path / "x.csv").exists()
    store.close()
    store.close()  # idempotent
    assert store.closed
    with pytest.raises(StoreError, match="closed"):
        store.experiments()


def test_threads_can_share_one_store(store: ResultStore) -> None:
    exp = store.register_experiment(CONFIG)
    inserted: list[bool] = []

    def work(offset: int) -> None:
        for i in range(50):
            inserted.append(store.record(exp, _result("global", float((i + offset) % 80))))

    threads = [threading.Thread(target=work, args=(offset,)) for offset in (0, 10, 20, 30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(inserted) == 80 == len(store.results(exp))


# ---------------------------------------------------------------------------- files and schema


def test_reopen_keeps_data_and_leaves_no_wal_files(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "s.sqlite"
    with ResultStore(path) as store:
        exp = store.register_experiment(CONFIG, name="x")
        store.record(exp, _result("global", 0.1, accuracy=0.25))
        with sqlite3.connect(path) as raw:
            assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        raw.close()
    assert not Path(f"{path}-wal").exists() and not Path(f"{path}-shm").exists()
    with ResultStore(path) as store:
        assert store.experiments()[0]["name"] == "x"
        assert [r.accuracy for r in store.results(exp)] == [0.25]
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    with ResultStore(empty) as store:  # an empty file is a new store
        assert store.experiments() == []


def test_newer_schema_version_is_refused_with_upgrade_hint(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with ResultStore(path) as store:
        store.register_experiment(CONFIG)
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    raw.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="newer hil.*upgrade hil") as info:
        ResultStore(path)
    assert isinstance(info.value, HilError)
    assert path.read_bytes() == before


def test_non_sqlite_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.sqlite"
    path.write_bytes(b"sigma,accuracy\n0.1,0.9\n" * 50)
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not an SQLite database"):
        ResultStore(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.sqlite"]
    with pytest.raises(StoreError, match="not a file"):
        ResultStore(tmp_path)


def test_foreign_sqlite_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE points (x REAL)")
        raw.execute("INSERT INTO points VALUES (1.5)")
    raw.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a hil results store"):
        ResultStore(path)
    assert path.read_bytes() == before


# ---------------------------------------------------------------------------- exports


def test_export_csv_parses_back_exactly(store: ResultStore, tmp_path: Path) -> None:
    first = store.register_experiment(CONFIG, name="a")
    second = store.register_experiment({**CONFIG, "noise": "mul"}, name="b")
    store.record(first, _result("global", 0.1 + 0.2, accuracy=1 / 3, loss=None, seed=5))
    store.record(first, _result("global", 0.01, repeat=1, accuracy=0.75, loss=0.1))
    store.record(second, _result("1:fc", 0.0, 1.5, accuracy=0.5, loss=math.nan))

    out = tmp_path / "out" / "all.csv"
    assert store.export_csv(out) == 3
    with out.open(newline="") as handle:
        reader = csv.reader(handle)
        assert tuple(next(reader)) == COLUMNS
        rows = [dict(zip(COLUMNS, row, strict=True)) for row in reader]
    assert [(r["experiment"], r["site"], float(r["sigma_add"])) for r in rows] == [
        (first, "global", 0.01),
        (first, "global", 0.1 + 0.2),
        (second, "1:fc", 0.0),
    ]
    assert float(rows[1]["accuracy"]) == 1 / 3 and rows[1]["loss"] == "" and rows[1]["seed"] == "5"
    assert int(rows[0]["repeat"]) == 1 and float(rows[0]["loss"]) == 0.1
    assert math.isnan(float(rows[2]["loss"])) and float(rows[2]["sigma_mul"]) == 1.5
    assert rows[0]["created"] == store.results(first)[0].created

    assert store.export_csv(tmp_path / "second.csv", second) == 1
    with (tmp_path / "second.csv").open(newline="") as handle:
        assert [row["site"] for row in csv.DictReader(handle)] == ["1:fc"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["all.csv"]  # no temporary file left


def test_export_parquet_needs_pyarrow(store: ResultStore, tmp_path: Path) -> None:
    exp = store.register_experiment(CONFIG)
    store.record(exp, _result("global", 0.1 + 0.2, accuracy=1 / 3, loss=None))
    store.record(exp, _result("global", 0.5, accuracy=0.25, loss=2.0))
    out = tmp_path / "r.parquet"
    if importlib.util.find_spec("pyarrow") is None:
        with pytest.raises(StoreError, match="pip install pyarrow"):
            store.export_parquet(out)
        assert not out.exists()
        return
    import pyarrow.parquet as pq

    assert store.export_parquet(out) == 2
    table = pq.read_table(out)
    assert tuple(table.column_names) == COLUMNS
    data = table.to_pydict()
    assert data["sigma_add"] == [0.1 + 0.2, 0.5] and data["accuracy"] == [1 / 3, 0.25]
    assert data["loss"] == [None, 2.0] and data["experiment"] == [exp, exp]


# ---------------------------------------------------------------------------- processes

SWEEP_SCRIPT = textwrap.dedent(
    """
    import hashlib, random, sys, time
    from hil.walking.store import PointKey, PointResult, ResultStore

    path, pause = sys.argv[1], float(sys.argv[2])
    sites = ["0:conv1", "3:conv2", "7:fc1", "global"]
    sigmas_add = [0.1 + 0.2] + [10 ** (i / 3 - 2) for i in range(9)]
    sigmas_mul = [0.0, 0.25, 0.5, 1.0, 2.0]
    keys = [PointKey(s, a, m, r) for s in sites for a in sigmas_add for m in sigmas_mul for r in range(2)]
    assert len(keys) == 400
    computed = 0
    with ResultStore(path) as store:
        exp = store.register_experiment({"fake": True, "points": len(keys)}, name="fake")
        done = store.done(exp)
        for key in keys:
            if key in done:
                continue
            digest = hashlib.sha256(repr((key.site, key.sigma_add, key.sigma_mul, key.repeat)).encode()).digest()
            seed = int.from_bytes(digest[:8], "big") >> 1
            rng = random.Random(seed)
            start = time.perf_counter()
            time.sleep(pause)
            accuracy = rng.random() / (1.0 + key.sigma_add + key.sigma_mul)
            loss = rng.gauss(1.0, 0.5)
            assert store.record(exp, PointResult(key, accuracy, loss, seed, time.perf_counter() - start))
            computed += 1
    print(computed)
    """
)


def _sweep_values(path: Path) -> list[tuple[object, ...]]:
    with ResultStore(path) as store:
        (entry,) = store.experiments()
        results = store.results(str(entry["id"]))
    return sorted(
        (r.key.site, r.key.sigma_add, r.key.sigma_mul, r.key.repeat, r.accuracy, r.loss, r.seed) for r in results
    )


def _run(args: list[object]) -> str:
    done = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_sigkill_mid_sweep_then_rerun_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    script = tmp_path / "sweep.py"
    script.write_text(SWEEP_SCRIPT)
    reference = tmp_path / "reference.sqlite"
    assert _run([script, reference, 0]).strip() == "400"

    killed = tmp_path / "killed.sqlite"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(killed), "0.003"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while not killed.exists():
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the sweep never created its store"
            time.sleep(0.005)
        with ResultStore(killed, timeout=10) as watcher:
            while sum(int(e["points"]) for e in watcher.experiments()) < 50:  # type: ignore[call-overload]
                assert proc.poll() is None, proc.communicate()[1]
                assert time.monotonic() < deadline, "the sweep recorded fewer than 50 points in 30 s"
                time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL

    assert _duplicates(killed) == 0
    with ResultStore(killed) as store:  # opens fine after the kill
        (entry,) = store.experiments()
        survived = int(entry["points"])  # type: ignore[call-overload]
    assert 50 <= survived < 400, "the sweep finished before it was killed; slow it down"

    assert int(_run([script, killed, 0])) == 400 - survived  # only the missing points are computed
    assert _duplicates(killed) == 0
    assert int(_run([script, killed, 0])) == 0  # a third run has nothing left to do
    values = _sweep_values(killed)
    assert len(values) == 400 == len({v[:4] for v in values})
    assert values == _sweep_values(reference)


WRITER_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from hil.walking.store import PointKey, PointResult, ResultStore

    path, go, start, stop, tag = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    deadline = time.monotonic() + 30
    while not os.path.exists(go):
        assert time.monotonic() < deadline
        time.sleep(0.001)
    inserted = 0
    with ResultStore(path, timeout=20) as store:  # both processes create the same new store at once
        exp = store.register_experiment({"concurrent": True})
        for i in range(start, stop):
            inserted += store.record(exp, PointResult(PointKey("global", i / 100, 0.0, 0), i / 1000, None, tag, 0.0))
    print(inserted)
    """
)


def test_concurrent_writer_processes_store_each_point_once(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER_SCRIPT)
    path, go = tmp_path / "shared.sqlite", tmp_path / "go"
    ranges = {1: (0, 300), 2: (200, 500)}  # 200..299 overlap
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(path), str(go), str(lo), str(hi), str(tag)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag, (lo, hi) in ranges.items()
    ]
    time.sleep(0.3)  # let both interpreters start and wait at the barrier
    go.touch()
    outputs = [proc.communicate(timeout=60) for proc in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    assert sum(int(out) for out, _ in outputs) == 500  # every point inserted by exactly one writer

    assert _duplicates(path) == 0
    with ResultStore(path) as store:
        results = store.results(config_hash({"concurrent": True}))
    assert [r.key.sigma_add for r in results] == [i / 100 for i in range(500)]
    assert [r.accuracy for r in results] == [i / 1000 for i in range(500)]
    seeds = [r.seed for r in results]
    assert set(seeds[:200]) == {1} and set(seeds[300:]) == {2} and set(seeds[200:300]) <= {1, 2}
