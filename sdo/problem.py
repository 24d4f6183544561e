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
    by regular expressions (one string is one pattern; searched in parameter names); None means all
    network parameters. `dtype` is a torch dtype or its name ("float32"). `model` may also be a diffusers
    pipeline or a (unet, scheduler[, vae]) tuple, wrapped as `sdo.models.get` does.

    Nothing the caller passed is changed: a model (or nn.Module objective) already in `dtype` on `device`
    is shared with the caller (its parameters are the ones differentiated); otherwise this Problem holds
    a converted copy. Tensors (latent, cond, noise) are copied when converted, never modified.
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
        self.dtype, self.device = dtype_of(self.dtype), device_of(self.device)
        if isinstance(self.params, str):
            self.params = [self.params]
        if isinstance(self.model, (tuple, list)) or (
            not isinstance(self.model, Denoiser) and hasattr(self.model, "unet")
        ):  # a diffusers pipeline or (unet, scheduler[, vae]): its modules are shared, as models.get does
            from .models import from_objects

            self.model = from_objects(self.model)
        self._validate_kinds()
        self.model = converted(self.model, self.dtype, self.device)
        if isinstance(self.objective, nn.Module):
            self.objective = converted(self.objective, self.dtype, self.device)
        self.solver = self.sampler.build(self.model)
        self._validate_grid()
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

    def _validate_grid(self) -> None:
        """The sampler's timesteps must strictly decrease and stay >= 0 (more steps than the training
        schedule has timesteps would repeat them)."""
        ts = [float(self.solver.timestep(i)) for i in range(self.steps, 0, -1)]
        if min(ts) < 0 or any(b >= a for a, b in zip(ts, ts[1:])):
            T = self.model.schedule.num_train_timesteps
            raise ValueError(
                f"sampler {self.sampler.name!r} with {self.steps} steps gives repeated or negative "
                f"timesteps on a model trained with {T} timesteps; use steps <= {T}"
            )

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

    def loss(self, x0: torch.Tensor) -> torch.Tensor:
        """J(D(x_0)) as a 0-dim tensor (ValueError when the objective does not return one value)."""
        loss = self.objective(self.model.decode(x0))
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            what = f"shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else type(loss).__name__
            raise ValueError(f"the objective must return a scalar tensor (one value); it returned {what}")
        return loss.reshape(())

    def parameter_names(self) -> list[str]:
        """theta's selected parameter names (all network parameters when `params` is None)."""
        names = list(self.model.network_parameters())
        if self.params is None:
            return names
        pats = [_regex(p) for p in self.params]
        return [n for n in names if any(p.search(n) for p in pats)]

    def parameters(self) -> dict[str, nn.Parameter]:
        """The selected parameters by name."""
        allp = self.model.network_parameters()
        return {n: allp[n] for n in self.parameter_names()}

    def to(self, dtype: torch.dtype | None = None, device: str | torch.device | None = None) -> Problem:
        """A copy with its own model, in another dtype and/or on another device."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        dtype, device = dtype_of(dtype or self.dtype), device_of(device or self.device)
        own = {}
        for key in ("model", "objective"):
            obj = getattr(self, key)
            own[key] = obj if _needs_conversion(obj, dtype, device) else copy.deepcopy(obj)
        return Problem(**{**fields, **own, "dtype": dtype, "device": device})


DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def dtype_of(dtype: torch.dtype | str) -> torch.dtype:
    """A floating torch dtype from itself or its name ("float32", "torch.float64")."""
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    name = dtype.removeprefix("torch.") if isinstance(dtype, str) else None
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}")
    return DTYPES[name]


def device_of(device: str | torch.device) -> torch.device:
    """A torch device that exists on this machine (ValueError naming the valid ones otherwise)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; valid: cpu, cuda, cuda:k, mps") from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ValueError(f"device {str(device)!r} requested but CUDA is not available; use cpu")
        if dev.index is not None and dev.index >= n:
            raise ValueError(f"device {str(device)!r} does not exist; this machine has cuda:0..cuda:{n - 1}")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {str(device)!r} requested but MPS is not available; use cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {str(device)!r}; valid: cpu, cuda, cuda:k, mps")
    return dev


def _regex(pattern: str) -> re.Pattern:
    if not isinstance(pattern, str):
        raise ValueError(f"params must be regular expressions (strings); got {pattern!r}")
    try:
        return re.compile(pattern)
    except re.error as e:
        raise ValueError(f"invalid params regular expression {pattern!r}: {e}") from None


def _needs_conversion(obj, dtype: torch.dtype, device: torch.device) -> bool:
    """Whether an nn.Module holds a floating tensor of another dtype or on another device."""
    if not isinstance(obj, nn.Module):
        return False
    for t in (*obj.parameters(), *obj.buffers()):
        if t.is_floating_point() and (t.dtype != dtype or not _same_device(t.device, device)):
            return True
    return False


def _same_device(a: torch.device, b: torch.device) -> bool:
    if a.type != b.type:
        return False
    return a.index == b.index or None in (a.index, b.index) and (a.index or 0) == (b.index or 0)


def converted(module: nn.Module, dtype: torch.dtype, device: torch.device) -> nn.Module:
    """`module` itself when already in dtype on device, else a converted copy (the original is untouched)."""
    if not _needs_conversion(module, dtype, device):
        return module
    return copy.deepcopy(module).to(device=device, dtype=dtype)
