"""A model's diffusers scheduler config as a sampler's defaults, with diffusers' `from_config` semantics:
a key the scheduler class reads takes the config's value, a key the config lacks the class default."""

from __future__ import annotations

import inspect
import typing
from functools import cache

# keys fixed by the model's training (its schedule and output parameterisation): not sampler options
MODEL_KEYS = (
    "num_train_timesteps",
    "beta_start",
    "beta_end",
    "beta_schedule",
    "trained_betas",
    "prediction_type",
)


def scheduler_class(name: str) -> type:
    """The diffusers scheduler class `name`."""
    import diffusers

    return getattr(diffusers, name)


@cache
def _parameters(name: str) -> dict[str, inspect.Parameter]:
    params = inspect.signature(scheduler_class(name).__init__).parameters
    keep = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {k: p for k, p in params.items() if k != "self" and p.kind in keep}


def init_defaults(name: str) -> dict:
    """The keyword arguments scheduler class `name` reads, with their defaults."""
    return {k: p.default for k, p in _parameters(name).items()}


def init_choices(name: str) -> dict[str, tuple]:
    """The allowed values of the class's Literal-annotated arguments (e.g. timestep_spacing)."""
    out = {}
    for k, p in _parameters(name).items():
        if typing.get_origin(p.annotation) is typing.Literal:
            out[k] = typing.get_args(p.annotation)
    return out


def config_defaults(name: str, config: dict, keys) -> dict:
    """What `name.from_config(config)` sets for `keys`: the config's value, else the class default."""
    defaults = init_defaults(name)
    return {k: config.get(k, defaults[k]) for k in keys if k in defaults}


def scheduler_kwargs(name: str, config: dict) -> dict:
    """The entries of `config` that scheduler class `name` reads (others are ignored, as from_config does)."""
    params = _parameters(name)
    return {k: v for k, v in config.items() if k in params}
