"""One registry per axis (estimator, sampler, model, objective); unknown names raise ValueError."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Registry:
    """A name -> factory table whose lookup errors list the valid names."""

    def __init__(self, axis: str):
        self.axis = axis
        self._factories: dict[str, Callable[..., Any]] = {}
        self._defaults: dict[str, dict[str, Any]] = {}

    def register(self, name: str, factory: Callable[..., Any] | None = None, **defaults: Any):
        """Register `factory` under `name` (usable as a decorator); `defaults` are bound keyword options."""

        def add(f: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._factories:
                raise ValueError(f"{self.axis} {name!r} is already registered")
            self._factories[name] = f
            self._defaults[name] = dict(defaults)
            return f

        return add(factory) if factory is not None else add

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._factories)

    def check(self, name: str) -> str:
        """Return `name` if registered, else raise ValueError listing the valid names."""
        if not isinstance(name, str) or name not in self._factories:
            raise ValueError(f"unknown {self.axis} {name!r}; valid {self.axis}s: {', '.join(self.names())}")
        return name

    def get(self, name: str, **options: Any) -> Any:
        """Build the registered object `name` with its bound defaults overridden by `options`."""
        self.check(name)
        return self._factories[name](**{**self._defaults[name], **options})

    def factory(self, name: str) -> Callable[..., Any]:
        """The raw factory registered under `name`."""
        return self._factories[self.check(name)]

    def defaults(self, name: str) -> dict[str, Any]:
        """The keyword options bound at registration."""
        return dict(self._defaults[self.check(name)])

    def __contains__(self, name: object) -> bool:
        return name in self._factories
