"""`calibrate` and `check`: measure a device, estimate, diagnose, and write or test a profile."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from hil.calibration.card import Drift, NoiseCard, build_card, fit_drift, run_middle, run_temperature
from hil.calibration.design import CalibrationDesign, realise
from hil.calibration.diagnostics import Diagnostic, run_all
from hil.calibration.estimate import CalibrationFit, estimate, fisher, gamma_weights, variance_design
from hil.calibration.measure import Measurement, measure
from hil.calibration.profile import CalibrationProfile, now
from hil.errors import ConfigError


def open_calibration_device(address: str, *, timeout: float = 2.0, emulator_config: str | None = None) -> Any:
    """A driver for ``serial:…``, ``tcp:…``, ``visa:…``, ``NAME:…`` or ``sim`` (an in-process emulator).

    Raises:
        ConfigError: Bad address or emulator config.
        DeviceError: The device cannot be reached.
    """
    if address == "sim":
        from hil.backends.device.driver import AmvmDriver
        from hil.backends.device.emulator import DeviceEmulator, EmulatorConfig, LoopbackTransport

        config = EmulatorConfig.from_toml(emulator_config) if emulator_config else EmulatorConfig()
        return AmvmDriver(LoopbackTransport(DeviceEmulator(config)), timeout=timeout)
    if emulator_config:
        raise ConfigError("--config describes the in-process emulator; it goes with --device sim only")
    from hil.backends.device.backend import open_driver

    return open_driver(address, timeout=timeout)


def ols_efficiency(fit: CalibrationFit) -> tuple[float, float]:
    """Asymptotic efficiency (CRLB / variance) of the OLS variance regression for (σa², σm²)."""
    u, dof = fit.regressors.ravel(), fit.dof.ravel()
    design = variance_design(u)
    bread = np.linalg.inv(design.T @ design)
    meat = design.T @ (design / gamma_weights(u, dof, fit.variance.a, fit.variance.b)[:, None])
    sandwich = bread @ meat @ bread
    crlb = np.linalg.inv(fisher(u, dof, fit.variance.a, fit.variance.b))
    return float(crlb[0, 0] / sandwich[0, 0]), float(crlb[1, 1] / sandwich[1, 1])


@dataclass(frozen=True)
class Calibration:
    """A finished calibration."""

    measurement: Measurement
    fit: CalibrationFit
    diagnostics: list[Diagnostic]
    profile: CalibrationProfile


def _summary(values: np.ndarray, errors: np.ndarray) -> dict[str, float]:
    return {"mean": float(values.mean()), "min": float(values.min()), "max": float(values.max()),
            "median_se": float(np.median(errors))}


def build_profile(measurement: Measurement, fit: CalibrationFit, diagnostics: list[Diagnostic], address: str,
                  capabilities: dict[str, Any]) -> CalibrationProfile:
    """The profile of a calibration."""
    ols_a, ols_b = ols_efficiency(fit)
    columns = fit.columns
    estimates = {
        "sigma_add": {**fit.sigma_add.to_dict(), "crlb_se": fit.crlb_sigma_add, "ols": fit.ols_sigma_add,
                      "ols_efficiency": ols_a},
        "sigma_mul": {**fit.sigma_mul.to_dict(), "crlb_se": fit.crlb_sigma_mul, "ols": fit.ols_sigma_mul,
                      "ols_efficiency": ols_b},
        "quantisation_variance": fit.quantisation,
        "gain": {"values": columns.gain.tolist(), "se": columns.gain_se.tolist(),
                 **_summary(columns.gain, columns.gain_se)},
        "offset": {"values": columns.offset.tolist(), "se": columns.offset_se.tolist(),
                   **_summary(columns.offset, columns.offset_se)},
        "units": "device dot-product units (codes scaled to ±1); sigma_mul relative",
    }
    order = "mul-first"
    for item in diagnostics:
        if item.name == "noise order" and item.detail.startswith("add-first"):
            order = "add-first"
    design = {**measurement.plan.design.to_dict(),
              "levels": [{"code": lv.code, "z": lv.z, "samples": lv.samples} for lv in measurement.plan.levels]}
    card = build_card(measurement, fit, capabilities, order)
    return CalibrationProfile(device={"identity": measurement.identity, "address": address,
                                      "capabilities": capabilities},
                              estimates=estimates, diagnostics=[d.to_dict() for d in diagnostics], design=design,
                              created=now(), seconds=measurement.seconds, order=order, card=card.to_dict())


def calibrate(address: str, design: CalibrationDesign, *, budget_s: float | None = None, timeout: float = 2.0,
              emulator_config: str | None = None,
              progress: Callable[[int, int], None] | None = None) -> Calibration:
    """Measure ``design`` on the device at ``address`` and estimate everything.

    Raises:
        HilError: Unreachable device, design the device cannot realise, budget too small.
    """
    driver = open_calibration_device(address, timeout=timeout, emulator_config=emulator_config)
    try:
        caps = driver.capabilities()
        plan = realise(design, caps)
        measurement = measure(driver, plan, budget_s=budget_s, progress=progress)
    finally:
        driver.close()
    fit = estimate(measurement)
    diagnostics = run_all(measurement, fit)
    profile = build_profile(measurement, fit, diagnostics, address, caps.to_dict())
    return Calibration(measurement, fit, diagnostics, profile)


@dataclass(frozen=True)
class CheckItem:
    """One parameter re-measured against the profile.

    Attributes:
        name: What was compared.
        profile: The profile's value (moved to the check's temperature by the card's drift, see ``note``).
        measured: The value now.
        z: Their difference over its standard error (the largest |z| for per-column items).
        ok: Within the check's bound.
        note: How the profile's value was carried to now, or "" when it was not.
    """

    name: str
    profile: float
    measured: float
    z: float
    ok: bool
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain form."""
        return {"name": self.name, "profile": self.profile, "measured": self.measured, "z": self.z, "ok": self.ok,
                "note": self.note}


@dataclass(frozen=True)
class _Moved:
    """What the card's drift predicts for the check's run: offset shift, σa factor, their SEs and why.

    Attributes:
        kelvin: The check's temperature less the card's (0: not moved in temperature).
        seconds: How much later the check's run is than the card's, s (0: not moved in time).
        shift: Offset shift, with ``shift_se``.
        shift_se: Its SE.
        factor: σa factor, with ``factor_se``.
        factor_se: Its SE (the per-kelvin and per-second slopes' SEs combined with their correlation).
        note: What was moved, or what was not and why.
    """

    kelvin: float = 0.0
    seconds: float = 0.0
    shift: float = 0.0
    shift_se: float = 0.0
    factor: float = 1.0
    factor_se: float = 0.0
    note: str = ""

    @classmethod
    def of(cls, drift: Drift | None, temperature: float, middle: float, uptime: float) -> _Moved:
        """From the card's drift to the check's run at ``temperature``, its ``middle`` and device ``uptime``.

        Time is counted on the device's clock when both runs have one (a device up for an hour longer has
        drifted an hour longer), else in seconds into each run. A straight line fitted over a run is carried
        at most one run length (``drift.duration``) from its middle; further, time drift is not moved and
        the note says so.
        """
        if drift is None:
            return cls()
        kelvin = temperature - drift.reference if drift.span > 0 and math.isfinite(temperature) else 0.0
        seconds, notes = 0.0, []
        if drift.duration > 0 and (drift.offset_per_second_se > 0 or drift.sigma_add_per_second_se > 0):
            on_clock = drift.uptime > 0 and uptime > 0
            later = uptime - drift.uptime if on_clock else middle - drift.middle
            if abs(later) <= drift.duration:
                seconds = later
            else:
                notes.append(f"time drift not carried {later:+.3g} s (the card's line spans {drift.duration:.3g} s)")
        shift, factor = drift.at(temperature=drift.reference + kelvin, elapsed=seconds)
        moved = [f"{value:+.2g} {unit}" for value, unit in ((kelvin, "K"), (seconds, "s")) if value]
        if moved:
            notes.insert(0, f"profile moved {' '.join(moved)} by the card's drift")
        shift_se, factor_se = drift.at_se(kelvin, seconds)
        return cls(kelvin, seconds, shift, shift_se, factor, factor_se, "; ".join(notes))

    @property
    def any(self) -> bool:
        """True when the profile was moved at all."""
        return bool(self.kelvin or self.seconds)


def _at_middle(value: float, se: float, card: NoiseCard) -> tuple[float, float]:
    """σa (value, se) at the run's middle: the card's where it records drift (a run-pooled σa reads high
    by what the drift spread over the run), the pooled estimate otherwise; the SE scaled alike."""
    if card.drift is None or not value > 0:
        return value, se
    return card.sigma_add.pooled, se * card.sigma_add.pooled / value


def _compare(name: str, old: tuple[float, float], new: tuple[float, float], threshold: float,
             moved: _Moved = _Moved()) -> CheckItem:
    """(value, se) now against the profile's, moved by ``moved`` (σa's drift factor; identity otherwise)."""
    (value, old_se), (now, new_se) = old, new
    expected = value * moved.factor
    se = math.hypot(old_se * moved.factor, value * moved.factor_se, new_se)
    z = (now - expected) / se if se > 0 else 0.0
    return CheckItem(name, expected, now, z, abs(z) <= threshold, moved.note)


_DRIFT_SLOPES = (("offset per K", "offset_per_kelvin", "offset_se"),
                 ("σa per K", "sigma_add_per_kelvin", "sigma_add_se"),
                 ("offset per s", "offset_per_second", "offset_per_second_se"),
                 ("σa per s", "sigma_add_per_second", "sigma_add_per_second_se"))


def _drift_items(old: Drift | None, fresh: Calibration, threshold: float, moved: _Moved = _Moved()
                 ) -> list[CheckItem]:
    """The card's drift slopes against the fresh run's: a drift that appeared, went away or changed rate.

    A slope the fresh run could not measure (its temperature held still) is left out. The bound is the
    t quantile of the normal tail beyond ``threshold``, with both fits' residual dof (their few runs make
    the SEs rough: 16 dof give 5.3 for a threshold of 4). A card without drift counts as slopes of 0.
    σa's slopes are relative to σa, so where ``moved`` carried the profile's σa by a factor the card's
    relative slopes are divided by it (the same line, read against σa at the check's run).
    """
    card = fresh.profile.noise_card()
    new = card.drift  # recorded: the fit itself; else fitted at the card's σa², which is then the run's own
    if new is None:
        fitted = fit_drift(fresh.measurement, fresh.fit, np.square(np.asarray(card.sigma_add.raw)))
        if fitted is None:
            return []
        new = fitted.drift
    pooled_dof = new.dof + (old.dof if old is not None and new.dof else 0)  # both fits' residuals count
    bound = max(threshold, replace(new, dof=pooled_dof).critical(float(stats.norm.sf(threshold))))
    items = []
    for label, key, se_key in _DRIFT_SLOPES:
        new_value, new_se = getattr(new, key), getattr(new, se_key)
        if new_se <= 0:
            continue
        old_value, old_se = (getattr(old, key), getattr(old, se_key)) if old is not None else (0.0, 0.0)
        note = ""
        if key.startswith("sigma_add") and moved.any:
            factor = max(moved.factor, 1e-6)
            old_value, old_se = old_value / factor, old_se / factor
            note = "relative to σa at the check's run"
        z = (new_value - old_value) / math.hypot(old_se, new_se)
        items.append(CheckItem(f"drift {label}", old_value, new_value, z, abs(z) <= bound, note))
    return items


def check(address: str, profile: CalibrationProfile, *, samples: int = 2000, threshold: float = 4.0,
          timeout: float = 2.0, emulator_config: str | None = None) -> tuple[list[CheckItem], Calibration]:
    """Re-measure a short design and test whether the device still matches ``profile``.

    σa, σm: |new − old| / √(se_old² + se_new²) ≤ ``threshold``. Gains and offsets: the fraction of
    columns outside that bound must stay below 1 % (plus what chance allows for a few columns). Where the
    card has drift with temperature and the device is at another temperature now, the profile's σa and
    offsets are first moved there by the card's slopes (their SEs carried along), so a chip that is only
    warmer, as the card predicts, still matches. Time drift moves them too, by how much later the check's
    run is (on the device's clock when it reports one, else seconds into each run), up to one card run
    length: a check run shorter or longer than the calibration's, on a chip drifting since power-up, still
    matches; hours later it is beyond the card's straight line and not moved (`_Moved`). The drift slopes
    themselves are compared with the fresh run's (`_drift_items`).
    """
    fresh = calibrate(address, CalibrationDesign(samples=samples), timeout=timeout, emulator_config=emulator_config)
    card = profile.noise_card()
    drift = card.drift
    moved = _Moved.of(drift, run_temperature(fresh.measurement), *run_middle(fresh.measurement))
    old_sigma_add, old_sigma_mul = profile.estimates["sigma_add"], profile.estimates["sigma_mul"]
    items = [_compare("sigma_add", _at_middle(float(old_sigma_add["value"]), float(old_sigma_add.get("se", 0.0)), card),
                      _at_middle(fresh.fit.sigma_add.value, fresh.fit.sigma_add.se, fresh.profile.noise_card()),
                      threshold, moved),
             _compare("sigma_mul", (float(old_sigma_mul["value"]), float(old_sigma_mul.get("se", 0.0))),
                      (fresh.fit.sigma_mul.value, fresh.fit.sigma_mul.se), threshold)]
    for name, new, new_se in (("gain", fresh.fit.columns.gain, fresh.fit.columns.gain_se),
                              ("offset", fresh.fit.columns.offset, fresh.fit.columns.offset_se)):
        old = np.asarray(profile.estimates[name]["values"], dtype=float)
        old_se = np.asarray(profile.estimates[name]["se"], dtype=float)
        if len(old) != len(new):
            raise ConfigError(f"the profile has {len(old)} columns but the device has {len(new)}: "
                              f"it is another device; calibrate it")
        if name == "offset" and moved.any:
            old, old_se = old + moved.shift, np.hypot(old_se, moved.shift_se)
        z = (new - old) / np.hypot(old_se, new_se)
        outside = float(np.mean(np.abs(z) > threshold))
        items.append(CheckItem(f"{name} (columns outside)", 0.0, outside, float(np.max(np.abs(z))),
                               outside <= 0.01 + 3 / len(z), moved.note if name == "offset" else ""))
    return items + _drift_items(drift, fresh, threshold, moved), fresh


def default_out(path: str | os.PathLike[str] | None) -> Path:
    """The profile path (default ``profile.toml``)."""
    return Path(path) if path is not None else Path("profile.toml")


TWIN_TOLERANCE = 0.015
"""Twin and device agree when their mean accuracies differ by at most this, or twice the larger spread."""


@dataclass(frozen=True)
class AccuracyCheck:
    """A network on the device, on its twin (``twin:PROFILE``) and on ``sim`` with the Gaussian mapping.

    Attributes:
        device: Accuracy over draws on the device.
        twin: The same on the twin built from the profile's noise card.
        sim: The same on ``sim`` with the profile's pooled σa/σm in network units (`CalibrationProfile.noise_spec`).
        agree: Twin and device agree (within `TWIN_TOLERANCE` or twice the larger spread).
        sim_agree: The Gaussian mapping agrees by the same rule.
    """

    device: Any
    twin: Any
    sim: Any
    agree: bool
    sim_agree: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain form."""
        return {"device": self.device.to_dict(), "twin": self.twin.to_dict(), "sim": self.sim.to_dict(),
                "agree": self.agree, "sim_agree": self.sim_agree}


def agrees(model: Any, device: Any) -> bool:
    """Whether a model's accuracy (`EvaluationResult`) agrees with the device's (see `TWIN_TOLERANCE`)."""
    return abs(model.mean - device.mean) <= max(TWIN_TOLERANCE, 2 * max(model.std, device.std))


def accuracy_check(address: str, profile: CalibrationProfile, checkpoint: str | os.PathLike[str], *,
                   repeats: int = 3, timeout: float = 2.0, emulator_config: str | None = None) -> AccuracyCheck:
    """Test accuracy of ``checkpoint`` on the device, on the profile's twin and on ``sim`` with its noise."""
    from hil.backends.device.backend import DeviceBackend
    from hil.backends.twin import TwinBackend
    from hil.evaluation import evaluate
    from hil.noisy_model import wrap
    from hil.runs import open_run

    device = DeviceBackend(open_calibration_device(address, timeout=timeout, emulator_config=emulator_config),
                           correction=profile.correction())
    with open_run(checkpoint, device) as run:
        spec, _ = profile.noise_spec(run.checkpoint.model, run.data.train_x)
        test_x, test_y = run.data.test_x, run.data.test_y
        on_sim = evaluate(wrap(run.checkpoint.model, "sim", spec), test_x, test_y, repeats=repeats)
        on_twin = evaluate(wrap(run.checkpoint.model, TwinBackend(profile.noise_card())), test_x, test_y,
                           repeats=repeats)
        on_device = evaluate(run.noisy, test_x, test_y, repeats=repeats)
    return AccuracyCheck(on_device, on_twin, on_sim, agrees(on_twin, on_device), agrees(on_sim, on_device))
