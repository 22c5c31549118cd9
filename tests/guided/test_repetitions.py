"""Guided multi-execution end to end: walk folder → allocations → paired evaluation, and its CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hil.cli import app
from hil.config import TrainConfig
from hil.errors import ConfigError
from hil.evaluation_job import evaluate_checkpoint
from hil.guided.compare import STRATEGIES, evaluate_repetitions
from hil.guided.sensitivity import load_sensitivity
from hil.noise import NoiseSpec
from hil.studies.walk import walk_checkpoint
from hil.training import train
from hil.walking.grid import default_sigmas, parse_sigmas
from hil.walking.sweep import SweepSpec

GRID = parse_sigmas("log:0.1:100:10")


@pytest.fixture(scope="module")
def walked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("guided")
    train(TrainConfig(model="mlp", dataset="digits", epochs=20), root / "mlp", keep_epochs=False)
    walk_checkpoint(root / "mlp", SweepSpec(noise="add", sigmas=GRID, repeats=2), root / "walk")
    walk_checkpoint(root / "mlp", SweepSpec(noise="add", sigmas=GRID, sites="global", repeats=2), root / "walk")
    return root / "mlp", root / "walk"


def test_sensitivity_reads_per_site_curves_and_the_global_mu(walked: tuple[Path, Path]) -> None:
    _, walk = walked
    sensitivity = load_sensitivity(walk, "add")
    assert [s.site for s in sensitivity.sites][:2] == ["0:input", "1:fc1"]
    assert len(sensitivity.sites) == 8
    assert sensitivity.global_mu is not None and 0.1 < sensitivity.global_mu < 100
    for site in sensitivity.sites:
        assert site.mu > 0
        assert site.predict(0.0) >= site.predict(1e3) - 1e-9
    with pytest.raises(ConfigError, match="no per-site mul walk"):
        load_sensitivity(walk, "mul")


def test_compare_spends_equal_budgets_with_the_same_seeds(walked: tuple[Path, Path]) -> None:
    checkpoint, walk = walked
    report = evaluate_repetitions(checkpoint, STRATEGIES, budget=2, noise=NoiseSpec(), walk=walk, repeats=3)
    sensitivity = load_sensitivity(walk, "add")
    assert report.noise.sigma_add == pytest.approx(sensitivity.global_mu)
    assert report.sigma_source.startswith("global μ")
    totals = {s.allocation.strategy: s.allocation.total_executions for s in report.strategies}
    assert totals == {"none": 8, "uniform": 16, "guided-1/mu": 16, "guided-greedy": 16}
    uniform = next(s for s in report.strategies if s.allocation.strategy == "uniform").allocation
    none = next(s for s in report.strategies if s.allocation.strategy == "none")
    assert uniform.macs_per_sample == 2 * none.allocation.macs_per_sample > 0
    # "none" is exactly a plain evaluation with the same seed: the protocol adds nothing but executions
    plain = evaluate_checkpoint(checkpoint, "sim", report.noise, repeats=3)
    assert none.result.accuracies == plain.result.accuracies
    assert {d.strategy for d in report.differences} == {"none", "guided-1/mu", "guided-greedy"}
    for diff in report.differences:
        assert diff.low <= diff.mean <= diff.high
    worst = next(d for d in report.differences if d.strategy == "none")
    assert worst.mean < 0  # one execution per site is worse than two


def test_more_executions_reduce_noise_monotonically(walked: tuple[Path, Path]) -> None:
    checkpoint, walk = walked
    sigma = load_sensitivity(walk, "add").global_mu
    means = [evaluate_repetitions(checkpoint, ("uniform",), budget=b, noise=NoiseSpec(sigma_add=sigma),
                                  repeats=3).strategies[0].result.mean for b in (1, 4, 16)]
    assert means[0] < means[1] < means[2]


def test_walk_of_another_model_or_missing_sites_is_refused(walked: tuple[Path, Path], tmp_path: Path) -> None:
    checkpoint, _ = walked
    train(TrainConfig(model="mlp", bn=True, dataset="digits", epochs=1), tmp_path / "bn", keep_epochs=False)
    walk_checkpoint(tmp_path / "bn", SweepSpec(noise="add", sigmas=GRID[:5], repeats=1), tmp_path / "bnwalk")
    with pytest.raises(ConfigError, match="another model"):
        evaluate_repetitions(checkpoint, ("guided-greedy",), budget=2, noise=NoiseSpec(sigma_add=1.0),
                             walk=tmp_path / "bnwalk")
    walk_checkpoint(checkpoint, SweepSpec(noise="add", sigmas=GRID[:5], sites=("1:fc1",), repeats=1),
                    tmp_path / "partial")
    with pytest.raises(ConfigError, match="lacks sites 0:input"):
        evaluate_repetitions(checkpoint, ("guided-1/mu",), budget=2, noise=NoiseSpec(sigma_add=1.0),
                             walk=tmp_path / "partial")
    with pytest.raises(ConfigError, match="no global add walk"):
        evaluate_repetitions(checkpoint, ("guided-1/mu",), budget=2, noise=NoiseSpec(), walk=tmp_path / "partial")


def test_only_noisy_sites_get_executions(walked: tuple[Path, Path]) -> None:
    checkpoint, walk = walked
    report = evaluate_repetitions(checkpoint, ("uniform", "guided-greedy"), budget=3,
                                  noise=NoiseSpec(sigma_add=2.0, sites="matmul"), walk=walk, repeats=2, cost="macs")
    for item in report.strategies:
        assert [s.name for s in item.allocation.sites] == ["1:fc1", "3:fc2", "5:fc3", "7:fc4"]
        assert min(item.allocation.executions) >= 1
    uniform, greedy = (s.allocation for s in report.strategies)
    assert greedy.macs_per_sample <= uniform.macs_per_sample  # greedy spends at most uniform's MACs


def test_cli_compare_table_and_json(walked: tuple[Path, Path]) -> None:
    checkpoint, walk = walked
    runner = CliRunner()
    result = runner.invoke(app, ["evaluate", "--checkpoint", str(checkpoint), "--compare-reps", str(walk),
                                 "--budget", "2", "--repeats", "3"])
    assert result.exit_code == 0, result.output
    for name in STRATEGIES:
        assert name in result.stdout
    assert "Δ vs uniform" in result.stdout and "global μ" in result.stdout
    result = runner.invoke(app, ["evaluate", "--checkpoint", str(checkpoint), "--guided-reps", str(walk),
                                 "--budget", "2", "--sigma-add", "1.5", "--allocator", "inverse-mu", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [s["strategy"] for s in data["strategies"]] == ["guided-1/mu"]
    assert sum(data["strategies"][0]["executions"].values()) == 16
    assert data["noise"]["sigma_add"] == 1.5 and data["sigma_source"] == "given"
    result = runner.invoke(app, ["evaluate", "--checkpoint", str(checkpoint), "--uniform-reps", "3",
                                 "--sigma-add", "1.5", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["strategies"][0]["total_executions"] == 24
    assert not math.isnan(data["strategies"][0]["accuracy"]["mean"])


@pytest.mark.parametrize(("extra", "message"), [
    (["--budget", "2", "--sigma-add", "1"], "--budget goes with --guided-reps"),
    (["--guided-reps", "WALK", "--uniform-reps", "2"], "choose one of"),
    (["--compare-reps", "WALK", "--budget", "2", "--repeats", "1"], "needs --repeats ≥ 2"),
    (["--guided-reps", "WALK"], "--budget is required"),
    (["--guided-reps", "WALK", "--budget", "2", "--allocator", "best"], "--allocator must be one of"),
    (["--guided-reps", "WALK", "--budget", "2", "--cost", "watts"], "cost must be one of"),
    (["--guided-reps", "WALK", "--budget", "2", "--executions", "2"], "drop it when using --guided-reps"),
    (["--uniform-reps", "2"], "give --sigma-add or --sigma-mul"),
    (["--guided-reps", "NOWHERE", "--budget", "2"], "no Walking Noise results"),
    (["--guided-reps", "WALK", "--budget", "2", "--sigma-add", "1", "--sigma-mul", "1"], "one noise kind"),
])
def test_cli_bad_input_is_one_line(walked: tuple[Path, Path], tmp_path: Path, extra: list[str],
                                   message: str) -> None:
    checkpoint, walk = walked
    args = [str(walk) if a == "WALK" else str(tmp_path / "nowhere") if a == "NOWHERE" else a for a in extra]
    result = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(checkpoint), *args])
    assert result.exit_code == 1, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1


def test_guided_beats_uniform_on_mnist5k_mlp_at_its_global_midpoint(tmp_path: Path) -> None:
    """The issue's acceptance check: MLP without BN, mnist5k, additive noise at the global μ, equal budgets."""
    train(TrainConfig(model="mlp", dataset="mnist5k", epochs=30), tmp_path / "mlp", keep_epochs=False)
    walk_checkpoint(tmp_path / "mlp", SweepSpec(noise="add", sigmas=default_sigmas("add", False), repeats=5),
                    tmp_path / "walk")
    walk_checkpoint(tmp_path / "mlp", SweepSpec(noise="add", sigmas=default_sigmas("add", True), sites="global",
                                                repeats=5), tmp_path / "walk")
    report = evaluate_repetitions(tmp_path / "mlp", STRATEGIES, budget=3, noise=NoiseSpec(), walk=tmp_path / "walk",
                                  repeats=10)
    by_name = {d.strategy: d for d in report.differences}
    assert by_name["guided-greedy"].low > 0, by_name["guided-greedy"]
    assert by_name["guided-1/mu"].low > 0, by_name["guided-1/mu"]
    greedy = next(s.allocation for s in report.strategies if s.allocation.strategy == "guided-greedy")
    assert greedy.executions[0] == max(greedy.executions)  # the input site is the most fragile here
