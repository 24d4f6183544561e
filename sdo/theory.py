"""Predicted costs of one estimator call, beside the measured ones (docs/design.md Sec. 4): network calls (NFE),
FLOPs, memory class and sequential depth. Every estimator implements `predict(problem) -> Prediction`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from .measure import count_flops


@dataclass(frozen=True)
class UnitFlops:
    """FLOPs of one network forward, one VJP to its input only, and one VJP that also gives theta's grads."""

    fwd: float = 1.0
    vjp_input: float = 1.0
    vjp_params: float = 2.0


NOMINAL = UnitFlops()  # a backward costs ~1 forward to the input, ~2 with the weight gradients


@dataclass(frozen=True)
class Prediction:
    """Predicted cost of one call; None where it is not known a priori (e.g. adaptive ODE steps).

    fwd_grad / fwd_nograd / fwd_recompute / bwd use GradResult.stats' NFE convention (a forward run inside
    backward counts as recomputed); `bwd_params` of the `bwd` VJPs also give parameter gradients (~2x cost).
    `depth`: network evaluations (forwards and VJPs) on the critical path if every independent evaluation
    ran in parallel. `memory`: the activation-memory class in N; `graphs`: network graphs alive at once at
    the peak; `states`: latent-sized tensors kept for the backward (trajectory, checkpoints, ...)."""

    fwd_grad: int | None
    fwd_nograd: int | None
    fwd_recompute: int | None
    bwd: int | None
    depth: int | None
    memory: str
    bwd_params: int | None = 0
    graphs: int | None = 1
    states: int | None = 0

    def nfe(self) -> dict[str, int | None]:
        """The counts under GradResult.stats' keys."""
        return {
            "nfe_fwd_grad": self.fwd_grad,
            "nfe_fwd_nograd": self.fwd_nograd,
            "nfe_fwd_recompute": self.fwd_recompute,
            "nfe_bwd": self.bwd,
        }

    def forwards(self) -> int | None:
        """All network forwards (with, without graph and recomputed)."""
        counts = (self.fwd_grad, self.fwd_nograd, self.fwd_recompute)
        return None if None in counts else sum(counts)

    def flops(self, unit: UnitFlops = NOMINAL) -> float | None:
        """Network FLOPs from the counts and the per-call costs `unit` (solver arithmetic is not counted)."""
        if self.forwards() is None or self.bwd is None or self.bwd_params is None:
            return None
        vjps = (self.bwd - self.bwd_params) * unit.vjp_input + self.bwd_params * unit.vjp_params
        return self.forwards() * unit.fwd + vjps

    def flops_ratio(self, reference: Prediction, unit: UnitFlops = NOMINAL) -> float | None:
        """FLOPs relative to `reference` (e.g. BPTT on the same problem)."""
        mine, ref = self.flops(unit), reference.flops(unit)
        return None if mine is None or not ref else mine / ref

    def replace(self, **changes) -> Prediction:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        """A flat record: predicted_* keys."""
        return {f"predicted_{k}": v for k, v in dataclasses.asdict(self).items()}


def first_step(problem) -> int:
    """The first differentiated step: k for wrt='intermediate', else N."""
    return problem.intermediate_step if problem.wrt == "intermediate" else problem.steps


def prefix_forwards(problem) -> int:
    """No-graph forwards before the first differentiated step (N - k for wrt='intermediate', else 0)."""
    return problem.steps - first_step(problem)


def memory_class(graphs_grow: bool, states_grow: bool) -> str:
    """'O(N)' when graphs or stored states grow with N, else 'O(1)'."""
    return "O(N)" if graphs_grow or states_grow else "O(1)"


def vjp_kind(problem) -> int:
    """1 when each VJP also gives parameter gradients (wrt='params'), else 0."""
    return 1 if problem.wrt == "params" else 0


def unit_flops(problem) -> UnitFlops:
    """Measured FLOPs of one forward and of the two VJP kinds at the problem's first differentiated step."""
    solver, model, i = problem.solver, problem.model, first_step(problem)
    params = list(model.network_parameters().values())
    saved = [p.requires_grad for p in params]

    def call(x):
        return model(solver.model_input(i, x), solver.timestep(i), problem.cond)

    def vjp(with_params: bool):
        x = problem.latent.clone().requires_grad_(not with_params)
        for p in params:
            p.requires_grad_(with_params)
        out = call(x)
        torch.autograd.grad(out, params if with_params else [x], torch.ones_like(out))

    try:
        with torch.no_grad():
            fwd = count_flops(lambda: call(problem.latent))
        vjp_input = count_flops(lambda: vjp(False)) - fwd
        vjp_params = count_flops(lambda: vjp(True)) - fwd
    finally:
        for p, r in zip(params, saved):
            p.requires_grad_(r)
    return UnitFlops(fwd, vjp_input, vjp_params)


def predict(estimator, problem) -> Prediction:
    """The estimator's prediction for this problem (an estimator object or a registered name)."""
    if isinstance(estimator, str):
        from . import estimators

        estimator = estimators.get(estimator)
    return estimator.predict(problem)


def predicted_row(estimator, problem) -> dict:
    """predicted_* fields plus the nominal FLOPs ratio to BPTT on the same problem."""
    pred = predict(estimator, problem)
    row = pred.as_dict()
    row["predicted_flops_ratio_to_bptt"] = pred.flops_ratio(predict("bptt", problem))
    return row
