"""NoiseSpec validation, serialisation and resolution against a site table."""

from __future__ import annotations

import math
from dataclasses import FrozenInstanceError, dataclass

import pytest

from hil.errors import ConfigError, SiteError
from hil.noise import NoiseSpec, SiteNoise, SiteOverride, find_site


@dataclass(frozen=True)
class FakeSite:
    index: int
    name: str
    path: str
    is_matmul: bool


SITES = [
    FakeSite(0, "0:input", "input", False),
    FakeSite(1, "1:fc1", "fc1", True),
    FakeSite(2, "2:relu", "relu", False),
    FakeSite(3, "3:fc2", "fc2", True),
    FakeSite(4, "4:relu", "relu", False),
]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sigma_add": -0.1}, "sigma_add must be a finite number ≥ 0"),
        ({"sigma_mul": math.nan}, "sigma_mul must be a finite number ≥ 0"),
        ({"sigma_add": math.inf}, "sigma_add must be a finite number"),
        ({"sigma_add": "0.1"}, "sigma_add must be a finite number"),
        ({"sigma_add": True}, "sigma_add must be a finite number"),
        ({"order": "mul-last"}, "order must be one of mul-first, add-first"),
        ({"gradient": "none"}, "gradient must be one of constant, straight-through"),
        ({"sites": "some"}, "sites must be 'all', 'matmul'"),
        ({"sites": ()}, "sites is an empty list"),
        ({"sites": (1.5,)}, "site selector must be a name or an index"),
        ({"repeats": 0}, "repeats must be an integer ≥ 1"),
        ({"seed": "x"}, "seed must be an integer"),
    ],
)
def test_invalid_values_raise_config_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        NoiseSpec(**kwargs)


def test_override_values_are_validated() -> None:
    with pytest.raises(ConfigError, match="sigma_mul at 'fc1'"):
        SiteOverride("fc1", sigma_mul=-1.0)
    with pytest.raises(ConfigError, match="repeats at 3"):
        SiteOverride(3, repeats=0)


def test_spec_is_frozen_and_hashable() -> None:
    spec = NoiseSpec(sigma_add=0.1, sites=("fc1",), overrides=(SiteOverride("fc2", sigma_mul=0.2),))
    with pytest.raises(FrozenInstanceError):
        spec.sigma_add = 0.2  # type: ignore[misc]
    assert hash(spec) == hash(NoiseSpec.from_dict(spec.to_dict()))


def test_dict_round_trip() -> None:
    spec = NoiseSpec(sigma_add=0.1, sigma_mul=0.05, order="add-first", sites=("1:fc1", 3), seed=7,
                     gradient="straight-through", repeats=2,
                     overrides=(SiteOverride("fc2", sigma_add=0.3, repeats=4),))
    assert NoiseSpec.from_dict(spec.to_dict()) == spec


def test_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(ConfigError, match="unknown noise key.*sigma.*valid keys"):
        NoiseSpec.from_dict({"sigma": 0.1})
    with pytest.raises(ConfigError, match="unknown override key"):
        NoiseSpec.from_dict({"overrides": [{"site": "fc1", "sigma": 1}]})
    with pytest.raises(ConfigError, match="needs a 'site' key"):
        NoiseSpec.from_dict({"overrides": [{"sigma_add": 1}]})


def test_global_noise_reaches_every_site() -> None:
    plan = NoiseSpec(sigma_add=0.1, sigma_mul=0.2).resolve(SITES)
    assert plan == [SiteNoise(0.1, 0.2)] * len(SITES)


def test_matmul_only_selects_linear_and_conv_sites() -> None:
    plan = NoiseSpec(sigma_add=0.1, sites="matmul").resolve(SITES)
    assert [p.sigma_add for p in plan] == [0.0, 0.1, 0.0, 0.1, 0.0]


def test_single_site_for_walking_noise() -> None:
    plan = NoiseSpec.single("3:fc2", sigma_add=0.5).resolve(SITES)
    assert [p.sigma_add for p in plan] == [0.0, 0.0, 0.0, 0.5, 0.0]


def test_overrides_win_and_apply_outside_selection() -> None:
    spec = NoiseSpec(sigma_add=0.1, sites="matmul",
                     overrides=(SiteOverride("fc2", sigma_add=0.4, repeats=3), SiteOverride(0, sigma_mul=0.2)))
    plan = spec.resolve(SITES)
    assert plan[3] == SiteNoise(sigma_add=0.4, repeats=3)
    assert plan[0] == SiteNoise(sigma_add=0.0, sigma_mul=0.2)
    assert plan[1] == SiteNoise(sigma_add=0.1)


@pytest.mark.parametrize(("selector", "index"), [(3, 3), ("3", 3), ("3:fc2", 3), ("fc2", 3), ("input", 0)])
def test_find_site_selectors(selector: str | int, index: int) -> None:
    assert find_site(SITES, selector) == index


@pytest.mark.parametrize(
    ("selector", "message"),
    [(9, "out of range.*5 sites"), ("fc9", "no site named 'fc9'; sites are: 0:input"),
     ("relu", "ambiguous.*use the full name")],
)
def test_find_site_errors(selector: str | int, message: str) -> None:
    with pytest.raises(SiteError, match=message):
        find_site(SITES, selector)


def test_is_clean() -> None:
    assert NoiseSpec().is_clean
    assert not NoiseSpec(sigma_mul=0.1).is_clean
    assert not NoiseSpec(overrides=(SiteOverride(1, sigma_add=0.1),)).is_clean
