"""Objectives J(x_0) by name, or any user callable."""

from __future__ import annotations

from ..registry import Registry
from .base import CallableObjective, TargetMSE
from .classifier import ClassifierLoss
from .features import ConvFeatures, SmallClassifier
from .style import GramStyle, gram

OBJECTIVES = Registry("objective")
register_objective = OBJECTIVES.register

register_objective("target-mse", TargetMSE)
register_objective("style", GramStyle)
register_objective("classifier", ClassifierLoss)
register_objective("callable", CallableObjective)


def get(name: str, **options):
    """Build objective `name` with its options (e.g. target=..., reference=..., classifier=...)."""
    return OBJECTIVES.get(name, **options)


def names() -> list[str]:
    """Registered objective names."""
    return OBJECTIVES.names()


__all__ = [
    "CallableObjective",
    "ClassifierLoss",
    "ConvFeatures",
    "GramStyle",
    "SmallClassifier",
    "TargetMSE",
    "get",
    "gram",
    "names",
    "register_objective",
]
