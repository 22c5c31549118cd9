"""`calibrate` and `check`: measure a device, estimate, diagnose, and write or test a profile."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hil.calibration.card import build_card
from hil.calibration.design import CalibrationDesign, realise
from hil.calibration.diagnostics import Diagnostic, run_all
from hil.calibration.estimate import CalibrationFit, Estimate, estimate, fisher, gamma_weights, variance_design
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
    """One parameter re-measured against the profile."""

    name: str
    profile: float
    measured: float
    z: float
    ok: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain form."""
        return {"name": self.name, "profile": self.profile, "measured": self.measured, "z": self.z, "ok": self.ok}


def _compare(name: str, old: dict[str, Any], new: Estimate, threshold: float) -> CheckItem:
    se = math.hypot(float(old.get("se", 0.0)), new.se)
    z = (new.value - float(old["value"])) / se if se > 0 else 0.0
    return CheckItem(name, float(old["value"]), new.value, z, abs(z) <= threshold)


def check(address: str, profile: CalibrationProfile, *, samples: int = 2000, threshold: float = 4.0,
          timeout: float = 2.0, emulator_config: str | None = None) -> tuple[list[CheckItem], Calibration]:
    """Re-measure a short design and test whether the device still matches ``profile``.

    σa, σm: |new − old| / √(se_old² + se_new²) ≤ ``threshold``. Gains and offsets: the fraction of
    columns outside that bound must stay below 1 % (plus what chance allows for a few columns).
    """
    fresh = calibrate(address, CalibrationDesign(samples=samples), timeout=timeout, emulator_config=emulator_config)
    items = [_compare("sigma_add", profile.estimates["sigma_add"], fresh.fit.sigma_add, threshold),
             _compare("sigma_mul", profile.estimates["sigma_mul"], fresh.fit.sigma_mul, threshold)]
    for name, new, new_se in (("gain", fresh.fit.columns.gain, fresh.fit.columns.gain_se),
                              ("offset", fresh.fit.columns.offset, fresh.fit.columns.offset_se)):
        old = np.asarray(profile.estimates[name]["values"], dtype=float)
        old_se = np.asarray(profile.estimates[name]["se"], dtype=float)
        if len(old) != len(new):
            raise ConfigError(f"the profile has {len(old)} columns but the device has {len(new)}: "
                              f"it is another device; calibrate it")
        z = (new - old) / np.hypot(old_se, new_se)
        outside = float(np.mean(np.abs(z) > threshold))
        items.append(CheckItem(f"{name} (columns outside)", 0.0, outside, float(np.max(np.abs(z))),
                               outside <= 0.01 + 3 / len(z)))
    return items, fresh


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
