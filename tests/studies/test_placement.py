"""The placement walk: each layer alone on the hardware, drops with intervals, resumable, budgeted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hil.backends.device.backend import DeviceBackend
from hil.calibration.job import open_calibration_device
from hil.cli import app
from hil.errors import ConfigError
from hil.studies.placement import ALL_LAYERS, place_checkpoint

DEVICE = "sigma_add = 1.5\nsigma_mul = 0.02\ngain_spread = 0.05\noffset_spread = 0.02\ndac_bits = 8\nadc_bits = 8\n"


@pytest.fixture(scope="module")
def device(calibrated_device) -> tuple[Path, Path]:  # noqa: ANN001
    return calibrated_device(DEVICE, "placement")


def test_twin_placement_gives_a_drop_per_layer_and_resumes(checkpoint: Path, device, tmp_path: Path) -> None:  # noqa: ANN001
    _, profile = device
    report = place_checkpoint(checkpoint, f"twin:{profile}", tmp_path / "p", draws=3)
    layers = [row.layer for row in report.layers]
    assert layers == ["1:fc1", "3:fc2", "5:fc3", "7:fc4", ALL_LAYERS]
    every = report.layers[-1]
    assert every.drop > max(row.drop for row in report.layers[:-1])  # all layers noisy costs the most
    assert all(row.low <= row.drop <= row.high and len(row.draws) == 3 for row in report.layers)
    assert report.most_fragile in layers[:-1]
    stored = json.loads((tmp_path / "p" / "placement.json").read_text())
    assert stored["most_fragile"] == report.most_fragile
    figure = tmp_path / "p" / "placement.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / "p" / "placement.svg").stat().st_size > 1000
    again = place_checkpoint(checkpoint, f"twin:{profile}", tmp_path / "p", draws=3)
    assert again.to_dict() == report.to_dict()  # resumed from the store: same numbers, nothing re-run


def test_device_placement_agrees_with_the_twin_on_the_most_fragile_layer(checkpoint: Path, device,  # noqa: ANN001
                                                                         tmp_path: Path) -> None:
    config, profile = device
    from hil.calibration.profile import read_profile

    hardware = DeviceBackend(open_calibration_device("sim", emulator_config=str(config)),
                             correction=read_profile(profile).correction())
    on_device = place_checkpoint(checkpoint, hardware, tmp_path / "d", draws=3)
    on_twin = place_checkpoint(checkpoint, f"twin:{profile}", tmp_path / "t", draws=3)
    assert on_device.backend == "device"
    assert on_device.most_fragile == on_twin.most_fragile
    for d, t in zip(on_device.layers, on_twin.layers, strict=True):
        assert abs(d.drop - t.drop) < 0.03 + (d.high - d.low) + (t.high - t.low)


def test_placement_refuses_a_backend_without_layers_and_a_small_budget(checkpoint: Path, device,  # noqa: ANN001
                                                                       tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs a backend that places layers"):
        place_checkpoint(checkpoint, "sim", tmp_path / "s", draws=2)
    with pytest.raises(ConfigError, match="must be ≥ 2"):
        place_checkpoint(checkpoint, f"twin:{device[1]}", tmp_path / "s", draws=1)
    with pytest.raises(ConfigError, match=r"raise --budget-s or lower --repeats.*a rerun resumes"):
        place_checkpoint(checkpoint, f"twin:{device[1]}", tmp_path / "b", draws=50, budget_s=0.001)


def test_cli_placement_table_and_flag_errors(checkpoint: Path, device, tmp_path: Path) -> None:  # noqa: ANN001
    runner = CliRunner()
    base = ["walk", "--placement", "--checkpoint", str(checkpoint), "--backend", f"twin:{device[1]}",
            "--repeats", "2", "--out", str(tmp_path / "c")]
    result = runner.invoke(app, base)
    assert result.exit_code == 0, result.output
    assert "most fragile layer:" in result.output and "all" in result.output
    bad = runner.invoke(app, [*base, "--global"])
    assert bad.exit_code == 1 and "drop --global" in bad.output and "Traceback" not in bad.output
    budget = runner.invoke(app, ["walk", "--checkpoint", str(checkpoint), "--budget-s", "5"])
    assert budget.exit_code == 1 and "--budget-s goes with --placement" in budget.output


def test_repetitions_guided_by_a_placement_walk(checkpoint: Path, device, tmp_path: Path) -> None:  # noqa: ANN001
    from hil.guided.compare import evaluate_repetitions
    from hil.noise import NoiseSpec

    twin = f"twin:{device[1]}"
    walked = place_checkpoint(checkpoint, twin, tmp_path / "p", draws=2)
    report = evaluate_repetitions(checkpoint, ("none", "uniform", "guided-greedy"), budget=2, noise=NoiseSpec(),
                                  walk=tmp_path / "p", backend=twin, repeats=2)
    names = [s.allocation.strategy for s in report.strategies]
    assert names == ["none", "uniform", "guided-placement"]
    guided = report.strategies[-1].allocation
    assert sum(guided.executions) == 2 * len(guided.executions)
    drops = {row.layer: row.drop for row in walked.layers}
    most = max(range(len(guided.executions)), key=lambda i: drops[guided.sites[i].name])
    assert guided.executions[most] == max(guided.executions)
    with pytest.raises(ConfigError, match="run on the hardware it measured"):
        evaluate_repetitions(checkpoint, ("uniform", "guided-greedy"), budget=2, noise=NoiseSpec(sigma_add=0.1),
                             walk=tmp_path / "p", backend="sim", repeats=2)


def test_figures_of_placement_walks_and_of_twin_fidelity(tmp_path: Path) -> None:
    from hil.studies.figures import plot_fidelity, plot_placement
    from hil.studies.placement import LayerPlacement, PlacementReport

    rows = (LayerPlacement("1:fc1", 0.8, 0.1, 0.05, 0.15, (0.8, 0.8)), LayerPlacement(ALL_LAYERS, 0.5, 0.4, 0.3, 0.5,
                                                                                       (0.5, 0.5)))
    reports = [PlacementReport("device:serial:/dev/pts/3#calibration=p.toml", 0.9, rows),
               PlacementReport("twin:p.toml", 0.9, rows)]
    written = plot_placement(reports, tmp_path / "walk")
    assert [p.name for p in written] == ["walk.png", "walk.svg"] and all(p.stat().st_size > 1000 for p in written)
    svg = written[1].read_bytes()
    assert b"<!-- device -->" in svg and b"<!-- twin -->" in svg  # one legend entry per backend
    level = {"sigma_add": 0.5, "device": 0.8, "device_std": 0.01, "twin": 0.79, "twin_std": 0.01, "gaussian": 0.85,
             "gaussian_std": 0.01}
    written = plot_fidelity({"mlp": [level, {**level, "sigma_add": 1.0}], "lenet5": [level]}, tmp_path / "fid")
    assert all(p.stat().st_size > 1000 for p in written)
