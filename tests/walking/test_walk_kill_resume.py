"""SIGKILL `hil walk` mid-run, run the same command again: no point lost or duplicated, same numbers."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hil.config import TrainConfig
from hil.training import train


def _rows(store: Path) -> int:
    if not store.is_file():
        return 0
    try:
        with sqlite3.connect(store, timeout=5) as connection:
            return connection.execute("SELECT COUNT(*) FROM points").fetchone()[0]
    except sqlite3.OperationalError:  # schema not created yet
        return 0


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkill_then_rerun_matches_uninterrupted_run(tmp_path: Path) -> None:
    checkpoint = tmp_path / "mlp"
    train(TrainConfig(model="mlp", dataset="digits", epochs=2), checkpoint, keep_epochs=False)
    args = ["--checkpoint", str(checkpoint), "--sigmas", "log:1e-2:1e2:40", "--repeats", "5", "--naive",
            "--batch-size", "60", "--json"]
    total = 8 * 40 * 5
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def command(out: Path) -> list[str]:
        return [sys.executable, "-m", "hil", "walk", *args, "--out", str(out)]

    killed = tmp_path / "killed"
    process = subprocess.Popen(command(killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 120
    while _rows(killed / "results.sqlite") < 100 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    at_kill = _rows(killed / "results.sqlite")
    assert 100 <= at_kill < total, f"kill landed at {at_kill} of {total} points; the run was not interrupted"

    rerun = subprocess.run(command(killed), capture_output=True, text=True, env=env, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    straight = subprocess.run(command(tmp_path / "straight"), capture_output=True, text=True, env=env, timeout=300)
    assert straight.returncode == 0, straight.stderr

    def points(folder: Path) -> list[tuple]:
        with sqlite3.connect(folder / "results.sqlite") as connection:
            return sorted(connection.execute(
                "SELECT site, sigma_add, sigma_mul, repeat, accuracy, seed FROM points").fetchall())

    resumed, uninterrupted = points(killed), points(tmp_path / "straight")
    assert len(resumed) == total == len(set(r[:4] for r in resumed))
    assert resumed == uninterrupted
    assert json.loads(rerun.stdout)["sites"] == json.loads(straight.stdout)["sites"]
