"""Plotting functions the analysis notebooks call (Theorem 4.1 tightness, gradient norms vs depth)."""

from __future__ import annotations

import matplotlib.pyplot as plt

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINES = ("-", "--", "-.", ":")


def _save(fig, path: str | None):
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=120)
    return fig


def plot_lambda_sweep(df, slopes: dict, path: str | None = None):
    """Error and both bounds of Theorem 4.1 against lambda on log-log axes, with the fitted slopes."""
    fig, ax = plt.subplots(figsize=(6, 4.2))
    mean = df.groupby("lambda_target")[["lam", "error", "bound_stated", "bound_proof"]].mean()
    series = (("error", "measured error"), ("bound_proof", "proof's bound"), ("bound_stated", "stated bound"))
    for k, (col, label) in enumerate(series):
        key = {"error": "error", "bound_proof": "proof's bound", "bound_stated": "stated bound"}[col]
        ax.loglog(
            mean["lam"],
            mean[col],
            LINES[k],
            marker=MARKERS[k],
            color=PALETTE[k],
            label=f"{label} (slope {slopes[key]:.2f})",
        )
    ax.set_xlabel("lambda = ||dF/dX||_2")
    ax.set_ylabel("||grad_exact - grad_SDO||  /  bound")
    ax.set_title("Theorem 4.1 on the affine Gaussian, N = 2 (float64, exact Jacobians)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_theorem(df, path: str | None = None):
    """Left: measured ||grad - grad_SDO|| against both bounds; right: lambda = ||J_F|| vs data scale and N."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    ok = df[df["lam"] < 1]
    a.loglog(ok["bound_proof"], ok["error"], "o", label="proof's bound  rho*lam*L/(1-lam)")
    a.loglog(ok["bound_stated"], ok["error"], "x", label="stated bound  lam^2*rho/(1-lam)")
    lo = min(ok["error"].min(), ok["bound_stated"].min()) if len(ok) else 1e-3
    hi = max(ok["bound_proof"].max(), ok["error"].max()) if len(ok) else 1
    a.loglog([lo, hi], [lo, hi], "k--", lw=1, label="error = bound")
    a.set_xlabel("bound")
    a.set_ylabel("measured error  ||grad_exact - grad_SDO||")
    a.set_title("Theorem 4.1 (contractive cases, lambda < 1)")
    a.legend(fontsize=8)
    for scale, grp in df.groupby("scale"):
        means = grp.groupby("steps")["lam"].mean()
        b.plot(means.index, means.values, "o-", label=f"data scale {scale}")
    b.axhline(1.0, color="k", ls="--", lw=1)
    b.set_xscale("log")
    b.set_xticks(sorted(df["steps"].unique()), [str(n) for n in sorted(df["steps"].unique())])
    b.minorticks_off()
    b.set_xlabel("steps N")
    b.set_ylabel("lambda = ||dF/dX||  (contraction needs < 1)")
    b.legend(fontsize=8)
    return _save(fig, path)


def plot_depth(profiles: dict, path: str):
    """Cotangent norms vs step i per model, in x (left) and x_bar = x/alpha (right): BPTT solid, the linear
    chain alone dashed."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, suffix, label in zip(
        axes, ("", "_xbar"), ("||dJ/dx_i||", "||dJ/dx_bar_i|| = alpha_i ||dJ/dx_i||")
    ):
        for (name, df), color in zip(profiles.items(), colors):
            ax.semilogy(df["step"], df["bptt" + suffix], "-", color=color, label=f"{name}: BPTT")
            ax.semilogy(
                df["step"], df["linear_chain" + suffix], "--", color=color, label=f"{name}: linear chain"
            )
        ax.invert_xaxis()
        ax.set_xlabel("step i (backprop runs from x_0 on the right to x_N on the left)")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return fig
