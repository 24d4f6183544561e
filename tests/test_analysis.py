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
