"""Checks for values that arrive from users and files: one place, one wording.

Every check raises `ConfigError` with a one-line message that names the value (``what``: a flag such as
``--budget``, a config key, or a file field) and what it must be. ``bool`` is never accepted as a number,
although Python treats it as one: ``epochs = true`` in a TOML file is a mistake, not 1.

Used by the train config (`hil.config`), the noise spec (`hil.noise`), the sweep grid, the result store, the
emulated device's config file and calibration profiles.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from hil.errors import ConfigError

__all__ = ["check_choice", "check_int", "check_keys", "check_list", "check_number", "check_size", "check_table",
           "check_text"]

TEXT_FILE_LIMIT = 16 << 20
"""Largest metadata, config or profile file read (16 MiB): a per-column noise card of 4,096 columns is < 1 MiB."""


def check_size(path: Path, what: str, *, limit: int = TEXT_FILE_LIMIT, error: type[Exception] = ConfigError) -> None:
    """Refuse a file larger than ``limit`` bytes before reading it (files a user receives are untrusted).

    Args:
        path: The file; a missing one passes, for the reader to report.
        what: What the file is, for the message (``checkpoint metadata``).
        limit: Most bytes accepted.
        error: The `HilError` subclass to raise.
    """
    try:
        size = path.stat().st_size
    except OSError:
        return
    if size > limit:
        raise error(f"{what} {path} is {size:,} bytes, more than the {limit:,} a hil file of this kind can be; "
                    f"it is not one written by hil, or it is damaged: use the original file")


def _bounds(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f" in [{low}, {high}]"
    if low is not None:
        return f" ≥ {low}"
    if high is not None:
        return f" ≤ {high}"
    return ""


def check_int(value: object, what: str, *, low: int | None = None, high: int | None = None, note: str = "") -> int:
    """Return ``value`` as an ``int`` when it is an integer (Python or NumPy, not bool) in [low, high].

    Args:
        value: The value to check.
        what: Its name in the message.
        low: Smallest allowed value, or None for no bound.
        high: Largest allowed value, or None for no bound.
        note: Extra words after the bounds, e.g. ``"(executions per site on average)"``.

    Raises:
        ConfigError: ``"{what} must be an integer ≥ {low} {note}, got {value!r}"`` (bounds as given).
    """
    number: int | None = None
    if not isinstance(value, bool):
        try:
            number = operator.index(value)  # type: ignore[arg-type]
        except TypeError:
            number = None
    if number is None or (low is not None and number < low) or (high is not None and number > high):
        tail = f" {note}" if note else ""
        raise ConfigError(f"{what} must be an integer{_bounds(low, high)}{tail}, got {value!r}")
    return number


def check_number(
    value: object,
    what: str,
    *,
    low: float | None = None,
    high: float | None = None,
    positive: bool = False,
    finite: bool = True,
    note: str = "",
) -> float:
    """Return ``value`` as a ``float`` when it is a real number (not bool, not a string) within bounds.

    Args:
        value: The value to check.
        what: Its name in the message.
        low: Smallest allowed value, or None.
        high: Largest allowed value, or None.
        positive: Require > 0 (stated as "> 0" in the message).
        finite: Reject NaN and ±inf. With False, NaN passes unless a bound is given.
        note: Extra words after the bounds, e.g. ``"of seconds"``.

    Raises:
        ConfigError: ``"{what} must be a number ≥ {low}, got {value!r}"`` (bounds as given).
    """
    number: float | None = None
    if not isinstance(value, bool | str | bytes):
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            number = None
    if (
        number is None
        or (finite and not math.isfinite(number))
        or (math.isnan(number) and (low is not None or high is not None or positive))
        or (low is not None and number < low)
        or (high is not None and number > high)
        or (positive and not number > 0)
    ):
        bounds = " and ".join(part for part in (_bounds(low, high).strip(), "> 0" if positive else "") if part)
        words = " ".join(part for part in ("a finite number" if finite else "a number", note, bounds) if part)
        raise ConfigError(f"{what} must be {words}, got {value!r}")
    return number


def check_choice(value: object, what: str, choices: Collection[str]) -> str:
    """Return ``value`` when it is one of ``choices``.

    Raises:
        ConfigError: ``"{what} must be one of a, b, got {value!r}"``.
    """
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"{what} must be one of {', '.join(choices)}, got {value!r}")
    return value


def check_keys(data: Iterable[str], allowed: Iterable[str], what: str, *, where: str = "") -> None:
    """Refuse keys that are not in ``allowed``, listing the valid ones.

    Args:
        data: The keys given (a mapping's keys).
        allowed: The keys understood.
        what: What kind of key, e.g. ``"config"``, ``"noise"``; empty for plain "key(s)".
        where: Where they came from, e.g. ``" in device.toml"``.

    Raises:
        ConfigError: ``"unknown {what} key(s) a, b{where}; valid keys: …"``.
    """
    known = set(allowed)
    unknown = sorted(set(data) - known)
    if unknown:
        what = f"{what} " if what else ""
        raise ConfigError(f"unknown {what}key(s) {', '.join(unknown)}{where}; valid keys: {', '.join(sorted(known))}")


def check_text(value: object, what: str, *, kind: str = "a string") -> str:
    """Return ``value`` when it is a ``str``.

    Raises:
        ConfigError: ``"{what} must be {kind}, got {type}"``.
    """
    if not isinstance(value, str):
        raise ConfigError(f"{what} must be {kind}, got {type(value).__name__}")
    return value


def check_list(value: object, what: str, *, kind: str = "a list") -> list[Any]:
    """Return ``value`` when it is a ``list`` (a TOML array, a JSON array).

    Raises:
        ConfigError: ``"{what} must be {kind}, got {type}"``.
    """
    if not isinstance(value, list):
        raise ConfigError(f"{what} must be {kind}, got {type(value).__name__}")
    return value


def check_table(value: object, what: str) -> Mapping[str, Any]:
    """Return ``value`` when it is a mapping with string keys (a TOML table, a JSON object).

    Raises:
        ConfigError: ``"{what} must be a table, got {type}"``.
    """
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise ConfigError(f"{what} must be a table, got {type(value).__name__}")
    return value
