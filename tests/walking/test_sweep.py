"""The sweep engine: cached-prefix equals naive, resumability, grids, CLI verbs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from hil.cli import app
from hil.config import TrainConfig
from hil.errors import ConfigError
from hil.models import create_model
from hil.noisy_model import wrap
from hil.studies.walk import InferenceWalk, walk_checkpoint
from hil.training import train
from hil.walking.grid import default_sigmas, parse_sigmas
from hil.walking.report import load_report
from hil.walking.store import ResultStore
from hil.walking.sweep import SweepSpec, point_seed


@pytest.fixture(scope="module")
def lenet_and_data() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = create_model("lenet5", bn=True).eval()
    x = torch.randn(60, 1, 28, 28)
    y = model(x).argmax(dim=1)  # labels the clean model gets right: accuracy 1 at σ = 0
    return model, x, y


@pytest.mark.parametrize("noise", ["add", "mul", "mixed"])
def test_cached_prefix_gives_the_same_accuracies_as_naive(lenet_and_data, noise: str) -> None:  # noqa: ANN001
    model, x, y = lenet_and_data
    spec = SweepSpec(noise=noise, sigmas=(0.0, 0.3, 1.0, 3.0), sites="all", repeats=2, batch_size=25)
    sweep = InferenceWalk(wrap(model, "sim"), x, y, spec)
    assert len(sweep.points) == 16 * 4 * 2
    for site_index in (0, 1, 5, 9, 15):
        group = [p for p in sweep.points if p.site_index == site_index]
        stacked = sweep.evaluate_stacked(group)
        naive = [sweep.evaluate_naive(p) for p in group]
        assert [a for a, _ in stacked] == [a for a, _ in naive]
        assert [lo for _, lo in stacked] == pytest.approx([lo for _, lo in naive], rel=1e-4)
    assert sweep.evaluate_naive(group[0])[0] == 1.0  # σ = 0: the clean labels


def test_points_have_distinct_reproducible_seeds() -> None:
    seeds = {point_seed(0, site, sigma, repeat) for site in range(-1, 5) for sigma in (0.0, 0.1, 1.0)
             for repeat in range(3)}
    assert len(seeds) == 6 * 3 * 3
    assert point_seed(1, 2, 0.5, 1) == point_seed(1, 2, 0.5, 1) != point_seed(2, 2, 0.5, 1)


def test_grids() -> None:
    assert len(default_sigmas("add", global_sweep=True)) == 17
    assert len(default_sigmas("add", global_sweep=False)) == 49
    assert default_sigmas("mul", global_sweep=False)[:2] == (0.0, 0.1)
    assert parse_sigmas("1,0.1,0.5") == (0.1, 0.5, 1.0)
    assert parse_sigmas("log:1e-2:1e2:5") == pytest.approx((0.01, 0.1, 1.0, 10.0, 100.0))
    for bad in ("", "a,b", "log:0:1:3", "lin:2:1:3", "-1,2", "nan"):
        with pytest.raises(ConfigError):
            parse_sigmas(bad)


@pytest.fixture(scope="module")
def mlp_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("walk") / "mlp"
    train(TrainConfig(model="mlp", dataset="digits", epochs=3), out, keep_epochs=False)
    return out


def test_walk_resumes_without_recomputing(mlp_checkpoint: Path, tmp_path: Path) -> None:
    spec = SweepSpec(noise="add", sigmas=(0.1, 1.0, 3.0, 10.0, 30.0), sites=("1:fc1", "7:fc4"), repeats=2)
    first = walk_checkpoint(mlp_checkpoint, spec, tmp_path / "w")
    with ResultStore(tmp_path / "w" / "results.sqlite") as store:
        assert len(store.results(first.experiment)) == 2 * 5 * 2
    calls: list[int] = []
    again = walk_checkpoint(mlp_checkpoint, spec, tmp_path / "w", progress=lambda total: calls.append)
    assert again.experiment == first.experiment
    assert calls == [20]  # everything reported done up front, nothing run
    assert [s.mean for s in again.sites] == [s.mean for s in first.sites]
    saved = json.loads((tmp_path / "w" / "mu.json").read_text())
    assert [s["site"] for s in saved["sites"]] == ["1:fc1", "7:fc4"]
    assert load_report(tmp_path / "w").experiment == first.experiment


def test_cli_walk_report_and_export(mlp_checkpoint: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "walk"
    result = runner.invoke(app, ["walk", "--checkpoint", str(mlp_checkpoint), "--sigmas", "log:1e-2:1e2:9",
                                 "--repeats", "2", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert len(data["sites"]) == 8
    assert all(site["status"] in ("ok", "no-transition", "failed") for site in data["sites"])
    result = runner.invoke(app, ["walk", "--checkpoint", str(mlp_checkpoint), "--global", "--sigmas",
                                 "log:1e-2:1e2:9", "--repeats", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "global" in result.stdout
    result = runner.invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output
    assert "weight magnitudes" in result.stdout and "fc1" in result.stdout
    assert (out / "plots" / "curves.png").is_file() and (out / "plots" / "curves.svg").is_file()
    result = runner.invoke(app, ["results", "export", str(out), "--csv", str(tmp_path / "points.csv")])
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "points.csv").read_text().splitlines()
    assert len(lines) == 1 + 8 * 9 * 2 + 9 * 2


def test_cli_walk_errors(tmp_path: Path, mlp_checkpoint: Path) -> None:
    runner = CliRunner()
    for args, message in [
        (["walk"], "give either --checkpoint"),
        (["walk", "--checkpoint", str(mlp_checkpoint), "--noise", "loud"], "noise must be one of add, mul, mixed"),
        (["walk", "--checkpoint", str(mlp_checkpoint), "--sites", "conv9"], "no site named 'conv9'"),
        (["walk", "--checkpoint", str(mlp_checkpoint), "--sigmas", "log:0:1:3"], "log grid needs LOW > 0"),
        (["report", str(tmp_path)], "no Walking Noise results"),
        (["results", "export", str(tmp_path), "--csv", str(tmp_path / "x.csv")], "no results store"),
    ]:
        result = runner.invoke(app, args)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.stderr, (args, result.stderr)


def test_adaptive_walk_uses_fewer_points_and_agrees_with_the_grid(mlp_checkpoint: Path, tmp_path: Path) -> None:
    from hil.walking.adaptive import AdaptivePlan, interval_decades

    sites = ("1:fc1", "7:fc4")
    full = walk_checkpoint(mlp_checkpoint, SweepSpec(sigmas=parse_sigmas("log:1e-2:1e3:21"), sites=sites,
                                                     repeats=4), tmp_path / "full")
    plan = AdaptivePlan(low=1e-2, high=1e3, target_width=0.15, max_rounds=4)
    adaptive = walk_checkpoint(mlp_checkpoint, SweepSpec(sigmas=(1e-2, 1e3), sites=sites), tmp_path / "adaptive",
                               adaptive=plan)
    with ResultStore(tmp_path / "adaptive" / "results.sqlite") as store:
        used = len(store.results(adaptive.experiment))
    assert used < 2 * 21 * 4
    for a, b in zip(full.sites, adaptive.sites, strict=True):
        assert a.fit.status == b.fit.status == "ok"
        assert interval_decades(b.fit) < 0.3
        assert abs(math.log10(b.fit.mu / a.fit.mu)) < 0.15  # same midpoint within ~40 %
    saved = json.loads((tmp_path / "adaptive" / "mu.json").read_text())
    assert saved["config"]["adaptive"]["target_width"] == 0.15


def test_adaptive_rejects_multiplicative_noise(mlp_checkpoint: Path, tmp_path: Path) -> None:
    from hil.walking.adaptive import AdaptivePlan

    with pytest.raises(ConfigError, match="--adaptive supports per-site add and mixed"):
        walk_checkpoint(mlp_checkpoint, SweepSpec(noise="mul", sigmas=(0.0, 2.0)), tmp_path / "x",
                        adaptive=AdaptivePlan())


def test_cli_mixed_heatmap(mlp_checkpoint: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "heat"
    result = runner.invoke(app, ["walk", "--checkpoint", str(mlp_checkpoint), "--noise", "mixed", "--heatmap",
                                 "--sites", "7:fc4", "--sigmas", "0.1,1,10,100", "--mul-sigmas", "0,0.5,1",
                                 "--repeats", "2", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["sites"]
    assert [(r["site"], r["sigma_mul"]) for r in rows] == [("7:fc4", 0.0), ("7:fc4", 0.5), ("7:fc4", 1.0)]
    with ResultStore(out / "results.sqlite") as store:
        results = store.results(store.experiments()[0]["id"])
    assert len(results) == 4 * 3 * 2 and len({r.seed for r in results}) == 24
    assert runner.invoke(app, ["report", str(out)]).exit_code == 0
    assert (out / "plots" / "heatmap.png").is_file()
    result = runner.invoke(app, ["walk", "--checkpoint", str(mlp_checkpoint), "--heatmap", "--out", str(out)])
    assert result.exit_code == 1 and "needs --noise mixed" in result.stderr


def test_cli_binarization_analysis(mlp_checkpoint: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["analyze", "binarization", "--checkpoint", str(mlp_checkpoint),
                                      "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    sites = json.loads(result.stdout)["sites"]
    assert [s["site"] for s in sites] == ["2:relu1", "4:relu2", "6:relu3"]
    for site in sites:
        assert 0.0 <= site["binarized_accuracy"] <= 1.0
        assert site["low_level"] <= site["threshold"] < site["high_level"]
        assert sum(site["histogram"]["counts"]) > 0
    assert (tmp_path / "binarization.png").is_file()


def test_binarization_of_an_exactly_two_level_site_loses_nothing() -> None:
    from hil.walking.binarization import binarization_test

    class TwoLevel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(4, 8)
            self.head = torch.nn.Linear(8, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(torch.sigmoid(5000 * self.fc(x)))  # saturated: ≈ 0 or 1

    torch.manual_seed(0)
    model = TwoLevel().eval()
    x = torch.randn(400, 4)
    labels = model(x).argmax(dim=1)
    (result,) = binarization_test(wrap(model, "sim", example_input=x), x, labels)
    assert result.clean_accuracy == 1.0
    assert result.binarized_accuracy >= 0.98
