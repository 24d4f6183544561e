"""A Problem: model + sampler + objective + what to differentiate (wrt), with explicit randomness."""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from .models.base import Denoiser
from .samplers.base import Sampler, SamplerSpec

WRT = ("latent", "intermediate", "params", "cond")


@dataclass
class Problem:
    """min J(D(x_0)) over `wrt`: the initial latent x_N, an intermediate x_k, theta, or the conditioning c.

    The latent z is standard normal (x_N = init_scale * z); stochastic samplers get one explicit noise
    tensor per step. Both are drawn from `seed` unless given. `params` selects a named subset of theta
    by regular expressions (searched in parameter names); None means all network parameters.
    """

    model: Denoiser
    sampler: SamplerSpec
    objective: Callable[[torch.Tensor], torch.Tensor]
    wrt: str = "latent"
    seed: int = 0
    batch: int = 1
    intermediate_step: int | None = None
    params: Sequence[str] | None = None
    latent: torch.Tensor | None = None
    cond: torch.Tensor | None = None
    noise: list[torch.Tensor] | None = None
    dtype: torch.dtype = torch.float32
    device: str | torch.device = "cpu"
    solver: Sampler = field(init=False, repr=False)

    def __post_init__(self):
        self._validate_kinds()
        self.device = torch.device(self.device)
        self.model.to(device=self.device, dtype=self.dtype)
        if isinstance(self.objective, nn.Module):
            self.objective.to(device=self.device, dtype=self.dtype)
        self.solver = self.sampler.build(self.model)
        g = torch.Generator().manual_seed(self.seed)
        shape = (self.batch, *self.model.sample_shape)
        if self.latent is None:
            self.latent = torch.randn(shape, generator=g, dtype=torch.float64)
        if self.cond is None:
            self.cond = self.model.default_cond(self.batch, g)
        if self.noise is None and self.solver.stochastic:
            self.noise = [torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(self.steps)]
        self.latent = self._place(self.latent)
        self.cond = None if self.cond is None else self._place(self.cond)
        self.noise = None if self.noise is None else [self._place(n) for n in self.noise]
        self._validate_shapes(shape)

    @property
    def steps(self) -> int:
        """N, the number of sampler steps."""
        return self.sampler.steps

    def _place(self, t: torch.Tensor) -> torch.Tensor:
        return t.detach().to(device=self.device, dtype=self.dtype)

    def _validate_kinds(self) -> None:
        if not isinstance(self.model, Denoiser):
            raise ValueError(
                f"model must be an sdo Denoiser (see sdo.models.names()); got {type(self.model).__name__}"
            )
        if not isinstance(self.sampler, SamplerSpec):
            raise ValueError("sampler must be a SamplerSpec from sdo.samplers.get(name, steps=N)")
        if not callable(self.objective):
            raise ValueError("objective must be callable: an sdo.objectives.get(...) object or x -> scalar")
        if self.wrt not in WRT:
            raise ValueError(f"unknown wrt {self.wrt!r}; valid: {', '.join(WRT)}")
        if self.batch < 1:
            raise ValueError(f"batch must be >= 1; got {self.batch}")
        if self.wrt == "intermediate":
            k = self.intermediate_step
            if not isinstance(k, int) or not 1 <= k <= self.steps:
                raise ValueError(
                    f"wrt='intermediate' needs intermediate_step k in 1..{self.steps}; got {k!r}"
                )
        if self.wrt == "params" and not self.parameter_names():
            raise ValueError(f"params patterns {list(self.params or [])} match no parameter of the model")

    def _validate_shapes(self, shape: tuple[int, ...]) -> None:
        if tuple(self.latent.shape) != shape:
            raise ValueError(
                f"latent has shape {tuple(self.latent.shape)}; this model and batch need {shape}"
            )
        cs = self.model.cond_shape
        if cs is None and self.cond is not None:
            raise ValueError("this model is unconditional but a cond tensor was given")
        if cs is not None and tuple(self.cond.shape) != (self.batch, *cs):
            raise ValueError(f"cond has shape {tuple(self.cond.shape)}; this model needs {(self.batch, *cs)}")
        if self.wrt == "cond" and self.cond is None:
            raise ValueError("wrt='cond' but this model takes no conditioning")
        if self.noise is not None and (
            len(self.noise) != self.steps or any(n.shape != shape for n in self.noise)
        ):
            raise ValueError(f"noise must be {self.steps} tensors of shape {shape}")

    def parameter_names(self) -> list[str]:
        """theta's selected parameter names (all network parameters when `params` is None)."""
        names = list(self.model.network_parameters())
        if self.params is None:
            return names
        pats = [re.compile(p) for p in self.params]
        return [n for n in names if any(p.search(n) for p in pats)]

    def parameters(self) -> dict[str, nn.Parameter]:
        """The selected parameters by name."""
        allp = self.model.network_parameters()
        return {n: allp[n] for n in self.parameter_names()}

    def to(self, dtype: torch.dtype | None = None, device: str | torch.device | None = None) -> Problem:
        """A copy with its own model, in another dtype and/or on another device."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        fields.update(model=copy.deepcopy(self.model), objective=copy.deepcopy(self.objective))
        fields.update(dtype=dtype or self.dtype, device=device or self.device)
        return Problem(**fields)
