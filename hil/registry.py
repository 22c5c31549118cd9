"""Name → object registries that import their targets lazily.

Built-in entries are ``"module:attribute"`` strings, so listing names (``hil --help``,
``hil list``) imports neither torch nor any driver. Users add their own entries with the
``register`` decorator; a duplicate name is an error.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Generic, TypeVar

from hil.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A lazily importing registry of named objects of one kind.

    Args:
        kind: What the entries are, used in error messages ("model", "backend").
        builtins: Name → ``"module:attribute"`` import paths, resolved on first use.
    """

    def __init__(self, kind: str, builtins: dict[str, str] | None = None) -> None:
        self.kind = kind
        self._lazy: dict[str, str] = dict(builtins or {})
        self._loaded: dict[str, T] = {}

    def names(self) -> list[str]:
        """All registered names, sorted."""
        return sorted(set(self._lazy) | set(self._loaded))

    def __contains__(self, name: object) -> bool:
        return name in self._lazy or name in self._loaded

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``.

        Raises:
            ValueError: ``name`` is already registered.
        """

        def decorator(obj: T) -> T:
            if name in self._loaded or (name in self._lazy and not self._is_builtin_target(name, obj)):
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._loaded[name] = obj
            return obj

        return decorator

    def _is_builtin_target(self, name: str, obj: object) -> bool:
        """True when a built-in module registers the very object its lazy entry points at."""
        module, _, attr = self._lazy[name].partition(":")
        return getattr(obj, "__module__", None) == module and getattr(obj, "__name__", None) == attr

    def get(self, name: str) -> T:
        """Return the object registered as ``name``, importing it on first use.

        Raises:
            UnknownNameError: No such name; the message lists the valid ones.
        """
        if name in self._loaded:
            return self._loaded[name]
        if name not in self._lazy:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            )
        module_name, _, attr = self._lazy[name].partition(":")
        obj = getattr(importlib.import_module(module_name), attr)
        self._loaded[name] = obj
        return obj
