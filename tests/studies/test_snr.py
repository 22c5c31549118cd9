"""The SNR walk: one layer on the hardware with its input range attenuated by k, μ in network units."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from hil.backends.base import AttenuatesInputs, SiteCall
from hil.backends.device.backend import DeviceBackend
from hil.calibration.job import open_calibration_device
from hil.calibration.profile import read_profile
from hil.cli import app
from hil.errors import ConfigError
from hil.noise import SiteNoise
from hil.studies.snr import snr_walk_checkpoint

DEVICE = "sigma_add = 0.3\nsigma_mul = 0.02\ngain_spread = 0.05\noffset_spread = 0.02\ndac_bits = 8\nadc_bits = 8\n"


@pytest.fixture(scope="module")
def device(calibrated_device) -> tuple[Path, Path]:  # noqa: ANN001
    return calibrated_device(DEVICE, "snr")


def _hardware(device: tuple[Path, Path]) -> DeviceBackend:
    config, profile = device
    return DeviceBackend(open_calibration_device("sim", emulator_config=str(config)),
                         correction=read_profile(profile).correction())


def test_attenuation_scales_the_additive_noise_by_k(device: tuple[Path, Path]) -> None:
    hardware = _hardware(device)
    assert isinstance(hardware, AttenuatesInputs)
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(256, 16, generator=generator)
    weight = torch.randn(8, 16, generator=generator)
    call = SiteCall(name="1:fc", index=1, kind="linear", noise=SiteNoise())
    exact = x @ weight.T
    spread = {}
    for k in (1.0, 8.0):
        hardware.attenuate(k)
        spread[k] = float((hardware.linear(x, weight, None, call) - exact).std())
    hardware.close()
    assert 5.0 < spread[8.0] / spread[1.0] < 10.0  # σ_eff = k·σa (plus DAC rounding, also ∝ k)
    for bad in (0.5, math.nan, math.inf):
        with pytest.raises(ConfigError, match="finite number ≥ 1"):
            hardware.attenuate(bad)


def test_twin_snr_walk_fits_mu_per_layer_and_resumes(checkpoint: Path, device: tuple[Path, Path],
                                                     tmp_path: Path) -> None:
    _, profile = device
    report = snr_walk_checkpoint(checkpoint, f"twin:{profile}", tmp_path / "t", draws=2)
    assert [row.layer for row in report.layers] == ["1:fc1", "3:fc2", "5:fc3", "7:fc4"]
    for row in report.layers:
        assert row.fit.status == "ok", row.fit.message
        assert row.fit.mu_low <= row.fit.mu <= row.fit.mu_high
        assert row.curve[0][2] > row.curve[-1][2]  # more attenuation, lower accuracy
        assert row.curve[0][1] == pytest.approx(row.sigma.total)  # k = 1 is the native σ
        assert row.mu_attenuation > 1
    stored = json.loads((tmp_path / "t" / "snr.json").read_text())
    assert [layer["layer"] for layer in stored["layers"]] == [row.layer for row in report.layers]
    again = snr_walk_checkpoint(checkpoint, f"twin:{profile}", tmp_path / "t", draws=2)
    assert again.to_dict() == report.to_dict()  # resumed: nothing re-run


def test_device_snr_walk_agrees_with_the_twin_within_intervals(checkpoint: Path, device: tuple[Path, Path],
                                                               tmp_path: Path) -> None:
    _, profile = device
    on_device = snr_walk_checkpoint(checkpoint, _hardware(device), tmp_path / "d", profile=profile, draws=3)
    on_twin = snr_walk_checkpoint(checkpoint, f"twin:{profile}", tmp_path / "t", draws=3)
    for d, t in zip(on_device.layers, on_twin.layers, strict=True):
        assert d.fit.status == t.fit.status == "ok"
        assert d.fit.mu_low <= t.fit.mu_high and t.fit.mu_low <= d.fit.mu_high, (d.layer, d.fit.mu, t.fit.mu)


def test_snr_walk_refuses_what_it_cannot_do(checkpoint: Path, device: tuple[Path, Path], tmp_path: Path) -> None:
    _, profile = device
    with pytest.raises(ConfigError, match="needs a backend that places layers"):
        snr_walk_checkpoint(checkpoint, "sim", tmp_path / "s", profile=profile)
    with pytest.raises(ConfigError, match="give --profile PROFILE"):
        snr_walk_checkpoint(checkpoint, _hardware(device), tmp_path / "s")
    with pytest.raises(ConfigError, match="≥ 4 distinct attenuations"):
        snr_walk_checkpoint(checkpoint, f"twin:{profile}", tmp_path / "s", attenuations=(1, 2, 2, 4))
    with pytest.raises(ConfigError, match="finite number ≥ 1"):
        snr_walk_checkpoint(checkpoint, f"twin:{profile}", tmp_path / "s", attenuations=(0.5, 1, 2, 4))
    with pytest.raises(ConfigError, match="must be ≥ 2"):
        snr_walk_checkpoint(checkpoint, f"twin:{profile}", tmp_path / "s", draws=1)


def test_cli_snr_table_and_flag_errors(checkpoint: Path, device: tuple[Path, Path], tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["walk", "--snr", "--checkpoint", str(checkpoint), "--backend", f"twin:{device[1]}", "--repeats", "2",
            "--attenuations", "log:1:16:5", "--out", str(tmp_path / "c")]
    result = runner.invoke(app, base)
    assert result.exit_code == 0, result.output
    assert "SNR walk on twin:" in result.output and "3:fc2" in result.output
    for extra, message in ((["--placement"], "choose one of --placement, --snr and --marginal"),
                           (["--sigmas", "1,2"], "drop --sigmas")):
        bad = runner.invoke(app, [*base, *extra])
        assert bad.exit_code == 1 and message in bad.output and "Traceback" not in bad.output
    stray = runner.invoke(app, ["walk", "--checkpoint", str(checkpoint), "--attenuations", "1,2"])
    assert stray.exit_code == 1 and "go with --snr" in stray.output


def test_repetitions_guided_by_an_snr_walk_follow_its_curves(checkpoint: Path, device: tuple[Path, Path],
                                                              tmp_path: Path) -> None:
    from hil.guided.compare import evaluate_repetitions, load_snr
    from hil.noise import NoiseSpec

    twin = f"twin:{device[1]}"
    walked = snr_walk_checkpoint(checkpoint, twin, tmp_path / "s", draws=2)
    report = evaluate_repetitions(checkpoint, ("none", "uniform", "guided-greedy"), budget=2, noise=NoiseSpec(),
                                  walk=tmp_path / "s", backend=twin, repeats=2)
    assert [s.allocation.strategy for s in report.strategies] == ["none", "uniform", "guided-snr"]
    guided = report.strategies[-1].allocation
    assert sum(guided.executions) == 2 * len(guided.executions) and min(guided.executions) >= 1
    assert 0 < guided.predicted <= 1
    # the layer whose native σ sits closest below its μ (most accuracy to win back) gets the most executions
    layers = [site.name for site in guided.sites]
    curves = load_snr(tmp_path / "s", layers, num_classes=10, n_samples=359)
    assert curves is not None and [round(s, 9) for s in curves.sigma] == [
        round(next(r.sigma.total for r in walked.layers if r.layer == name), 9) for name in layers]
    gains = [curve(sigma / 2) - curve(sigma) for curve, sigma in zip(curves.curves, curves.sigma, strict=True)]
    assert guided.executions[gains.index(max(gains))] == max(guided.executions)
    with pytest.raises(ConfigError, match="run on the hardware it measured"):
        evaluate_repetitions(checkpoint, ("uniform", "guided-greedy"), budget=2, noise=NoiseSpec(sigma_add=0.1),
                             walk=tmp_path / "s", backend="sim", repeats=2)
