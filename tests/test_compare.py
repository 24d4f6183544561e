"""sdo.compare: accuracy of every estimator against BPTT, as a DataFrame."""

import math

import pytest
import torch
from conftest import make_problem

import sdo

N = 6


def exact_estimators(steps):
    """Every registered estimator whose class says it is exact, plus neumann with K = N-1."""
    names = [n for n in sdo.estimators.names() if type(sdo.estimators.get(n)).exact]
    return names + [("neumann", {"K": steps - 1})]


@pytest.mark.parametrize("wrt,kw", [("latent", {}), ("params", {}), ("cond", {"conditional": True})])
def test_exact_estimators_have_cosine_one(wrt, kw):
    problem = make_problem(steps=N, wrt=wrt, dtype=torch.float32, **kw)  # compare runs it in float64
    specs = exact_estimators(N) if wrt == "latent" else exact_estimators(N)[:-1]
    assert {"bptt", "checkpoint"} <= {s if isinstance(s, str) else s[0] for s in specs}
    df = sdo.compare(problem, specs)
    assert list(df.status) == ["ok"] * len(specs)
    assert (df.cosine - 1).abs().max() < 1e-8 and df.rel_err.max() < 1e-8
    assert (df.ref_norm > 1e-6).all()


def test_columns_counts_and_approximate_estimators():
    problem = make_problem("mlp", steps=N)
    df = sdo.compare(problem, ["bptt", "sdo", ("neumann", {"K": 1}), ("truncated", {"K": 2})])
    for col in ["estimator", "options", "cosine", "rel_err", "grad_norm", "ref_norm", "status"]:
        assert col in df.columns
    for col in ["nfe_fwd_grad", "nfe_fwd_nograd", "nfe_bwd"]:
        assert col in df.columns
    sdo_row = df[df.estimator == "sdo"].iloc[0]
    ref = sdo.grad(problem.to(torch.float64), "bptt").flat()
    g = sdo.grad(problem.to(torch.float64), "sdo").flat()
    assert math.isclose(sdo_row.rel_err, float((g - ref).norm() / ref.norm()), rel_tol=1e-12)
    assert math.isclose(
        sdo_row.cosine, float(torch.nn.functional.cosine_similarity(g, ref, dim=0)), rel_tol=1e-12
    )
    assert math.isclose(sdo_row.norm_ratio, float(g.norm() / ref.norm()), rel_tol=1e-12)
    assert sdo_row.rel_err > 1e-3 and sdo_row.nfe_fwd_grad == 1 and sdo_row.nfe_fwd_nograd == N - 1
    assert df.iloc[2].options == {"K": 1} and df.iloc[2].rel_err < sdo_row.rel_err


def test_unsupported_and_nonfinite_rows():
    problem = make_problem(steps=N, wrt="latent")
    df = sdo.compare(problem, ["sdo-all", "sdo"])
    assert df.status[0] == "error" and "supported: params, cond" in df.error[0] and math.isnan(df.cosine[0])
    bad = make_problem(
        steps=N, objective=sdo.objectives.get("callable", fn=lambda x: (x.abs() ** 0.5).sum() / 0)
    )
    df = sdo.compare(bad, ["sdo"])
    assert df.status[0] == "nonfinite" and math.isnan(df.cosine[0]) and math.isnan(df.rel_err[0])


def test_bad_estimator_specs():
    problem = make_problem(steps=N)
    with pytest.raises(ValueError, match="unknown estimator 'nope'"):
        sdo.compare(problem, ["nope"])
    with pytest.raises(ValueError, match="names or \\(name, options\\) pairs"):
        sdo.compare(problem, [("sdo", 3)])
    with pytest.raises(ValueError, match="unknown option"):
        sdo.compare(problem, [("neumann", {"k": 1})])
