"""The sampler interface: a differentiable step x_{i-1} = Phi_i(x_i, m_i, history); estimators own the loop.

Paper indexing throughout: steps run i = N, N-1, ..., 1; step i calls the network on x_i at t_i and
produces x_{i-1}. The position of step i in execution order is p = N - i.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

History = tuple  # previous (converted) model outputs a multistep solver keeps; tensors or None


class Sampler:
    """A solver on a fixed grid of N steps, with explicit state (history) and explicit noise."""

    stochastic: bool = False

    def __init__(self, steps: int):
        self.steps = steps

    @classmethod
    def options(cls) -> dict[str, Any] | None:
        """{option: default} this sampler accepts (checked by `samplers.get`); None: any keyword."""
        from .options import declared_options

        return declared_options(cls.__init__)

    @classmethod
    def option_choices(cls) -> dict[str, tuple]:
        """The allowed values of options that take one of a few strings."""
        return {}

    @classmethod
    def from_model(cls, model, steps: int, **options) -> Sampler:
        """This sampler for `model`'s training schedule and prediction type."""
        return cls(model.schedule, model.prediction_type, steps, **options)

    def timestep(self, i: int) -> float:
        """t_i, the network's timestep at step i."""
        raise NotImplementedError

    @property
    def init_scale(self) -> float:
        """x_N = init_scale * z for a standard normal latent z."""
        return 1.0

    def model_input(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """The network input at step i (some solvers rescale x)."""
        return x

    def initial_history(self) -> History:
        """The multistep state before the first step."""
        return ()

    def step(
        self, i: int, x: torch.Tensor, m: torch.Tensor, history: History, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, History]:
        """Phi_i: (x_i, m_i, history) -> (x_{i-1}, new history). Differentiable in every tensor input."""
        raise NotImplementedError

    def _check_index(self, i: int) -> int:
        if not 1 <= i <= self.steps:
            raise ValueError(f"step index {i} outside 1..{self.steps}")
        return self.steps - i


@dataclass(frozen=True)
class SamplerSpec:
    """A sampler by name and options, built against a model by `build` (its training schedule, prediction
    type and, for a diffusers checkpoint, its scheduler config as the defaults the options override)."""

    name: str
    steps: int
    options: dict[str, Any] = field(default_factory=dict)

    def build(self, model) -> Sampler:
        """Instantiate for `model`."""
        from . import SAMPLERS

        factory = SAMPLERS.factory(self.name)
        if hasattr(factory, "from_model"):
            return factory.from_model(model, self.steps, **self.options)
        return factory(model.schedule, model.prediction_type, self.steps, **self.options)
