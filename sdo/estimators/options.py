"""Estimator options checked against their declared types before anything runs."""

from __future__ import annotations

import types
import typing

SIMPLE = (bool, int, float, str, type(None))


def check_option_types(name: str, factory, options: dict) -> None:
    """ValueError for an option whose value does not match its field's simple type (int, float, str, bool)."""
    try:
        hints = typing.get_type_hints(factory)
    except Exception:  # noqa: BLE001 - unresolvable annotations: nothing to check against
        return
    for key, value in options.items():
        allowed = _simple(hints.get(key))
        if allowed and not any(_matches(value, t) for t in allowed):
            want = " or ".join("None" if t is type(None) else t.__name__ for t in allowed)
            raise ValueError(
                f"option {key}={value!r} of estimator {name!r} must be {want}; got {type(value).__name__}"
            )


def _simple(hint) -> tuple[type, ...] | None:
    """The types of a hint made only of int / float / str / bool / None (else None: not checked)."""
    if hint is None:
        return None
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    args = typing.get_args(hint) if union else (hint,)
    return args if all(a in SIMPLE for a in args) else None


def _matches(value, t: type) -> bool:
    if t is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if t is float:
        return isinstance(value, (int, float))
    return isinstance(value, t)
