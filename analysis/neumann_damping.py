"""Does damping tau < 1 (TorchDEQ's phantom-gradient update) tame the Neumann series' overshoot? Relative
error and cosine of neumann(K, tau) to BPTT, wrt x_N, float64, N = 10, for K = 0..2N.

The damped estimate is the binomial average sum_j Binomial(j; K, tau) P_j of the undamped partial sums P_j
(sdo/estimators/neumann.py, tested), so the grid is computed from P_0..P_{N-1}, all recorded in one
K = N-1 run; `direct_check` is the relative difference of the closed form to direct runs of the
estimator at (K, tau) = (3, 0.6) and the relative error of P_{N-1} to BPTT.

    python -m analysis.neumann_damping --out results/analysis
"""

from __future__ import annotations

import argparse
import math
import os

import pandas as pd
import torch

import sdo
from sdo.compare import accuracy
from sdo.estimators.neumann import Neumann, NeumannSweep
from sdo.estimators.sweep import leaf, network_vjp
from sdo.result import GradResult
from sdo.schedule import SD_SCHEDULE

TAUS = (1.0, 0.8, 0.6, 0.4, 0.2)
CASES = {  # label: (model, model options, objective seed)
    "gmm sharp (scale 0.1)": ("gmm", {}, 7),
    "gmm broad (scale 1, SD schedule)": ("gmm", {"scale": 1.0, "schedule": SD_SCHEDULE}, 7),
    "fmnist-ddpm": ("fmnist-ddpm", {}, 1),
}
CHECK = (3, 0.6)  # (K, tau) also run directly


class RecordingSweep(NeumannSweep):
    """The undamped K = N-1 backward, keeping the estimate P_j after every term j (wrt x_first)."""

    def backward(self, g):
        self.partials = []
        g_first, g_m = self.linear_sweep(g, {})
        for j in range(self.first):
            x = leaf(self.states[self.first].x)
            (g_net,) = network_vjp(self.rollout, self.first, x, g_m[self.first], [x])
            self.partials.append(g_first + g_net)
            if j < self.first - 1:
                g_first, g_m = self.linear_sweep(g, self.network_terms(g_m))
        return self.partials[-1], []


def partial_sums(problem: sdo.Problem) -> list[torch.Tensor]:
    """P_0..P_{N-1} wrt the latent z (x_N = init_scale z), from one recording run."""
    estimator, sweeps = Neumann(K=problem.steps - 1, batched=False), []

    def make_sweep(rollout, history, first, leaves):
        sweeps.append(RecordingSweep(rollout, history, first, leaves))
        return sweeps[-1]

    estimator.make_sweep = make_sweep
    estimator(problem)
    return [problem.solver.init_scale * p for p in sweeps[0].partials]


def make(model: str, options: dict, seed: int, steps: int) -> sdo.Problem:
    """Target-MSE on native DDIM, wrt x_N, float64."""
    return sdo.Problem(
        sdo.models.get(model, seed=0, **options),
        sdo.samplers.get("ddim", steps=steps),
        sdo.objectives.get("target-mse", seed=seed),
        dtype=torch.float64,
    )


def damped(partial: list[torch.Tensor], K: int, tau: float) -> torch.Tensor:
    """sum_j Binomial(j; K, tau) P_j, with P_j = P_{N-1} for j >= N - 1 (the series has ended)."""
    out = torch.zeros_like(partial[0])
    for j in range(K + 1):
        out = out + math.comb(K, j) * tau**j * (1 - tau) ** (K - j) * partial[min(j, len(partial) - 1)]
    return out


def measure(label: str, model: str, options: dict, seed: int, steps: int) -> tuple[list[dict], float]:
    """Rows per (tau, K) and the largest relative difference of the closed form to direct runs."""
    problem = make(model, options, seed, steps)
    ref = sdo.grad(problem, "bptt")
    partial = partial_sums(problem)
    rows = []
    for tau in TAUS:
        for K in range(2 * steps + 1):
            g = damped(partial, K, tau)
            acc = accuracy(GradResult({"latent": g}, ref.loss, ref.x0), ref)
            rows.append(
                dict(case=label, steps=steps, tau=tau, K=K, rel_err=acc["rel_err"], cosine=acc["cosine"])
            )
    K, tau = CHECK
    direct = sdo.grad(problem, "neumann", K=K, tau=tau).grads["latent"]
    exact = ref.grads["latent"]
    check = float((direct - damped(partial, K, tau)).norm() / direct.norm())
    return rows, max(check, float((partial[-1] - exact).norm() / exact.norm()))


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per (case, tau): peak error over K, error at K = N-1 and K = 2N, first K with error < 0.1."""
    out = []
    for (case, tau), g in df.groupby(["case", "tau"], sort=False):
        N = int(g.steps.iloc[0])
        below = g[g.rel_err < 0.1].K
        out.append(
            dict(case=case, tau=tau, err_K0=g.rel_err.iloc[0], peak_err=g.rel_err.max())
            | dict(
                peak_K=int(g.K[g.rel_err.idxmax()]), err_K_N_minus_1=float(g[g.K == N - 1].rel_err.iloc[0])
            )
            | dict(
                err_K_2N=float(g[g.K == 2 * N].rel_err.iloc[0]),
                first_K_below_0_1=int(below.min()) if len(below) else -1,
            )
        )
    return pd.DataFrame(out)


def plot(df: pd.DataFrame, path: str) -> None:
    """Relative error to BPTT against K, one panel per case, one line per tau."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = list(dict.fromkeys(df.case))
    fig, axes = plt.subplots(1, len(cases), figsize=(5 * len(cases), 4))
    for ax, case in zip(axes, cases):
        for tau, g in df[df.case == case].groupby("tau", sort=False):
            ax.semilogy(g.K, g.rel_err.clip(lower=1e-16), "o-", ms=3, label=f"tau = {tau}")
        ax.axvline(int(df.steps.iloc[0]) - 1, color="gray", ls=":")
        ax.set_title(case)
        ax.set_xlabel("K (terms)")
        ax.set_ylabel("relative error to BPTT")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("neumann with damping tau, wrt x_N, DDIM, float64 (dotted: K = N - 1)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.neumann_damping", description=__doc__)
    parser.add_argument("--out", default="results/analysis")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    rows, checks = [], {}
    for label, (model, options, seed) in CASES.items():
        case_rows, checks[label] = measure(label, model, options, seed, args.steps)
        rows += case_rows
    df = pd.DataFrame(rows)
    df.to_csv(os.path.join(args.out, "neumann_damping.csv"), index=False)
    table = summary(df).assign(direct_check=lambda t: t.case.map(checks))
    table.to_csv(os.path.join(args.out, "neumann_damping_summary.csv"), index=False)
    plot(df, os.path.join(args.out, "neumann_damping.png"))
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
