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
    ax.set_title("Theorem 4.1 on the affine Gaussian, N = 2\n(float64, exact Jacobians)", fontsize=10)
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


def _band(ax, x, grp, col, style, label):
    q = grp.groupby(x)[col].quantile([0.1, 0.5, 0.9]).unstack()
    ax.plot(q.index, q[0.5], label=label, **style)
    ax.fill_between(q.index, q[0.1], q[0.9], color=style["color"], alpha=0.2, lw=0)


def plot_norm_vs_depth(norms, title: str, path: str | None = None):
    """Gradient norm vs backprop depth K (truncated; K = N is BPTT), SDO and sdo-all as points; median and
    10-90 % band over samples, one panel per model."""
    groups = list(norms.groupby("model"))
    fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 4), squeeze=False)
    for ax, (model, g) in zip(axes[0], groups):
        trunc = g[g.method == "truncated"]
        _band(
            ax,
            "depth",
            trunc,
            "norm",
            dict(color=PALETTE[0], marker="o", ls="-"),
            "truncated to the last K steps",
        )
        for k, method in enumerate(("sdo", "sdo-all"), start=1):
            v = g[g.method == method]["norm"]
            ax.errorbar(
                [1],
                [v.median()],
                yerr=[[v.median() - v.quantile(0.1)], [v.quantile(0.9) - v.median()]],
                color=PALETTE[k],
                marker=MARKERS[k],
                capsize=4,
                ls="none",
                label=method,
            )
        ax.set_yscale("log")
        ax.set_xticks(sorted(trunc["depth"].unique()))
        ax.set_xlabel("backprop depth K (steps whose network call keeps its graph)")
        ax.set_ylabel("||grad_theta J||")
        ax.set_title(model, fontsize=10)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_depth_bands(profiles, title: str, path: str | None = None):
    """Cotangent norms vs step i in x_bar = x/alpha per model: BPTT (solid) and the frozen chain (dashed), median
    and 10-90 % band over samples."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for k, (model, g) in enumerate(profiles.groupby("model")):
        _band(ax, "step", g, "bptt_xbar", dict(color=PALETTE[k], ls="-", marker=MARKERS[k]), f"{model}: BPTT")
        _band(ax, "step", g, "linear_chain_xbar", dict(color=PALETTE[k], ls="--"), f"{model}: frozen chain")
    ax.set_yscale("log")
    ax.invert_xaxis()
    steps = sorted(profiles["step"].unique())
    ax.set_xticks(steps if len(steps) <= 12 else steps[:: max(1, len(steps) // 10)])
    ax.set_xlabel("step i (backprop runs from x_0 on the right to x_N on the left)")
    ax.set_ylabel("||dJ/dx_bar_i|| = alpha_i ||dJ/dx_i||")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_accuracy_vs_steps(table, hue: str, path: str | None = None, x: str = "steps"):
    """Cosine (left) and norm ratio ||g_hat|| / ||g|| (right, log) against `x`, one line per `hue`, one row per
    (model, wrt); bars span the 10-90 % range over samples."""
    groups = list(table.groupby(["model", "wrt"]))
    fig, axes = plt.subplots(len(groups), 2, figsize=(11, 3.4 * len(groups)), squeeze=False)
    for row, ((model, wrt), grp) in zip(axes, groups):
        for k, (name, g) in enumerate(grp.groupby(hue, sort=False)):
            g = g.sort_values(x)
            style = dict(
                color=PALETTE[k % 8], marker=MARKERS[k % 8], ls=LINES[k % 4], capsize=3, label=str(name)
            )
            cos_err = [g["cosine"] - g["cosine_lo"], g["cosine_hi"] - g["cosine"]]
            row[0].errorbar(g[x], g["cosine"], yerr=cos_err, **style)
            ratio = g["norm_ratio"].where(g["norm_ratio"] > 0)
            rat_err = [ratio - g["ratio_lo"].where(g["ratio_lo"] > 0), g["ratio_hi"] - ratio]
            row[1].errorbar(g[x], ratio, yerr=rat_err, **style)
        row[0].set_ylabel("cosine to exact")
        row[1].set_ylabel("||g_hat|| / ||g||")
        row[1].set_yscale("log")
        row[1].axhline(1.0, color="k", lw=0.8)
        for ax in row:
            ax.set_xlabel("sampler steps N" if x == "steps" else x)
            ax.set_title(f"{model}, wrt {wrt}", fontsize=10)
            if x == "steps":
                ax.set_xticks(sorted(table[x].unique()))
        row[0].legend(fontsize=8)
    return _save(fig, path)


def plot_mechanism(mech, sdo_rows, path: str | None = None):
    """SDO's norm ratio against the chain overshoot (frozen gain / true gain), one point per sample."""
    merged = mech.merge(sdo_rows[["model", "steps", "seed", "norm_ratio"]], on=["model", "steps", "seed"])
    fig, ax = plt.subplots(figsize=(6, 4.4))
    for k, ((model, steps), g) in enumerate(merged.groupby(["model", "steps"])):
        ax.loglog(
            g["overshoot"], g["norm_ratio"], MARKERS[k % 8], color=PALETTE[k % 8], label=f"{model}, N={steps}"
        )
    if len(merged):
        lo = min(merged["overshoot"].min(), merged["norm_ratio"].min())
        hi = max(merged["overshoot"].max(), merged["norm_ratio"].max())
        ax.loglog([lo, hi], [lo, hi], "k--", lw=1, label="equal")
    ax.set_xlabel("frozen chain gain / true gain  (x_{N-1} -> x_0)")
    ax.set_ylabel("SDO ||g_hat|| / ||g||  (wrt x_N)")
    ax.set_title("Why SDO's latent gradient is too long on trained models")
    ax.legend(fontsize=7)
    return _save(fig, path)


def _styles(names):
    """One colour/marker/line style per estimator name, stable across figures."""
    return {
        n: dict(color=PALETTE[k % 8], marker=MARKERS[k % 8], ls=LINES[(k // 8) % 4])
        for k, n in enumerate(names)
    }


def plot_pareto(df, title: str, path: str | None = None):
    """Relative error to exact vs time, marker area proportional to peak memory; exact estimators at the floor."""
    fig, ax = plt.subplots(figsize=(7, 4.6))
    styles = _styles(sorted(df["estimator"].unique()))
    floor = df.loc[df["rel_err"] > 0, "rel_err"].min() if (df["rel_err"] > 0).any() else 1e-6
    mem = df["peak_mib"].fillna(df["peak_mib"].median() if df["peak_mib"].notna().any() else 1.0)
    size = 30 + 400 * mem / max(float(mem.max()), 1e-12)
    for (_, row), s in zip(df.iterrows(), size):
        err = row["rel_err"] if row["rel_err"] > 0 else floor / 10
        st = styles[row["estimator"]]
        ax.scatter(
            row["time_s"], err, s=s, color=st["color"], marker=st["marker"], alpha=0.8, label=row["estimator"]
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("time per gradient (s, median)")
    ax.set_ylabel("relative error to exact (exact: plotted at floor / 10)")
    ax.set_title(title + "\nmarker area ~ peak memory", fontsize=10)
    ax.legend(fontsize=7, markerscale=0.5, ncol=2)
    return _save(fig, path)


def plot_cost_vs_steps(df, title: str, path: str | None = None):
    """Time (with its interval or range), peak memory, cosine and norm ratio against N, one line per estimator."""
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    styles = _styles(sorted(df["estimator"].unique()))
    panels = (
        ("time_s", "time (s)", True),
        ("peak_mib", "peak memory (MiB)", True),
        ("cosine", "cosine to exact", False),
        ("norm_ratio", "||g_hat|| / ||g||", True),
    )
    for ax, (col, label, log) in zip(axes.flat, panels):
        for name, g in df.groupby("estimator"):
            g = g.sort_values("steps")
            if g[col].notna().any():
                yerr = None
                if col == "time_s" and {"time_lo_s", "time_hi_s"} <= set(g.columns):
                    yerr = [g["time_s"] - g["time_lo_s"], g["time_hi_s"] - g["time_s"]]
                ax.errorbar(g["steps"], g[col], yerr=yerr, capsize=3, label=name, **styles[name])
        ax.set_xlabel("sampler steps N")
        ax.set_ylabel(label)
        ax.set_xticks(sorted(df["steps"].unique()))
        if log:
            ax.set_yscale("log")
    axes[0, 0].legend(fontsize=7, ncol=2)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)
