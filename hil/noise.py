"""Noise configuration: what noise goes where. Torch-free so the CLI can validate flags cheaply.

The noise model (../shared/design/noise-model.md, paper 002):

* additive        y' = y + N(0, σa²)
* multiplicative  y' = y · N(1, σm²)
* mixed, mul-first  y' = y · N(1, σm²) + N(0, σa²)
* mixed, add-first  y' = (y + N(0, σa²)) · N(1, σm²)

Every element gets its own independent draw. A `NoiseSpec` says which sites get which σ;
`resolve` turns it into one `SiteNoise` per site of a traced model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, Protocol

from hil.errors import ConfigError, SiteError
from hil.validation import check_choice, check_int, check_keys, check_number

Order = Literal["mul-first", "add-first"]
GradientMode = Literal["constant", "straight-through"]
ORDERS: tuple[str, ...] = ("mul-first", "add-first")
GRADIENT_MODES: tuple[str, ...] = ("constant", "straight-through")
SiteSelector = str | int
"""A site is selected by its index (``3``), full name (``"3:conv2"``) or path (``"conv2"``)."""


def check_sigma(value: object, what: str) -> float:
    """Return ``value`` as a float if it is a finite number ≥ 0, else raise `ConfigError`."""
    return check_number(value, what, low=0)


def check_selector(value: object, what: str) -> SiteSelector:
    """Return ``value`` if it can select a site (a name or an int index, not bool), else raise `ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ConfigError(f"{what} must be a name or an index, got {value!r}")
    return value


def check_repeats(value: object, what: str) -> int:
    """Return ``value`` if it is an int ≥ 1, else raise `ConfigError`."""
    return check_int(value, what, low=1)


@dataclass(frozen=True)
class SiteNoise:
    """Noise applied at one site, fully resolved.

    Attributes:
        sigma_add: σa of the additive term.
        sigma_mul: σm of the multiplicative term.
        order: ``"mul-first"`` or ``"add-first"`` (only matters when both σ > 0).
        gradient: ``"constant"`` (noise is a constant for autograd, as in the paper) or
            ``"straight-through"`` (gradient 1 through the whole noisy op).
        repeats: Executions of this site averaged (multi-execution); 1 = a single execution.
    """

    sigma_add: float = 0.0
    sigma_mul: float = 0.0
    order: Order = "mul-first"
    gradient: GradientMode = "constant"
    repeats: int = 1

    @property
    def is_clean(self) -> bool:
        """True when this site adds no noise."""
        return self.sigma_add == 0.0 and self.sigma_mul == 0.0


CLEAN = SiteNoise()


@dataclass(frozen=True)
class SiteOverride:
    """Per-site values that replace the global ones at one site.

    Attributes:
        site: Index, full name or path of the site.
        sigma_add: σa at this site, or None to keep the global value.
        sigma_mul: σm at this site, or None to keep the global value.
        repeats: Executions averaged at this site, or None to keep the global value.
    """

    site: SiteSelector
    sigma_add: float | None = None
    sigma_mul: float | None = None
    repeats: int | None = None

    def __post_init__(self) -> None:
        check_selector(self.site, "override site")
        if self.sigma_add is not None:
            object.__setattr__(self, "sigma_add", check_sigma(self.sigma_add, f"sigma_add at {self.site!r}"))
        if self.sigma_mul is not None:
            object.__setattr__(self, "sigma_mul", check_sigma(self.sigma_mul, f"sigma_mul at {self.site!r}"))
        if self.repeats is not None:
            check_repeats(self.repeats, f"repeats at {self.site!r}")


@dataclass(frozen=True)
class NoiseSpec:
    """Which noise is applied at which sites. Immutable and validated on construction.

    Attributes:
        sigma_add: Global σa ≥ 0 applied at every selected site.
        sigma_mul: Global σm ≥ 0 applied at every selected site.
        order: ``"mul-first"`` (y·N(1,σm²) + N(0,σa²)) or ``"add-first"``.
        sites: ``"all"`` (Walking Noise convention: every site), ``"matmul"`` (only outputs of
            Linear/Conv, i.e. what an analog MVM chip adds), or a tuple of site selectors
            (a single one = walking noise at that site).
        overrides: Per-site values that replace the global ones; they apply even at sites
            not in ``sites``.
        seed: If set, the backend's noise generator is reseeded with it when the spec is applied.
        gradient: ``"constant"`` (paper) or ``"straight-through"``.
        repeats: Executions averaged at every site (multi-execution), default 1.

    Raises:
        ConfigError: A value is out of range or of the wrong type.
    """

    sigma_add: float = 0.0
    sigma_mul: float = 0.0
    order: Order = "mul-first"
    sites: str | tuple[SiteSelector, ...] = "all"
    overrides: tuple[SiteOverride, ...] = field(default_factory=tuple)
    seed: int | None = None
    gradient: GradientMode = "constant"
    repeats: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigma_add", check_sigma(self.sigma_add, "sigma_add"))
        object.__setattr__(self, "sigma_mul", check_sigma(self.sigma_mul, "sigma_mul"))
        check_choice(self.order, "order", ORDERS)
        check_choice(self.gradient, "gradient", GRADIENT_MODES)
        if isinstance(self.sites, str):
            if self.sites not in ("all", "matmul"):
                raise ConfigError(
                    f"sites must be 'all', 'matmul' or a list of site names, got {self.sites!r}"
                )
        else:
            sites = tuple(self.sites)
            if not sites:
                raise ConfigError("sites is an empty list; use 'all' or name at least one site")
            for site in sites:
                check_selector(site, "site selector")
            object.__setattr__(self, "sites", sites)
        overrides = tuple(self.overrides)
        for item in overrides:
            if not isinstance(item, SiteOverride):
                raise ConfigError(f"overrides must be SiteOverride values, got {item!r}")
        object.__setattr__(self, "overrides", overrides)
        if self.seed is not None:
            object.__setattr__(self, "seed", check_int(self.seed, "seed"))
        object.__setattr__(self, "repeats", check_repeats(self.repeats, "repeats"))

    @property
    def is_clean(self) -> bool:
        """True when no site gets any noise."""
        if self.sigma_add or self.sigma_mul:
            return False
        return not any(o.sigma_add or o.sigma_mul for o in self.overrides)

    @classmethod
    def single(cls, site: SiteSelector, *, sigma_add: float = 0.0, sigma_mul: float = 0.0,
               **kwargs: Any) -> NoiseSpec:
        """Noise at one site only (the others clean), as in a Walking Noise step."""
        return cls(sigma_add=sigma_add, sigma_mul=sigma_mul, sites=(site,), **kwargs)

    def with_overrides(self, *overrides: SiteOverride) -> NoiseSpec:
        """A copy with ``overrides`` appended (later ones win)."""
        return replace(self, overrides=self.overrides + tuple(overrides))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (used in checkpoint metadata); inverse of `from_dict`."""
        data = asdict(self)
        data["sites"] = self.sites if isinstance(self.sites, str) else list(self.sites)
        data["overrides"] = [
            {k: v for k, v in asdict(o).items() if v is not None} for o in self.overrides
        ]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NoiseSpec:
        """Build from a mapping (TOML ``[noise]`` table or metadata); unknown keys are errors."""
        check_keys(data, cls.__dataclass_fields__, "noise")
        values = dict(data)
        if "sites" in values and not isinstance(values["sites"], str):
            if not isinstance(values["sites"], Sequence):
                raise ConfigError(f"sites must be 'all', 'matmul' or a list, got {values['sites']!r}")
            values["sites"] = tuple(values["sites"])
        if "overrides" in values:
            if isinstance(values["overrides"], str | bytes | Mapping) or not isinstance(values["overrides"], Sequence):
                raise ConfigError(f"overrides must be a list of tables ([[noise.overrides]] in TOML), "
                                  f"got {values['overrides']!r}")
            values["overrides"] = tuple(_override_from(o) for o in values["overrides"])
        return cls(**values)

    def resolve(self, sites: Sequence[SiteLike]) -> list[SiteNoise]:
        """Per-site noise for a traced site table, in site order.

        Raises:
            SiteError: A selector in ``sites`` or ``overrides`` matches no site.
        """
        if self.sites == "all":
            selected = set(range(len(sites)))
        elif self.sites == "matmul":
            selected = {s.index for s in sites if s.is_matmul}
        else:
            selected = {find_site(sites, sel) for sel in self.sites}
        base = SiteNoise(self.sigma_add, self.sigma_mul, self.order, self.gradient, self.repeats)
        quiet = replace(base, sigma_add=0.0, sigma_mul=0.0)
        plan = [base if i in selected else quiet for i in range(len(sites))]
        for override in self.overrides:
            index = find_site(sites, override.site)
            changes: dict[str, Any] = {
                k: v
                for k, v in (("sigma_add", override.sigma_add), ("sigma_mul", override.sigma_mul),
                             ("repeats", override.repeats))
                if v is not None
            }
            plan[index] = replace(plan[index], **changes)
        return plan


def _override_from(item: object) -> SiteOverride:
    if isinstance(item, SiteOverride):
        return item
    if not isinstance(item, Mapping) or "site" not in item:
        raise ConfigError(f"each override needs a 'site' key, got {item!r}")
    check_keys(item, ("site", "sigma_add", "sigma_mul", "repeats"), "override")
    return SiteOverride(**item)


class SiteLike(Protocol):
    """Structural type of a site as `resolve` needs it (see `hil.sites.Site`)."""

    @property
    def index(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def is_matmul(self) -> bool: ...


def find_site(sites: Sequence[SiteLike], selector: SiteSelector) -> int:
    """Index of the site that ``selector`` names (index, ``"3:conv2"``, ``"3"`` or ``"conv2"``).

    Raises:
        SiteError: No site or more than one site matches; the message lists the sites.
    """
    if isinstance(selector, int) and not isinstance(selector, bool):
        if 0 <= selector < len(sites):
            return selector
        raise SiteError(f"site index {selector} out of range: the model has {len(sites)} sites (0..{len(sites) - 1})")
    text = str(selector)
    if text.isdigit():
        return find_site(sites, int(text))
    matches = [s.index for s in sites if s.name == text or s.path == text]
    if len(matches) == 1:
        return matches[0]
    listing = ", ".join(s.name for s in sites)
    if not matches:
        raise SiteError(f"no site named {text!r}; sites are: {listing}")
    raise SiteError(f"site {text!r} is ambiguous ({len(matches)} matches); use the full name, one of: {listing}")
