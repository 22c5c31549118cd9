"""The sweep engine: evaluate accuracy for every (site, σ, repeat) point of a Walking Noise grid.

A point is the unit of work: it has its own seed (from the sweep seed, site, σ and repeat), so
points can run in any order, be skipped when already stored, or run elsewhere later, and still
give the same numbers.

Inference-only sweeps on a single site use the cached-prefix path: the activations up to the
site are noise-free and the same for every σ and repeat, so each batch runs the prefix once and
the rest of the network once on all (σ, repeat) draws stacked along the batch dimension. The
draws are made exactly as `NoisyModel` would make them for that point (same generator seed,
same operations), so both paths give the same accuracies.
"""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from hil._version import __version__
from hil.backends.base import SiteCall
from hil.backends.gaussian import GaussianBackend
from hil.errors import ConfigError
from hil.noise import NoiseSpec, SiteNoise, check_sigma
from hil.noisy_model import NoisyModel
from hil.seeding import derive_seed
from hil.walking.grid import NOISE_KINDS
from hil.walking.store import PointKey, PointResult, ResultStore

GLOBAL = "global"
MAX_STACKED_ROWS = 8192
"""Rows per stacked forward (batch × draws); bounds memory of the cached-prefix path."""
MAX_STACKED_ELEMENTS = 2**20
"""Elements of the stacked site tensor per forward: beyond a few MB the rest of the network runs
slower per row than the naive loop (caches), so early, wide sites stack fewer draws."""


@dataclass(frozen=True)
class SweepSpec:
    """What a sweep measures.

    Attributes:
        noise: ``add`` (σ is σa), ``mul`` (σ is σm) or ``mixed`` (σa = σ, σm = ratio·σ).
        sigmas: The σ grid.
        sites: ``"all"`` (walk every site), ``"global"`` (σ at all sites at once) or site selectors.
        repeats: Independent noise draws per (site, σ).
        seed: Sweep seed; every point derives its own.
        mixed_ratio: σm / σa for ``mixed``.
        batch_size: Test batch size.
        cached_prefix: Use the cached-prefix path for single-site inference sweeps.
    """

    noise: str = "add"
    sigmas: tuple[float, ...] = field(default_factory=tuple)
    sites: str | tuple[str | int, ...] = "all"
    repeats: int = 5
    seed: int = 0
    mixed_ratio: float = 1.0
    batch_size: int = 250
    cached_prefix: bool = True
    mul_sigmas: tuple[float, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.noise not in NOISE_KINDS:
            raise ConfigError(f"noise must be one of {', '.join(NOISE_KINDS)}, got {self.noise!r}")
        if not self.sigmas:
            raise ConfigError("the σ grid is empty")
        object.__setattr__(self, "sigmas", tuple(check_sigma(s, "σ in the grid") for s in self.sigmas))
        check_sigma(self.mixed_ratio, "mixed ratio")
        object.__setattr__(self, "mul_sigmas", tuple(check_sigma(s, "σm in the grid") for s in self.mul_sigmas))
        if self.mul_sigmas and self.noise != "mixed":
            raise ConfigError("a σa × σm grid (heatmap) needs --noise mixed")
        if isinstance(self.sites, str) and self.sites not in ("all", GLOBAL):
            raise ConfigError(f"sites must be 'all', 'global' or a list of site names, got {self.sites!r}")
        if not isinstance(self.sites, str):
            object.__setattr__(self, "sites", tuple(self.sites))
        for name, minimum in (("repeats", 1), ("batch_size", 1), ("seed", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(f"{name} must be an integer ≥ {minimum}, got {value!r}")

    @property
    def is_global(self) -> bool:
        """True for a global sweep (same σ at all sites)."""
        return self.sites == GLOBAL

    def sigma_pair(self, sigma: float) -> tuple[float, float]:
        """(σa, σm) for grid value ``sigma``."""
        if self.noise == "add":
            return sigma, 0.0
        if self.noise == "mul":
            return 0.0, sigma
        return sigma, self.mixed_ratio * sigma

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (part of the experiment config hash)."""
        data = asdict(self)
        data["sigmas"] = list(self.sigmas)
        data["mul_sigmas"] = list(self.mul_sigmas)
        data["sites"] = self.sites if isinstance(self.sites, str) else list(self.sites)
        return data


@dataclass(frozen=True)
class SweepPoint:
    """One unit of work: accuracy at one site (or globally) for one σ and repeat."""

    site_index: int  # -1 for global
    site: str
    sigma: float
    repeat: int
    sigma_add: float
    sigma_mul: float
    two_dimensional: bool = False  # σa × σm grid point: σm enters the seed too

    def seed(self, base: int) -> int:
        """This point's own seed, derived from the sweep seed ``base``."""
        extra = (self.sigma_mul,) if self.two_dimensional else ()
        return point_seed(base, self.site_index, self.sigma, self.repeat, *extra)

    @property
    def key(self) -> PointKey:
        """The results-store key."""
        return PointKey(self.site, self.sigma_add, self.sigma_mul, self.repeat)


def _bits(value: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", float(value)))[0]


def point_seed(seed: int, site_index: int, sigma: float, repeat: int, *more_sigmas: float) -> int:
    """Seed of one point, from the σ value's bits so grids can be refined without reseeding."""
    return derive_seed(seed, "walk", site_index + 1, _bits(sigma), repeat, *(_bits(v) for v in more_sigmas))


def sweep_points(spec: SweepSpec, site_names: list[str], site_indices: Iterable[int]) -> list[SweepPoint]:
    """All points of ``spec`` in run order (site, σ, repeat)."""
    targets = [(-1, GLOBAL)] if spec.is_global else [(i, site_names[i]) for i in site_indices]
    points = []
    for index, name in targets:
        for sigma in spec.sigmas:
            if spec.mul_sigmas:
                for sigma_mul in spec.mul_sigmas:
                    points.extend(SweepPoint(index, name, sigma, r, sigma, sigma_mul, True)
                                  for r in range(spec.repeats))
                continue
            sigma_add, sigma_mul = spec.sigma_pair(sigma)
            points.extend(SweepPoint(index, name, sigma, r, sigma_add, sigma_mul) for r in range(spec.repeats))
    return points


def point_noise(point: SweepPoint) -> NoiseSpec:
    """The noise spec a point applies (single site, or every site for global points)."""
    if point.site_index < 0:
        return NoiseSpec(sigma_add=point.sigma_add, sigma_mul=point.sigma_mul)
    return NoiseSpec.single(point.site_index, sigma_add=point.sigma_add, sigma_mul=point.sigma_mul)


ProgressCallback = Callable[[int], None]


class InferenceSweep:
    """Inference-only sweep of a trained model on a test set (noise only at evaluation).

    Args:
        noisy: The model wrapped on the ``sim`` backend (a `GaussianBackend`).
        inputs: Test inputs.
        labels: Test labels.
        spec: The sweep.
    """

    def __init__(self, noisy: NoisyModel, inputs: torch.Tensor, labels: torch.Tensor, spec: SweepSpec) -> None:
        if not isinstance(noisy.backend, GaussianBackend):
            raise ConfigError("noise sweeps run on the Gaussian emulator: wrap the model with backend 'sim' or 'gpu'")
        self.noisy = noisy.eval()
        self.inputs = inputs
        self.labels = labels
        self.spec = spec
        names = [s.name for s in noisy.sites]
        if spec.is_global or spec.sites == "all":
            indices = range(len(names))
        else:
            from hil.noise import find_site

            indices = [find_site(noisy.sites, selector) for selector in spec.sites]
        self.points = sweep_points(spec, names, indices)

    def _batches(self) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        device = self.noisy.backend.device
        for start in range(0, len(self.inputs), self.spec.batch_size):
            end = start + self.spec.batch_size
            yield self.inputs[start:end].to(device), self.labels[start:end].to(device)

    def evaluate_naive(self, point: SweepPoint) -> tuple[float, float]:
        """(accuracy, mean loss) of one point with one full noisy forward per batch."""
        self.noisy.set_noise(point_noise(point))
        self.noisy.backend.reseed(point.seed(self.spec.seed))
        correct, loss = 0.0, 0.0
        with torch.no_grad():
            for x, y in self._batches():
                logits = self.noisy(x)
                correct += (logits.argmax(dim=1) == y).sum().item()
                loss += F.cross_entropy(logits, y, reduction="sum").item()
        return correct / len(self.labels), loss / len(self.labels)

    def evaluate_stacked(self, points: list[SweepPoint]) -> list[tuple[float, float]]:
        """(accuracy, mean loss) of single-site points sharing one site, prefix computed once per batch."""
        site = self.noisy.sites[points[0].site_index]
        device = self.noisy.backend.device
        draws = [GaussianBackend(device, p.seed(self.spec.seed)) for p in points]
        calls = [SiteCall(site.index, site.name, site.kind, SiteNoise(p.sigma_add, p.sigma_mul)) for p in points]
        correct = torch.zeros(len(points), dtype=torch.float64)
        loss = torch.zeros(len(points), dtype=torch.float64)

        def expand(clean: torch.Tensor) -> torch.Tensor:
            return torch.cat([backend.perturb(clean, call) for backend, call in zip(draws, calls, strict=True)])

        with torch.no_grad():
            for x, y in self._batches():
                logits = self.noisy.forward_with_site_hook(x, site.index, expand)
                logits = logits.reshape(len(points), len(y), -1)
                correct += (logits.argmax(dim=2) == y).sum(dim=1).double().cpu()
                per_sample = F.cross_entropy(logits.flatten(0, 1), y.repeat(len(points)), reduction="none")
                loss += per_sample.reshape(len(points), len(y)).sum(dim=1).double().cpu()
        count = len(self.labels)
        return [(c / count, v / count) for c, v in zip(correct.tolist(), loss.tolist(), strict=True)]

    def run(self, store: ResultStore, experiment: str, progress: ProgressCallback | None = None) -> int:
        """Evaluate every point not yet in ``store``; record each as it finishes. Returns points run."""
        return self.run_points(self.points, store, experiment, progress)

    def run_points(self, points: list[SweepPoint], store: ResultStore, experiment: str,
                   progress: ProgressCallback | None = None) -> int:
        """Evaluate those of ``points`` not yet in ``store``, recording each. Returns points run."""
        done = store.done(experiment)
        pending = [p for p in points if p.key not in done]
        if progress is not None and len(pending) < len(points):
            progress(len(points) - len(pending))
        ran = 0
        for group in self._groups(pending):
            started = time.perf_counter()
            if len(group) == 1 or not self.spec.cached_prefix or group[0].site_index < 0:
                outcomes = [self.evaluate_naive(p) for p in group]
            else:
                outcomes = self.evaluate_stacked(group)
            seconds = (time.perf_counter() - started) / len(group)
            for point, (accuracy, loss) in zip(group, outcomes, strict=True):
                store.record(experiment, _result(self.spec, point, accuracy, loss, seconds))
            ran += len(group)
            if progress is not None:
                progress(len(group))
        return ran

    def _chunk(self, point: SweepPoint, rows: int) -> int:
        """How many draws of ``point``'s site to stack in one forward."""
        if point.site_index < 0 or not self.spec.cached_prefix:
            return 1
        per_sample = max(1, self.noisy.sites[point.site_index].numel)
        return max(1, min(MAX_STACKED_ROWS // rows, MAX_STACKED_ELEMENTS // (rows * per_sample)))

    def _groups(self, pending: list[SweepPoint]) -> Iterable[list[SweepPoint]]:
        """Chunks of points sharing a site, sized so a stacked forward stays under MAX_STACKED_ROWS."""
        if not pending:
            return
        rows = min(self.spec.batch_size, len(self.labels))
        group: list[SweepPoint] = []
        for point in pending:
            if group and (point.site_index != group[0].site_index or len(group) >= self._chunk(point, rows)):
                yield group
                group = []
            group.append(point)
        yield group


def _result(spec: SweepSpec, point: SweepPoint, accuracy: float, loss: float, seconds: float) -> PointResult:
    return PointResult(
        key=point.key, accuracy=float(accuracy), loss=float(loss) if math.isfinite(loss) else None,
        seed=point.seed(spec.seed), wall_time=seconds,
        hil_version=__version__, created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
