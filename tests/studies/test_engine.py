"""The study engine: any executor order gives the same stored numbers; unknown executors are one-line errors."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hil.cli import app
from hil.errors import ConfigError
from hil.runs import open_run
from hil.studies.engine import LocalExecutor, Outcome, StudyRun, get_executor
from hil.studies.walk import InferenceWalk
from hil.walking.store import ResultStore
from hil.walking.sweep import SweepPoint, SweepSpec


class ReversedExecutor:
    """Runs units last first, each unit's points in reverse: what an out-of-order pool may do."""

    name = "reversed"

    def map(self, evaluate: Callable[[list[SweepPoint]], list[Outcome]],
            units: Iterable[list[SweepPoint]]) -> Iterator[tuple[list[SweepPoint], list[Outcome]]]:
        for unit in reversed(list(units)):
            unit = unit[::-1]
            yield unit, evaluate(unit)


def stored(path: Path, study: InferenceWalk, executor: object) -> dict:
    with ResultStore(path) as store:
        experiment = store.register_experiment({"test": 1})
        ran = StudyRun(study, store, experiment, executor).run(study.points)  # type: ignore[arg-type]
        assert ran == len(study.points)
        return {r.key: (r.accuracy, r.seed, r.loss) for r in store.results(experiment)}


@pytest.mark.parametrize("sites", [("1:fc1", "5:fc3"), "global"])
def test_same_seeds_give_the_same_stored_numbers_whatever_the_executor_order(checkpoint: Path, tmp_path: Path,
                                                                              sites: object) -> None:
    spec = SweepSpec(noise="add", sigmas=(0.1, 1.0, 3.0), sites=sites, repeats=3)  # type: ignore[arg-type]
    with open_run(checkpoint) as run:
        study = InferenceWalk(run.noisy, run.data.test_x, run.data.test_y, spec)
        in_order = stored(tmp_path / "a.sqlite", study, LocalExecutor())
        reversed_ = stored(tmp_path / "b.sqlite", study, ReversedExecutor())
    assert in_order.keys() == reversed_.keys()
    for key, (accuracy, seed, loss) in in_order.items():
        assert reversed_[key][:2] == (accuracy, seed)
        assert reversed_[key][2] == pytest.approx(loss, rel=1e-5)


def test_unknown_executors_are_refused_by_name(checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown executor 'slurm'; choose one of: local"):
        get_executor("slurm")
    result = CliRunner().invoke(app, ["walk", "--checkpoint", str(checkpoint), "--executor", "slurm",
                                      "--sigmas", "0.1,1,3,10", "--out", str(tmp_path / "w")])
    assert result.exit_code == 1 and "unknown executor 'slurm'" in result.output
    assert not (tmp_path / "w").exists()


def test_guided_comparison_is_a_study_with_paired_draws_in_any_order(checkpoint: Path, tmp_path: Path) -> None:
    from hil.evaluation import evaluate
    from hil.noise import NoiseSpec, SiteOverride
    from hil.studies.repetitions import RepetitionStudy

    base = NoiseSpec(sigma_add=0.3, sites="matmul")
    plans = [("uniform", base.with_overrides(SiteOverride(site="1:fc1", repeats=2))),
             ("none", base)]
    with open_run(checkpoint) as run:
        study = RepetitionStudy(run.noisy, run.data.test_x, run.data.test_y, plans, draws=3, seed=7)
        in_order = study.accuracies(LocalExecutor())
        reversed_ = study.accuracies(ReversedExecutor())  # type: ignore[arg-type]
        expected = []
        for _, noise in plans:
            run.noisy.set_noise(noise)
            expected.append(list(evaluate(run.noisy, run.data.test_x, run.data.test_y, repeats=3, seed=7).accuracies))
        with ResultStore(tmp_path / "reps.sqlite") as store:
            experiment = store.register_experiment({"reps": 1})
            assert StudyRun(study, store, experiment).run(study.points) == 6
            assert StudyRun(study, store, experiment).run(study.points) == 0  # resumable like any study
            keys = {r.key.site for r in store.results(experiment)}
    assert in_order == reversed_ == expected
    assert in_order[0] != in_order[1]  # the plans differ, the draws are paired
    assert keys == {"strategy:uniform", "strategy:none"}


@pytest.mark.parametrize("executor", ["local", "local#retries=1"])
def test_a_failing_point_is_recorded_as_failed_the_others_stored_and_a_rerun_retries_it(
        executor: str, tmp_path: Path) -> None:
    from flaky_study import FlakyStudy

    from hil.errors import StudyError

    retries = 1 if "retries" in executor else 0
    study = FlakyStudy(tmp_path, fails={1: -1, 2: 1})
    with ResultStore(tmp_path / "store.sqlite") as store:
        experiment = store.register_experiment({"flaky": 1})
        with pytest.raises(StudyError) as info:
            StudyRun(study, store, experiment, get_executor(executor)).run(study.points)
        stored = sorted(r.seed for r in store.results(experiment))
        failures = store.failures(experiment)
        assert stored == ([0, 2, 3] if retries else [0, 3])
        assert [f.key for f in failures] == [study.key(1)] + ([] if retries else [study.key(2)])
        assert failures[0].error == f"RuntimeError: point 1 broke on try {retries + 1}"
        assert failures[0].attempts == retries + 1 and study.tries(1) == retries + 1
        message = str(info.value)
        assert f"{len(failures)} of 4 points failed" in message and "rerun the same command" in message
        study.fails = {}  # fixed: the rerun evaluates only the points not stored, and clears their failures
        assert StudyRun(study, store, experiment, get_executor(executor)).run(study.points) == len(failures)
        assert sorted(r.seed for r in store.results(experiment)) == [0, 1, 2, 3] and store.failures(experiment) == []


def test_a_hil_error_stops_the_study_and_keeps_what_was_stored(tmp_path: Path) -> None:
    from flaky_study import FlakyStudy

    from hil.errors import ConfigError

    study = FlakyStudy(tmp_path, fatal=2)
    with ResultStore(tmp_path / "store.sqlite") as store:
        experiment = store.register_experiment({"fatal": 1})
        with pytest.raises(ConfigError, match="needs a fix"):
            StudyRun(study, store, experiment, get_executor("local#retries=3")).run(study.points)
        assert sorted(r.seed for r in store.results(experiment)) == [0, 1] and study.tries(2) == 1
        assert not (tmp_path / "try-3-0").exists() and store.failures(experiment) == []


def test_a_report_lists_failed_points_in_its_json_and_table() -> None:
    from rich.console import Console

    from hil.cli.walk import print_report
    from hil.walking.records import PointFailure
    from hil.walking.report import WalkReport
    from hil.walking.store import PointKey

    failure = PointFailure(PointKey("1:fc1", 0.5, 0.0, 2), "RuntimeError: out of memory", 3, "2026-12-03T00:00:00Z")
    report = WalkReport("abc", {"sweep": {"noise": "add"}}, (), (failure,))
    assert report.to_dict()["failed"] == [{"site": "1:fc1", "sigma_add": 0.5, "sigma_mul": 0.0, "repeat": 2,
                                           "error": "RuntimeError: out of memory", "attempts": 3}]
    assert "failed" not in WalkReport("abc", {}, ()).to_dict()  # mu.json of a clean walk is unchanged
    console = Console(record=True, width=200)
    print_report(report, console)
    assert "1 points failed and are left out of the fits (first: 1:fc1 σ=0.5: RuntimeError: out of memory)" in \
        console.export_text()


class _ThreadsSeen:
    """Evaluates each point to the torch thread count it ran under (what decides convolution rounding)."""

    def __call__(self, unit: list[int]) -> list[Outcome]:
        import torch

        return [Outcome(float(torch.get_num_threads()), None, 0.0) for _ in unit]


def test_local_threads_sets_torch_threads_for_each_unit_and_restores_them() -> None:
    import torch

    before = torch.get_num_threads()
    seen = [outcomes[0].accuracy for _, outcomes in get_executor("local#threads=1").map(_ThreadsSeen(), [[0], [1]])]
    assert seen == [1.0, 1.0] and torch.get_num_threads() == before
    default = [outcomes[0].accuracy for _, outcomes in get_executor("local").map(_ThreadsSeen(), [[0]])]
    assert default == [float(before)]
