"""The marginal walk: executions ±1 per layer on the hardware, the exchange measured to gain, guided-marginal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hil.cli import app
from hil.errors import ConfigError
from hil.guided.compare import evaluate_repetitions
from hil.noise import NoiseSpec
from hil.studies.marginal import best_exchange, load_marginal, marginal_walk_checkpoint, neighbours
from tests.helpers import plain

DEVICE = "sigma_add = 1.5\nsigma_mul = 0.02\ngain_spread = 0.05\noffset_spread = 0.02\ndac_bits = 8\nadc_bits = 8\n"


@pytest.fixture(scope="module")
def profile(calibrated_device) -> Path:  # noqa: ANN001
    return calibrated_device(DEVICE, "marginal")[1]


def test_neighbours_add_and_remove_one_execution_per_layer() -> None:
    assert neighbours((2, 1, 3)) == [(3, 1, 3), (2, 2, 3), (2, 1, 4), (1, 1, 3), (2, 1, 2)]


def test_the_best_exchange_moves_from_the_cheapest_loss_to_the_largest_gain() -> None:
    moved, gain = best_exchange((2, 2, 2), (0.01, 0.00, 0.03), (0.02, 0.005, 0.04))
    assert moved == (2, 1, 3) and gain == pytest.approx(0.025)
    moved, gain = best_exchange((2, 1, 2), (0.0, 0.05, 0.0), (0.02, None, 0.04))
    assert moved == (1, 2, 2) and gain == pytest.approx(0.03)  # a layer at one execution gives none away
    assert best_exchange((2, 2), (0.01, 0.01), (0.03, 0.02)) == ((2, 2), 0.0)  # nothing gains: keep


def test_twin_marginal_walk_measures_each_layer_resumes_and_guides_the_comparison(checkpoint: Path, profile: Path,
                                                                                   tmp_path: Path) -> None:
    twin = f"twin:{profile}"
    report = marginal_walk_checkpoint(checkpoint, twin, tmp_path / "m", budget=2, draws=3, rounds=2)
    assert report.layers == ("1:fc1", "3:fc2", "5:fc3", "7:fc4")
    first = report.rounds[0]
    assert first.executions == (2, 2, 2, 2)
    assert all(down is not None and down > -0.05 for down in first.down)  # one execution fewer rarely helps
    assert sum(report.executions) == 8 and min(report.executions) >= 1
    for row in report.rounds:
        if row.chosen != row.executions:
            assert row.predicted_gain > 0
            assert sum(abs(a - b) for a, b in zip(row.chosen, row.executions, strict=True)) == 2
    stored = json.loads((tmp_path / "m" / "marginal.json").read_text())
    assert stored["executions"] == dict(zip(report.layers, report.executions, strict=True))
    again = marginal_walk_checkpoint(checkpoint, twin, tmp_path / "m", budget=2, draws=3, rounds=2)
    assert again.to_dict() == report.to_dict()  # resumed: same numbers, nothing re-run
    compared = evaluate_repetitions(checkpoint, ("uniform", "guided"), budget=2, noise=NoiseSpec(),
                                    walk=tmp_path / "m", backend=twin, repeats=2)
    assert [s.allocation.strategy for s in compared.strategies] == ["uniform", "guided-marginal"]
    assert compared.strategies[1].allocation.executions == report.executions
    with pytest.raises(ConfigError, match="pass the --budget the walk was run with"):
        evaluate_repetitions(checkpoint, ("uniform", "guided"), budget=3, noise=NoiseSpec(), walk=tmp_path / "m",
                             backend=twin, repeats=2)


def test_marginal_walk_refuses_what_it_cannot_measure(checkpoint: Path, profile: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="measures executions on hardware"):
        marginal_walk_checkpoint(checkpoint, "sim", tmp_path / "s", draws=2)
    with pytest.raises(ConfigError, match="must be ≥ 2"):
        marginal_walk_checkpoint(checkpoint, f"twin:{profile}", tmp_path / "s", draws=1)
    with pytest.raises(ConfigError, match="--budget"):
        marginal_walk_checkpoint(checkpoint, f"twin:{profile}", tmp_path / "s", budget=0, draws=2)


@pytest.mark.parametrize("text", ["{", '{"executions": {"1:fc1": 0}}', '{"executions": [1, 2]}',
                                  '{"executions": {"1:fc1": "2"}}', '{"rounds": []}'])
def test_a_damaged_marginal_json_is_one_line(tmp_path: Path, text: str) -> None:
    (tmp_path / "marginal.json").write_text(text)
    with pytest.raises(ConfigError, match="marginal"):
        load_marginal(tmp_path)


def test_cli_marginal_walk_prints_the_rounds_and_refuses_sigma_flags(checkpoint: Path, profile: Path,
                                                                     tmp_path: Path) -> None:
    runner = CliRunner()
    done = runner.invoke(app, ["walk", "--marginal", "--checkpoint", str(checkpoint), "--backend",
                               f"twin:{profile}", "--repeats", "2", "--out", str(tmp_path / "m")])
    assert done.exit_code == 0, done.output
    text = plain(done.output)
    assert "round 1: executions [2, 2, 2, 2]" in text and "--compare-reps" in text
    refused = runner.invoke(app, ["walk", "--marginal", "--checkpoint", str(checkpoint), "--backend",
                                  f"twin:{profile}", "--sigmas", "0.1,0.2,0.3,0.4"])
    assert refused.exit_code == 1 and "drop --sigmas" in plain(refused.output)
    refused = runner.invoke(app, ["walk", "--checkpoint", str(checkpoint), "--rounds", "2"])
    assert refused.exit_code == 1 and "go with --marginal" in plain(refused.output)
    refused = runner.invoke(app, ["walk", "--marginal", "--snr", "--checkpoint", str(checkpoint)])
    assert refused.exit_code == 1 and "choose one of" in plain(refused.output)
