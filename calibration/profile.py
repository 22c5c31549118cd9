"""Versioned calibration profiles (TOML or JSON) and their translation into a network's NoiseSpec.

A profile records what was measured (device identity, capabilities, design, date), the estimates
(σa, σm with intervals and CRLB, per-column gain and offset with standard errors) and the
diagnostics. `CalibrationProfile.noise_spec` turns it into noise for training:

* σm is relative, so it carries over unchanged to every Linear/Conv site.
* σa is in the device's dot-product units (codes scaled to ±1). A layer on the device computes
  y = z · s_c · t_b (s_c: the column's weight scale max|W_c|, t_b: the input vector's max |x|) and
  a layer wider than the tile is the sum of T = ⌈fan-in / rows⌉ tiles, each with its own noise,
  so in the network's units σa_site = σa · s · t · √T, with s and t the root mean squares over the layer's
  columns and over a batch of training inputs, taken when training starts.
* Gain and offset are systematic errors, not noise: the device backend corrects them with
  ``--backend "device:…#calibration=profile.toml"``.

Version 2 adds the noise card (``card``, `hil.calibration.card.NoiseCard`): per-column σa and σm,
the converters, tile geometry, ADC quantisation kept apart from σa, drift — what the ``twin``
backend reproduces the device from. Version-1 profiles still read; their card is built from the
pooled estimates and the capabilities (`CalibrationProfile.noise_card`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from hil.errors import ConfigError
from hil.noise import ORDERS
from hil.validation import check_choice, check_int, check_list, check_number, check_size, check_table, check_text

if TYPE_CHECKING:
    from hil.noise import Order

PROFILE_VERSION = 2
"""Version this hil writes; a newer one is refused."""
SCALE_INPUTS = 256
"""Training inputs used to measure the layers' input scales when σa is converted to network units."""
REQUIRED = ("version", "device", "estimates")


@dataclass(frozen=True)
class CalibrationProfile:
    """A device calibration.

    Attributes:
        device: Identity, address and capabilities.
        estimates: ``sigma_add``/``sigma_mul`` (value, se, low, high, crlb), ``gain``/``offset``
            (per column lists and their standard errors), ``quantisation`` (Δ²/12).
        diagnostics: One entry per check.
        design: The measurement design.
        created: ISO-8601 time of the measurement.
        seconds: Device time used.
        order: Noise order to assume (``mul-first`` unless the diagnostics showed add-first).
        version: Profile format version.
        card: The noise card's plain form (version ≥ 2; empty in older profiles).
    """

    device: dict[str, Any]
    estimates: dict[str, Any]
    diagnostics: list[dict[str, Any]] = field(default_factory=list)
    design: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    seconds: float = 0.0
    order: Order = "mul-first"
    version: int = PROFILE_VERSION
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def sigma_add(self) -> float:
        """σa (device dot-product units)."""
        return float(self.estimates["sigma_add"]["value"])

    @property
    def sigma_mul(self) -> float:
        """σm (relative)."""
        return float(self.estimates["sigma_mul"]["value"])

    @property
    def tile_rows(self) -> int:
        """Rows of the device's tiles."""
        return int(self.device.get("capabilities", {}).get("rows", 0)) or 1

    def correction(self) -> tuple[Any, Any]:
        """Per device column (gain, offset) arrays, for the device backend's correction."""
        import numpy as np

        return (np.asarray(column_values(self.estimates, "gain"), dtype=float),
                np.asarray(column_values(self.estimates, "offset"), dtype=float))

    def noise_card(self) -> Any:
        """The `NoiseCard` of this device: the stored one, or (version 1) one from the pooled estimates.

        Raises:
            ConfigError: The profile lacks what a card needs (capabilities, gains, offsets).
        """
        from hil.calibration.card import ColumnTerm, NoiseCard

        if self.card:
            return NoiseCard.from_dict(self.card)
        caps = self.device.get("capabilities", {})
        gain, offset = self.correction()
        try:
            cols = int(caps["cols"])
            return NoiseCard(rows=int(caps["rows"]), cols=cols, dac_bits=int(caps["dac_bits"]),
                             adc_bits=int(caps["adc_bits"]), full_scale=float(caps["full_scale"]), order=self.order,
                             gain=tuple(float(g) for g in gain), offset=tuple(float(o) for o in offset),
                             sigma_add=ColumnTerm.uniform(self.sigma_add, cols),
                             sigma_mul=ColumnTerm.uniform(self.sigma_mul, cols),
                             quantisation_variance=float(self.estimates.get("quantisation_variance", 0.0)))
        except (KeyError, TypeError, ValueError) as error:
            raise ConfigError(f"the profile lacks what a noise card needs ({error}); calibrate again") from None

    def to_dict(self) -> dict[str, Any]:
        """Plain form (the file content)."""
        data = {"version": self.version, "created": self.created, "seconds": self.seconds, "order": self.order,
                "device": self.device, "design": self.design, "estimates": self.estimates,
                "diagnostics": self.diagnostics}
        if self.card:
            data["card"] = self.card
        return data

    def noise_spec(self, model: Any, inputs: Any) -> tuple[Any, dict[str, float]]:
        """The NoiseSpec this device means for ``model`` (see the module docstring).

        Args:
            model: The network.
            inputs: Training inputs; the first `SCALE_INPUTS` set the input scales.

        Returns:
            (NoiseSpec, σa per site in network units).
        """
        from hil.calibration.scales import matmul_scales
        from hil.noise import NoiseSpec, SiteOverride

        per_site = {}
        for path, (weight_scale, input_scale, fan_in) in matmul_scales(model, inputs[:SCALE_INPUTS]).items():
            tiles = max(1, math.ceil(fan_in / self.tile_rows))
            per_site[path] = self.sigma_add * weight_scale * input_scale * math.sqrt(tiles)
        overrides = tuple(SiteOverride(site=path, sigma_add=value) for path, value in per_site.items())
        spec = NoiseSpec(sigma_mul=self.sigma_mul, sites="matmul", order=self.order, overrides=overrides)
        return spec, per_site


def now() -> str:
    """UTC time in ISO-8601."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- files -------------------------------------------------------------------------------------

def write_profile(profile: CalibrationProfile, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write ``profile`` as TOML (``.toml``) or JSON (anything else), atomically.

    Raises:
        ConfigError: The file exists and ``overwrite`` is False.
    """
    target = Path(path)
    if target.exists() and not overwrite:
        raise ConfigError(f"{target} exists; pass --overwrite to replace it or choose another --out")
    text = _to_toml(profile.to_dict()) if target.suffix == ".toml" else json.dumps(profile.to_dict(), indent=2) + "\n"
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(target.name + ".tmp")
    temp.write_text(text)
    os.replace(temp, target)
    return target


def read_profile(path: str | os.PathLike[str]) -> CalibrationProfile:
    """Read a profile written by any hil up to this version.

    Raises:
        ConfigError: Missing, unreadable, corrupt, newer or incomplete profile.
    """
    source = Path(path)
    check_size(source, "calibration profile")
    try:
        text = source.read_text()
    except FileNotFoundError:
        raise ConfigError(f"calibration profile {source} does not exist; make one with hil calibrate --out") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read calibration profile {source}: {error}") from None
    try:
        if source.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except ValueError as error:
        raise ConfigError(f"calibration profile {source} is corrupt ({str(error).splitlines()[0]}); "
                          f"calibrate again") from None
    if not isinstance(data, dict):
        raise ConfigError(f"calibration profile {source} is corrupt (not a table); calibrate again")
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        raise ConfigError(f"calibration profile {source} lacks {', '.join(missing)}; calibrate again")
    return _profile_from(data, source)


def column_values(estimates: Mapping[str, Any], key: str) -> list[float]:
    """``estimates[key]["values"]``: one finite number per device column (gains also > 0).

    Raises:
        ConfigError: Missing, not a list, or a value that is not such a number.
    """
    entry = estimates.get(key)
    values = entry.get("values") if isinstance(entry, dict) else None
    if not isinstance(values, list) or not values:
        raise ConfigError(f"estimates.{key}.values must be a list with one number per device column; "
                          f"calibrate again")
    return [check_number(v, f"estimates.{key}.values[{i}]", positive=key == "gain") for i, v in enumerate(values)]


def _profile_from(data: dict[str, Any], source: Path) -> CalibrationProfile:
    """Check an untrusted profile's fields (each error names the file and says to calibrate again)."""
    try:
        version = check_int(data["version"], "version", low=1)
        tables = {key: check_table(data.get(key, {}), key) for key in ("device", "estimates", "design")}
        estimates = tables["estimates"]
        for key in ("sigma_add", "sigma_mul"):
            entry = estimates.get(key)
            check_number(entry.get("value") if isinstance(entry, dict) else None, f"estimates.{key}.value", low=0)
        for key in ("gain", "offset"):
            if key in estimates:
                column_values(estimates, key)
        seconds = check_number(data.get("seconds", 0.0), "seconds", low=0)
        order = cast("Order", check_choice(data.get("order", "mul-first"), "order", ORDERS))
        created = check_text(data.get("created", ""), "created")
        diagnostics = check_list(data.get("diagnostics", []), "diagnostics")
        card = check_table(data.get("card", {}), "card")
        if card:
            from hil.calibration.card import NoiseCard

            NoiseCard.from_dict(card)
    except ConfigError as error:
        raise ConfigError(f"calibration profile {source} is invalid: {error}; calibrate again") from None
    if version > PROFILE_VERSION:
        raise ConfigError(f"calibration profile {source} is version {version}, newer than this hil reads "
                          f"({PROFILE_VERSION}); upgrade hil")
    return CalibrationProfile(device=dict(tables["device"]), estimates=dict(estimates), diagnostics=diagnostics,
                              design=dict(tables["design"]), created=created, seconds=seconds, order=order,
                              version=version, card=dict(card))


# -- a small TOML writer for the profile's shapes (tables, arrays of numbers/strings, arrays of tables) --

def _to_toml(data: dict[str, Any]) -> str:
    """``data`` as TOML by tomli-w (keys quoted where they must be); None values are left out.

    Raises:
        ConfigError: A None inside a list (TOML has no null).
    """
    import tomli_w

    return tomli_w.dumps(_without_none(data))


def _without_none(value: Any, where: str = "profile") -> Any:
    if isinstance(value, dict):
        return {str(k): _without_none(v, f"{where}.{k}") for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        if any(item is None for item in value):
            raise ConfigError(f"{where} holds a missing value inside a list, which TOML cannot write; "
                              f"write the profile as .json")
        return [_without_none(item, f"{where}[{i}]") for i, item in enumerate(value)]
    return value
