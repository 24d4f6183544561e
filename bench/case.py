"""Running one case: an instrumented warm-up (FLOPs, saved-tensor bytes, NFE, the gradient), then timed
rounds under a peak-memory probe, then accuracy against the exact gradient (DESIGN.md Sec. 4)."""

from __future__ import annotations

import gc
import math
import statistics
import time
import traceback

import torch

import sdo
from sdo.loop import Rollout, keep_set, trainable
from sdo.measure import count_flops, saved_tensor_bytes, timed
from sdo.result import GradResult

from .grid import FLOORS, Case
from .memory import peak_memory

DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
OOM_ERRORS = (torch.OutOfMemoryError, MemoryError)


def classify(exc: BaseException) -> str:
    """Status of a failed case: oom, unsupported (ValueError: an invalid combination, e.g. wrt), or error."""
    if isinstance(exc, OOM_ERRORS):
        return "oom"
    return "unsupported" if isinstance(exc, ValueError) else "error"


class Context:
    """What a worker keeps between cases: the current model and the current group's exact gradient."""

    def __init__(self):
        self._model: tuple[str, torch.nn.Module] | None = None
        self._exact: tuple[tuple, torch.Tensor | None, str] | None = None

    def model(self, name: str) -> torch.nn.Module:
        if self._model is None or self._model[0] != name:
            self._model = self._exact = None
            gc.unfreeze()  # let the previous model's reference cycles be collected
            gc.collect()
            self._model = (name, sdo.models.get(name, seed=0))
            gc.freeze()  # long-lived objects (libraries, weights) out of the collector: gc.collect stays cheap
        return self._model[1]

    def problem(self, case: Case) -> sdo.Problem:
        """min J(x_0) for the case: target-MSE objective, seed 0, batch 1; x_k at k = 0.6 N (paper t = 600)."""
        return sdo.Problem(
            model=self.model(case.model),
            sampler=sdo.samplers.get(case.sampler, steps=case.steps),
            objective=sdo.objectives.get("target-mse"),
            wrt=case.wrt,
            intermediate_step=max(1, round(0.6 * case.steps)) if case.wrt == "intermediate" else None,
            dtype=DTYPES[case.dtype],
            device=case.device,
        )

    def remember(self, case: Case, result: GradResult) -> None:
        """A BPTT case whose reference dtype is its own dtype is the group's exact reference (no re-run)."""
        if case.estimator == "bptt" and case.exact_dtype == case.dtype and result.ok:
            self._exact = ((case.group, case.exact_dtype), _flat64(result), f"bptt-{case.dtype}")

    def exact(self, case: Case, problem: sdo.Problem) -> tuple[torch.Tensor | None, str]:
        """(exact gradient, label): BPTT of the same problem, in float64 or the case dtype."""
        key = (case.group, case.exact_dtype)
        if self._exact is None or self._exact[0] != key:
            self._exact = None
            gc.collect()
            self._exact = (key, *self._compute_exact(case, problem))
        return self._exact[1], self._exact[2]

    def _compute_exact(self, case: Case, problem: sdo.Problem) -> tuple[torch.Tensor | None, str]:
        dtype = case.exact_dtype
        label = f"bptt-{dtype}"
        try:
            ref = problem if dtype == case.dtype else problem.to(dtype=DTYPES[dtype])
            res = sdo.grad(ref, "bptt")
        except Exception as exc:  # the reference is unavailable; the case itself still counts
            return None, f"{label} failed: {type(exc).__name__}: {exc}"
        return (_flat64(res), label) if res.ok else (None, f"{label} {res.status}")


def _flat64(result: GradResult) -> torch.Tensor:
    return result.flat().detach().to("cpu", torch.float64)


def floor_sample(problem: sdo.Problem) -> GradResult:
    """Reference row: sampling x_0 and J(D(x_0)) without any graph (N no-grad network calls)."""
    rollout = Rollout(problem)
    with torch.no_grad():
        x, history, first, _ = rollout.start()
        x0, _ = rollout.run(x, history, first, 1, keep_set(()))
        loss = problem.objective(problem.model.decode(x0))
    return GradResult({}, float(loss), x0, {"status": "ok", **rollout.calls.as_dict()})


class FloorStep:
    """Reference row: one network forward+backward at the first differentiated step, same wrt."""

    def __init__(self, problem: sdo.Problem):
        self.problem = problem
        self.start = None
        if problem.wrt == "intermediate":  # reach x_k once, outside the measured call
            self.start = Rollout(problem).start()

    def _begin(self, rollout: Rollout):
        if self.start is None:
            return rollout.start()
        x, history, first, leaves = self.start
        xk = x.detach().requires_grad_(True)
        return xk, history, first, {name: xk for name in leaves}

    def forward(self) -> tuple[Rollout, torch.Tensor, dict]:
        """m_first = f_theta(x_first) with a graph to the leaves."""
        rollout = Rollout(self.problem)
        x, _, first, leaves = self._begin(rollout)
        return rollout, rollout.network(first, x, keep=True), leaves

    def __call__(self) -> GradResult:
        with trainable(self.problem):
            rollout, m, leaves = self.forward()
            raw = torch.autograd.grad(m, list(leaves.values()), torch.ones_like(m), allow_unused=True)
        grads = {k: torch.zeros_like(v) if g is None else g for (k, v), g in zip(leaves.items(), raw)}
        return GradResult(grads, float("nan"), m.detach(), {"status": "ok", **rollout.calls.as_dict()})

    def forward_flops(self) -> int:
        """FLOPs of the forward alone (the rest of the floor-step's FLOPs is its backward)."""
        with trainable(self.problem):
            return count_flops(self.forward)


def target(case: Case, problem: sdo.Problem):
    """The measured callable: an estimator (built fresh, options at their defaults) or a floor."""
    if case.estimator == "floor-sample":
        return lambda: floor_sample(problem)
    if case.estimator == "floor-step":
        return FloorStep(problem)
    estimator = sdo.estimators.get(case.estimator)
    return lambda: estimator(problem)


def finite(result: GradResult) -> bool:
    """Status ok and every gradient entry finite (checked here too, not only by the estimator)."""
    return result.ok and all(bool(torch.isfinite(g).all()) for g in result.grads.values())


def accuracy(grad: torch.Tensor, exact: torch.Tensor | None) -> dict:
    """Cosine similarity and relative L2 error to the exact gradient (None where undefined)."""
    if exact is None or grad.shape != exact.shape:
        return {"cos_to_exact": None, "rel_err_to_exact": None}
    gn, en = float(grad.norm()), float(exact.norm())
    cos = float(grad @ exact) / (gn * en) if gn > 0 and en > 0 else None
    rel = float((grad - exact).norm()) / en if en > 0 else None
    return {"cos_to_exact": cos, "rel_err_to_exact": rel}


def instrumented(fn, case: Case) -> tuple[GradResult, dict]:
    """The first (warm-up) call, under the FLOP counter and the saved-tensor-bytes hooks."""
    box = []
    with saved_tensor_bytes() as saved:
        flops = count_flops(lambda: box.append(fn()))
    # saved_bytes: the most held at once by live graphs (a memory proxy); total: every graph ever built
    rec = {"flops": flops, "saved_bytes": saved.peak, "saved_total_bytes": saved.total}
    if isinstance(fn, FloorStep):
        rec["flops_step_fwd"] = fn.forward_flops()
        rec["flops_step_bwd"] = rec["flops"] - rec["flops_step_fwd"]
    return box[0], rec


def planned_rounds(case: Case, first_call_s: float) -> int:
    """case.rounds, or fewer (at least 1) when they would take longer than case.max_time_s (pytest-benchmark
    style); the first, instrumented call is a slight over-estimate of one call."""
    if not case.max_time_s or first_call_s <= 0:
        return case.rounds
    return max(1, min(case.rounds, int(case.max_time_s / first_call_s)))


def rounds(fn, case: Case, n: int) -> dict:
    """n timed rounds (median/min/max/IQR) under the peak-memory probe."""
    times, cpu = [], []
    with peak_memory(case.device) as mem:
        for _ in range(n):
            c0 = time.process_time()
            times.append(timed(fn, case.device)[1])
            cpu.append(time.process_time() - c0)
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return {
        "rounds_run": n,
        "times_s": times,
        "time_median_s": statistics.median(times),
        "time_min_s": min(times),
        "time_max_s": max(times),
        "time_iqr_s": q[2] - q[0],
        "cpu_time_median_s": statistics.median(cpu),  # process CPU seconds, all threads (contention check)
        "peak_mem_bytes": mem["peak_bytes"],
        "peak_mem_total_bytes": mem["peak_total_bytes"],
        "peak_mem_method": mem["method"],
    }


def summary(result: GradResult) -> dict:
    """Loss, gradient norm, NFE and the retention set from an estimator's diagnostics."""
    keys = ("nfe_fwd_grad", "nfe_fwd_nograd", "nfe_fwd_recompute", "nfe_bwd")
    rec = {k: result.stats.get(k) for k in keys}
    rec["loss"] = result.loss if math.isfinite(result.loss) else None
    rec["grad_norm"] = result.norm() if result.grads else None
    if "retained" in result.stats:
        rec["retained"] = list(result.stats["retained"])
    return rec


def run_case(case: Case, ctx: Context | None = None) -> dict:
    """Measure one case; failures become a status (oom / unsupported / error / nonfinite) and a message."""
    rec = _measure(case, ctx or Context())
    gc.collect()  # the case's objects are gone now; the survivors are long-lived (imports, model, caches)
    gc.freeze()  # ... and leave the collector, so the next case's gc.collect stays cheap
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return rec


def _measure(case: Case, ctx: Context) -> dict:
    rec: dict = {"status": "ok", "message": None}
    t0 = time.perf_counter()
    try:
        problem = ctx.problem(case)
        fn = target(case, problem)
        t_first = time.perf_counter()
        result, counted = instrumented(fn, case)
        t_first = time.perf_counter() - t_first
        rec.update(counted, **summary(result))
        if case.estimator in FLOORS:
            rec["grad_norm"] = None  # a floor's cotangent is arbitrary: no gradient to report
        if case.estimator not in FLOORS and not finite(result):
            rec.update(
                status="nonfinite", message=f"non-finite loss or gradient (estimator status {result.status})"
            )
            return rec
        for _ in range(case.warmup - 1):
            fn()
        rec.update(rounds(fn, case, planned_rounds(case, t_first)))
        if case.estimator not in FLOORS:
            ctx.remember(case, result)
            exact, label = ctx.exact(case, problem)
            rec.update(accuracy(_flat64(result), exact), exact_ref=label)
    except Exception as exc:  # noqa: BLE001 - every failure is recorded and the sweep goes on
        rec.update(status=classify(exc), message=f"{type(exc).__name__}: {exc}")
        rec["traceback"] = traceback.format_exc(limit=8)
    rec["case_wall_s"] = time.perf_counter() - t0
    return rec
