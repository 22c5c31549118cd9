"""Third-party drivers: factories registered in the ``hil.drivers`` entry-point group.

A package declares, in its pyproject::

    [project.entry-points."hil.drivers"]
    mychip = "mychip_hil:open_driver"

and ``open_driver(address: str) -> hil.backends.device.Driver`` is then used for
``--backend device:mychip:ADDRESS``. `register_driver` does the same at run time (tests, notebooks).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from hil.errors import ConfigError

ENTRY_POINT_GROUP = "hil.drivers"
BUILT_IN = ("serial", "tcp", "visa", "replay")
"""Address prefixes hil handles itself; a driver cannot take these names."""
_RUNTIME: dict[str, Callable[[str], Any]] = {}


def register_driver(name: str, factory: Callable[[str], Any]) -> None:
    """Make ``device:NAME:ADDRESS`` call ``factory(ADDRESS)``."""
    if name in BUILT_IN:
        raise ConfigError(f"{name!r} is a built-in transport; choose another driver name")
    _RUNTIME[name] = factory


def driver_names() -> list[str]:
    """Registered third-party drivers (run-time and entry points)."""
    return sorted(set(_RUNTIME) | {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def load_driver(name: str, address: str) -> Any:
    """Open a third-party driver.

    Raises:
        ConfigError: No driver of that name, or its factory does not return a Driver.
    """
    from hil.backends.device.driver import Driver

    factory = _RUNTIME.get(name)
    if factory is None:
        found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
        if not found:
            known = ", ".join([*BUILT_IN, *driver_names()])
            raise ConfigError(f"unknown device transport or driver {name!r}; known: {known} (drivers register in "
                              f"the {ENTRY_POINT_GROUP!r} entry-point group)")
        factory = found[0].load()
    driver = factory(address)
    if not isinstance(driver, Driver):
        raise ConfigError(f"driver {name!r} returned {type(driver).__name__}, which lacks the Driver methods "
                          f"(capabilities, load_tile, run, status, close, identity)")
    return driver
