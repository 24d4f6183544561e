"""Analysis functions: Theorem 4.1 quantities from explicit matrices, gradient norms vs depth."""

import numpy as np
import torch
from conftest import make_problem

import sdo
from analysis.depth import depth_profile
from analysis.theorem41 import euler_trajectory, theorem_case, velocity


def test_implicit_function_gradient_equals_backprop_through_euler():
    """Eq. 13 solved with explicit matrices equals plain autograd through Eq. 10."""
    case = theorem_case(steps=6, dim=2, scale=1.0, seed=0)
    model = sdo.models.get("gmm-flow", dim=2, scale=1.0, seed=0).double()
    g = torch.Generator().manual_seed(1)
    x_N = torch.randn(2, generator=g, dtype=torch.float64).requires_grad_(True)
    target = torch.randn(2, generator=g, dtype=torch.float64)
    x = x_N
    for n in range(5, -1, -1):
        x = x - velocity(model, n + 1, 6)(x) / 6
    (grad,) = torch.autograd.grad(0.5 * ((x - target) ** 2).sum(), x_N)
    assert abs(case.exact_norm - float(grad.norm())) < 1e-10
    with torch.no_grad():
        torch.testing.assert_close(euler_trajectory(model, x_N.detach(), 6)[-1], x.detach())


def test_proofs_bound_holds_whenever_the_picard_map_contracts():
    for steps in (4, 8):
        case = theorem_case(steps=steps, dim=2, scale=1.0, seed=1)
        assert case.lam < 1
        assert case.error <= case.bound_proof


def test_depth_profile_ends_match_the_estimators():
    problem = make_problem("gmm", steps=5, dim=3)
    df = depth_profile(problem).set_index("step")
    assert abs(df.loc[5, "bptt"] - sdo.grad(problem, "bptt").norm()) < 1e-12
    x0 = sdo.grad(problem, "bptt").x0
    target = torch.randn(x0.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    g0 = 2 * (x0 - target) / x0.numel()  # target-mse's gradient in closed form
    assert abs(df.loc[0, "bptt"] - float(g0.norm())) < 1e-12
    # in x_bar = x / alpha, DDIM's linear chain is the identity: the frozen-network cotangent is constant
    assert np.allclose(df["linear_chain_xbar"].values, float(g0.norm()), rtol=1e-10, atol=0)


def test_theorem41_on_the_affine_gaussian_matches_its_closed_form():
    """At N = 2 the error is exactly lambda rho / 2 with lambda = (1 - s^2)/(1 + s^2): first order in lambda,
    while the stated bound is second order (log-log slopes 1 and 2)."""
    from analysis.theorem41 import lambda_sweep, loglog_slope

    df = lambda_sweep((0.1, 0.01, 1e-3), steps=2, seeds=(0,))
    assert np.allclose(df["lam"], df["lambda_target"], rtol=1e-6)
    assert np.allclose(df["error"], df["lam"] * df["rho"] / 2, rtol=1e-10)
    assert np.allclose(df["lip"], 2**-0.5, rtol=1e-12)
    assert abs(loglog_slope(df["lam"], df["error"]) - 1) < 0.01
    assert abs(loglog_slope(df["lam"], df["bound_stated"]) - 2) < 0.1
    assert (df["tight_stated"] > 1).all() and (df["tight_proof"] <= 1).all()


def test_bounds_are_nan_where_the_picard_map_does_not_contract():
    from analysis.theorem41 import stated_and_proof_bounds

    assert all(np.isnan(stated_and_proof_bounds(1.2, 1.0, 1.0)))
    assert stated_and_proof_bounds(0.5, 2.0, 3.0) == (1.0, 6.0)


def test_picard_operator_matches_explicit_matrices_and_the_estimators():
    """lambda by power iteration = ||J_F||_2 built block by block; g (I - J_F)^{-1} dF/dx_bar_N = alpha_N BPTT."""
    from analysis.picard import PicardOperator, trained_case

    problem = make_problem("gmm", steps=4, dim=3, components=2, scale=0.5)
    op, N, D = PicardOperator(problem), 4, 3
    eye = torch.eye(D, dtype=torch.float64)
    JF = torch.zeros(N * D, N * D, dtype=torch.float64)
    for n in range(N):
        for i in range(n + 1, N):
            JF[n * D : (n + 1) * D, i * D : (i + 1) * D] = torch.stack(
                [op.block(i, e[None])[0] for e in eye], 1
            )
    M = torch.stack([op.first_block(e[None])[0] for e in eye], 1)
    case = trained_case(problem, iters=200)
    assert abs(case["lam"] / float(torch.linalg.matrix_norm(JF, 2)) - 1) < 1e-4  # power iteration
    x0 = sdo.grad(problem, "bptt").x0.clone().requires_grad_(True)
    g0 = torch.autograd.grad(problem.objective(x0), x0)[0].reshape(-1)
    gX = torch.cat([g0, torch.zeros((N - 1) * D, dtype=torch.float64)])  # block 0 is x_bar_0
    exact = torch.linalg.solve((torch.eye(N * D, dtype=torch.float64) - JF).T, gX) @ M.repeat(N, 1)
    bptt = sdo.grad(problem, "bptt").grads["latent"].reshape(-1) * op.alphas[0]
    assert torch.allclose(exact, bptt, rtol=1e-10, atol=1e-14)
    shortcut = sdo.grad(problem, "sdo").grads["latent"].reshape(-1) * op.alphas[0]
    assert torch.allclose(g0 @ M, shortcut, rtol=1e-10, atol=1e-14)
    assert abs(case["error"] - float((exact - shortcut).norm())) < 1e-10


def test_which_estimator_reads_the_choice_off_the_measurements():
    import pandas as pd

    from analysis.which import which_estimator

    rows = [  # estimator, time, peak MiB, cosine, norm ratio, rel err, exact
        ("bptt", 10.0, 900.0, 1.0, 1.0, 0.0, True),
        ("checkpoint", 14.0, 120.0, 1.0, 1.0, 0.0, True),
        ("sdo", 4.0, 60.0, 0.95, 30.0, 29.0, False),
        ("truncated", 5.0, 80.0, 0.92, 1.3, 0.4, False),
        ("adjoint", 20.0, 40.0, 0.5, 0.7, 0.9, False),
    ]
    df = pd.DataFrame(
        rows, columns=["estimator", "time_s", "peak_mib", "cosine", "norm_ratio", "rel_err", "exact"]
    )
    df = df.assign(model="m", wrt="latent", steps=10)
    table = which_estimator(df).set_index("need")["estimator"]
    assert table["exact, fastest"] == "bptt"
    assert table["exact, least memory"] == "checkpoint"
    assert table["fastest with cosine >= 0.9"] == "sdo"
    assert table["fastest with cosine >= 0.9 and norm ratio in [0.5, 2]"] == "truncated"
    assert table["least memory, any accuracy"] == "adjoint"
    assert table["most accurate approximate"] == "truncated"
    none = which_estimator(df[~df.exact]).set_index("need")["estimator"]
    assert none["exact, fastest"] == "none"
