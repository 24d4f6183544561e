"""Native DDIM in float64 (eta = 0 deterministic; eta > 0 with explicitly passed noise), any prediction type.

Its grid and step rule are those of diffusers' DDIMScheduler (`vp_timesteps`, `landing="diffusers"`), or
the paper's DDIM between consecutive grid points (`landing="grid"`, the default for sdo's own models).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..schedule import NoiseSchedule
from .base import History, Sampler
from .config import config_defaults

SPACINGS = ("leading", "trailing", "linspace")
LANDINGS = ("grid", "diffusers")
# sdo's own models carry no scheduler config: trailing grid (t_N = T - 1), clean endpoint, no clipping
SDO_DEFAULTS = dict(
    eta=0.0,
    timestep_spacing="trailing",
    steps_offset=0,
    set_alpha_to_one=True,
    clip_sample=False,
    clip_sample_range=1.0,
    thresholding=False,
    rescale_betas_zero_snr=False,
    landing="grid",
)
UNSUPPORTED = {"thresholding": False, "rescale_betas_zero_snr": False}  # setting -> the only value supported
FLOW_UNSUPPORTED = {  # FlowMatchEulerDiscreteScheduler settings the native flow grid does not implement
    "shift": 1.0,
    "use_dynamic_shifting": False,
    "invert_sigmas": False,
    "shift_terminal": None,
    "use_karras_sigmas": False,
    "use_exponential_sigmas": False,
    "use_beta_sigmas": False,
    "stochastic_sampling": False,
}


def predict_x0_eps(m, x, alpha: float, sigma: float, prediction_type: str):
    """(x0_hat, eps_hat) from a model output m at x_t = alpha x0 + sigma eps."""
    if prediction_type == "epsilon":
        return (x - sigma * m) / alpha, m
    if prediction_type == "v_prediction":  # v = alpha eps - sigma x0, alpha^2 + sigma^2 = 1
        return alpha * x - sigma * m, sigma * x + alpha * m
    return x - sigma * m, x + alpha * m  # flow velocity m = eps - x0, alpha + sigma = 1


def vp_timesteps(T: int, steps: int, spacing: str = "trailing", steps_offset: int = 0) -> list[int]:
    """t_N..t_1 exactly as diffusers' DDIMScheduler.set_timesteps builds them (Lin et al. 2024, Table 2)."""
    if spacing not in SPACINGS:
        raise ValueError(f"unknown timestep_spacing {spacing!r}; valid: {', '.join(SPACINGS)}")
    if steps > T:
        raise ValueError(f"steps N = {steps} exceeds the model's {T} training timesteps")
    if spacing == "linspace":
        ts = np.linspace(0, T - 1, steps).round()[::-1]
    elif spacing == "leading":
        ts = (np.arange(0, steps) * (T // steps)).round()[::-1] + steps_offset
    else:
        ts = (np.round(np.arange(T, 0, -T / steps)) - 1)[:steps]  # numpy may append a spurious t = -1
    times = [int(t) for t in ts]
    if times[0] >= T or times[-1] < 0:
        raise ValueError(f"timesteps {times[0]}..{times[-1]} leave 0..{T - 1} (steps_offset={steps_offset})")
    return times


def trailing_timesteps(schedule: NoiseSchedule, steps: int) -> list[float]:
    """t_N..t_1: the VP 'trailing' grid (t_N = T-1); for flow, linspace(T, 1, N) as diffusers'
    FlowMatchEulerDiscreteScheduler (sigma from 1 to 1/T)."""
    T = schedule.num_train_timesteps
    if schedule.kind == "flow":
        return torch.linspace(T, 1, steps, dtype=torch.float64).tolist()
    return [float(t) for t in vp_timesteps(T, steps)]


class DDIM(Sampler):
    """x_{i-1} = alpha_{i-1} x0_hat + sqrt(sigma_{i-1}^2 - s^2) eps_hat + s z (Song et al., Eq. 12).

    `coef[p]` is (alpha, sigma) at the network's timestep of position p (x0_hat and eps_hat use it);
    `landing[p]` is where that step goes: the next grid point (`landing="grid"`), or, as DDIMScheduler,
    t - T // N with the final alpha below 0 (`landing="diffusers"`; the two agree when N divides T or the
    spacing is leading). set_alpha_to_one=False ends at abar_0 instead of the clean point; clip_sample
    clamps x0_hat to +-clip_sample_range (DDIMScheduler's use_clipped_model_output=False).
    """

    def __init__(self, schedule: NoiseSchedule, prediction_type: str, steps: int, **options):
        super().__init__(steps)
        unknown = sorted(set(options) - set(SDO_DEFAULTS))
        if unknown:
            raise ValueError(f"unknown ddim options {unknown}; valid: {', '.join(sorted(SDO_DEFAULTS))}")
        opts = {**SDO_DEFAULTS, **options}
        if opts["eta"] < 0:
            raise ValueError(f"eta must be >= 0; got {opts['eta']}")
        self.schedule, self.prediction_type, self.eta = schedule, prediction_type, opts["eta"]
        self.stochastic = self.eta > 0
        self.clip = opts["clip_sample_range"] if opts["clip_sample"] else None
        if schedule.kind == "flow":
            self._flow_grid(opts)
        else:
            self._vp_grid(opts)

    @classmethod
    def options(cls) -> dict:
        return dict(SDO_DEFAULTS)

    @classmethod
    def option_choices(cls) -> dict[str, tuple]:
        return {"timestep_spacing": SPACINGS, "landing": LANDINGS}

    @classmethod
    def from_model(cls, model, steps: int, **options) -> DDIM:
        """Built from the model's diffusers scheduler config where it has one (DDIMScheduler semantics)."""
        cfg = getattr(model, "scheduler_config", None)
        if cfg is not None and model.schedule.kind == "vp":
            options = {
                **config_defaults("DDIMScheduler", cfg, cls.options()),
                "landing": "diffusers",
                **options,
            }
        elif cfg is not None:
            for key, ok in FLOW_UNSUPPORTED.items():
                if cfg.get(key, ok) != ok:
                    raise ValueError(
                        f"ddim does not implement {key}={cfg[key]!r}; use the 'flow-euler' sampler"
                    )
        return cls(model.schedule, model.prediction_type, steps, **options)

    def _vp_grid(self, opts: dict) -> None:
        for key, ok in UNSUPPORTED.items():
            if opts[key] != ok:
                raise ValueError(
                    f"ddim does not implement {key}={opts[key]!r}; use the 'diffusers-ddim' sampler"
                )
        if opts["landing"] not in LANDINGS:
            raise ValueError(f"unknown landing {opts['landing']!r}; valid: {', '.join(LANDINGS)}")
        T, N = self.schedule.num_train_timesteps, self.steps
        times = vp_timesteps(T, N, opts["timestep_spacing"], opts["steps_offset"])
        final = 1.0, 0.0
        if not opts["set_alpha_to_one"]:
            final = self.schedule.alpha_sigma(0)
        self.times = [float(t) for t in times]
        self.coef = [self.schedule.alpha_sigma(t) for t in times] + [final]
        if opts["landing"] == "grid":
            self.landing = self.coef[1:]
        else:
            self.landing = [
                self.schedule.alpha_sigma(t - T // N) if t - T // N >= 0 else final for t in times
            ]

    def _flow_grid(self, opts: dict) -> None:
        vp_only = [k for k in SDO_DEFAULTS if k != "eta" and opts[k] != SDO_DEFAULTS[k]]
        if vp_only:
            raise ValueError(f"{', '.join(vp_only)} apply to VP (DDPM) schedules; this model is a flow model")
        self.times = trailing_timesteps(self.schedule, self.steps)
        self.coef = [self.schedule.alpha_sigma(t) for t in self.times] + [(1.0, 0.0)]
        self.landing = self.coef[1:]

    @property
    def on_grid(self) -> bool:
        """Plain DDIM on its grid: each step lands on the next grid point, the last on the clean point,
        no clipping (the discretisation the probability-flow ODE adjoints assume)."""
        return self.clip is None and self.landing == self.coef[1:] and self.coef[-1] == (1.0, 0.0)

    def timestep(self, i: int) -> float:
        return self.times[self._check_index(i)]

    def noise_scale(self, i: int) -> float:
        """s_i = eta sigma_{i-1} sqrt(1 - SNR_i / SNR_{i-1}): the DDPM posterior std at eta = 1."""
        p = self._check_index(i)
        (a, s), (ap, sp) = self.coef[p], self.landing[p]
        if self.eta == 0 or sp == 0:
            return 0.0
        return self.eta * sp * math.sqrt(max(0.0, 1 - (a * sp) ** 2 / (ap * s) ** 2))

    def step(self, i: int, x, m, history: History, noise=None):
        p = self._check_index(i)
        (a, s), (ap, sp) = self.coef[p], self.landing[p]
        x0, eps = predict_x0_eps(m, x, a, s, self.prediction_type)
        if self.clip is not None:
            x0 = x0.clamp(-self.clip, self.clip)
        std = self.noise_scale(i)
        out = ap * x0 + math.sqrt(max(sp**2 - std**2, 0.0)) * eps
        if std > 0:
            if noise is None:
                raise ValueError("DDIM with eta > 0 needs the step's noise passed explicitly")
            out = out + std * noise
        return out, history
