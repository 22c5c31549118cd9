"""Walking Noise results: fit μ per site from a store, write ``mu.json``, read a walk folder back.

Output folder layout::

    OUT/results.sqlite   every point (resumable; rerun the same command to continue)
    OUT/mu.json          per-site midpoint μ with 95 % interval, fit status (latest experiment)
    OUT/plots/           written by `hil report`
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hil.errors import ConfigError
from hil.validation import check_int, check_table
from hil.walking.curve import Scale
from hil.walking.fit import CurveFit, fit_midpoint, summarize_repeats
from hil.walking.records import PointFailure
from hil.walking.store import ResultStore
from hil.walking.sweep import GLOBAL

STORE_NAME = "results.sqlite"
MU_NAME = "mu.json"


@dataclass(frozen=True)
class SiteFit:
    """The fitted accuracy-vs-σ curve of one site (or the global sweep)."""

    site: str
    sigmas: tuple[float, ...]
    mean: tuple[float, ...]
    sem: tuple[float, ...]
    fit: CurveFit
    sigma_mul: float | None = None  # the fixed σm of a row of a σa × σm grid

    @property
    def label(self) -> str:
        """Site name, with the σm of its row for σa × σm grids."""
        return self.site if self.sigma_mul is None else f"{self.site} σm={self.sigma_mul:g}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"site": self.site, "sigma_mul": self.sigma_mul, "sigmas": list(self.sigmas), "mean": list(self.mean),
                "sem": list(self.sem), **self.fit.to_dict()}


@dataclass(frozen=True)
class WalkReport:
    """Per-site fits of one experiment."""

    experiment: str
    config: dict[str, Any]
    sites: tuple[SiteFit, ...]
    failed: tuple[PointFailure, ...] = ()
    """Points that failed on every try and have not succeeded since (fits leave them out; a rerun retries)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the content of ``mu.json``; ``failed`` only when some point failed)."""
        data = {"experiment": self.experiment, "config": self.config, "sites": [s.to_dict() for s in self.sites]}
        if self.failed:
            data["failed"] = [{"site": f.key.site, "sigma_add": f.key.sigma_add, "sigma_mul": f.key.sigma_mul,
                               "repeat": f.key.repeat, "error": f.error, "attempts": f.attempts}
                              for f in self.failed]
        return data


def file_digest(path: Path) -> str:
    """First 16 hex digits of the SHA-256 of a file (identifies the walked weights)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def open_store(out: str | os.PathLike[str]) -> ResultStore:
    """The results store of walk folder ``out`` (created; a file in its place is an error)."""
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--out {folder} is a file; choose a directory")
    folder.mkdir(parents=True, exist_ok=True)
    return ResultStore(folder / STORE_NAME)


def experiment_sizes(config: Mapping[str, object]) -> tuple[int, int | None]:
    """(number of classes, test samples per point or None) recorded in a stored experiment's config.

    Raises:
        ConfigError: The store holds values of the wrong kind (it is a file a user may receive).
    """
    classes = check_int(config.get("num_classes") or 10, "the store's num_classes", low=2)
    samples = config.get("test_samples")
    return classes, None if samples is None else check_int(samples, "the store's test_samples", low=1)


def fit_experiment(store: ResultStore, experiment: str) -> WalkReport:
    """Fit μ for every site of ``experiment`` from its stored points (sites in first-recorded order)."""
    config = store.config(experiment)
    sweep = check_table(config.get("sweep", {}), f"experiment {experiment}: sweep")
    noise = sweep.get("noise", "add")
    scale: Scale = "linear" if noise == "mul" else "log"
    num_classes, n_samples = experiment_sizes(config)
    two_dimensional = bool(sweep.get("mul_sigmas"))
    by_site: dict[tuple[str, float | None], list[tuple[float, float]]] = {}
    for result in store.results(experiment):
        sigma = result.key.sigma_mul if noise == "mul" else result.key.sigma_add
        row = result.key.sigma_mul if two_dimensional else None
        by_site.setdefault((result.key.site, row), []).append((sigma, result.accuracy))
    fits = []
    for (site, row), rows in by_site.items():
        sigmas, mean, sem = summarize_repeats([r[0] for r in rows], [r[1] for r in rows])
        fit = fit_midpoint(sigmas, mean, sem, num_classes=num_classes, scale=scale, n_samples=n_samples)
        fits.append(SiteFit(site, tuple(map(float, sigmas)), tuple(map(float, mean)), tuple(map(float, sem)), fit,
                            row))
    fits.sort(key=lambda f: (f.site == GLOBAL, int(f.site.split(":")[0]) if f.site[0].isdigit() else 0,
                             f.sigma_mul or 0.0))
    return WalkReport(experiment, config, tuple(fits), tuple(store.failures(experiment)))


def write_mu(report: WalkReport, out: str | os.PathLike[str]) -> Path:
    """Write ``OUT/mu.json`` atomically."""
    path = Path(out) / MU_NAME
    temp = path.with_suffix(".json.tmp")
    temp.write_text(json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n")
    os.replace(temp, path)
    return path


def load_report(out: str | os.PathLike[str], experiment: str | None = None) -> WalkReport:
    """Re-fit an experiment (default: the most recent) from ``OUT/results.sqlite``.

    Raises:
        ConfigError: No results store or no experiments in it.
    """
    path = Path(out) / STORE_NAME
    if not path.is_file():
        raise ConfigError(f"no Walking Noise results in {out} (expected {path}); run hil walk --out {out} first")
    with ResultStore(path, read_only=True) as store:
        experiments = store.experiments()
        if not experiments:
            raise ConfigError(f"{path} holds no experiments; run hil walk --out {out} first")
        chosen = experiment or str(experiments[-1]["id"])
        if chosen not in {str(e["id"]) for e in experiments}:
            ids = ", ".join(str(e["id"]) for e in experiments)
            raise ConfigError(f"no experiment {chosen!r} in {path}; experiments: {ids}")
        return fit_experiment(store, chosen)
