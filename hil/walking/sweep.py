"""What a Walking Noise sweep measures: the spec, its (site, σ, repeat) points and their seeds.

A point is the unit of work: it has its own seed (from the sweep seed, site, σ and repeat), so
points can run in any order, be skipped when already stored, or run elsewhere later, and still
give the same numbers. The studies that evaluate points live in `hil.studies`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from hil.errors import ConfigError
from hil.noise import NoiseSpec, check_sigma
from hil.seeding import derive_seed
from hil.validation import check_int
from hil.walking.grid import NOISE_KINDS
from hil.walking.store import PointKey

GLOBAL = "global"


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
            object.__setattr__(self, name, check_int(getattr(self, name), name, low=minimum))

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
    points: list[SweepPoint] = []
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
