"""The generated results README: the paper's claims, our measurement with its 95 % interval, and the verdict the
interval supports (stats.verdict): reproduces, contradicts, or inconclusive."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .adversarial import ADJUSTED_VERDICTS
from .chunks import coverage_note
from .common import COUPLED, markdown
from .reward import MAX_FID_DRIFT
from .stats import bootstrap_interval, t_interval, verdict

MIN_BOOTSTRAP_N = 20  # a percentile bootstrap over fewer samples or batches gives no verdict


def boot_verdict(lo: float, hi: float, n: int, direction: str = "greater", null: float = 0.0) -> str:
    """stats.verdict of a bootstrap interval, 'inconclusive' when it rests on fewer than MIN_BOOTSTRAP_N values."""
    return verdict(lo, hi, direction, null) if n >= MIN_BOOTSTRAP_N else "inconclusive"


TABLES = (
    (
        "adversarial-gd",
        "Adversarial latent, the paper's update (gradient descent, lr 0.1, clip to [-tau, tau])",
    ),
    ("adversarial-gd-paired", "Adversarial latent (gd): SDO against each method on the same samples"),
    ("adversarial-gd-by-margin", "Adversarial latent (gd): success by the clean sample's starting margin"),
    ("adversarial-gd-adjusted", "Adversarial latent (gd): SDO against each method at equal starting margin"),
    ("adversarial-sign", "Adversarial latent, sign update (gradient magnitude removed)"),
    ("adversarial-sign-paired", "Adversarial latent (sign): SDO against each method on the same samples"),
    (
        "adversarial-sign-by-margin",
        "Adversarial latent (sign): success by the clean sample's starting margin",
    ),
    (
        "adversarial-sign-adjusted",
        "Adversarial latent (sign): SDO against each method at equal starting margin",
    ),
    ("style", "Style guidance at x_N and x_t (t ~ 600)"),
    ("style-paired", "Style guidance: x_t against x_N on the same samples"),
    ("style-methods", "Style guidance at x_N: SDO against each method on the same latents"),
    ("reward-finetune", "LoRA reward fine-tuning, mean and 95 % t band over seeds"),
    ("reward-sweep", "Learning-rate sweep on held-out classes"),
    ("reward-timing", "Time per fine-tuning step, SDO and AlignProp-uniform interleaved"),
    ("reward-gradnorm-depth", "Gradient norm vs backprop depth (Fig. 11a), over batches"),
)


def _read(out: Path, name: str) -> pd.DataFrame | None:
    path = out / f"{name}.csv"
    return pd.read_csv(path) if path.exists() and path.stat().st_size > 1 else None


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def rests_on(stored, planned, unit: str) -> str:
    """How much of the planned work a measurement uses: 'complete: ...' or 'partial: ... of ... planned ...'."""
    if planned is None or not np.isfinite(planned):
        return f"{int(stored)} {unit} (planned size not recorded)"
    return coverage_note(int(stored), int(planned), unit)


def _planned(row, column: str):
    """A row's planned size, None when the table does not record it."""
    value = row.get(column, None)
    return None if value is None or pd.isna(value) else value


def start_margins(out: Path, update: str, method: str) -> str:
    """' (mean clean margin X vs SDO's Y, ...)' from the summary table, '' when it lacks either method."""
    table = _read(out, f"adversarial-{update}")
    if table is None or "clean_margin" not in table:
        return ""
    mean = table.set_index("method").clean_margin
    if not {"sdo", method} <= set(mean.index) or not np.isfinite([mean[method], mean["sdo"]]).all():
        return ""
    nearer = ", nearer the decision boundary" if round(mean[method], 1) < round(mean["sdo"], 1) else ""
    return f" (mean clean margin {mean[method]:.1f} vs SDO's {mean['sdo']:.1f}{nearer})"


def adjusted_row(out: Path, update: str, method: str) -> pd.Series | None:
    """The row `sdo vs method` of the margin-adjusted table, None when there is none."""
    adj = _read(out, f"adversarial-{update}-adjusted")
    hit = adj[adj.comparison == f"sdo vs {method}"] if adj is not None and "comparison" in adj else None
    return None if hit is None or hit.empty else hit.iloc[0]


def adjusted_claim_verdict(out: Path, update: str, method: str) -> str:
    """The verdict on 'SDO succeeds more often than `method`' from the comparison at equal starting margin."""
    r = adjusted_row(out, update, method)
    v = None if r is None else r.verdict
    return {ADJUSTED_VERDICTS[0]: "contradicts", ADJUSTED_VERDICTS[1]: "reproduces"}.get(v, "inconclusive")


def coupled_departure(out: Path, update: str) -> str:
    """'; its coupled sampler ... fails the exclusions on k of the m candidates whose DDIM sample passes (p %)'
    from the exclusion counts over seeds ('' when none were recorded)."""
    path = out / f"adversarial-{update}.json"
    counts = json.loads(path.read_text()).get("exclusion_counts", {}) if path.exists() else {}
    coupled = [c for c in counts.values() if "excluded_only_by_the_coupled_sample" in c]
    if not coupled:
        return ""
    k = sum(c["excluded_only_by_the_coupled_sample"] for c in coupled)
    m = sum(c["candidates"] - c["excluded"] + c["excluded_only_by_the_coupled_sample"] for c in coupled)
    return (
        f"; its coupled sampler's clean sample fails the exclusions on {k} of the {m} candidates whose DDIM "
        f"sample passes ({100 * k / m:.0f} %), so the images it attacks are not SDO's and the success "
        "verdict follows the comparison at equal starting margin"
    )


def at_equal_margin(out: Path, update: str, method: str) -> str:
    """'; ...' the success odds ratio of a coupled-sampler method over SDO within clean-margin strata, when
    the adjusted table has it ('' otherwise)."""
    r = adjusted_row(out, update, method)
    if r is None:
        return ""
    start = f"; {method} attacks its own coupled sampler's clean samples{start_margins(out, update, method)}"
    start += coupled_departure(out, update)
    strata = f"{int(r.n_strata_used)} of {int(r.n_strata)} clean-margin strata informative"
    ratio = r.odds_ratio_other_over_ref
    if not (np.isfinite(r.or_lo) and np.isfinite(r.or_hi)):
        estimate = "" if np.isnan(ratio) else f" (estimate {ratio:g})"
        return (
            f"{start}; at equal starting margin ({strata}): no interval for the success odds ratio"
            f"{estimate}, inconclusive"
        )
    who = {
        ADJUSTED_VERDICTS[0]: f"{method} succeeds more often",
        ADJUSTED_VERDICTS[1]: "SDO succeeds more often",
    }
    return (
        f"{start}; at equal starting margin ({strata}, `adversarial-{update}-adjusted`): success odds ratio "
        f"{method} / SDO {ratio:.2f} [{r.or_lo:.2f}, {r.or_hi:.2f}], {who.get(r.verdict, 'inconclusive')}"
    )


OTHER_IMAGES = "; no verdict: its clean images are its coupled sampler's, not SDO's (see the success row)"


def success_claim(out: Path, update: str, method: str, paper: str, r: pd.Series) -> dict:
    """Attack success, SDO against `method` on the latents stored for both: the paired test, or for a
    coupled-sampler method (other images) the comparison at equal starting margin."""
    coupled = method in COUPLED
    ours = (
        f"on the same n = {int(r.n_pairs)} {'latents' if coupled else 'samples'}: SDO "
        f"{r.reference_success_pct:.1f} % [{r.reference_ci_lo_pct:.1f}, {r.reference_ci_hi_pct:.1f}] vs {method} "
        f"{r.other_success_pct:.1f} % [{r.other_ci_lo_pct:.1f}, {r.other_ci_hi_pct:.1f}]; discordant "
        f"{int(r.only_reference_succeeds)} : {int(r.only_other_succeeds)}, SDO's share [{r.share_lo:.2f}, "
        f"{r.share_hi:.2f}], McNemar p = {r.mcnemar_p:.3g}"
    )
    if r.n_pairs == 0:
        ours = f"not measured yet: no sample is stored for both SDO and {method}"
    elif coupled:
        ours += at_equal_margin(out, update, method)
    paired = verdict(r.share_lo, r.share_hi, "greater", 0.5)
    return dict(
        claim=f"attack success: SDO 96.3 % > {paper} (Table 5, {update} update)",
        ours=ours,
        verdict=adjusted_claim_verdict(out, update, method) if coupled else paired,
        rests_on=rests_on(r.n_pairs, _planned(r, "n_pairs_planned"), "paired samples"),
    )


def change_claims(method: str, r: pd.Series) -> list[dict]:
    """How much the attack changes the images (perceptual distance, FID change), SDO against `method`;
    no verdict for a coupled-sampler method, whose clean images differ from SDO's."""
    coupled = method in COUPLED
    rows = [
        dict(
            claim=f"SDO changes images less than {method} (Table 5 LPIPS; ours: judge-feature distance)",
            ours=f"{method} - SDO perceptual distance {r.perceptual_other_minus_ref:.4f} "
            f"[{r.perceptual_diff_lo:.4f}, {r.perceptual_diff_hi:.4f}]" + (OTHER_IMAGES if coupled else ""),
            verdict="inconclusive"
            if coupled
            else boot_verdict(r.perceptual_diff_lo, r.perceptual_diff_hi, r.n_pairs),
            rests_on=rests_on(r.n_pairs, _planned(r, "n_pairs_planned"), "paired samples"),
        )
    ]
    if np.isfinite(r.get("fid_diff_lo", np.nan)):
        fid_n = r.get("fid_n", r.n_pairs)
        rows.append(
            dict(
                claim=f"SDO degrades FID less than {method} (Table 5 FID)",
                ours=f"FID change {method} - SDO {r.fid_change_other_minus_ref:.2f} "
                f"[{r.fid_diff_lo:.2f}, {r.fid_diff_hi:.2f}] (paired bootstrap)"
                + (OTHER_IMAGES if coupled else ""),
                verdict="inconclusive" if coupled else boot_verdict(r.fid_diff_lo, r.fid_diff_hi, fid_n),
                rests_on=rests_on(fid_n, _planned(r, "n_pairs_planned"), "paired samples"),
            )
        )
    return rows


def adversarial_claims(out: Path, update: str = "gd") -> list[dict]:
    """Table 5: SDO succeeds more often, changes images less and degrades FID less than AdjointDPM and DOODL,
    each measured on the samples stored for both methods."""
    pairs = _read(out, f"adversarial-{update}-paired")
    if pairs is None:
        return []
    rows = []
    for method, paper in (("adjoint", "AdjointDPM 52.5 %"), ("reversible", "DOODL 51.6 %")):
        hit = pairs[pairs.comparison == f"sdo vs {method}"]
        if not hit.empty:
            rows += [
                success_claim(out, update, method, paper, hit.iloc[0]),
                *change_claims(method, hit.iloc[0]),
            ]
    return rows


def style_claims(out: Path) -> list[dict]:
    """Sec. 5.1.2: optimising x_t at t = 600 preserves the original's semantics better than x_N."""
    pairs = _read(out, "style-paired")
    if pairs is None or "sdo" not in set(pairs.method):
        return []
    r = pairs.set_index("method").loc["sdo"]
    ours = (
        f"kept only at x_t : only at x_N = {int(r.kept_only_at_x_t)} : {int(r.kept_only_at_x_N)} "
        f"(n = {int(r.n_pairs)}), share [{r.share_lo:.2f}, {r.share_hi:.2f}], McNemar p = {r.mcnemar_p:.3g}"
    )
    return [
        dict(
            claim="style guidance at t = 600 keeps the class more often than at x_N (SDO; Sec. 5.1.2)",
            ours=ours if r.n_pairs else "not measured yet: no sample is stored at both x_t and x_N",
            verdict=verdict(r.share_lo, r.share_hi, "greater", 0.5),
            rests_on=rests_on(r.n_pairs, _planned(r, "n_pairs_planned"), "paired samples"),
        )
    ]


TABLE2 = (("adjoint", "AdjointDPM", 396.7), ("reversible", "DOODL", 357.2))  # paper Table 2 style losses


def style_loss_claims(out: Path) -> list[dict]:
    """Table 2: SDO's guided images reach a lower style loss (Eq. 24) than AdjointDPM's and DOODL's, measured at
    x_N on the latents stored for both methods."""
    pairs = _read(out, "style-methods")
    if pairs is None:
        return []
    rows = []
    for method, paper, loss in TABLE2:
        hit = pairs[pairs.comparison == f"sdo vs {method}"]
        if hit.empty:
            continue
        r = hit.iloc[0]
        ours = (
            f"final style loss at x_N on the same n = {int(r.n_pairs)} latents: SDO {r.reference_style_loss:.3g} vs "
            f"{method} {r.other_style_loss:.3g}, {method} - SDO {r.style_loss_other_minus_ref:.3g} "
            f"[{r.diff_lo:.3g}, {r.diff_hi:.3g}] (paired bootstrap); class kept SDO {r.reference_kept_pct:.1f} % vs "
            f"{method} {r.other_kept_pct:.1f} %"
        )
        if method in COUPLED:
            ours += f"; {method}'s images come from its own coupled sampler"
        rows.append(
            dict(
                claim=f"SDO reaches a lower style loss than {paper} (Table 2: 268.1 vs {loss})",
                ours=ours
                if r.n_pairs
                else f"not measured yet: no latent is stored for both SDO and {method}",
                verdict=boot_verdict(r.diff_lo, r.diff_hi, int(r.n_pairs)),
                rests_on=rests_on(r.n_pairs, _planned(r, "n_pairs_planned"), "paired samples"),
            )
        )
    return rows


def _by_seed(runs: pd.DataFrame, kind: str, method: str, col: str) -> pd.Series:
    g = runs[(runs.reward == kind) & (runs.method == method)]
    return g.set_index("seed")[col]


def collapse_note(runs: pd.DataFrame, kind: str) -> str:
    """'' when no SDO or AlignProp-uniform run of reward `kind` drifted beyond MAX_FID_DRIFT, else a note
    with the counts: a reward raised by leaving the data is hacked, and a comparison of it gets no verdict."""
    counts = []
    for method, label in (("sdo", "SDO"), ("alignprop-uniform", "AlignProp-uniform")):
        drift = _by_seed(runs, kind, method, "fid_drift")
        counts.append((label, int((drift > MAX_FID_DRIFT).sum()), len(drift)))
    if not any(k for _, k, _ in counts):
        return ""
    said = " and ".join(f"{k} of {n} {label} runs" for label, k, n in counts)
    return (
        f"; no verdict: {said} left the data (FID drift > {MAX_FID_DRIFT:g} in the judge's features), "
        "so the reward was raised by hacking the classifier, not by better images"
    )


def reward_claims(out: Path) -> list[dict]:
    """Sec. 5.2: SDO's runtime about 50 % of AlignProp-uniform's (from the interleaved timing when stored, else
    the fine-tuning runs' own step times); SDO reaches a higher reward; Fig. 11a depth growth."""
    rows = []
    runs, summary = _read(out, "reward-runs"), _read(out, "reward-finetune")
    planned = None
    if summary is not None and "seeds_planned" in summary and len(summary):
        planned = _planned(summary.iloc[0], "seeds_planned")
    timing = _read(out, "reward-timing")
    timed = timing is not None and len(timing) > 0
    if timed:
        rows.append(timing_claim(timing.iloc[0]))
    if runs is not None and len(runs):
        for kind in sorted(set(runs.reward)):
            sdo, ap = (
                _by_seed(runs, kind, "sdo", "s_per_step"),
                _by_seed(runs, kind, "alignprop-uniform", "s_per_step"),
            )
            if len(sdo) and len(ap) and not timed:
                ratio = (sdo / ap).dropna()
                m, lo, hi = t_interval(ratio)
                rows.append(
                    dict(
                        claim=f"SDO needs about 50 % of AlignProp-uniform's time per step ({kind} reward)",
                        ours=f"ratio {m:.2f} [{lo:.2f}, {hi:.2f}] over {len(ratio)} seeds",
                        verdict=verdict(lo, hi, "less", 1.0),
                        rests_on=rests_on(len(ratio), planned, "seeds"),
                    )
                )
            sdo, ap = (
                _by_seed(runs, kind, "sdo", "eval_after"),
                _by_seed(runs, kind, "alignprop-uniform", "eval_after"),
            )
            if len(sdo) and len(ap):
                gain = (sdo - ap).dropna()
                m, lo, hi = t_interval(gain)
                ours = (
                    f"eval reward SDO - AlignProp-uniform {m:.3f} [{lo:.3f}, {hi:.3f}] over {len(gain)} seeds"
                )
                left = collapse_note(runs, kind)
                rows.append(
                    dict(
                        claim=f"SDO reaches a higher reward than AlignProp-uniform in the same steps ({kind})",
                        ours=ours + left,
                        verdict="inconclusive" if left else verdict(lo, hi, "greater", 0.0),
                        rests_on=rests_on(len(gain), planned, "seeds"),
                    )
                )
        rows += instability_claims(runs, planned)
    depth, depth_table = _read(out, "reward-gradnorm-depth-batches"), _read(out, "reward-gradnorm-depth")
    if depth is not None and len(depth):
        batches = None
        if depth_table is not None and "batches_planned" in depth_table and len(depth_table):
            batches = _planned(depth_table.iloc[0], "batches_planned")
        rows += depth_claims(depth, batches)
    return rows


def instability_claims(runs: pd.DataFrame, planned=None) -> list[dict]:
    """Sec. 5.2 (Figs. 11b-c): AlignProp-1 becomes unstable during fine-tuning and SDO does not, read as its
    eval reward ending further below its best (peak_drop), AlignProp-1 - SDO on the same seeds."""
    rows = []
    if "peak_drop" not in runs:
        return rows
    for kind in sorted(set(runs.reward)):
        sdo, ap1 = (_by_seed(runs, kind, m, "peak_drop") for m in ("sdo", "alignprop-1"))
        diff = (ap1 - sdo).dropna()
        if not len(diff):
            continue
        m, lo, hi = t_interval(diff)
        rows.append(
            dict(
                claim=f"AlignProp-1 becomes unstable during fine-tuning, SDO does not (Sec. 5.2; {kind})",
                ours=f"fall of the eval reward from the run's best, AlignProp-1 - SDO {m:.3f} [{lo:.3f}, {hi:.3f}] "
                f"over {len(diff)} seeds (SDO {sdo.mean():.3f}, AlignProp-1 {ap1.mean():.3f})",
                verdict=verdict(lo, hi, "greater", 0.0),
                rests_on=rests_on(len(diff), planned, "seeds"),
            )
        )
    return rows


def timing_claim(t) -> dict:
    """Sec. 5.2's runtime claim from the interleaved timing: no verdict when it was measured under load."""
    ours = (
        f"SDO / AlignProp-uniform mean step time {t.ratio:.2f} [{t.ratio_lo:.2f}, {t.ratio_hi:.2f}] "
        f"({t.sdo_s:.1f} s vs {t.alignprop_uniform_s:.1f} s, {int(t.rounds)} interleaved rounds, median load "
        f"{t.median_load_1m:.1f} on {int(t.threads)} threads)"
    )
    loaded = bool(t.loaded)
    return dict(
        claim="SDO needs about 50 % of AlignProp-uniform's time per step (Sec. 5.2)",
        ours=ours + ("; measured under load, no verdict: rerun on a quiet machine" if loaded else ""),
        verdict="inconclusive"
        if loaded
        else boot_verdict(t.ratio_lo, t.ratio_hi, int(t.rounds), "less", 1.0),
        rests_on=rests_on(t.rounds, t.rounds, "interleaved rounds"),
    )


def depth_claims(depth: pd.DataFrame, planned=None) -> list[dict]:
    """Fig. 11a: the backprop gradient norm grows with depth, faster than SDO's, per batch (log10 ratios)."""
    lo_k, hi_k = depth.depth.min(), depth.depth.max()
    if lo_k == hi_k:
        return []

    def growth(method):
        g = depth[depth.method == method].pivot(index="batch", columns="depth", values="grad_norm")
        return np.log10(g[hi_k] / g[lo_k])

    bptt, sdo = growth("backprop depth K"), growth("sdo (step i'=K)")
    m, lo, hi = bootstrap_interval(bptt.dropna().to_numpy())
    d, dlo, dhi = bootstrap_interval((bptt - sdo).dropna().to_numpy())
    return [
        dict(
            claim=f"the backprop gradient norm grows with depth (Fig. 11a; depth {lo_k} -> {hi_k})",
            ours=f"log10 growth {m:.2f} [{lo:.2f}, {hi:.2f}] over {len(bptt)} batches",
            verdict=boot_verdict(lo, hi, len(bptt.dropna())),
            rests_on=rests_on(len(bptt.dropna()), planned, "batches"),
        ),
        dict(
            claim="SDO's gradient norm grows less with depth than backprop's (Fig. 11a)",
            ours=f"log10 growth backprop - SDO {d:.2f} [{dlo:.2f}, {dhi:.2f}]",
            verdict=boot_verdict(dlo, dhi, len((bptt - sdo).dropna())),
            rests_on=rests_on(len((bptt - sdo).dropna()), planned, "batches"),
        ),
    ]


def claims(out: Path) -> pd.DataFrame:
    """Every claim whose tables exist under `out`."""
    rows = adversarial_claims(out) + style_claims(out) + style_loss_claims(out) + reward_claims(out)
    return pd.DataFrame(rows, columns=["claim", "ours", "verdict", "rests_on"])


MISSING_LISTED = 8  # missing chunks named per task in the README (all of them are in its JSON file)


def coverage_lines(out: Path) -> list[str]:
    """One line per task JSON file with a coverage record: chunks stored of planned, the first missing, and the
    devices that computed the stored ones."""
    lines = []
    for path in sorted(out.glob("*.json")):
        cover = json.loads(path.read_text()).get("coverage")
        if not cover:
            continue
        stored, planned = cover["stored_chunks"], cover["planned_chunks"]
        line = f"- `{path.name}`: {coverage_note(stored, planned, 'chunks')}"
        missing = cover.get("missing_chunks", [])
        if missing:
            shown = ", ".join(f"`{k}`" for k in missing[:MISSING_LISTED])
            more = f" and {len(missing) - MISSING_LISTED} more" if len(missing) > MISSING_LISTED else ""
            line += f"; missing: {shown}{more}"
        if cover.get("chunk_devices"):
            line += f"; computed on {', '.join(cover['chunk_devices'])}"
        lines.append(line)
    return lines or ["- no task has stored chunks yet"]


def write_readme(out: Path) -> Path:
    """out/README.md: the claim table, then every task table present, with provenance from the JSON files."""
    out = Path(out)
    lines = [
        "# Task results",
        "",
        "Generated by `python -m sdo.tasks` (sdo/tasks/report.py). Verdicts follow the 95 % intervals only: "
        "**reproduces** when the interval lies wholly on the claimed side, **contradicts** when it lies wholly "
        "on the other side, **inconclusive** otherwise. Success rates: Clopper-Pearson; paired methods: exact "
        "McNemar and the Clopper-Pearson interval of SDO's share of discordant pairs; distances: bootstrap over "
        "samples or batches (no verdict from fewer than 20); seeds: Student-t band. A method that attacks its own "
        "coupled sampler's clean samples (reversible) does not attack SDO's images, so its attack-success "
        "verdict follows the comparison at equal starting margin (Mantel-Haenszel), not the paired test.",
        "",
        "Every result is built from the chunks stored under `chunks/`; a run stopped by its time limit leaves "
        "some planned chunks missing, and the same command computes only those. **rests on** says how much of "
        "the planned work each measurement uses: a *partial* row rests on fewer samples, seeds or batches than "
        "planned, so its interval is wider; its verdict still follows that interval, but rerunning until a "
        "verdict appears and stopping there would bias it; cite the complete run.",
        "",
        "## Paper claim | our measurement with interval | verdict",
        "",
        markdown(claims(out)),
        "",
        "## How much of the planned work is stored",
        "",
        *coverage_lines(out),
        "",
    ]
    for name, title in TABLES:
        df = _read(out, name)
        if df is not None:
            lines += [f"## {title}", "", f"`{name}.csv`", ""]
            if "complete" in df and not df.complete.astype(bool).all():
                lines += ["**Partial**: rows with complete = False rest on less than the planned work.", ""]
            lines += [markdown(df), ""]
    for path in sorted(out.glob("*.json")):
        prov = json.loads(path.read_text()).get("provenance")
        if prov:
            lines.append(
                f"- `{path.name}`: commit {prov.get('git_commit')} (dirty: {prov.get('git_dirty')}), torch "
                f"{prov.get('torch_version')}, {prov.get('device_name', '')}, {prov.get('threads')} threads, "
                f"{prov.get('date')}, `{prov.get('command')}`"
            )
    path = out / "README.md"
    path.write_text("\n".join(lines) + "\n")
    return path
