"""Estimators behind one protocol and a registry: `get(name, **options)(problem) -> GradResult`."""

from __future__ import annotations

import dataclasses

from ..registry import Registry
from .adjoint import Adjoint
from .adjoint_deis import AdjointDEIS
from .base import Estimator, RetentionEstimator, SeededStep
from .bptt import BPTT
from .checkpoint import Checkpoint
from .neumann import Neumann
from .offload import BPTTOffload
from .options import check_option_types
from .reversible import Reversible
from .reversible_mf import ReversibleMF
from .sdo import SDO
from .sdo_all import SdoAll
from .spsa import SPSA
from .truncated import Truncated
from .tweedie import Tweedie

ESTIMATORS = Registry("estimator")
register_estimator = ESTIMATORS.register

register_estimator("bptt", BPTT)
register_estimator("checkpoint", Checkpoint)
register_estimator("truncated", Truncated)
register_estimator("alignprop", Truncated, mode="uniform")
register_estimator("draft", Truncated, detach=True)
register_estimator("sdo", SDO)
register_estimator("sdo-all", SdoAll)
register_estimator("reversible", Reversible)
register_estimator("reversible-mf", ReversibleMF)
register_estimator("tweedie", Tweedie)
register_estimator("neumann", Neumann)
register_estimator("adjoint", Adjoint)
register_estimator("adjoint-deis", AdjointDEIS)
register_estimator("bptt-offload", BPTTOffload)
register_estimator("spsa", SPSA)


def get(name: str, **options) -> Estimator:
    """Estimator `name` with its options; an unknown option or a value of the wrong type is a ValueError."""
    factory = ESTIMATORS.factory(name)
    if dataclasses.is_dataclass(factory):
        valid = [f.name for f in dataclasses.fields(factory) if f.init]
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise ValueError(
                f"unknown option(s) {unknown} for estimator {name!r}; valid: {', '.join(valid) or 'none'}"
            )
    check_option_types(name, factory, options)
    estimator = ESTIMATORS.get(name, **options)
    try:  # stats and messages report the registered name asked for (draft, alignprop)
        estimator.name = name
    except AttributeError:
        pass
    return estimator


def names() -> list[str]:
    """Registered estimator names."""
    return ESTIMATORS.names()


__all__ = [
    "Adjoint",
    "AdjointDEIS",
    "BPTT",
    "BPTTOffload",
    "Checkpoint",
    "Estimator",
    "Neumann",
    "RetentionEstimator",
    "Reversible",
    "ReversibleMF",
    "SDO",
    "SdoAll",
    "SPSA",
    "SeededStep",
    "Truncated",
    "Tweedie",
    "get",
    "names",
    "register_estimator",
]
