"""Running one group of cases: per case an instrumented warm-up (FLOPs, saved-tensor bytes, NFE, the
gradient) and its accuracy against the exact gradient, then every case's timed rounds interleaved, each
under a peak-memory probe with its own baseline (docs/design.md Sec. 4)."""

from __future__ import annotations

import dataclasses
import gc
import math
import statistics
import time
import traceback
from dataclasses import dataclass, field

import torch

import sdo
from sdo.loop import Rollout, keep_set, trainable
from sdo.measure import count_flops, live_tensor_bytes, load_1m, saved_tensor_bytes, timed
from sdo.result import GradResult

from .grid import FLOORS, Case
from .memory import peak_memory
from .references import accuracy, coupled_reference, intermediate_step
from .stats import bootstrap_median, interleaved

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
        self._coupled: tuple[tuple, torch.Tensor | None, str] | None = None

    def model(self, name: str) -> torch.nn.Module:
        if self._model is None or self._model[0] != name:
            self._model = self._exact = self._coupled = None
            gc.unfreeze()  # let the previous model's reference cycles be collected
            gc.collect()
            self._model = (name, sdo.models.get(name, seed=0))
            gc.freeze()  # long-lived objects (libraries, weights) out of the collector: gc.collect stays cheap
        return self._model[1]

    def problem(self, case: Case) -> sdo.Problem:
        """min J(x_0) for the case: target-MSE objective, seed 0, batch 1; wrt intermediate: x_k at the step
        whose timestep is nearest t = 600 (the paper's intermediate point)."""
        # the worker's own cached model, moved in place (a Problem copies models it would have to convert)
        model = self.model(case.model).to(device=case.device, dtype=DTYPES[case.dtype])
        sampler = sdo.samplers.get(case.sampler, steps=case.steps)
        k = intermediate_step(sampler.build(model), case.steps) if case.wrt == "intermediate" else None
        return sdo.Problem(
            model=model,
            sampler=sampler,
            objective=sdo.objectives.get("target-mse"),
            wrt=case.wrt,
            intermediate_step=k,
            dtype=DTYPES[case.dtype],
            device=case.device,
        )

    def coupled(self, case: Case, problem: sdo.Problem, reference) -> tuple[torch.Tensor | None, str]:
        """(exact gradient of the estimator's own coupled sampler, label), in the reference dtype; `reference`
        is coupled_reference's (key, gradient function)."""
        key = (case.group, case.exact_dtype, reference[0])
        if self._coupled is None or self._coupled[0] != key:
            self._coupled = None
            label = f"coupled-bptt-{case.exact_dtype}"
            try:
                ref = (
                    problem if case.exact_dtype == case.dtype else problem.to(dtype=DTYPES[case.exact_dtype])
                )
                res = reference[1](ref)
                self._coupled = (
                    key,
                    _flat64(res) if res.ok else None,
                    label if res.ok else f"{label} {res.status}",
                )
            except Exception as exc:  # noqa: BLE001 - the reference is unavailable; the case itself still counts
                self._coupled = (key, None, f"{label} failed: {type(exc).__name__}: {exc}")
        return self._coupled[1], self._coupled[2]

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
        loss = problem.loss(x0)
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
    """(the measured callable, the estimator or None for a floor): an estimator built fresh with its
    registered options, or a floor."""
    if case.estimator == "floor-sample":
        return (lambda: floor_sample(problem)), None
    if case.estimator == "floor-step":
        return FloorStep(problem), None
    estimator = sdo.estimators.get(case.estimator)
    return (lambda: estimator(problem)), estimator


def finite(result: GradResult) -> bool:
    """Status ok and every gradient entry finite (checked here too, not only by the estimator)."""
    return result.ok and all(bool(torch.isfinite(g).all()) for g in result.grads.values())


def instrumented(fn, case: Case) -> tuple[GradResult, dict]:
    """The first (warm-up) call, under the FLOP counter, the saved-tensor-bytes hooks and the live tensor
    bytes tracker (sdo.measure: a deterministic peak over the whole call)."""
    box = []
    with saved_tensor_bytes() as saved, live_tensor_bytes() as live:
        flops = count_flops(lambda: box.append(fn()))
    # saved_bytes: the most held at once by live graphs (a memory proxy); total: every graph ever built
    rec = {"flops": flops, "saved_bytes": saved.peak, "saved_total_bytes": saved.total}
    rec.update(live_peak_bytes=live.peak, live_held_at_exit_bytes=live.held_at_exit)
    if isinstance(fn, FloorStep):
        rec["flops_step_fwd"] = fn.forward_flops()
        rec["flops_step_bwd"] = rec["flops"] - rec["flops_step_fwd"]
    return box[0], rec


FAST_CALL_S = 10.0  # calls faster than this get all of case.rounds (the grids ask for at least 5)


def planned_rounds(case: Case, first_call_s: float) -> int:
    """case.rounds when the first (instrumented, so slightly slower) call took < FAST_CALL_S; else fewer
    (at least 1) when they would take longer than case.max_time_s."""
    if not case.max_time_s or first_call_s < FAST_CALL_S:
        return case.rounds
    return max(1, min(case.rounds, int(case.max_time_s / first_call_s)))


def summary(result: GradResult) -> dict:
    """Loss, gradient norm, NFE and the retention set from an estimator's diagnostics."""
    keys = ("nfe_fwd_grad", "nfe_fwd_nograd", "nfe_fwd_recompute", "nfe_bwd")
    rec = {k: result.stats.get(k) for k in keys}
    rec["loss"] = result.loss if math.isfinite(result.loss) else None
    rec["grad_norm"] = result.norm() if result.grads else None
    if "retained" in result.stats:
        rec["retained"] = list(result.stats["retained"])
    return rec


def predicted(estimator, problem: sdo.Problem) -> dict:
    """The estimator's predicted costs (sdo.theory) under `pred_*` keys, where it predicts them."""
    predict = getattr(estimator, "predict", None)
    if predict is None:
        return {}
    try:
        p = predict(problem)
    except Exception as exc:  # noqa: BLE001 - a prediction that cannot be made is recorded, not fatal
        return {"pred_error": f"{type(exc).__name__}: {exc}"}
    fields = dataclasses.asdict(p) if dataclasses.is_dataclass(p) else dict(vars(p))
    if callable(getattr(p, "flops", None)):
        fields["flops_units"] = p.flops()  # in units of one network forward (sdo.theory)
    return {f"pred_{k}": v for k, v in fields.items() if isinstance(v, (int, float, str, type(None)))}


@dataclass
class Member:
    """One case of a group: its record so far, its callable (None once it failed) and its rounds."""

    case: Case
    rec: dict
    fn: object = None
    rounds: int = 0
    times: list = field(default_factory=list)
    cpu: list = field(default_factory=list)
    peaks: list = field(default_factory=list)
    totals: list = field(default_factory=list)
    method: str | None = None


def _fail(m: Member, exc: BaseException) -> None:
    m.rec.update(status=classify(exc), message=f"{type(exc).__name__}: {exc}")
    m.rec["traceback"] = traceback.format_exc(limit=8)
    m.fn = None


def prepare(case: Case, ctx: Context) -> Member:
    """A member's instrumented warm-up, its accuracy against the references, its further warm-ups."""
    m = Member(case, {"status": "ok", "message": None})
    t0 = time.perf_counter()
    try:
        problem = ctx.problem(case)
        fn, estimator = target(case, problem)
        t_first = time.perf_counter()
        result, counted = instrumented(fn, case)
        t_first = time.perf_counter() - t_first
        m.rec.update(counted, **summary(result), **predicted(estimator, problem))
        if case.estimator in FLOORS:
            m.rec["grad_norm"] = None  # a floor's cotangent is arbitrary: no gradient to report
        elif not finite(result):
            msg = f"non-finite loss or gradient (estimator status {result.status})"
            m.rec.update(status="nonfinite", message=msg)
            return m
        else:
            m.rec.update(compare(case, ctx, problem, result, estimator))
        del result
        for _ in range(case.warmup - 1):
            fn()
        m.fn, m.rounds = fn, planned_rounds(case, t_first)
    except Exception as exc:  # noqa: BLE001 - every failure is recorded and the group goes on
        _fail(m, exc)
    m.rec["prepare_wall_s"] = time.perf_counter() - t0
    return m


def compare(case: Case, ctx: Context, problem: sdo.Problem, result: GradResult, estimator) -> dict:
    """Accuracy against BPTT of the problem's sampler and, for a coupled (EDICT) estimator, against BPTT of
    its own coupled sampler; never against the estimate itself."""
    ctx.remember(case, result)
    grad = _flat64(result)
    exact, label = ctx.exact(case, problem)
    rec = {**accuracy(grad, exact), "exact_ref": label}
    reference = coupled_reference(estimator)
    if reference is not None:
        own, own_label = ctx.coupled(case, problem, reference)
        rec.update(accuracy(grad, own, "coupled"), coupled_ref=own_label)
    return rec


def timed_round(m: Member) -> None:
    """One timed call of a member under the peak-memory probe (its own fresh RSS baseline)."""
    with peak_memory(m.case.device) as mem:
        c0 = time.process_time()
        m.times.append(timed(m.fn, m.case.device)[1])
        m.cpu.append(time.process_time() - c0)
    m.peaks.append(mem["peak_bytes"])
    m.totals.append(mem["peak_total_bytes"])
    m.method = mem["method"]


def timing(m: Member) -> dict:
    """Median time with its bootstrap interval, min/max/IQR, and the peak memory over the rounds."""
    if not m.times:
        return {"rounds_run": 0}
    est = bootstrap_median(m.times)
    q = statistics.quantiles(m.times, n=4) if len(m.times) > 1 else [m.times[0]] * 3
    peaks = [p for p in m.peaks if p is not None]
    return {
        "rounds_run": len(m.times),
        "times_s": m.times,
        "time_median_s": est.value,
        "time_lo_s": est.lo,
        "time_hi_s": est.hi,
        "time_min_s": min(m.times),
        "time_max_s": max(m.times),
        "time_iqr_s": q[2] - q[0],
        "cpu_time_median_s": statistics.median(m.cpu),  # process CPU seconds, all threads (contention check)
        "peak_mem_bytes": max(peaks) if peaks else None,
        "peak_mem_rounds": m.peaks,
        "peak_mem_total_bytes": max((t for t in m.totals if t is not None), default=None),
        "peak_mem_method": m.method,
    }


def run_group(cases: list[Case], ctx: Context | None = None, running=None) -> list[dict]:
    """Measure one group (same model, sampler, N, wrt, dtype, device): every member's warm-up and accuracy
    first, then the timed rounds interleaved A B C A B C ... so drift and load hit all members alike.
    `running(case)`, if given, is told which case is about to run (a worker reports it before a crash)."""
    ctx, running = ctx or Context(), running or (lambda case: None)
    t0, loads = time.perf_counter(), [load_1m()]
    members = []
    for c in cases:
        running(c)
        members.append(prepare(c, ctx))
    slots = interleaved({i: m.rounds for i, m in enumerate(members) if m.fn is not None})
    for _, i in slots:
        m = members[i]
        if m.fn is None:
            continue  # it failed in an earlier round
        running(m.case)
        try:
            timed_round(m)
        except Exception as exc:  # noqa: BLE001
            _fail(m, exc)
        loads.append(load_1m())
    group = {
        "group_members": [c.estimator for c in cases],
        "group_order": "interleaved",
        "load_max_1m": max((v for v in loads if v is not None), default=None),
        "threads": torch.get_num_threads(),
        "group_wall_s": time.perf_counter() - t0,
    }
    out = [{**m.rec, **timing(m), **group} for m in members]
    gc.collect()  # the group's objects are gone now; the survivors are long-lived (imports, model, caches)
    gc.freeze()  # ... and leave the collector, so the next group's gc.collect stays cheap
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return out


def run_case(case: Case, ctx: Context | None = None) -> dict:
    """One case measured alone (a group of one): failures become a status and a message."""
    return run_group([case], ctx)[0]
