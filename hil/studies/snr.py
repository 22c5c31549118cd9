"""The SNR walk: Walking Noise on a chip whose noise cannot be turned up.

One layer at a time runs on the hardware (`PlacesLayers`), the rest digitally and exactly, with its
input range attenuated by k (`AttenuatesInputs`): each input vector uses 1/k of the DAC codes and the
result is multiplied by k digitally, so the chip's additive noise grows k-fold relative to the signal.
Sweeping k on a log grid gives accuracy vs effective σ per layer, and the same logistic fit as a
``sim`` walk gives μ in the same units — network units at the layer's output:

    σ_eff(k) = k · √(σ_native² + σ_DAC²),
    σ_native = √(σa² + Δ²/12) · s · t · √tiles     (the card's σa and ADC step; RMS weight and input scales),
    σ_DAC    = t / dac_max · ‖W_c‖ / √12           (input rounding; it grows with k as well).

Multiplicative noise is relative and does not change with k; it stays in the curve as it is on the
chip. The clean digital accuracy anchors σ = 0. Points are stored as they finish (resume), and a
budget is checked on the first point as for the placement walk.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from hil.backends.base import AttenuatesInputs, check_attenuation
from hil.errors import ConfigError
from hil.noisy_model import NoisyModel
from hil.seeding import derive_seed
from hil.studies.engine import Outcome, ProgressCallback
from hil.studies.placement import PlacementStudy, run_within_budget
from hil.walking.curve import CurveFit
from hil.walking.fit import fit_midpoint, summarize_repeats
from hil.walking.records import PointKey, PointResult

DEFAULT_ATTENUATIONS = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0)
"""k from the full DAC range to 1/32 of it (4 of 127 codes of an 8-bit DAC at the top)."""


@dataclass(frozen=True)
class SnrPoint:
    """One draw of one layer on the hardware at input attenuation k."""

    layer: str
    index: int
    attenuation: float
    draw: int

    def seed(self, base: int) -> int:
        """Seed of this point's draws (from the point alone)."""
        return derive_seed(base, "snr", self.index, round(self.attenuation * 1000), self.draw)


@dataclass(frozen=True)
class SiteSigma:
    """A layer's noise in network units at k = 1.

    Attributes:
        native: The chip's additive noise and ADC rounding at the layer's output.
        dac: The input DAC rounding at the layer's output.
    """

    native: float
    dac: float

    @property
    def total(self) -> float:
        """σ_eff at k = 1."""
        return math.hypot(self.native, self.dac)


@dataclass(frozen=True)
class LayerSnr:
    """One layer's SNR walk.

    Attributes:
        layer: Site name.
        sigma: Its noise at k = 1.
        curve: (k, σ_eff, mean accuracy, standard error) per attenuation.
        fit: The logistic fit of accuracy vs σ_eff (μ in network units).
    """

    layer: str
    sigma: SiteSigma
    curve: tuple[tuple[float, float, float, float], ...]
    fit: CurveFit

    @property
    def mu_attenuation(self) -> float:
        """The attenuation k at μ (nan without a fit)."""
        return self.fit.mu / self.sigma.total if self.fit.status == "ok" else math.nan

    def to_dict(self) -> dict[str, Any]:
        """Plain form."""
        return {"layer": self.layer, "sigma_native": self.sigma.native, "sigma_dac": self.sigma.dac,
                "mu": self.fit.mu if self.fit.status == "ok" else None, "mu_attenuation":
                    None if math.isnan(self.mu_attenuation) else self.mu_attenuation,
                "curve": [{"attenuation": k, "sigma": s, "accuracy": a, "sem": e} for k, s, a, e in self.curve],
                "fit": self.fit.to_dict()}


@dataclass(frozen=True)
class SnrReport:
    """An SNR walk: the clean accuracy and one row per layer."""

    backend: str
    clean: float
    layers: tuple[LayerSnr, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain form (``snr.json``)."""
        return {"backend": self.backend, "clean": self.clean, "layers": [row.to_dict() for row in self.layers]}


class SnrStudy(PlacementStudy):
    """The SNR walk as a `Study` of `SnrPoint` (points one by one over one hardware link).

    Args:
        noisy: The model wrapped on a backend that places layers and attenuates inputs.
        inputs: Test inputs.
        labels: Test labels.
        attenuations: The k grid (each ≥ 1).
        seed: Base seed of the draws.
        batch_size: Test samples per forward.
    """

    def __init__(self, noisy: NoisyModel, inputs: torch.Tensor, labels: torch.Tensor,
                 attenuations: Sequence[float] = DEFAULT_ATTENUATIONS, *, seed: int = 0,
                 batch_size: int = 1000) -> None:
        super().__init__(noisy, inputs, labels, seed=seed, batch_size=batch_size)
        if not isinstance(self.backend, AttenuatesInputs):
            raise ConfigError(f"an SNR walk needs a backend that attenuates its inputs (device:…, twin:…), "
                              f"not {self.backend.name!r}")
        grid = sorted({check_attenuation(k) for k in attenuations})
        if len(grid) < 4:
            raise ConfigError(f"an SNR walk needs ≥ 4 distinct attenuations to fit a curve, got {len(grid)}; "
                              f"give e.g. --attenuations log:1:32:9")
        self.attenuations = tuple(grid)
        self.points_per_draw = len(self.layers) * len(grid)

    def snr_points(self, draws: int) -> list[SnrPoint]:
        """Every layer at every k, ``draws`` times."""
        return [SnrPoint(layer, index, k, draw) for layer, index in self.matmul for k in self.attenuations
                for draw in range(draws)]

    def key(self, point: Any) -> PointKey:
        """Stored as (layer, k, σm 0, draw)."""
        return PointKey(point.layer, point.attenuation, 0.0, point.draw)

    def evaluate(self, unit: list[Any]) -> list[Outcome]:
        """Accuracy and loss of each point: its layer on the hardware at its attenuation."""
        import time

        outcomes = []
        for point in unit:
            started = time.perf_counter()
            self.backend.place(frozenset({point.layer}))
            self.backend.attenuate(point.attenuation)
            self.backend.reseed(point.seed(self.seed))
            try:
                accuracy, loss = self._accuracy()
            finally:
                self.backend.attenuate(1.0)
            outcomes.append(Outcome(accuracy, loss, time.perf_counter() - started))
        return outcomes


def site_sigmas(model: torch.nn.Module, inputs: torch.Tensor, card: Any, sites: Sequence[Any]) -> dict[str, SiteSigma]:
    """Each Linear/Conv site's noise at k = 1 in network units (module docstring), from ``card``."""
    from hil.calibration.scales import matmul_scales

    scales = matmul_scales(model, inputs)
    device_sigma = math.sqrt(card.sigma_add.pooled ** 2 + card.quantisation_variance)
    dac_max = 2 ** (card.dac_bits - 1) - 1
    found = {}
    for site in sites:
        if not site.is_matmul or site.path not in scales:
            continue
        weight_scale, input_scale, fan_in = scales[site.path]
        parameter = cast(torch.Tensor, model.get_submodule(site.path).weight)
        weight = parameter.detach().reshape(-1, fan_in)
        column_norm = float(weight.pow(2).sum(dim=1).mean().sqrt())
        tiles = max(1, math.ceil(fan_in / card.rows))
        found[site.name] = SiteSigma(native=device_sigma * weight_scale * input_scale * math.sqrt(tiles),
                                     dac=input_scale / dac_max * column_norm / math.sqrt(12))
    return found


def fit_snr_curve(clean: float, effective: Sequence[float] | np.ndarray, means: Sequence[float] | np.ndarray,
                  sems: Sequence[float] | np.ndarray, *, num_classes: int, n_samples: int) -> CurveFit:
    """The logistic fit of a layer's accuracy vs σ_eff, the clean digital accuracy anchoring σ = 0."""
    return fit_midpoint(np.concatenate([[0.0], effective]), np.concatenate([[clean], means]),
                        np.concatenate([[0.0], sems]), num_classes=num_classes, n_samples=n_samples)


def summarise_snr(results: Sequence[PointResult], sigmas: dict[str, SiteSigma], layers: Sequence[str],
                  clean: float, backend: str, num_classes: int, n_samples: int) -> SnrReport:
    """One fitted row per layer from stored points."""
    rows = []
    for layer in layers:
        mine = [r for r in results if r.key.site == layer]
        if not mine:
            continue
        sigma = sigmas[layer]
        ks, means, sems = summarize_repeats([r.key.sigma_add for r in mine], [r.accuracy for r in mine])
        effective = ks * sigma.total
        fit = fit_snr_curve(clean, effective, means, sems, num_classes=num_classes, n_samples=n_samples)
        curve = tuple((float(k), float(s), float(a), float(e)) for k, s, a, e in zip(ks, effective, means, sems,
                                                                                    strict=True))
        rows.append(LayerSnr(layer, sigma, curve, fit))
    return SnrReport(backend, clean, tuple(rows))


def snr_walk_checkpoint(checkpoint: str | os.PathLike[str], backend: str | Any, out: str | os.PathLike[str], *,
                        profile: str | os.PathLike[str] | None = None,
                        attenuations: Sequence[float] = DEFAULT_ATTENUATIONS, draws: int = 3, seed: int = 0,
                        budget_s: float | None = None, data_dir: str | None = None,
                        progress: Any = None) -> SnrReport:
    """The SNR walk of ``checkpoint`` on ``backend`` into ``OUT/results.sqlite`` and ``OUT/snr.json``.

    ``profile`` is the calibration whose card gives σ in network units; by default the one the spec
    names (``device:…#calibration=P`` or ``twin:P``).

    Raises:
        ConfigError: A backend without placement or attenuation, no profile, a bad grid, ``draws`` < 2,
            or a budget the walk does not fit.
        HilError: Bad checkpoint or profile, unreachable device.
    """
    import json

    from hil.backends.spec import parse_backend_spec
    from hil.calibration.profile import read_profile
    from hil.checkpoint import WEIGHTS
    from hil.evaluation import accuracy
    from hil.noisy_model import wrap
    from hil.runs import open_run
    from hil.walking.report import file_digest, open_store

    if draws < 2:
        raise ConfigError(f"--repeats must be ≥ 2 for an SNR walk (each k needs an interval), got {draws}")
    chosen = parse_backend_spec(backend) if isinstance(backend, str) else backend
    label = chosen.text if isinstance(backend, str) else str(backend.name)
    profile = profile or _profile_of(chosen)
    card = read_profile(profile).noise_card()
    with open_run(checkpoint, chosen, data_dir=data_dir) as run:
        study = SnrStudy(run.noisy, run.data.test_x, run.data.test_y, attenuations, seed=seed)
        model = run.checkpoint.model
        clean = accuracy(wrap(model, "sim"), run.data.test_x, run.data.test_y)
        sigmas = site_sigmas(model, run.data.train_x[:512], card, run.noisy.sites)
        config = {"kind": "snr", "checkpoint": str(Path(checkpoint).resolve()),
                  "weights": file_digest(Path(checkpoint) / WEIGHTS), "dataset": run.data.name,
                  "backend": label, "profile": file_digest(Path(profile)), "draws": draws, "seed": seed,
                  "attenuations": list(study.attenuations)}
        points = study.snr_points(draws)
        with open_store(out) as store:
            experiment = store.register_experiment(config, name=f"snr {Path(checkpoint).name}")
            callback: ProgressCallback | None = progress(len(points)) if progress else None
            run_within_budget(study, store, experiment, points, budget_s, callback)
            report = summarise_snr(store.results(experiment), sigmas, study.layers, clean, label,
                                   run.data.num_classes, len(run.data.test_y))
    (Path(out) / "snr.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return report


def _profile_of(backend: Any) -> str:
    from hil.backends.spec import BackendSpec

    if isinstance(backend, BackendSpec):
        if backend.name == "twin" and backend.address:
            return backend.address
        named = backend.option("calibration") if backend.name == "device" else None
        if named is not None:
            return str(named)
    raise ConfigError("an SNR walk gives σ in network units from a calibration profile: give --profile PROFILE "
                      "(or device:…#calibration=PROFILE)")
