"""What the harness measures, against independent computations: accuracy never against the estimate
itself, the CPU peak reset before every call, rounds interleaved, the intermediate step, the coupled
reference of reversible estimators, and missing trained weights recorded as skipped."""

import dataclasses

import pytest
import torch

import sdo
from bench import grid, sweep
from bench.case import Context, run_group
from bench.grid import Case
from bench.memory import reset_peak_rss
from bench.references import coupled_bptt, intermediate_step
from sdo.estimators import Estimator, register_estimator

HOG_BYTES = 256 * 2**20


@dataclasses.dataclass
class Scaled(Estimator):
    """BPTT's gradient times 3: cosine 1, norm ratio 3, relative error 2."""

    def estimate(self, problem):
        res = sdo.grad(problem, "bptt")
        res.grads = {k: 3 * v for k, v in res.grads.items()}
        return res


@dataclasses.dataclass
class Hog(Estimator):
    """SDO after touching HOG_BYTES of memory (freed again before it returns)."""

    def estimate(self, problem):
        block = torch.ones(HOG_BYTES // 4, dtype=torch.float32)
        del block
        return sdo.grad(problem, "sdo")


@pytest.fixture(scope="module", autouse=True)
def test_estimators():
    for name, cls in (("t-scaled", Scaled), ("t-hog", Hog)):
        register_estimator(name, cls)
    yield
    for name in ("t-scaled", "t-hog"):
        sdo.estimators.ESTIMATORS._factories.pop(name, None)
        sdo.estimators.ESTIMATORS._defaults.pop(name, None)


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _group(*estimators, steps=3, wrt="latent", rounds=2):
    cases = [Case("gmm", "ddim", steps, wrt, e, rounds=rounds) for e in estimators]
    return {c.estimator: r for c, r in zip(cases, run_group(cases, Context()))}


def test_accuracy_is_measured_against_bptt_of_the_problem_not_the_estimate(one_thread):
    recs = _group("sdo", "t-scaled")  # no bptt case in the group: the reference is computed on its own
    ctx = Context()
    problem = ctx.problem(Case("gmm", "ddim", 3, "latent", "sdo")).to(dtype=torch.float64)
    exact = sdo.grad(problem, "bptt").flat()
    est = sdo.grad(ctx.problem(Case("gmm", "ddim", 3, "latent", "sdo")), "sdo").flat().double()
    cos = float(est @ exact / (est.norm() * exact.norm()))
    assert recs["sdo"]["cos_to_exact"] == pytest.approx(cos, abs=1e-5)
    assert recs["sdo"]["norm_ratio_to_exact"] == pytest.approx(float(est.norm() / exact.norm()), rel=1e-5)
    scaled = recs["t-scaled"]
    assert scaled["cos_to_exact"] == pytest.approx(1.0, abs=1e-6)
    assert scaled["norm_ratio_to_exact"] == pytest.approx(3.0, rel=1e-5)
    assert scaled["rel_err_to_exact"] == pytest.approx(2.0, rel=1e-5)


@pytest.mark.skipif(not reset_peak_rss(), reason="needs /proc/self/clear_refs (Linux)")
def test_the_cpu_peak_is_reset_before_every_call(one_thread):
    recs = _group("t-hog", "sdo", rounds=2)
    assert recs["t-hog"]["peak_mem_bytes"] >= 0.9 * HOG_BYTES  # the probe sees the hog ...
    assert recs["sdo"]["peak_mem_bytes"] < 32 * 2**20  # ... and not in the calls interleaved after it
    assert all(p < 32 * 2**20 for p in recs["sdo"]["peak_mem_rounds"])


def test_rounds_are_interleaved_and_every_case_of_a_group_records_the_same_run(one_thread):
    calls = []

    @dataclasses.dataclass
    class Logged(Estimator):
        tag: str = ""

        def estimate(self, problem):
            calls.append(self.tag)
            return sdo.grad(problem, "sdo")

    for tag in "ab":
        register_estimator(f"t-log-{tag}", Logged, tag=tag)
    try:
        recs = _group("t-log-a", "t-log-b", rounds=3)
    finally:
        for tag in "ab":
            sdo.estimators.ESTIMATORS._factories.pop(f"t-log-{tag}")
            sdo.estimators.ESTIMATORS._defaults.pop(f"t-log-{tag}")
    assert calls == ["a", "b", "a", "b", "a", "b", "a", "b"]  # warm-ups, then 3 rounds A B A B A B
    assert recs["t-log-a"]["live_peak_bytes"] > 0
    assert recs["t-log-a"]["rounds_run"] == 3 and len(recs["t-log-b"]["times_s"]) == 3
    assert recs["t-log-a"]["time_lo_s"] <= recs["t-log-a"]["time_median_s"] <= recs["t-log-a"]["time_hi_s"]


def test_intermediate_is_the_step_whose_timestep_is_nearest_600():
    solver = sdo.samplers.get("ddim", steps=10).build(sdo.models.get("gmm"))
    k = intermediate_step(solver, 10)
    assert abs(solver.timestep(k) - 600) == min(abs(solver.timestep(i) - 600) for i in range(1, 11))
    assert solver.timestep(k) == 599.0


def test_reversible_gets_its_own_coupled_reference_and_the_ddim_one(one_thread):
    recs = _group("reversible", wrt="params", rounds=1)
    rev = recs["reversible"]
    assert rev["coupled_ref"] == rev["exact_ref"].replace("bptt", "coupled-bptt")
    assert rev["cos_to_coupled"] == pytest.approx(1.0, abs=1e-6)
    assert rev["norm_ratio_to_coupled"] == pytest.approx(1.0, abs=1e-3)  # float32 case, float64 reference
    problem = Context().problem(Case("gmm", "ddim", 3, "params", "reversible")).to(dtype=torch.float64)
    own, ddim = coupled_bptt(problem, 0.93).flat(), sdo.grad(problem, "bptt").flat()
    assert rev["cos_to_exact"] == pytest.approx(float(own @ ddim / (own.norm() * ddim.norm())), abs=1e-5)


def test_reversible_mf_gets_its_own_coupled_reference(one_thread):
    rec = _group("reversible-mf", wrt="latent", rounds=1)["reversible-mf"]
    assert rec["coupled_ref"].startswith("coupled-bptt")
    assert rec["cos_to_coupled"] == pytest.approx(1.0, abs=1e-6)
    assert rec["norm_ratio_to_coupled"] == pytest.approx(1.0, abs=1e-3)
    assert rec["cos_to_exact"] < rec["cos_to_coupled"]


def test_a_trained_model_without_weights_is_recorded_as_skipped_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(grid, "TRAINED_MODELS", [*grid.TRAINED_MODELS, "gmm"])
    monkeypatch.setattr(
        grid, "missing_weights", lambda m: "trained weights missing: test" if m == "gmm" else None
    )
    monkeypatch.setattr(sweep, "missing_weights", grid.missing_weights)
    cases = [Case("gmm", "ddim", 2, "latent", "sdo")]
    (rec,) = sweep.sweep(cases, tmp_path, launcher="inprocess", progress=False)
    assert rec["status"] == "skipped" and "weights missing" in rec["message"]


@pytest.mark.parametrize("wrt", ["latent", "params"])
def test_doodl_preset_is_the_exact_gradient_of_the_coupled_sampler_with_two_more_forwards_per_step(wrt):
    problem = Context().problem(Case("mlp", "ddim", 4, wrt, "doodl")).to(dtype=torch.float64)
    ref = coupled_bptt(problem, 0.93).flat()
    doodl, rev = sdo.grad(problem, "doodl"), sdo.grad(problem, "reversible")
    assert float((doodl.flat() - ref).norm() / ref.norm()) < 1e-10
    assert doodl.stats["nfe_fwd_recompute"] == rev.stats["nfe_fwd_recompute"] + 2 * 4
    adjointdpm = sdo.estimators.get("adjointdpm")
    assert (adjointdpm.method, adjointdpm.rtol, adjointdpm.atol) == ("explicit_adams", 0.05, 0.0078)
