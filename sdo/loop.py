"""The one sampling loop. An estimator chooses the graph-retention set S; solver arithmetic always keeps
its graph (paper Sec. 4.3, Eq. 18), network calls outside S run under no_grad (sg(m_i))."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from .freeze import check_freeze, ddim_alpha_sigma, refreeze
from .problem import Problem
from .result import GradResult, NetworkCalls

Keep = Callable[[int], bool]


def keep_set(steps: Iterable[int]) -> Keep:
    """S as a predicate on the paper step index i."""
    s = frozenset(steps)
    return s.__contains__


def _in_backward() -> bool:
    return torch._C._current_graph_task_id() != -1


class Rollout:
    """Runs sampler steps of one Problem with a given S, counting network calls."""

    def __init__(self, problem: Problem, cond: torch.Tensor | None = None, freeze: str | None = None):
        check_freeze(freeze)
        self.problem, self.freeze = problem, freeze
        self.solver = problem.solver
        self.cond = problem.cond if cond is None else cond
        self.calls = NetworkCalls()

    def network(self, i: int, x: torch.Tensor, keep: bool) -> torch.Tensor:
        """m_i = f_theta(x_i, t_i, c), with a graph only if i is in S."""
        return self.call(self.solver.model_input(i, x), self.solver.timestep(i), keep)

    def call(self, x_in, t, keep: bool, cond: torch.Tensor | None = None, evals: int = 1) -> torch.Tensor:
        """The network on a prepared input at any timestep t (scalar, or one per sample: a batched call
        counted as `evals` evaluations); cond defaults to the rollout's."""
        if _in_backward():  # a checkpoint recompute; counted first, as it may be stopped early inside
            self.calls.fwd_recompute += evals
        with torch.set_grad_enabled(keep and torch.is_grad_enabled()):
            m = self.problem.model(x_in, t, self.cond if cond is None else cond)
        if not _in_backward():
            self._count(m, evals)
        return m

    def _count(self, m: torch.Tensor, evals: int = 1) -> None:
        if not m.requires_grad:
            self.calls.fwd_nograd += evals
        else:
            self.calls.fwd_grad += evals
            m.register_hook(lambda grad: self._count_backward(grad, evals))

    def _count_backward(self, grad: torch.Tensor, evals: int = 1) -> None:
        self.calls.bwd += evals

    def noise(self, i: int) -> torch.Tensor | None:
        """The explicit noise of step i (None for deterministic samplers)."""
        return None if self.problem.noise is None else self.problem.noise[self.problem.steps - i]

    def step(self, i: int, x: torch.Tensor, history: tuple, keep: bool) -> tuple[torch.Tensor, tuple]:
        """x_{i-1} = Phi_i(x_i, m_i, history); outside S, `freeze` picks which output sg() holds."""
        m = self.network(i, x, keep)
        if self.freeze is not None and not keep:
            a, s = ddim_alpha_sigma(self.solver, i)
            m = refreeze(m, x, a, s, self.problem.model.prediction_type, self.freeze)
        return self.solver.step(i, x, m, history, self.noise(i))

    def run(
        self, x: torch.Tensor, history: tuple, first: int, last: int, keep: Keep, detach_at: int | None = None
    ) -> tuple[torch.Tensor, tuple]:
        """Steps i = first, first-1, ..., last; x is detached before step `detach_at` if given."""
        for i in range(first, last - 1, -1):
            if i == detach_at:
                x, history = x.detach(), tuple(h if h is None else h.detach() for h in history)
            x, history = self.step(i, x, history, keep(i))
        return x, history

    def start(self) -> tuple[torch.Tensor, tuple, int, dict[str, torch.Tensor]]:
        """(x at the first differentiated step, history, that step's index, leaves to differentiate)."""
        p, N = self.problem, self.problem.steps
        history = self.solver.initial_history()
        if p.wrt == "latent":
            z = p.latent.clone().requires_grad_(True)
            return self.solver.init_scale * z, history, N, {"latent": z}
        x = self.solver.init_scale * p.latent
        if p.wrt == "intermediate":
            k = p.intermediate_step
            with torch.no_grad():
                x, history = self.run(x, history, N, k + 1, keep_set(()))
            xk = x.clone().requires_grad_(True)
            return xk, history, k, {f"x_{k}": xk}
        if p.wrt == "cond":
            self.cond = p.cond.clone().requires_grad_(True)
            return x, history, N, {"cond": self.cond}
        return x, history, N, dict(p.parameters())


def finish(rollout: Rollout, x0: torch.Tensor, leaves: dict[str, torch.Tensor], **stats) -> GradResult:
    """loss = J(D(x_0)); gradients of the leaves; a non-finite loss or gradient sets the status."""
    problem = rollout.problem
    loss = problem.loss(x0)
    stats = {"status": "ok", **stats}
    if not torch.isfinite(loss):
        grads = {k: torch.full_like(v, float("nan")) for k, v in leaves.items()}
        stats["status"] = "nonfinite"
    else:
        raw = [None] * len(leaves)  # no path from any leaf to J (e.g. a detach cut it): zero gradient
        if loss.requires_grad:
            raw = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
        grads = {k: torch.zeros_like(v) if g is None else g for (k, v), g in zip(leaves.items(), raw)}
        if not all(torch.isfinite(g).all() for g in grads.values()):
            stats["status"] = "nonfinite"
    stats.update(rollout.calls.as_dict())
    return GradResult(grads, float(loss.detach()), x0.detach(), stats)


class trainable:
    """Context: exactly the selected parameters require grad while an estimator runs (restored after)."""

    def __init__(self, problem: Problem):
        self.model = problem.model
        self.selected = set(problem.parameter_names()) if problem.wrt == "params" else set()

    def __enter__(self):
        self.saved = {n: p.requires_grad for n, p in self.model.named_parameters()}
        for n, p in self.model.named_parameters():
            p.requires_grad_(n in self.selected)
        return self

    def __exit__(self, *exc):
        for n, p in self.model.named_parameters():
            p.requires_grad_(self.saved[n])
        return False
