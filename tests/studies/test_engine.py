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
