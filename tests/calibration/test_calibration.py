"""Calibration against the emulator with known truth: accuracy, coverage, efficiency, diagnostics, profiles."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from hil.backends.device.driver import AmvmDriver
from hil.backends.device.emulator import DeviceEmulator, EmulatorConfig, LoopbackTransport
from hil.calibration.design import CalibrationDesign, realise
from hil.calibration.diagnostics import run_all
from hil.calibration.estimate import estimate, fisher
from hil.calibration.job import Calibration, build_profile
from hil.calibration.measure import measure
from hil.calibration.profile import PROFILE_VERSION, read_profile, write_profile
from hil.errors import ConfigError

TRUTH = {"sigma_add": 0.05, "sigma_mul": 0.03, "gain_spread": 0.05, "offset_spread": 0.2,
         "seconds_per_vector": 5e-6}
"""An emulated clock at about this host's pace keeps drift and heating the same on any host."""


def run(samples: int = 10_000, **overrides: object) -> tuple[DeviceEmulator, Calibration]:
    emulator = DeviceEmulator(EmulatorConfig(**{**TRUTH, **overrides}))
    driver = AmvmDriver(LoopbackTransport(emulator), timeout=0.5)
    plan = realise(CalibrationDesign(samples=samples), driver.capabilities())
    measurement = measure(driver, plan)
    fit = estimate(measurement)
    diagnostics = run_all(measurement, fit)
    profile = build_profile(measurement, fit, diagnostics, "loopback", driver.capabilities().to_dict())
    return emulator, Calibration(measurement, fit, diagnostics, profile)


def test_ten_thousand_samples_hit_the_truth_within_five_percent() -> None:
    emulator, result = run(seed=11)
    fit = result.fit
    assert fit.sigma_add.value == pytest.approx(0.05, rel=0.05)
    assert fit.sigma_mul.value == pytest.approx(0.03, rel=0.05)
    assert np.max(np.abs(fit.columns.gain / emulator.gain - 1)) < 0.05
    assert np.max(np.abs(fit.columns.offset - emulator.offset)) < 0.05 * TRUTH["offset_spread"]
    assert {d.name: d.status for d in result.diagnostics}["lack of fit"] == "pass"


def test_intervals_cover_and_the_estimator_is_efficient() -> None:
    """60 seeded calibrations: 95 % intervals cover the truth ≥ 90 %; variance near the CRLB."""
    estimates, covered = [], {"a": 0, "m": 0}
    crlb = None
    for seed in range(60):
        _, result = run(samples=4000, seed=100 + seed)
        fit = result.fit
        estimates.append((fit.sigma_add.value, fit.sigma_mul.value))
        covered["a"] += fit.sigma_add.covers(0.05)
        covered["m"] += fit.sigma_mul.covers(0.03)
        if crlb is None:  # the bound at the true parameters for this design
            a_true = 0.05**2 + fit.quantisation
            info = fisher(fit.regressors.ravel(), fit.dof.ravel(), a_true, 0.03**2)
            cov = np.linalg.inv(info)
            crlb = (cov[0, 0] / (4 * 0.05**2), cov[1, 1] / (4 * 0.03**2))
    values = np.array(estimates)
    assert covered["a"] / 60 >= 0.9 and covered["m"] / 60 >= 0.9, covered
    efficiency = (crlb[0] / values[:, 0].var(ddof=1), crlb[1] / values[:, 1].var(ddof=1))
    assert min(efficiency) > 0.6, efficiency  # ≈ 1 expected; 60 runs estimate a variance to ±18 %


def test_add_first_order_is_recognised_when_there_are_enough_samples() -> None:
    _, result = run(samples=10_000, sigma_add=0.3, sigma_mul=0.1, order="add-first", seed=3)
    order = {d.name: d for d in result.diagnostics}["noise order"]
    assert order.detail.startswith("add-first"), order.detail
    assert result.profile.order == "add-first"
    _, result = run(samples=2000, seed=3)
    assert "too few samples" in {d.name: d for d in result.diagnostics}["noise order"].detail


def test_saturation_is_flagged() -> None:
    _, result = run(samples=4000, sigma_add=0.3, sigma_mul=0.3, seed=3)
    assert {d.name: d for d in result.diagnostics}["saturation"].status == "warn"


def test_drift_is_flagged() -> None:
    _, result = run(samples=10_000, heating=0.05, offset_drift=0.05, seed=5)
    drift = {d.name: d for d in result.diagnostics}["drift"]
    assert drift.status == "warn", drift.detail
    _, steady = run(samples=10_000, seed=5)
    assert {d.name: d for d in steady.diagnostics}["drift"].status == "pass"


def test_a_slow_drift_common_to_all_columns_is_flagged_by_the_column_mean() -> None:
    _, result = run(samples=10_000, offset_drift_per_s=0.5, seed=5)
    drift = {d.name: d for d in result.diagnostics}["drift"]
    per_column = float(drift.detail.split("ratio ")[1].split(" per column")[0])
    assert drift.status == "warn" and per_column > 0.95, drift.detail  # each column alone hardly shows it
    card_drift = result.profile.noise_card().drift
    assert card_drift is not None and card_drift.shown_in_time


def test_design_is_d_optimal_with_a_few_intermediate_levels() -> None:
    design = CalibrationDesign(samples=10_000)
    counts = design.counts()
    assert sum(counts) == 10_000 and counts[0] == counts[-1] == 4500 and len(counts) == 6
    with pytest.raises(ConfigError, match="--samples"):
        CalibrationDesign(samples=10)


def test_profile_round_trips_and_refuses_bad_files(tmp_path: Path) -> None:
    _, result = run(samples=2000, seed=1)
    for name in ("p.toml", "p.json"):
        path = write_profile(result.profile, tmp_path / name)
        loaded = read_profile(path)
        assert loaded.sigma_add == result.profile.sigma_add and loaded.estimates["gain"]["values"][3] == \
            result.profile.estimates["gain"]["values"][3]
    before = (tmp_path / "p.toml").read_text()
    with pytest.raises(ConfigError, match="exists; pass --overwrite"):
        write_profile(result.profile, tmp_path / "p.toml")
    assert (tmp_path / "p.toml").read_text() == before
    data = json.loads((tmp_path / "p.json").read_text())
    for mutate, message in (
        (lambda d: d.update(version=PROFILE_VERSION + 1), "newer than this hil reads"),
        (lambda d: d.pop("estimates"), "lacks estimates"),
        (lambda d: d["estimates"].pop("sigma_mul"), "estimates.sigma_mul.value"),
    ):
        broken = json.loads(json.dumps(data))
        mutate(broken)
        (tmp_path / "bad.json").write_text(json.dumps(broken))
        with pytest.raises(ConfigError, match=message):
            read_profile(tmp_path / "bad.json")
    (tmp_path / "corrupt.toml").write_text("version = [")
    with pytest.raises(ConfigError, match="corrupt"):
        read_profile(tmp_path / "corrupt.toml")
    with pytest.raises(ConfigError, match="does not exist"):
        read_profile(tmp_path / "missing.toml")


def test_profile_becomes_noise_in_network_units() -> None:
    import torch

    from hil.models import create_model

    _, result = run(samples=2000, seed=1)
    model = create_model("mlp", input_shape=(1, 28, 28), num_classes=10)
    spec, per_site = result.profile.noise_spec(model, torch.randn(64, 1, 28, 28))
    assert spec.sites == "matmul" and spec.sigma_mul == pytest.approx(result.profile.sigma_mul)
    assert set(per_site) == {"fc1", "fc2", "fc3", "fc4"}
    first = model.fc1.weight.abs().amax(dim=1).median().item()
    # fc1 has 784 inputs → ⌈784/256⌉ = 4 tiles
    assert per_site["fc1"] > result.profile.sigma_add * first * math.sqrt(4) * 0.5


def test_toml_profiles_round_trip_awkward_keys_exactly(tmp_path: Path) -> None:
    """Issue 18, finding 7: keys were written unquoted (``3:conv2 = …`` is not TOML, ``a.b`` read back nested)."""
    from dataclasses import replace

    _, result = run(samples=2000, seed=1)
    awkward = {"3:conv2": 1.5, "ADC bits": 8, "a.b": "dotted", "ünï": [1.0, 2.5], "nested": {"x y": True},
               "empty": None}
    profile = replace(result.profile, device={**result.profile.device, **awkward})
    loaded = read_profile(write_profile(profile, tmp_path / "p.toml"))
    expected = {key: value for key, value in profile.device.items() if value is not None}
    assert loaded.device == expected and loaded.card == profile.card and loaded.estimates == profile.estimates
    with pytest.raises(ConfigError, match="missing value inside a list.*write the profile as .json"):
        write_profile(replace(profile, device={**profile.device, "temps": [1.0, None]}), tmp_path / "n.toml")
    assert not (tmp_path / "n.toml").exists()


def test_an_aged_chip_is_the_new_chip_with_its_columns_moved_and_a_calibration_sees_it() -> None:
    new, _ = run(samples=2000, seed=11)
    aged, result = run(seed=11, gain_aging=0.1, offset_aging=0.3)
    unaged_twice, _ = run(samples=2000, seed=11, gain_aging=0.0)
    assert np.array_equal(unaged_twice.gain, new.gain) and np.array_equal(unaged_twice.offset, new.offset)
    change = aged.gain / new.gain - 1
    assert 0.05 < np.std(change) < 0.15 and not np.allclose(aged.offset, new.offset)
    assert 0.15 < np.std(aged.offset - new.offset) < 0.45
    assert np.max(np.abs(result.fit.columns.gain / aged.gain - 1)) < 0.05  # recalibrating finds the aged truth
    with pytest.raises(ConfigError, match="gain_aging"):
        EmulatorConfig(gain_aging=-0.1)
