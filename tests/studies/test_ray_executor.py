"""The Ray executor: a local Ray gives the same stored numbers as `local`; bad specs are one-line errors."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hil.cli import app
from hil.errors import ConfigError
from hil.runs import open_run
from hil.studies.engine import LocalExecutor, StudyRun, get_executor
from hil.studies.walk import InferenceWalk
from hil.walking.store import ResultStore
from hil.walking.sweep import SweepSpec

ray = pytest.importorskip("ray")
# The module's Ray has 2 CPUs and tasks run at this process's threads, which a 2-core machine calls
# oversubscribed: that warning is tested once below, and quiet elsewhere.
pytestmark = pytest.mark.filterwarnings("ignore:ray.*oversubscribe:UserWarning")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    yield
    ray.shutdown()


def _stored(path: Path, study: InferenceWalk, executor: object) -> dict:
    with ResultStore(path) as store:
        experiment = store.register_experiment({"ray-test": 1})
        assert StudyRun(study, store, experiment, executor).run(study.points) == len(study.points)  # type: ignore[arg-type]
        return {r.key: (r.accuracy, r.seed) for r in store.results(experiment)}


def test_local_ray_stores_the_numbers_local_stores(local_ray: None, checkpoint: Path, tmp_path: Path) -> None:
    spec = SweepSpec(noise="add", sigmas=(0.1, 1.0, 3.0), sites=("1:fc1", "5:fc3"), repeats=2)
    with open_run(checkpoint) as run:
        study = InferenceWalk(run.noisy, run.data.test_x, run.data.test_y, spec)
        local = _stored(tmp_path / "local.sqlite", study, LocalExecutor())
        on_ray = _stored(tmp_path / "ray.sqlite", study, get_executor("ray#workers=2"))
    assert on_ray == local and len(local) == 12


def test_one_thread_per_task_stores_what_local_stores_at_one_thread(local_ray: None, checkpoint: Path,
                                                                    tmp_path: Path) -> None:
    import torch

    from hil.studies.engine import Outcome

    def threads_seen(unit: list[int]) -> list[Outcome]:
        return [Outcome(float(torch.get_num_threads()), None, 0.0) for _ in unit]

    seen = {outcomes[0].accuracy for _, outcomes in get_executor("ray#workers=2;threads=1").map(threads_seen,
                                                                                                  [[0], [1], [2]])}
    assert seen == {1.0}
    spec = SweepSpec(noise="add", sigmas=(0.1, 1.0), sites=("1:fc1",), repeats=2)
    with open_run(checkpoint) as run:
        study = InferenceWalk(run.noisy, run.data.test_x, run.data.test_y, spec)
        local = _stored(tmp_path / "local.sqlite", study, get_executor("local#threads=1"))
        on_ray = _stored(tmp_path / "ray.sqlite", study, get_executor("ray#workers=2;threads=1"))
    assert on_ray == local and len(local) == 4


@pytest.mark.skipif((os.cpu_count() or 1) > 8, reason="oversubscription needs 2 tasks × threads > cores")
def test_a_local_ray_that_would_oversubscribe_the_cores_says_so(local_ray: None) -> None:
    from hil.studies.engine import Outcome

    threads = (os.cpu_count() or 1)  # two tasks at this many threads each ask for twice the cores
    with pytest.warns(UserWarning, match=r"ray: 2 tasks × \d+ torch threads on \d+ cores oversubscribe them.*"
                                         r"use ray#threads="):
        list(get_executor(f"ray#workers=2;threads={threads}").map(lambda unit: [Outcome(1.0, None, 0.0)], [[0], [1]]))


def test_walk_cli_on_ray_resumes_like_local(local_ray: None, checkpoint: Path, tmp_path: Path) -> None:
    common = ["walk", "--checkpoint", str(checkpoint), "--sites", "1:fc1", "--sigmas", "0.1,1,3,10", "--json"]
    local = CliRunner().invoke(app, [*common, "--out", str(tmp_path / "local")])
    on_ray = CliRunner().invoke(app, [*common, "--executor", "ray#workers=2", "--out", str(tmp_path / "ray")])
    assert local.exit_code == 0 and on_ray.exit_code == 0, on_ray.output
    sites = [json.loads(r.stdout)["sites"][0] for r in (local, on_ray)]
    assert (sites[0]["mean"], sites[0]["mu"]) == (sites[1]["mean"], sites[1]["mu"])
    again = CliRunner().invoke(app, [*common, "--executor", "ray", "--out", str(tmp_path / "ray")])
    assert again.exit_code == 0 and json.loads(again.stdout)["sites"][0]["mean"] == sites[0]["mean"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [("ray#speed=2", "executor 'ray' has no option speed; valid: address, gpus, retries, threads, workers"),
     ("ray#workers=two", "workers must be an integer, got 'two' in executor spec 'ray#workers=two'"),
     ("ray#workers=0", "workers must be ≥ 1, got 0"),
     ("ray#workers", "bad option 'workers' in executor spec 'ray#workers'; use KEY=VALUE"),
     ("ray#workers=1;workers=2", "option workers is given twice"),
     ("local#workers=2", "executor 'local' has no option workers; valid: retries, threads")],
)
def test_bad_executor_specs_are_one_line_errors(spec: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        get_executor(spec)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_device_study_is_refused_before_any_task_runs(local_ray: None) -> None:
    from hil.backends.device.backend import DeviceBackend
    from hil.backends.device.driver import AmvmDriver
    from hil.backends.device.emulator.device import DeviceEmulator
    from hil.backends.device.emulator.loopback import LoopbackTransport
    from hil.backends.device.emulator.model import EmulatorConfig

    backend = DeviceBackend(AmvmDriver(LoopbackTransport(DeviceEmulator(EmulatorConfig())), timeout=0.5))
    calls: list[list[int]] = []

    def evaluate(unit: list[int]) -> list:
        calls.append(unit)
        return [backend] * len(unit)

    with pytest.raises(ConfigError, match="cannot be copied to another process; run its studies with --executor "
                                          "local"):
        list(get_executor("ray#workers=1").map(evaluate, [[1], [2]]))
    assert calls == []
    backend.close()


class _DiesOnce:
    """A study of 4 points whose first task kills its own worker process (as an OOM kill would)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker
        self.points = [0, 1, 2, 3]

    def key(self, point: int):  # noqa: ANN201
        from hil.walking.store import PointKey

        return PointKey("1:fc1", 0.1 * (point + 1), 0.0, 0)

    def units(self, pending: list[int]):  # noqa: ANN201
        return ([p] for p in pending)

    def evaluate(self, unit: list[int]) -> list:
        import os

        from hil.studies.engine import Outcome

        if not self.marker.exists():
            self.marker.write_text("died")
            os._exit(1)
        return [Outcome(0.5 + 0.1 * p, None, 0.0) for p in unit]

    def result(self, point: int, outcome: object):  # noqa: ANN201
        from hil.walking.store import PointResult

        return PointResult(key=self.key(point), accuracy=outcome.accuracy, loss=None, seed=point,  # type: ignore[attr-defined]
                           wall_time=0.0)


def test_a_killed_worker_is_retried_and_nothing_is_lost_or_stored_twice(local_ray: None, tmp_path: Path) -> None:
    study = _DiesOnce(tmp_path / "marker")
    with ResultStore(tmp_path / "store.sqlite") as store:
        experiment = store.register_experiment({"dies": 1})
        ran = StudyRun(study, store, experiment, get_executor("ray#workers=1;retries=2")).run(study.points)
        rows = sorted((r.seed, r.accuracy) for r in store.results(experiment))
    assert (tmp_path / "marker").read_text() == "died"
    assert ran == 4 and rows == [(0, 0.5), (1, 0.6), (2, 0.7), (3, 0.8)]


def test_a_plain_evaluation_refuses_an_executor_it_would_not_use(checkpoint: Path) -> None:
    result = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(checkpoint), "--sigma-add", "0.1",
                                      "--executor", "ray"])
    assert result.exit_code == 1
    assert "--executor goes with --guided-reps, --uniform-reps or --compare-reps" in result.output
    assert "Traceback" not in result.output


def _flaky(folder: Path, **options: object):  # noqa: ANN202
    import flaky_study

    ray.cloudpickle.register_pickle_by_value(flaky_study)  # workers do not have tests/ on their path
    return flaky_study.FlakyStudy(folder, **options)  # type: ignore[arg-type]


def test_a_flaky_point_is_retried_on_ray_and_one_that_always_fails_is_recorded(local_ray: None,
                                                                              tmp_path: Path) -> None:
    from hil.errors import StudyError

    study = _flaky(tmp_path, fails={1: 1, 3: -1})
    with ResultStore(tmp_path / "store.sqlite") as store:
        experiment = store.register_experiment({"flaky-ray": 1})
        with pytest.raises(StudyError, match="1 of 4 points failed after 3 tries"):
            StudyRun(study, store, experiment, get_executor("ray#workers=1;retries=2")).run(study.points)
        assert sorted(r.seed for r in store.results(experiment)) == [0, 1, 2]
        (failure,) = store.failures(experiment)
        assert failure.key == study.key(3) and failure.attempts == 3
        assert failure.error == "RuntimeError: point 3 broke on try 3"
    assert (study.tries(1), study.tries(3)) == (2, 3)


def test_a_hil_error_on_a_worker_stops_the_study(local_ray: None, tmp_path: Path) -> None:
    study = _flaky(tmp_path, n=2, fatal=0)
    with ResultStore(tmp_path / "store.sqlite") as store:
        experiment = store.register_experiment({"fatal-ray": 1})
        with pytest.raises(ConfigError, match="point 0 needs a fix"):
            StudyRun(study, store, experiment, get_executor("ray#workers=1")).run(study.points)
        assert store.failures(experiment) == [] and study.tries(0) == 1


def test_gpus_per_point_on_a_cluster_without_gpus_is_one_line(local_ray: None, checkpoint: Path,
                                                               tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["walk", "--checkpoint", str(checkpoint), "--sites", "1:fc1", "--executor",
                                      "ray#workers=1", "--gpus-per-point", "0.5", "--out", str(tmp_path / "w")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "--gpus-per-point 0.5 asks for GPUs the Ray cluster does not have" in result.stderr
    assert not (tmp_path / "w" / "results.sqlite").exists() or _count(tmp_path / "w" / "results.sqlite") == 0


def _count(store: Path) -> int:
    import sqlite3

    try:
        with sqlite3.connect(store, timeout=5) as connection:
            return int(connection.execute("SELECT COUNT(*) FROM points").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_ray_address_and_gpus_need_the_ray_executor(checkpoint: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["walk", "--checkpoint", str(checkpoint), "--ray-address", "auto",
                                      "--gpus-per-point", "1", "--out", str(tmp_path / "w")])
    assert result.exit_code == 1
    assert "--ray-address and --gpus-per-point go with --executor ray" in result.stderr


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL of a process group is POSIX")
def test_driver_and_workers_killed_with_sigkill_lose_and_duplicate_nothing(checkpoint: Path, tmp_path: Path) -> None:
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    args = ["walk", "--checkpoint", str(checkpoint), "--sites", "1:fc1,5:fc3", "--sigmas", "log:1e-2:1e2:20",
            "--repeats", "3", "--naive", "--json"]
    total = 2 * 20 * 3
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_AUTH_MODE": "disabled"}
    killed = tmp_path / "killed"
    ray_run = [sys.executable, "-m", "hil", *args, "--executor", "ray#workers=1", "--out", str(killed)]
    # its own session: the SIGKILL below takes the driver and every Ray process it started (workers included)
    process = subprocess.Popen(ray_run, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                               start_new_session=True)
    deadline = time.monotonic() + 180
    while _count(killed / "results.sqlite") < 10 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    at_kill = _count(killed / "results.sqlite")
    assert 10 <= at_kill < total, f"kill landed at {at_kill} of {total} points; the run was not interrupted"

    rerun = subprocess.run(ray_run, capture_output=True, text=True, env=env, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    local = subprocess.run([sys.executable, "-m", "hil", *args, "--out", str(tmp_path / "local")],
                           capture_output=True, text=True, env=env, timeout=300)
    assert local.returncode == 0, local.stderr

    def points(folder: Path) -> list[tuple]:
        with sqlite3.connect(folder / "results.sqlite") as connection:
            return sorted(connection.execute(
                "SELECT site, sigma_add, sigma_mul, repeat, accuracy, seed FROM points").fetchall())

    resumed = points(killed)
    assert len(resumed) == total == len({r[:4] for r in resumed})
    assert resumed == points(tmp_path / "local")
    assert json.loads(rerun.stdout)["sites"] == json.loads(local.stdout)["sites"]
