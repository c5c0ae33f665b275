"""A tiny name -> object registry for the swappable parts (activations, inits, data, ...).

Extending depthlab is one registered object plus its test: tests parametrise over
``registry.names()``, so a new entry is picked up everywhere without other edits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from depthlab.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects of one kind; an unknown name raises a ConfigError listing the names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register ``obj`` under ``name`` (names are unique)."""

        def add(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return add

    def register_option(self, cls: T) -> T:
        """Class decorator for a config-group option: registers ``cls`` under the default of
        its ``name`` field (``name: str = "gaussian"``), so the name is written once."""
        return self.register(cls.name)(cls)  # type: ignore[attr-defined]

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(self.kind, name, self.names(), f"unknown {self.kind}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())
