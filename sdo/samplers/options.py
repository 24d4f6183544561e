"""Sampler options checked when a sampler is named (`samplers.get`): unknown names and wrong types are a
ValueError listing the valid options."""

from __future__ import annotations

import inspect
from typing import Any

from .config import MODEL_KEYS

_POSITIONAL = ("self", "schedule", "prediction_type", "steps")


def declared_options(factory) -> dict[str, Any] | None:
    """{option: default} a sampler factory accepts; None when it takes any keyword (**kwargs)."""
    if hasattr(factory, "options"):
        return factory.options()
    params = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return {k: p.default for k, p in params.items() if k not in _POSITIONAL}


def _type_ok(value, default) -> bool:
    """value has the default's type (an int is a valid float; None defaults accept anything)."""
    if default is None or default is inspect.Parameter.empty:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def check_options(name: str, factory, options: dict) -> None:
    """ValueError for an option `factory` does not take, of the wrong type, or outside its choices."""
    valid = declared_options(factory)
    if valid is None:
        return
    choices = factory.option_choices() if hasattr(factory, "option_choices") else {}
    for key, value in options.items():
        if key in MODEL_KEYS and key not in valid:
            raise ValueError(
                f"{key} is fixed by the model's training (its scheduler config), not a sampler option"
            )
        if key not in valid:
            raise ValueError(
                f"unknown option {key!r} for sampler {name!r}; valid: {', '.join(sorted(valid))}"
            )
        default = valid[key]
        if not _type_ok(value, default):
            raise ValueError(
                f"sampler option {key}={value!r} has type {type(value).__name__}; "
                f"expected {type(default).__name__} (default {default!r})"
            )
        if key in choices and value not in choices[key]:
            raise ValueError(f"sampler option {key}={value!r}; valid: {', '.join(map(str, choices[key]))}")
