"""Adapters over diffusers schedulers whose internal state is set explicitly before every step.

diffusers schedulers keep a step counter and (multistep) a list of previous model outputs. We pass
both in and read them back, so a step is a pure function of (i, x_i, m_i, history): it can be
recomputed by checkpointing and the history obeys S (a stored output keeps a graph only if its step
did). The step itself is diffusers' own `step`, so an adapter samples exactly what a loop over the same
scheduler samples, grid included: DDIMScheduler evaluates the network at its `timesteps` and steps to
abar(t - T // N) (the next grid point only when the spacing is leading or N divides T); DPM-Solver and the
Euler schedulers step between consecutive entries of their `sigmas`. diffusers upcasts samples to float32
inside `step` for DPM-Solver and Euler.

Configuration: a model loaded from a diffusers checkpoint carries its scheduler config, which gives every
setting the scheduler class reads (as `from_config`); sdo's own models get the defaults in `sdo_defaults`.
The sampler's options override either.
"""

from __future__ import annotations

from ..schedule import NoiseSchedule
from .base import History, Sampler
from .config import MODEL_KEYS, init_choices, init_defaults, scheduler_class, scheduler_kwargs


class DiffusersSampler(Sampler):
    """Wrap a diffusers scheduler class configured for the model's training schedule."""

    scheduler_name = ""
    sdo_defaults: dict = {"timestep_spacing": "trailing"}  # VP models without a scheduler config
    name_config: dict = {}  # what the sampler's name fixes over the model's config (e.g. solver order)
    step_options: dict = {}  # options of `step` rather than of the scheduler (e.g. eta)

    def __init__(
        self,
        schedule: NoiseSchedule,
        prediction_type: str,
        steps: int,
        scheduler_config: dict | None = None,
        **options,
    ):
        super().__init__(steps)
        self.step_config = {k: options.pop(k, v) for k, v in self.step_options.items()}
        config = {**schedule.scheduler_config(), **self._defaults(schedule, scheduler_config)}
        if schedule.kind == "vp":
            config["prediction_type"] = prediction_type
        config.update({**self.name_config, **options})
        self.scheduler = scheduler_class(self.scheduler_name)(**scheduler_kwargs(self.scheduler_name, config))
        self.scheduler.set_timesteps(steps)
        self.times = [t.item() for t in self.scheduler.timesteps]
        if len(self.times) != steps:
            raise ValueError(
                f"{self.scheduler_name} builds {len(self.times)} timesteps for N = {steps} with "
                f"timestep_spacing={self.scheduler.config.get('timestep_spacing')!r}; choose another N or spacing"
            )
        self.order = getattr(self.scheduler.config, "solver_order", 1)

    def _defaults(self, schedule: NoiseSchedule, scheduler_config: dict | None) -> dict:
        if scheduler_config is None:
            return dict(self.sdo_defaults) if schedule.kind == "vp" else {}
        return {k: v for k, v in scheduler_config.items() if not k.startswith("_")}

    @classmethod
    def options(cls) -> dict:
        settings = {k: v for k, v in init_defaults(cls.scheduler_name).items() if k not in MODEL_KEYS}
        return {**cls.step_options, **settings}

    @classmethod
    def option_choices(cls) -> dict[str, tuple]:
        return init_choices(cls.scheduler_name)

    @classmethod
    def from_model(cls, model, steps: int, **options) -> DiffusersSampler:
        config = getattr(model, "scheduler_config", None)
        return cls(model.schedule, model.prediction_type, steps, scheduler_config=config, **options)

    def timestep(self, i: int) -> float:
        return self.times[self._check_index(i)]

    @property
    def init_scale(self) -> float:
        return float(getattr(self.scheduler, "init_noise_sigma", 1.0))

    def _set_state(self, p: int, history: History) -> None:
        self.scheduler._step_index = p

    def model_input(self, i: int, x):
        if not hasattr(self.scheduler, "scale_model_input"):
            return x
        self._set_state(self._check_index(i), self.initial_history())
        return self.scheduler.scale_model_input(x, self.timestep(i))

    def step(self, i: int, x, m, history: History, noise=None):
        p = self._check_index(i)
        self._set_state(p, history)
        out = self.scheduler.step(m, self.timestep(i), x, **self._step_kwargs(noise))
        return out.prev_sample.to(x.dtype), self._read_history()

    def _step_kwargs(self, noise) -> dict:
        return {}

    def _read_history(self) -> History:
        return ()


class DDIMAdapter(DiffusersSampler):
    """diffusers DDIMScheduler (eta > 0 takes the step's noise as variance_noise)."""

    scheduler_name = "DDIMScheduler"
    sdo_defaults = {"timestep_spacing": "trailing", "clip_sample": False, "set_alpha_to_one": True}
    step_options = {"eta": 0.0}

    def __init__(self, schedule, prediction_type, steps, scheduler_config=None, **options):
        super().__init__(schedule, prediction_type, steps, scheduler_config, **options)
        self.eta = self.step_config["eta"]
        if self.eta < 0:
            raise ValueError(f"eta must be >= 0; got {self.eta}")
        self.stochastic = self.eta > 0

    @property
    def on_grid(self) -> bool:
        """Plain DDIM on its grid (see DDIM.on_grid): no clipping or thresholding, a clean end point, and
        every t - T // N is the next grid point."""
        cfg, T = self.scheduler.config, self.scheduler.config.num_train_timesteps
        landing = [int(t) - T // self.steps for t in self.times]
        nexts = [int(t) for t in self.times[1:]] + [min(landing[-1], -1)]
        plain = (
            not (cfg.clip_sample or cfg.thresholding or cfg.rescale_betas_zero_snr) and cfg.set_alpha_to_one
        )
        return plain and landing == nexts

    def _step_kwargs(self, noise) -> dict:
        if self.eta > 0 and noise is None:
            raise ValueError("DDIM with eta > 0 needs the step's noise passed explicitly")
        return {"eta": self.eta, "variance_noise": noise if self.eta > 0 else None}


class DPMSolverAdapter(DiffusersSampler):
    """diffusers DPMSolverMultistepScheduler, DPM-Solver++ of order 2 (history: previous x0 predictions);
    the SDE variants (algorithm_type sde-dpmsolver++) take the step's noise explicitly."""

    scheduler_name = "DPMSolverMultistepScheduler"
    name_config = {"solver_order": 2, "algorithm_type": "dpmsolver++"}

    def __init__(self, schedule, prediction_type, steps, scheduler_config=None, **options):
        super().__init__(schedule, prediction_type, steps, scheduler_config, **options)
        self.stochastic = self.scheduler.config.algorithm_type.startswith("sde")

    def initial_history(self) -> History:
        return (None,) * self.order

    def _set_state(self, p: int, history: History) -> None:
        self.scheduler._step_index = p
        self.scheduler.model_outputs = list(history) if history else [None] * self.order
        self.scheduler.lower_order_nums = min(p, self.order)

    def _step_kwargs(self, noise) -> dict:
        if self.stochastic and noise is None:
            raise ValueError("an SDE DPM-Solver needs the step's noise passed explicitly")
        return {"variance_noise": noise} if self.stochastic else {}

    def _read_history(self) -> History:
        return tuple(self.scheduler.model_outputs)


class EulerAdapter(DiffusersSampler):
    """diffusers EulerDiscreteScheduler (x in sigma-space; the network input is x / sqrt(sigma^2 + 1))."""

    scheduler_name = "EulerDiscreteScheduler"


class FlowMatchEulerAdapter(DiffusersSampler):
    """diffusers FlowMatchEulerDiscreteScheduler for velocity-predicting (rectified-flow) models."""

    scheduler_name = "FlowMatchEulerDiscreteScheduler"

    def __init__(self, schedule, prediction_type, steps, scheduler_config=None, **options):
        if prediction_type != "flow":
            raise ValueError(
                f"flow-euler needs a flow (velocity) model; this model predicts {prediction_type!r}"
            )
        if options.get("stochastic_sampling", (scheduler_config or {}).get("stochastic_sampling")):
            raise ValueError("stochastic_sampling draws its noise inside diffusers; not supported")
        super().__init__(schedule, prediction_type, steps, scheduler_config, **options)
