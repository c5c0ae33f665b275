"""The one error a user sees for bad input: a key, its value, and what is allowed."""

from __future__ import annotations

from collections.abc import Iterable


class ConfigError(ValueError):
    """An invalid configuration value, reported as one line: ``key=value: reason``.

    ``allowed`` is either a description ("an integer >= 1") or the valid names.
    """

    def __init__(
        self, key: str, value: object, allowed: str | Iterable[str], reason: str = ""
    ) -> None:
        self.key = key
        self.value = value
        self.allowed = allowed if isinstance(allowed, str) else ", ".join(sorted(allowed))
        self.reason = reason or "invalid value"
        super().__init__(f"{key}={value!s}: {self.reason}; allowed: {self.allowed}")


class ResourceError(ConfigError):
    """A configuration too big for where it would run, as one line naming the keys that
    size it (``width=65536 depth=1000``), the estimate and what the device has."""

    def __init__(self, settings: dict[str, object], reason: str, allowed: str) -> None:
        self.key = " ".join(settings)
        self.value = " ".join(str(v) for v in settings.values())
        self.allowed = allowed
        self.reason = reason
        keys = " ".join(f"{key}={value}" for key, value in settings.items())
        ValueError.__init__(self, f"{keys}: {reason}; allowed: {allowed}")
