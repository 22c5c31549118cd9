"""What one walk point is and what its evaluation gave (`PointKey`, `PointResult`), and experiment identity.

These records are what a study's executor hands back to the one process that writes the `ResultStore`; they
validate on construction so that a bad value fails where it is made, not inside the database.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hil._version import __version__
from hil.errors import ConfigError
from hil.noise import check_sigma
from hil.validation import check_int, check_number

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def utc_now() -> str:
    """The current time as an ISO-8601 UTC timestamp with microseconds, e.g. ``2024-05-01T12:00:00.000000+00:00``."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _check_int(value: object, what: str, *, minimum: int = _INT64_MIN) -> int:
    return check_int(value, what, low=minimum, high=_INT64_MAX, note="(SQLite INTEGER)")


def _check_float(value: object, what: str) -> float:
    return check_number(value, what, finite=False)


@dataclass(frozen=True, order=True)
class PointKey:
    """Identity of one sweep point within an experiment.

    Attributes:
        site: Site name like ``"3:conv2"``, or ``"global"`` for a global sweep.
        sigma_add: σa, finite and ≥ 0 (``-0.0`` is normalised to ``0.0``).
        sigma_mul: σm, finite and ≥ 0.
        repeat: Index of the repetition, ≥ 0.

    Raises:
        ConfigError: Empty site, σ not finite or negative, repeat not an integer ≥ 0.
    """

    site: str
    sigma_add: float
    sigma_mul: float
    repeat: int

    def __post_init__(self) -> None:
        if not isinstance(self.site, str) or not self.site:
            raise ConfigError(f"site must be a non-empty string, got {self.site!r}")
        # `+ 0.0` turns -0.0 into 0.0, as SQLite would on storage.
        object.__setattr__(self, "sigma_add", check_sigma(self.sigma_add, "sigma_add") + 0.0)
        object.__setattr__(self, "sigma_mul", check_sigma(self.sigma_mul, "sigma_mul") + 0.0)
        object.__setattr__(self, "repeat", _check_int(self.repeat, "repeat", minimum=0))


@dataclass(frozen=True)
class PointResult:
    """One evaluated point.

    Attributes:
        key: Which point.
        accuracy: Accuracy in [0, 1] (not checked; stored exactly).
        loss: Mean loss, or None if not computed.
        seed: Seed of the noise draws (a signed 64-bit integer).
        wall_time: Seconds spent evaluating the point.
        hil_version: hil version that computed it (default: this one).
        created: ISO-8601 UTC timestamp (default: now).

    Raises:
        ConfigError: A field of the wrong type, or a seed outside the signed 64-bit range.
    """

    key: PointKey
    accuracy: float
    loss: float | None
    seed: int
    wall_time: float
    hil_version: str = __version__
    created: str = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        if not isinstance(self.key, PointKey):
            raise ConfigError(f"key must be a PointKey, got {self.key!r}")
        object.__setattr__(self, "accuracy", _check_float(self.accuracy, "accuracy"))
        if self.loss is not None:
            object.__setattr__(self, "loss", _check_float(self.loss, "loss"))
        object.__setattr__(self, "seed", _check_int(self.seed, "seed"))
        object.__setattr__(self, "wall_time", _check_float(self.wall_time, "wall_time"))
        if not isinstance(self.hil_version, str) or not isinstance(self.created, str):
            raise ConfigError("hil_version and created must be strings")


def canonical_json(config: Mapping[str, object]) -> str:
    """Canonical JSON of a config: sorted keys, no whitespace, no NaN/inf, non-ASCII kept.

    Tuples become lists, so `ResultStore.config` returns lists. ``1`` and ``1.0`` differ.

    Raises:
        ConfigError: The config is not a mapping with string keys, or is not JSON-serialisable.
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"an experiment config must be a mapping, got {type(config).__name__}")
    try:
        return json.dumps(dict(config), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"experiment config is not JSON-serialisable ({exc}); use str/int/float/bool/None, lists and dicts "
            "with string keys, and finite floats"
        ) from None


def config_hash(config: Mapping[str, object]) -> str:
    """Stable short hash of an experiment config: the first 16 hex digits of the SHA-256 of its canonical JSON.

    Independent of key order (at every level), of the process and of the platform.

    Raises:
        ConfigError: The config is not JSON-serialisable.
    """
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class PointFailure:
    """A point that failed: its key, the last error (``Type: message``), how many tries it had, when.

    Raises:
        ConfigError: A field of the wrong type (a store a user received may hold anything), attempts < 1.
    """

    key: PointKey
    error: str
    attempts: int
    created: str

    def __post_init__(self) -> None:
        if not isinstance(self.key, PointKey):
            raise ConfigError(f"key must be a PointKey, got {self.key!r}")
        if not isinstance(self.error, str) or not isinstance(self.created, str):
            raise ConfigError("a failure's error and created must be strings")
        object.__setattr__(self, "attempts", _check_int(self.attempts, "attempts", minimum=1))
