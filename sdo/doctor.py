"""A doctor for a sampling pipeline: one instrumented BPTT call that says where gradients get lost.

Checks: does a gradient reach each leaf (latent, conditioning, parameters); which steps' network calls
carried a graph and where the x-chain lost it; the fraction of zero-gradient outputs (a clamp or threshold
that saturated); the dtype of every stage; the model's train/eval mode and nondeterminism; parameters with
requires_grad off. `sdo.doctor(problem)` returns the report; `python -m sdo doctor --model DIR` prints it.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from .loop import Rollout
from .problem import Problem

OK, WARN, FAIL = "ok", "warn", "FAIL"
MODE_DEPENDENT = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm)


@dataclasses.dataclass
class Finding:
    """One row of the report."""

    check: str
    status: str
    detail: str


@dataclasses.dataclass
class DoctorReport:
    """The findings of one doctor run; `ok` when nothing was flagged."""

    findings: list[Finding]

    @property
    def ok(self) -> bool:
        return all(f.status == OK for f in self.findings)

    def flagged(self) -> list[Finding]:
        return [f for f in self.findings if f.status != OK]

    def get(self, check: str) -> Finding:
        return next(f for f in self.findings if f.check == check)

    def table(self) -> str:
        w = max(len(f.check) for f in self.findings)
        lines = [f"{'check':<{w}}  status  detail", f"{'-' * w}  ------  ------"]
        lines += [f"{f.check:<{w}}  {f.status:<6}  {f.detail}" for f in self.findings]
        return "\n".join(lines)

    __str__ = table


@dataclasses.dataclass
class Trace:
    """What one instrumented BPTT pass saw."""

    xs: dict  # i -> x_i (x_N .. x_0)
    graph_steps: list  # steps whose network output carried a graph
    chain_lost: list  # steps whose output x_{i-1} had no graph although x_i had one
    dtypes: dict  # stage -> set of dtypes
    decoded: torch.Tensor
    loss: torch.Tensor


def doctor(problem: Problem) -> DoctorReport:
    """Run one BPTT call on `problem` (keep it tiny: few steps, batch 1) and report where gradients go."""
    model = problem.model
    frozen = [n for n, p in model.network_parameters().items() if not p.requires_grad]
    modes = _mode_findings(model, problem)
    rollout = Rollout(problem)
    leaves = {"latent": problem.latent.clone().requires_grad_(True)}
    if problem.cond is not None:
        leaves["cond"] = problem.cond.clone().requires_grad_(True)
        rollout.cond = leaves["cond"]
    params = {n: p for n, p in problem.parameters().items() if p.requires_grad}
    trace = _forward(rollout, leaves["latent"])
    grads = _gradients(trace, {**leaves, **params})
    findings = _leaf_findings(leaves, params, frozen, grads, problem)
    findings += _graph_findings(trace, problem.steps)
    findings += _saturation_findings(trace, grads)
    findings.append(_dtype_finding(trace, problem))
    return DoctorReport(findings + modes)


def _forward(rollout: Rollout, z: torch.Tensor) -> Trace:
    problem, solver = rollout.problem, rollout.solver
    x, history = solver.init_scale * z, solver.initial_history()
    xs, graph_steps, chain_lost = {problem.steps: x}, [], []
    dtypes: dict[str, set] = {"latent": {z.dtype}, "x_i": set(), "network output": set()}
    with torch.enable_grad():
        for i in range(problem.steps, 0, -1):
            m = rollout.network(i, x, keep=True)
            dtypes["network output"].add(m.dtype)
            if m.requires_grad:
                graph_steps.append(i)
            had = x.requires_grad
            x, history = solver.step(i, x, m, history, rollout.noise(i))
            dtypes["x_i"].add(x.dtype)
            if had and not x.requires_grad:
                chain_lost.append(i)
            xs[i - 1] = x
        decoded = problem.model.decode(x)
        loss = problem.objective(decoded)
    dtypes.update({"decoded D(x_0)": {decoded.dtype}, "loss": {loss.dtype}})
    dtypes["parameters"] = {p.dtype for p in problem.model.parameters()}
    return Trace(xs, graph_steps, chain_lost, dtypes, decoded, loss)


def _gradients(trace: Trace, leaves: dict) -> dict:
    """Gradients of the loss wrt leaves, every x_i with a graph, and the decoded output (None: no path)."""
    targets = dict(leaves)
    targets.update({f"x_{i}": x for i, x in trace.xs.items() if x.requires_grad})
    if trace.decoded.requires_grad:
        targets["decoded"] = trace.decoded
    if not trace.loss.requires_grad:
        return dict.fromkeys(targets)
    raw = torch.autograd.grad(trace.loss, list(targets.values()), allow_unused=True)
    return dict(zip(targets, raw))


def _reached(g) -> bool:
    return g is not None and bool(torch.isfinite(g).all()) and bool((g != 0).any())


def _leaf_findings(leaves, params, frozen, grads, problem) -> list[Finding]:
    out = []
    for name in leaves:
        g = grads.get(name)
        ok = _reached(g)
        out.append(Finding(f"gradient reaches {name}", OK if ok else FAIL, _norm_text(g)))
    missing = [n for n in params if not _reached(grads.get(n))]
    reached = len(params) - len(missing)
    detail = f"{reached} of {len(params)} parameters with requires_grad receive a gradient"
    if missing:
        detail += f"; none reaches: {_names(missing)}"
    out.append(Finding("gradient reaches parameters", FAIL if missing or not params else OK, detail))
    total = len(problem.model.network_parameters())
    if frozen:
        detail = f"{len(frozen)} of {total} parameters have requires_grad off: {_names(frozen)}"
        out.append(Finding("requires_grad off", WARN, detail))
    else:
        out.append(Finding("requires_grad off", OK, f"none of {total} parameters"))
    return out


def _graph_findings(trace: Trace, steps: int) -> list[Finding]:
    no_graph = [i for i in range(steps, 0, -1) if i not in trace.graph_steps]
    detail = f"{steps - len(no_graph)} of {steps} steps' network calls carried a graph"
    if no_graph:
        detail += f"; none at steps {no_graph} (a no_grad around the network call?)"
    out = [Finding("network calls with a graph", FAIL if no_graph else OK, detail)]
    if trace.chain_lost:
        detail = f"x_(i-1) has no graph after steps {trace.chain_lost} (a step that detaches?)"
        out.append(Finding("sampler chain keeps its graph", FAIL, detail))
    else:
        out.append(Finding("sampler chain keeps its graph", OK, f"all {steps} steps"))
    return out


def _saturation_findings(trace: Trace, grads: dict) -> list[Finding]:
    out = []
    y, gy = trace.decoded.detach(), grads.get("decoded")
    x0, g0 = trace.xs[0].detach(), grads.get("x_0")
    for name, value, g in (("objective input D(x_0)", y, gy), ("x_0", x0, g0)):
        if g is None:
            out.append(Finding(f"zero gradient at {name}", FAIL, "no gradient path"))
            continue
        zero = g == 0
        shown = y if y.shape == value.shape else value  # an elementwise decoder clamp shows in D(x_0)
        frac = float(zero.double().mean())
        detail = f"{frac:.1%} of elements have exactly zero gradient"
        bounds = _clamp_bounds(shown)
        if bounds and frac > 0:
            at_bound = zero & sum(shown == b for b in bounds).bool()
            where = " or ".join(f"{b:.4g}" for b in bounds)
            detail += f", {float(at_bound.double().mean()):.1%} with D(x_0) at a clamp bound {where}"
        out.append(Finding(f"zero gradient at {name}", WARN if frac > 0 else OK, detail))
    return out


def _clamp_bounds(values: torch.Tensor) -> list[float]:
    """The min and/or max of `values` when several elements tie there (what a clamp leaves behind)."""
    return [float(v) for v in (values.min(), values.max()) if int((values == v).sum()) >= 2]


def _dtype_finding(trace: Trace, problem: Problem) -> Finding:
    names = {stage: sorted(str(d).removeprefix("torch.") for d in ds) for stage, ds in trace.dtypes.items()}
    detail = "; ".join(f"{stage} {'/'.join(ds)}" for stage, ds in names.items())
    mixed = any(d != problem.dtype for ds in trace.dtypes.values() for d in ds)
    return Finding("dtypes", WARN if mixed else OK, detail)


def _mode_findings(model: nn.Module, problem: Problem) -> list[Finding]:
    training = [n or "model" for n, m in model.named_modules() if m.training]
    dependent = [n for n, m in model.named_modules() if m.training and isinstance(m, MODE_DEPENDENT)]
    if dependent:
        mode = Finding("model mode", WARN, f"train mode; active dropout / batch norm: {_names(dependent)}")
    elif training:
        detail = f"train flag on {len(training)} modules ({_names(training)}), none that behaves differently"
        mode = Finding("model mode", OK, detail)
    else:
        mode = Finding("model mode", OK, "eval")
    rollout = Rollout(problem)
    with torch.no_grad():
        x = problem.solver.init_scale * problem.latent
        a, b = rollout.network(problem.steps, x, False), rollout.network(problem.steps, x, False)
    same = bool(torch.equal(a, b))
    det = Finding(
        "network is deterministic",
        OK if same else WARN,
        "two calls on one input agree"
        if same
        else "two calls on one input differ (dropout or noise in train mode?)",
    )
    return [mode, det]


def _norm_text(g) -> str:
    if g is None:
        return "no gradient path"
    if not torch.isfinite(g).all():
        return "non-finite gradient"
    return f"|grad| = {float(g.norm()):.4g}"


def _names(names: list[str], shown: int = 4) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def problem_for(model, sampler: str = "ddim", steps: int = 3, dtype=torch.float32, device="cpu", seed=0):
    """A tiny Problem on `model` (a Denoiser) for the doctor: target-MSE objective, batch 1."""
    from . import objectives, samplers

    objective = objectives.get("target-mse", seed=seed + 1)
    return Problem(
        model, samplers.get(sampler, steps=steps), objective, seed=seed, dtype=dtype, device=device
    )


def add_doctor_parser(sub) -> None:
    """The `doctor` subcommand's arguments."""
    d = sub.add_parser("doctor", help="one BPTT call on tiny settings: a table of where gradients get lost")
    d.add_argument("--model", default="gmm", help="a registered model name or a local diffusers directory")
    d.add_argument("--sampler", default="ddim")
    d.add_argument("--steps", type=int, default=3)
    d.add_argument("--dtype", default="float32")
    d.add_argument("--device", default="cpu")
    d.add_argument("--seed", type=int, default=0)


def run_doctor(args) -> int:
    """Build the tiny problem, print the doctor's table; 0 whether or not something was flagged."""
    from . import models
    from .problem import dtype_of

    model = models.get(args.model, seed=args.seed)
    problem = problem_for(model, args.sampler, args.steps, dtype_of(args.dtype), args.device, args.seed)
    report = doctor(problem)
    print(report.table())
    flagged = report.flagged()
    print(f"{len(flagged)} check(s) flagged" if flagged else "nothing flagged")
    return 0
