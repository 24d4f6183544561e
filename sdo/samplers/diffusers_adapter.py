"""Adapters over diffusers schedulers whose internal state is set explicitly before every step.

diffusers schedulers keep a step counter and (multistep) a list of previous model outputs. We pass
both in and read them back, so a step is a pure function of (i, x_i, m_i, history): it can be
recomputed by checkpointing and the history obeys S (a stored output keeps a graph only if its step
did). Note: diffusers upcasts samples to float32 inside `step` for DPM-Solver and Euler.
"""

from __future__ import annotations

from ..schedule import NoiseSchedule
from .base import History, Sampler


class DiffusersSampler(Sampler):
    """Wrap a diffusers scheduler class configured for the model's training schedule."""

    scheduler_name = ""
    extra_config: dict = {}

    def __init__(self, schedule: NoiseSchedule, prediction_type: str, steps: int, **config):
        super().__init__(steps)
        import diffusers

        cls = getattr(diffusers, self.scheduler_name)
        base = schedule.scheduler_config()
        if schedule.kind == "vp":
            base.update(prediction_type=prediction_type, timestep_spacing="trailing")
        self.scheduler = cls(**{**base, **self.extra_config, **config})
        self.scheduler.set_timesteps(steps)
        self.times = [t.item() for t in self.scheduler.timesteps]
        self.order = getattr(self.scheduler.config, "solver_order", 1)

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
    extra_config = {"clip_sample": False, "set_alpha_to_one": True}

    def __init__(self, schedule, prediction_type, steps, eta: float = 0.0, **config):
        super().__init__(schedule, prediction_type, steps, **config)
        self.eta = eta
        self.stochastic = eta > 0

    def _step_kwargs(self, noise) -> dict:
        if self.eta > 0 and noise is None:
            raise ValueError("DDIM with eta > 0 needs the step's noise passed explicitly")
        return {"eta": self.eta, "variance_noise": noise if self.eta > 0 else None}


class DPMSolverAdapter(DiffusersSampler):
    """diffusers DPMSolverMultistepScheduler, DPM-Solver++ of order 2 (history: previous x0 predictions)."""

    scheduler_name = "DPMSolverMultistepScheduler"
    extra_config = {"solver_order": 2, "algorithm_type": "dpmsolver++"}

    def initial_history(self) -> History:
        return (None,) * self.order

    def _set_state(self, p: int, history: History) -> None:
        self.scheduler._step_index = p
        self.scheduler.model_outputs = list(history) if history else [None] * self.order
        self.scheduler.lower_order_nums = min(p, self.order)

    def _read_history(self) -> History:
        return tuple(self.scheduler.model_outputs)


class EulerAdapter(DiffusersSampler):
    """diffusers EulerDiscreteScheduler (x in sigma-space; the network input is x / sqrt(sigma^2 + 1))."""

    scheduler_name = "EulerDiscreteScheduler"


class FlowMatchEulerAdapter(DiffusersSampler):
    """diffusers FlowMatchEulerDiscreteScheduler for velocity-predicting (rectified-flow) models."""

    scheduler_name = "FlowMatchEulerDiscreteScheduler"

    def __init__(self, schedule, prediction_type, steps, **config):
        if prediction_type != "flow":
            raise ValueError(
                f"flow-euler needs a flow (velocity) model; this model predicts {prediction_type!r}"
            )
        super().__init__(schedule, prediction_type, steps, **config)
