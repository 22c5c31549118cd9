"""The noise card: per-column σ through the ADC, shrinkage and the column test, drift, profile v2 round trip."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from hil.backends.device.emulator import EmulatorConfig
from hil.backends.device.emulator.model import AnalogArray
from hil.calibration.card import (
    DRIFT_T,
    Drift,
    _adc_jacobian,
    _quantised_moments,
    _read_through_adc,
    _slopes,
    quantised_normal,
    run_middle,
    run_seconds,
    run_temperature,
)
from hil.calibration.design import CalibrationDesign
from hil.calibration.job import _Moved, calibrate, check
from hil.calibration.profile import read_profile, write_profile
from hil.errors import ConfigError

DEVICE = ("sigma_add = 0.05\nsigma_mul = 0.03\ngain_spread = 0.05\noffset_spread = 0.02\ndac_bits = 8\n"
          "adc_bits = 8\nseed = 3\nseconds_per_vector = 5e-6\n")
"""On an emulated clock (about this host's pace), so drift and heating do not hang on the host's speed."""


def _calibrated(tmp_path, extra: str = ""):  # noqa: ANN001, ANN202
    path = tmp_path / "device.toml"
    path.write_text(DEVICE + extra)
    return calibrate("sim", CalibrationDesign(samples=10_000), emulator_config=str(path)), path


def test_quantised_normal_is_unbiased_below_one_adc_step() -> None:
    rng = np.random.default_rng(0)
    lsb, sigma = 1.0, 0.35
    estimates, sheppard = [], []
    for shift in np.linspace(0, 0.5, 6):  # where the grid falls relative to the mean changes S²
        values = np.rint((shift + sigma * rng.standard_normal(20_000)) / lsb) * lsb
        estimates.append(quantised_normal(values, lsb)[1])
        sheppard.append(np.sqrt(max(values.var() - lsb**2 / 12, 0)))
    assert max(abs(e - sigma) for e in estimates) < 0.02
    assert max(abs(s - sigma) for s in sheppard) > 0.05  # the correction it replaces is off here


@pytest.mark.parametrize(("mean", "sigma"), [(0.3, 0.35), (-2.2, 0.9), (4.1, 3.0)])
def test_quantised_normal_with_its_analytic_gradient_finds_the_derivative_free_optimum(mean: float,
                                                                                      sigma: float) -> None:
    from scipy import optimize, stats

    values = np.random.default_rng(4).normal(mean, sigma, 4000)
    codes, counts = np.unique(np.rint(values), return_counts=True)

    def negative_log_likelihood(theta: np.ndarray) -> float:
        mass = stats.norm.cdf((codes + 0.5 - theta[0]) / np.exp(theta[1])) - stats.norm.cdf(
            (codes - 0.5 - theta[0]) / np.exp(theta[1]))
        return -float(np.sum(counts * np.log(np.maximum(mass, 1e-300))))

    simplex = optimize.minimize(negative_log_likelihood, np.array([values.mean(), np.log(values.std())]),
                                method="Nelder-Mead", options={"xatol": 1e-9, "fatol": 1e-10, "maxiter": 4000})
    fitted_mean, fitted_sigma, mean_se, sigma_se = quantised_normal(values, 1.0)
    assert fitted_mean == pytest.approx(simplex.x[0], abs=1e-4)
    assert fitted_sigma == pytest.approx(np.exp(simplex.x[1]), rel=1e-4)
    assert 0 < mean_se < 0.1 and 0 < sigma_se < 0.1


def test_adc_jacobian_matches_sampling_and_is_the_identity_without_quantisation() -> None:
    offsets, sigma2 = np.array([0.0, 0.02, -0.03, 0.05]), np.full(4, 0.4**2)
    fine = _adc_jacobian(offsets, sigma2, lsb=1e-3)
    assert fine == pytest.approx(np.array([[1.0, 0.0], [0.0, 2 * 0.16]]), abs=2e-3)
    coarse = _adc_jacobian(offsets, sigma2, lsb=1.0)  # σ 0.4 LSB near a code: the mean moves < 1:1
    assert 0.85 < coarse[0, 0] < 0.98 and coarse[1, 1] > 1.1 * 2 * 0.16
    rng = np.random.default_rng(1)
    noise = rng.standard_normal((400_000, 4))

    def read(shift: float, factor: float) -> np.ndarray:
        codes = np.rint(offsets + shift + factor * 0.4 * noise)
        return np.array([codes.mean(), codes.var(axis=0).mean()])

    sampled = np.column_stack([(read(0.05, 1) - read(-0.05, 1)) / 0.1, (read(0, 1.05) - read(0, 0.95)) / 0.1])
    assert sampled == pytest.approx(coarse, abs=0.03)


def test_drift_threshold_follows_the_fits_degrees_of_freedom() -> None:
    slope = dict(reference=25.0, span=0.0, offset_per_kelvin=0.0, offset_se=0.0, sigma_add_per_kelvin=0.0,
                 sigma_add_se=0.0, duration=1.0, offset_per_second=3.5, offset_per_second_se=1.0)
    assert Drift(**slope).shown_in_time  # no dof kept: |t| 3.5 > 3
    short = Drift(**slope, dof=8)
    assert short.critical() == pytest.approx(4.3, abs=0.05) and not short.shown_in_time
    assert short.critical(0.025) == pytest.approx(2.306, abs=1e-3)  # the 95 % interval's t
    assert Drift(**slope, dof=10_000).critical() == pytest.approx(DRIFT_T, abs=0.01)


def test_card_of_uniform_columns_finds_no_difference_and_the_true_sigmas(tmp_path) -> None:  # noqa: ANN001
    result, _ = _calibrated(tmp_path)
    card = result.profile.noise_card()
    assert card.sigma_add.p_value > 0.001 and not card.sigma_add.columns_differ
    assert abs(card.sigma_add.pooled - 0.05) < 0.002
    assert abs(card.sigma_mul.pooled - 0.03) < 0.002
    assert np.allclose(card.sigma_add.shrunk, 0.05, atol=0.003)
    assert (card.rows, card.cols, card.dac_bits, card.adc_bits) == (256, 64, 8, 8)
    assert card.drift is None  # no heating: the temperature never moved


def test_card_tells_columns_apart_and_shrinks_towards_the_pool(tmp_path) -> None:  # noqa: ANN001
    result, path = _calibrated(tmp_path, "sigma_add_spread = 0.3\n")
    card = result.profile.noise_card()
    truth = 0.05 * AnalogArray(EmulatorConfig.from_toml(path)).sigma_add_scale
    assert card.sigma_add.columns_differ and card.sigma_add.tau > 0
    assert np.sqrt(np.mean((np.array(card.sigma_add.shrunk) - truth) ** 2)) < 0.002
    inside = np.mean((np.array(card.sigma_add.low) <= truth) & (truth <= np.array(card.sigma_add.high)))
    assert inside > 0.8


def test_card_records_offset_drift_with_temperature(tmp_path) -> None:  # noqa: ANN001
    result, _ = _calibrated(tmp_path, "heating = 0.3\noffset_drift = 0.002\ndrift_per_kelvin = 0.05\n")
    drift = result.profile.noise_card().drift
    assert drift is not None and drift.shown and drift.span > 10
    assert drift.offset_per_kelvin == pytest.approx(0.002, rel=0.05)
    assert drift.sigma_add_per_kelvin > 5 * drift.sigma_add_se
    # the emulator's σa = 0.05 (1 + 0.05 (T − 25)): at the run's middle, and relative to it there
    warm = drift.reference - 25
    assert drift.sigma_add_per_kelvin == pytest.approx(0.05 / (1 + 0.05 * warm), rel=0.15)
    card = result.profile.noise_card()
    assert card.sigma_add.pooled == pytest.approx(0.05 * (1 + 0.05 * warm), rel=0.03)  # not the run-pooled value
    assert result.fit.sigma_add.value > 1.08 * card.sigma_add.pooled  # which a 60 K heating spreads wide


def test_check_carries_the_profile_to_the_devices_temperature_by_its_drift(tmp_path) -> None:  # noqa: ANN001
    heating = "heating = 0.3\noffset_drift = 0.002\ndrift_per_kelvin = 0.05\n"
    result, path = _calibrated(tmp_path, heating)
    items, fresh = check("sim", result.profile, samples=2000, emulator_config=str(path))  # a shorter run: cooler
    named = {item.name: item for item in items}
    assert all(item.ok for item in items), items
    assert "moved" in named["sigma_add"].note and "moved" in named["offset (columns outside)"].note
    assert {"drift offset per K", "drift σa per K"} <= set(named)
    old = result.profile.estimates["sigma_add"]
    unmoved = (fresh.fit.sigma_add.value - old["value"]) / np.hypot(fresh.fit.sigma_add.se, old["se"])
    assert unmoved < -4  # compared as it was, the same chip at another temperature failed the check
    steadier = tmp_path / "steadier.toml"  # σa no longer moves with temperature
    steadier.write_text(DEVICE + heating.replace("drift_per_kelvin = 0.05", "drift_per_kelvin = 0"))
    items, _ = check("sim", result.profile, samples=2000, emulator_config=str(steadier))
    changed = {item.name: item for item in items}["drift σa per K"]
    assert not changed.ok and abs(changed.measured) < 0.3 * changed.profile


def test_check_flags_a_time_drift_the_profile_did_not_have(tmp_path) -> None:  # noqa: ANN001
    steady, _ = _calibrated(tmp_path)
    assert steady.profile.noise_card().drift is None
    drifting = tmp_path / "drifting.toml"
    drifting.write_text(DEVICE + "offset_drift_per_s = 0.5\n")
    items, _ = check("sim", steady.profile, samples=2000, emulator_config=str(drifting))
    named = {item.name: item for item in items}
    assert named["drift offset per s"].profile == 0.0 and not named["drift offset per s"].ok
    items, _ = check("sim", steady.profile, samples=2000, emulator_config=str(tmp_path / "device.toml"))
    assert all(item.ok for item in items), items


def test_check_carries_a_time_drift_to_a_run_of_another_length(tmp_path) -> None:  # noqa: ANN001
    result, path = _calibrated(tmp_path, "offset_drift_per_s = 0.5\nsigma_add_drift_per_s = 5\n")
    drift = result.profile.noise_card().drift
    assert drift is not None and drift.shown_in_time and 0 < drift.middle < drift.duration and drift.uptime > 0
    items, fresh = check("sim", result.profile, samples=2000, emulator_config=str(path))  # a fifth as long
    named = {item.name: item for item in items}
    assert all(item.ok for item in items), items
    assert "-0.0" in named["sigma_add"].note and " s by the card's drift" in named["sigma_add"].note
    assert "s by the card's drift" in named["offset (columns outside)"].note
    assert named["drift σa per s"].note == "relative to σa at the check's run"
    # compared as it was, σa at the short run's middle (less time since power-up) read low and failed
    old, new = result.profile.noise_card().sigma_add.pooled, fresh.profile.noise_card().sigma_add.pooled
    assert (new - old) / np.hypot(result.fit.sigma_add.se, fresh.fit.sigma_add.se) < -4
    clock = result.measurement.clock
    assert run_middle(result.measurement)[1] == pytest.approx(drift.uptime)
    for told in (np.full_like(clock, np.nan), -clock, np.zeros_like(clock), np.linspace(1e308, 1.7e308, len(clock))):
        assert run_middle(replace(result.measurement, clock=told))[1] == 0.0  # a peer's clock that tells nothing


def test_time_drift_is_carried_on_the_device_clock_and_at_most_one_run_length() -> None:
    drift = Drift(reference=25.0, span=0.0, offset_per_kelvin=0.0, offset_se=0.0, sigma_add_per_kelvin=0.0,
                  sigma_add_se=0.0, duration=10.0, offset_per_second=0.01, offset_per_second_se=0.001,
                  sigma_add_per_second=0.02, sigma_add_per_second_se=0.002, dof=8, middle=5.0, uptime=100.0)
    later = _Moved.of(drift, 25.0, middle=2.0, uptime=104.0)  # up 4 s longer, though 3 s earlier into its run
    assert later.seconds == 4.0 and later.shift == pytest.approx(0.04) and later.factor == pytest.approx(1.08)
    assert later.shift_se == pytest.approx(0.004) and later.factor_se == pytest.approx(0.008)
    assert _Moved.of(drift, 25.0, middle=2.0, uptime=0.0).seconds == -3.0  # no device clock: into each run
    hours = _Moved.of(drift, 25.0, middle=5.0, uptime=3700.0)
    assert hours.seconds == 0.0 and hours.factor == 1.0 and not hours.any
    assert "time drift not carried +3.6e+03 s" in hours.note
    unmeasured = replace(drift, offset_per_second_se=0.0, sigma_add_per_second_se=0.0)
    assert _Moved.of(unmeasured, 25.0, 2.0, 104.0) == _Moved()


def test_slopes_give_the_correlation_of_their_estimates() -> None:
    rng = np.random.default_rng(0)
    temperature = np.linspace(0.0, 1.0, 12)
    seconds = 0.7 * temperature + 0.3 * rng.permutation(temperature)  # correlated, not collinear
    r = np.corrcoef(temperature, seconds)[0, 1]
    draws = [_slopes([temperature, seconds], rng.normal(size=(12, 2))) for _ in range(4000)]
    assert all(d is not None for d in draws)
    correlation = draws[0][2][0, 1]  # type: ignore[index]
    assert correlation == pytest.approx(-r)  # two centred regressors: their slopes correlate −r
    slopes = np.array([d[0] for d in draws])  # type: ignore[index]
    for response in (0, 1):
        assert np.corrcoef(slopes[:, 0, response], slopes[:, 1, response])[0, 1] == pytest.approx(correlation, abs=0.04)


def test_a_move_in_temperature_and_time_counts_the_slopes_correlation() -> None:
    drift = Drift(reference=25.0, span=10.0, offset_per_kelvin=0.01, offset_se=0.003, sigma_add_per_kelvin=0.02,
                  sigma_add_se=0.004, duration=10.0, offset_per_second=0.01, offset_per_second_se=0.001,
                  sigma_add_per_second=0.02, sigma_add_per_second_se=0.002, dof=8, middle=5.0, correlation=-0.8)
    moved = _Moved.of(drift, 27.0, middle=8.0, uptime=0.0)  # 2 K warmer, 3 s later: both slopes' errors
    a, b = 2 * 0.003, 3 * 0.001
    assert moved.shift_se == pytest.approx(np.sqrt(a * a + b * b - 2 * 0.8 * a * b))
    assert moved.factor_se == pytest.approx(np.sqrt(0.008**2 + 0.006**2 - 2 * 0.8 * 0.008 * 0.006))
    apart = _Moved.of(drift, 23.0, middle=8.0, uptime=0.0)  # cooler and later: the errors add up
    assert apart.shift_se == pytest.approx(np.sqrt(a * a + b * b + 2 * 0.8 * a * b))
    assert _Moved.of(replace(drift, correlation=0.0), 27.0, 8.0, 0.0).shift_se == pytest.approx(np.hypot(a, b))


def test_runs_are_read_back_through_the_adc_exactly() -> None:
    rng = np.random.default_rng(1)
    offsets, sigma2, lsb = 0.3 * rng.standard_normal(64), np.full(64, 0.16), 1.0  # σa 0.4 LSB: the ADC bends
    truth = np.array([(a, s) for a in (-0.2, 0.0, 0.15) for s in (0.7, 1.0, 1.3)])
    moments = [_quantised_moments(offsets + a, np.sqrt(sigma2) * s, lsb) for a, s in truth]
    means = np.array([np.mean(m) - np.mean(offsets) for m, _ in moments])
    squares = np.array([np.mean(v) for _, v in moments])
    assert _read_through_adc(means, squares, offsets, sigma2, lsb) == pytest.approx(truth, abs=1e-7)
    linear = np.linalg.solve(_adc_jacobian(offsets, sigma2, lsb), np.vstack([means, squares - squares[4]]))
    assert np.max(np.abs(linear[0] - truth[:, 0])) > 0.01  # one linearisation at the middle does not
    unreachable = _read_through_adc(np.array([0.0]), np.array([-1.0]), offsets, sigma2, lsb)
    assert np.isnan(unreachable).all()  # a variance no σa gives
    broken = _read_through_adc(np.array([1e6, 0.0]), np.array([0.16, 1e9]), offsets, sigma2, lsb)
    assert np.isnan(broken).all()  # a shift no drift gives, a variance 10⁴ × the card's: out of the box


def test_card_tells_temperature_from_time_in_a_room_that_moves(tmp_path) -> None:  # noqa: ANN001
    both = ("ambient_jitter = 3\noffset_drift = 0.002\ndrift_per_kelvin = 0.05\noffset_drift_per_s = 0.5\n"
            "sigma_add_drift_per_s = 5\n")
    result, path = _calibrated(tmp_path, both)
    drift = result.profile.noise_card().drift
    assert drift is not None and drift.span > 5 and drift.duration > 0
    assert drift.offset_per_kelvin == pytest.approx(0.002, rel=0.1)
    assert drift.offset_per_second == pytest.approx(0.5, rel=0.15)
    assert drift.sigma_add_per_kelvin > 10 * drift.sigma_add_se
    assert drift.sigma_add_per_second > 5 * drift.sigma_add_per_second_se
    runs = np.unique(result.measurement.order[0])
    r = np.corrcoef(result.measurement.temperatures[runs], run_seconds(result.measurement, runs))[0, 1]
    assert drift.correlation == pytest.approx(-r) and drift.dof == len(runs) - 3
    assert drift.reference == pytest.approx(run_temperature(result.measurement))
    items, _ = check("sim", result.profile, samples=2000, emulator_config=str(path))
    assert all(item.ok for item in items), items


def test_a_moving_room_changes_only_the_temperature_of_a_chip_that_does_not_drift() -> None:
    steady = AnalogArray(EmulatorConfig(sigma_add=0.05, seed=4))
    room = AnalogArray(EmulatorConfig(sigma_add=0.05, seed=4, ambient_jitter=3.0))
    tile, x = np.ones((16, 4), dtype=np.int16) * 10, np.ones((8, 16), dtype=np.int16) * 20
    temperatures = []
    for _ in range(200):
        codes, _, temperature = room.run(tile, x, 2)
        assert np.array_equal(codes, steady.run(tile, x, 2)[0])  # the room draws from a stream of its own
        temperatures.append(temperature)
    assert np.std(temperatures) == pytest.approx(3.0, rel=0.15) and steady.temperature == 25.0


def test_card_records_drift_with_time_at_a_steady_temperature(tmp_path) -> None:  # noqa: ANN001
    result, path = _calibrated(tmp_path, "offset_drift_per_s = 0.5\nsigma_add_drift_per_s = 5\n")
    drift = result.profile.noise_card().drift
    assert drift is not None and drift.shown_in_time and drift.span == 0 and drift.duration > 0
    assert drift.offset_per_second == pytest.approx(0.5, rel=0.1)
    assert drift.offset_per_second > 10 * drift.offset_per_second_se
    # relative to σa at the run's middle, a little after power-up: 5 / (1 + 5 t) < 5, within a fit through the ADC
    assert 3.0 < drift.sigma_add_per_second < 7.0 and drift.sigma_add_per_second > 5 * drift.sigma_add_per_second_se
    runs = len(np.unique(result.measurement.order[0]))
    assert drift.dof == runs - 2  # intercept and the time slope (the temperature never moved)
    again = read_profile(write_profile(result.profile, tmp_path / "profile.toml")).noise_card().drift
    assert again == drift
    assert drift.at(elapsed=2.0) == pytest.approx((2.0 * drift.offset_per_second,
                                                   1 + 2.0 * drift.sigma_add_per_second))


def test_heating_with_use_is_fitted_on_temperature_alone(tmp_path) -> None:  # noqa: ANN001
    result, _ = _calibrated(tmp_path, "heating = 0.3\noffset_drift = 0.002\noffset_drift_per_s = 0.5\n")
    drift = result.profile.noise_card().drift
    assert drift is not None and drift.offset_per_second == 0.0 == drift.offset_per_second_se  # collinear
    assert drift.offset_per_kelvin > 0.002  # the time drift shows up per kelvin: the run cannot tell them apart


def test_a_card_written_before_time_drift_reads_with_none(tmp_path) -> None:  # noqa: ANN001
    result, _ = _calibrated(tmp_path, "heating = 0.3\noffset_drift = 0.002\n")
    data = result.profile.to_dict()
    for key in ("duration", "offset_per_second", "offset_per_second_se", "sigma_add_per_second",
                "sigma_add_per_second_se", "dof", "middle", "uptime", "correlation"):
        del data["card"]["drift"][key]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data))
    drift = read_profile(path).noise_card().drift
    assert drift is not None and drift.offset_per_second == 0.0 and drift.duration == 0.0 and not drift.shown_in_time
    assert drift.dof == 0 and drift.critical() == pytest.approx(DRIFT_T)  # unknown dof: the normal threshold
    assert drift.uptime == 0.0 and drift.middle == 0.0 and drift.correlation == 0.0  # half of a duration of 0
    data["card"]["drift"]["dof"] = 2.5
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="card.drift.dof must be an integer ≥ 0"):
        read_profile(path)
    data["card"]["drift"]["dof"] = 8
    data["card"]["drift"]["correlation"] = -1.5
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"card.drift.correlation must be within \[-1, 1\]"):
        read_profile(path)
    data["card"]["drift"]["correlation"] = 0.0
    data["card"]["drift"]["offset_per_second_se"] = -1.0
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="card.drift.offset_per_second_se must be ≥ 0"):
        read_profile(path)


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_profile_v2_round_trips_its_card(tmp_path, suffix: str) -> None:  # noqa: ANN001
    result, _ = _calibrated(tmp_path)
    path = write_profile(result.profile, tmp_path / f"profile{suffix}")
    again = read_profile(path)
    assert again.version == 2
    assert again.noise_card() == result.profile.noise_card()


def test_version_1_profile_reads_with_a_card_from_pooled_values(tmp_path) -> None:  # noqa: ANN001
    result, _ = _calibrated(tmp_path)
    data = result.profile.to_dict()
    data["version"] = 1
    del data["card"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data))
    card = read_profile(path).noise_card()
    assert card.sigma_add.shrunk == (result.profile.sigma_add,) * 64
    assert card.gain == tuple(result.profile.estimates["gain"]["values"])


def test_corrupt_card_is_one_line_naming_the_fix(tmp_path) -> None:  # noqa: ANN001
    result, _ = _calibrated(tmp_path)
    data = result.profile.to_dict()
    data["card"]["sigma_add"]["shrunk"] = data["card"]["sigma_add"]["shrunk"][:3]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="card.sigma_add.shrunk must list 64 numbers.*calibrate again"):
        read_profile(path)
    data["card"] = {"cols": 2, "gain": [1.0, -1.0]}
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="calibrate again"):
        read_profile(path)


def test_an_emulated_clock_makes_drift_the_same_on_any_host(tmp_path) -> None:  # noqa: ANN001
    array = AnalogArray(EmulatorConfig(sigma_add=0.05, seed=4, seconds_per_vector=0.001))
    array.run(np.ones((16, 4), dtype=np.int16), np.ones((8, 16), dtype=np.int16), 5)
    assert array.uptime == pytest.approx(0.04)  # 40 vectors, whatever the host's speed
    with pytest.raises(ConfigError, match="seconds_per_vector"):
        EmulatorConfig(seconds_per_vector=-1.0)
    drifting = "offset_drift_per_s = 0.5\nsigma_add_drift_per_s = 5\n"
    first, _ = _calibrated(tmp_path, drifting)
    again, _ = _calibrated(tmp_path, drifting)
    assert first.profile.noise_card().drift == again.profile.noise_card().drift


def test_drift_is_timed_on_the_devices_clock_where_it_ticks(tmp_path) -> None:  # noqa: ANN001
    result, _ = _calibrated(tmp_path, "offset_drift_per_s = 0.5\n")
    measurement = result.measurement
    runs = np.unique(measurement.order[0])
    assert run_seconds(measurement, runs) == pytest.approx(measurement.clock[runs] - measurement.clock[0])
    coarse = np.floor(measurement.clock * 100) / 100  # a device clock ticking in 10 ms steps
    assert len(np.unique(coarse)) < len(coarse)
    for told in (np.zeros_like(measurement.clock), measurement.clock[::-1], coarse):  # no clock; a restart mid-run
        assert np.array_equal(run_seconds(replace(measurement, clock=told), runs), measurement.times[runs])
