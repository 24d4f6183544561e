"""Adversarial initial latent (paper Sec. 5.1.4, Eq. 26, Table 5): min over ||delta||_inf <= tau of a margin of
the attacked classifier through the sampler, delta clipped to [-tau, tau] after every step, on class-conditional
samples from every class. The same samples for every method; exclusions decided once, for all methods alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import estimators, objectives, samplers
from ..problem import Problem
from .chunks import ChunkRunner, model_settings, settings_of, table_note, tensor_digest
from .common import (
    COUPLED,
    DEFAULT_ESTIMATORS,
    PERCEPTUAL_NOTE,
    REPLICAS,
    RESULTS,
    Stopwatch,
    estimate,
    image_grid,
    load_models,
    perceptual_distance,
    record,
    replica_agreement,
    replica_sentence,
    save_json,
    ssim,
    usable_estimators,
    write_table,
)
from .devices import moved
from .sampling import class_cond, coupled_sample_from_latent, latents, sample_from_latent
from .stats import (
    bootstrap_interval,
    clopper_pearson,
    mantel_haenszel,
    mcnemar_columns,
    verdict,
)

UPDATES = ("gd", "sign")
SAMPLE_BATCH = 250  # samples per no-grad sampling batch
EXCLUSION_RULE = (
    "a candidate is excluded, for every method alike, when the attacked classifier (fmnist-classifier) "
    "already misclassifies its clean sample (argmax != requested class), or when the separate judge "
    "(fmnist-classifier-eval) gives the requested class probability < {p} on it (a sample that does not "
    "look like its class); the rule is applied to the clean DDIM sample and, when the DOODL analogue "
    "(reversible) runs, also to its coupled sampler's clean sample"
)


@dataclass
class AdversarialConfig:
    """Task settings: the paper's 30 sampling and 30 optimisation steps, GD lr 0.1, tau 0.1."""

    n: int = 200  # kept samples per seed (classes cycle 0..9 over the candidates)
    steps: int = 30  # DDIM steps N
    opt_steps: int = 30
    tau: float = 0.1
    lr: float | None = None  # gd: 0.1 (the paper); sign: tau / 10 per step
    update: str = "gd"  # gd: delta -= lr g (the paper); sign: delta -= lr sign(g) (no magnitude)
    kappa: float = 1.0  # margin floor: a misclassified sample stops being pushed
    judge_min_prob: float = 0.5
    seeds: tuple[int, ...] = field(default=(0, 1, 2))
    # at most pool_factor * n candidates per seed, examined until n pass. On fmnist-ddpm-v2 (30 steps, CFG 3)
    # 11 of seed 0's first 80 passed with reversible among the methods (its coupled sampler's clean sample
    # failed 69 of them), so n = 200 needs about 1,500 candidates.
    pool_factor: float = 15.0
    # samples per optimisation problem and chunk (results do not depend on it: every gradient is per sample);
    # 25 keeps the longest chunk (adjoint, or reversible before its samples settle) near 20-30 CPU-minutes
    batch: int = 25
    # sample ranges of each seed on which a replica (REPLICAS) runs beside the method it replicates
    replica_ranges: int = 1
    fid_reference: int = 2000  # test images for the FID change (0: skip)

    def __post_init__(self):
        if self.update not in UPDATES:
            raise ValueError(f"unknown update {self.update!r}; valid: {', '.join(UPDATES)}")
        if self.lr is None:
            self.lr = 0.1 if self.update == "gd" else self.tau / 10
        if self.tau <= 0 or self.n < 1 or self.steps < 1 or self.opt_steps < 0 or self.batch < 1:
            raise ValueError("need tau > 0, n >= 1, steps >= 1, opt_steps >= 0, batch >= 1")
        if self.replica_ranges < 1:
            raise ValueError(f"replica_ranges must be >= 1 (got {self.replica_ranges})")
        if self.pool_factor < 1 or not self.seeds:
            raise ValueError("need pool_factor >= 1 and at least one seed")
        self.seeds = tuple(self.seeds)


def margins(classifier, x: torch.Tensor, labels: torch.Tensor, kappa: float) -> torch.Tensor:
    """Per sample max(z_y - max_{j != y} z_j, -kappa) on clamped images: lower means the classifier errs."""
    logits = classifier(x.clamp(-1, 1))
    true = logits.gather(1, labels[:, None])[:, 0]
    other = logits.masked_fill(torch.nn.functional.one_hot(labels, logits.shape[1]).bool(), float("-inf"))
    return torch.clamp(true - other.amax(1), min=-kappa)


def margin_objective(classifier, labels: torch.Tensor, kappa: float):
    """J = sum_b margin_b (each clamped at -kappa): a sample's term depends on that sample alone."""
    return objectives.get("callable", fn=lambda x: margins(classifier, x, labels, kappa).sum())


def linf_bound(tau: float, dtype: torch.dtype) -> float:
    """The largest value of `dtype` that is <= tau (a float32 clamp to 0.05 would give 0.0500000007 > tau)."""
    b = torch.tensor(tau, dtype=dtype)
    if b.item() > tau:
        b = torch.nextafter(b, torch.zeros_like(b))
    return b.item()


def clean_samples(model, z, cond, steps: int, coupled: bool, batch: int = SAMPLE_BATCH) -> torch.Tensor:
    """Clamped x_0 of latents z (in batches) from plain DDIM, or from the coupled sampler if `coupled`."""
    out = []
    for i in range(0, len(z), batch):
        c = None if cond is None else cond[i : i + batch]
        x = (
            coupled_sample_from_latent(model, z[i : i + batch], steps, c)
            if coupled
            else sample_from_latent(model, z[i : i + batch], steps, cond=c)
        )
        out.append(x.clamp(-1, 1))
    return torch.cat(out)


@torch.no_grad()
def exclusions(tm, x: torch.Tensor, labels: torch.Tensor, judge_min_prob: float) -> dict:
    """Per-sample exclusion flags: misclassified by the attacked classifier; rejected by the judge."""
    wrong = tm.attacked(x).argmax(1) != labels
    judged = tm.judge(x).softmax(1).gather(1, labels[:, None])[:, 0]
    return dict(misclassified=wrong, rejected=judged < judge_min_prob)


def pool_size(cfg: AdversarialConfig) -> int:
    """Candidates drawn per seed: ceil(pool_factor * n)."""
    return int(np.ceil(cfg.pool_factor * cfg.n))


def examine(tm, cfg: AdversarialConfig, z, labels, coupled: bool) -> dict:
    """Clean samples, classes and exclusion flags of one block of candidates (the coupled sampler's clean
    sample only for those the plain sample keeps)."""
    cond = class_cond(tm.model, labels)
    x = clean_samples(tm.model, z, cond, cfg.steps, False)
    if cond is None:  # unconditional model: the class is what the attacked classifier says
        with torch.no_grad():
            labels = tm.attacked(x).argmax(1)
    flags = exclusions(tm, x, labels, cfg.judge_min_prob)
    keep = ~(flags["misclassified"] | flags["rejected"])
    x_coupled, by_coupled = torch.full_like(x, float("nan")), torch.zeros_like(keep)
    if coupled and keep.any():
        c = None if cond is None else cond[keep]
        x_coupled[keep] = clean_samples(tm.model, z[keep], c, cfg.steps, True)
        more = exclusions(tm, x_coupled[keep], labels[keep], cfg.judge_min_prob)
        by_coupled[keep] = more["misclassified"] | more["rejected"]
        keep = keep & ~by_coupled
    return dict(x=x, x_coupled=x_coupled, labels=labels, keep=keep, by_coupled=by_coupled, **flags)


def candidates(tm, cfg: AdversarialConfig, seed: int, coupled: bool) -> dict:
    """The first n candidates of one seed's pool that pass the exclusions (decided once, for all methods):
    pool indices, classes, clean samples and the exclusion counts of the candidates examined. Candidates are
    examined in blocks and the examination stops once n pass (the kept set is the same as examining all)."""
    pool = pool_size(cfg)
    z = latents(tm.model, pool, seed)
    all_labels = (torch.arange(pool) % 10).to(z.device)
    block = min(SAMPLE_BATCH, max(16, cfg.n))
    parts, kept = [], 0
    for start in range(0, pool, block):
        part = examine(tm, cfg, z[start : start + block], all_labels[start : start + block], coupled)
        parts.append(part)
        kept += int(part["keep"].sum())
        if kept >= cfg.n:
            break
    seen = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    idx = seen["keep"].nonzero()[:, 0][: cfg.n]
    if len(idx) < cfg.n:
        raise ValueError(
            f"seed {seed}: only {len(idx)} of {pool} candidates pass the exclusions; raise pool_factor"
        )
    counts = dict(
        candidates=len(seen["keep"]),
        misclassified=int(seen["misclassified"].sum()),
        rejected_by_judge=int(seen["rejected"].sum()),
    )
    if coupled:
        counts["excluded_only_by_the_coupled_sample"] = int(seen["by_coupled"].sum())
    counts["excluded"] = int((~seen["keep"]).sum())
    return dict(
        index=idx,
        labels=seen["labels"][idx],
        x=seen["x"][idx],
        x_coupled=seen["x_coupled"][idx] if coupled else None,
        counts=counts,
    )


def with_latents(tm, cand: dict, seed: int, cfg: AdversarialConfig) -> dict:
    """A stored candidate set on the task's device with its latents and conditioning (regenerated from the
    seed)."""
    cand = moved(cand, tm.device)
    z = latents(tm.model, pool_size(cfg), seed)[cand["index"]]
    return cand | dict(z=z, cond=class_cond(tm.model, cand["labels"]))


def attack_problem(model, classifier, z, labels, cfg: AdversarialConfig, cond=None) -> Problem:
    """The margin objective through DDIM with cfg.steps, wrt the latent, for one batch (in z's dtype, on its
    device)."""
    return Problem(
        model,
        samplers.get("ddim", steps=cfg.steps),
        margin_objective(classifier, labels, cfg.kappa),
        wrt="latent",
        batch=len(z),
        latent=z,
        cond=cond,
        dtype=z.dtype,
        device=z.device,
    )


def network_calls(result) -> int:
    """Network calls of one estimator call: forwards with and without a graph, recomputed forwards, backwards."""
    s = result.stats
    return sum(int(s.get(k, 0)) for k in ("nfe_fwd_grad", "nfe_fwd_nograd", "nfe_fwd_recompute", "nfe_bwd"))


def attack_batch(
    model, classifier, z, labels, estimator: str, cfg: AdversarialConfig, cond=None, compact: bool = True
) -> dict:
    """opt_steps of delta <- clip(delta - lr g) (or lr sign(g)), the per-step loss sum_b margin_b, and the
    batch size and network calls of every step.

    A sample whose gradient is exactly zero (its margin is clamped at -kappa) does not move, so its next
    gradient is zero again: it never moves. With `compact` it leaves the batch (its delta is final) and its
    margin enters the loss as a constant; the gradient of a sample depends on that sample alone (per-sample
    objective, no batch coupling in the sampler or the network), so the deltas are those of the full loop."""
    est, bound = estimators.get(estimator), linf_bound(cfg.tau, z.dtype)
    delta, active, settled = torch.zeros_like(z), torch.arange(len(z), device=z.device), 0.0
    losses, sizes, calls = [], [], []
    with Stopwatch(z.device) as clock:
        for _ in range(cfg.opt_steps):
            if len(active) == 0:
                losses.append(settled), sizes.append(0), calls.append(0)
                continue
            c = None if cond is None else cond[active]
            problem = attack_problem(model, classifier, z[active] + delta[active], labels[active], cfg, c)
            res, skipped = estimate(est, problem)
            if skipped or not res.ok:
                return dict(delta=None, losses=losses, wall_s=0.0, status=skipped or res.status)
            g = res.grads["latent"]
            step = g.sign() if cfg.update == "sign" else g
            delta[active] = (delta[active] - cfg.lr * step).clamp(-bound, bound)
            losses.append(res.loss + settled), sizes.append(len(active)), calls.append(network_calls(res))
            if compact:
                moving = g.flatten(1).ne(0).any(1)
                if not moving.all():
                    with torch.no_grad():
                        final = margins(classifier, res.x0, labels[active], cfg.kappa)
                    settled += float(final[~moving].sum())
                    active = active[moving]
    return dict(delta=delta, losses=losses, wall_s=clock.seconds, status="ok", sizes=sizes, calls=calls)


def per_sample(tm, labels, x_adv: torch.Tensor, clean: torch.Tensor, delta: torch.Tensor) -> dict:
    """Per-sample success (attacked classifier flipped), the clean sample's margin (how far the attack starts
    from the decision boundary), pixel L2, SSIM, perceptual distance, max |delta|."""
    with torch.no_grad():
        flipped = tm.attacked(x_adv).argmax(1) != labels
        start = margins(tm.attacked, clean, labels, float("inf"))
    return dict(
        success=flipped,
        clean_margin=start,
        pixel_l2=(x_adv - clean).flatten(1).norm(dim=1),
        ssim=ssim(x_adv.double(), clean.double()),
        perceptual=perceptual_distance(tm.judge, x_adv, clean),
        max_abs_delta=delta.flatten(1).abs().amax(1),
    )


def attack_chunk(tm, cfg: AdversarialConfig, cand: dict, method: str, start: int, stop: int) -> dict:
    """One chunk: the attack of one method on kept samples start..stop-1, its adversarial samples, their
    metrics, the per-step losses and the network calls with and without dropping settled samples."""
    part = slice(start, stop)
    cond = None if cand["cond"] is None else cand["cond"][part]
    z, labels = cand["z"][part], cand["labels"][part]
    run = attack_batch(tm.model, tm.attacked, z, labels, method, cfg, cond)
    if run["status"] != "ok":
        return dict(status=run["status"])
    coupled = method in COUPLED
    x_adv = clean_samples(tm.model, z + run["delta"], cond, cfg.steps, coupled)
    clean = (cand["x_coupled"] if coupled else cand["x"])[part]
    full = run["calls"][0] * len(z) * cfg.opt_steps if run["calls"] else 0
    return dict(
        status="ok",
        wall_s=run["wall_s"],
        losses=run["losses"],
        batch_sizes=run["sizes"],
        sample_calls=sum(c * b for c, b in zip(run["calls"], run["sizes"])),
        sample_calls_uncompacted=full,
        delta=run["delta"],
        x_adv=x_adv,
        metrics=per_sample(tm, labels, x_adv, clean, run["delta"]),
    )


def sample_ranges(cfg: AdversarialConfig) -> list[tuple[int, int]]:
    """The (start, stop) of every optimisation batch of kept samples."""
    return [(i, min(i + cfg.batch, cfg.n)) for i in range(0, cfg.n, cfg.batch)]


def planned_ranges(cfg: AdversarialConfig, method: str, names) -> list[tuple[int, int]]:
    """The sample ranges planned for `method` among `names`: all, or the first cfg.replica_ranges for a
    replica whose original runs too."""
    ranges = sample_ranges(cfg)
    return ranges[: cfg.replica_ranges] if REPLICAS.get(method) in names else ranges


def planned_samples(cfg: AdversarialConfig, method: str, names) -> int:
    """How many samples `method` is planned on, over all seeds."""
    return len(cfg.seeds) * sum(b - a for a, b in planned_ranges(cfg, method, names))


def candidates_key(cfg: AdversarialConfig, seed: int, coupled: bool) -> str:
    """The chunk of one seed's candidate set (shared by both updates)."""
    return f"adversarial/candidates/seed{seed}-n{cfg.n}-pool{pool_size(cfg)}" + (
        "-coupled" if coupled else ""
    )


def attack_key(cfg: AdversarialConfig, seed: int, method: str, start: int, stop: int) -> str:
    """The chunk of one method on kept samples start..stop-1 of one seed."""
    return f"adversarial/{cfg.update}/seed{seed}/{method}/samples-{start:04d}-{stop - 1:04d}"


CANDIDATE_FIELDS = ("n", "steps", "judge_min_prob", "pool_factor")
ATTACK_FIELDS = ("steps", "opt_steps", "tau", "lr", "update", "kappa", "judge_min_prob")


def run_seed(
    tm, cfg: AdversarialConfig, names: list[str], seed: int, runner: ChunkRunner, models: dict
) -> dict:
    """Every method on one seed's kept samples, chunk by chunk (stored chunks are loaded, missing ones
    computed until the runner's limit): the stored chunks by (method, start) and the candidate set."""
    coupled = any(n in COUPLED for n in names)
    keys = {(m, a): attack_key(cfg, seed, m, a, b) for m in names for a, b in planned_ranges(cfg, m, names)}
    cand_settings = settings_of(cfg, CANDIDATE_FIELDS, seed=seed, coupled_exclusion=coupled) | models
    cand = runner.get(
        candidates_key(cfg, seed, coupled), cand_settings, partial(candidates, tm, cfg, seed, coupled)
    )
    if cand is None:
        runner.skip(keys.values())
        return dict(chunks={}, cand=None)
    cand = with_latents(tm, cand, seed, cfg)
    chunks = {}
    # sample range outermost: a run stopped part-way leaves every method on the same samples (paired)
    for a, b in sample_ranges(cfg):
        for name in (m for m in names if (m, a) in keys):
            inputs = tensor_digest(cand["z"][a:b], cand["labels"][a:b])
            settings = settings_of(
                cfg, ATTACK_FIELDS, estimator=name, coupled_exclusion=coupled, inputs=inputs
            )
            chunk = runner.get(
                keys[(name, a)], settings | models, partial(attack_chunk, tm, cfg, cand, name, a, b)
            )
            if chunk is not None:
                chunks[(name, a)] = chunk
    return dict(chunks=chunks, cand=cand)


def rows_of(seed: int, cand: dict, chunks: dict) -> list[dict]:
    """Per-sample rows of one seed's stored successful chunks."""
    rows = []
    for (method, start), chunk in chunks.items():
        if chunk["status"] != "ok":
            continue
        metrics, size = chunk["metrics"], len(chunk["delta"])
        for j in range(size):
            k = start + j
            rows.append(
                dict(seed=seed, sample=k, label=int(cand["labels"][k]), method=method)
                | dict(s_per_sample=chunk["wall_s"] / size)
                | {m: v[j].item() for m, v in metrics.items()}
            )
    return rows


def summarise(
    df: pd.DataFrame, cfg: AdversarialConfig, fid: dict, methods=None, saved: dict | None = None
) -> pd.DataFrame:
    """One row per method: the samples stored (n) of those planned (n_planned), success with its
    Clopper-Pearson interval (pooled over the stored samples), per-seed rates and sample counts, bootstrap
    intervals of the distance means, the FID change (on fid_n samples) and the share of network calls saved
    by dropping settled samples (`saved`: compaction())."""
    methods = methods if methods is not None else list(dict.fromkeys(df.method))
    rows = []
    for method in methods:
        planned = planned_samples(cfg, method, methods)
        g = df[df.method == method] if len(df) else df
        counts = success_counts(g)
        n = counts["n"]
        row = dict(method=method, update=cfg.update, n=n, n_planned=planned, complete=n == planned)
        row |= {k: v for k, v in counts.items() if k != "n"}
        by_seed = list(g.groupby("seed")) if n else []
        row["per_seed_pct"] = " / ".join(f"{100 * s.success.mean():.1f}" for _, s in by_seed)
        row["per_seed_n"] = " / ".join(str(len(s)) for _, s in by_seed)
        for metric in ("clean_margin", "pixel_l2", "ssim", "perceptual"):
            m, mlo, mhi = bootstrap_interval(g[metric].to_numpy() if n else [])
            row |= {metric: m, f"{metric}_lo": mlo, f"{metric}_hi": mhi}
        change = fid.get(method, (np.nan,) * 3 + (0,))
        row |= dict(zip(("fid_change", "fid_change_lo", "fid_change_hi", "fid_n"), change))
        row |= dict(
            max_abs_delta=g.max_abs_delta.max() if n else np.nan,
            s_per_sample=g.s_per_sample.mean() if n else np.nan,
            calls_saved_pct=(saved or {}).get(method, {}).get("saved_pct", np.nan),
        )
        rows.append(row)
    return pd.DataFrame(rows)


def paired(
    df: pd.DataFrame, cfg: AdversarialConfig, reference: str = "sdo", fid: dict | None = None, methods=None
) -> pd.DataFrame:
    """reference vs every other method on the samples stored for both (n_pairs of n_pairs_planned): both
    success rates on those samples with Clopper-Pearson intervals, discordant counts, exact McNemar p, the interval of reference's share of discordant pairs (> 0.5:
    reference succeeds more), perceptual difference, and the FID-change difference (on fid_n samples)."""
    methods = list(dict.fromkeys(df.method)) if methods is None else methods
    if reference not in methods:
        return pd.DataFrame()
    key = ["seed", "sample"]
    ref = df[df.method == reference] if len(df) else df
    rows = []
    for method in methods:
        if method == reference:
            continue
        other = df[df.method == method] if len(df) else df
        planned = min(planned_samples(cfg, m, methods) for m in (reference, method))
        both = ref.merge(other, on=key, suffixes=("_ref", "_other")) if len(ref) and len(other) else None
        a = both.success_ref.to_numpy(bool) if both is not None else np.zeros(0, bool)
        b = both.success_other.to_numpy(bool) if both is not None else np.zeros(0, bool)
        diff = (both.perceptual_other - both.perceptual_ref).to_numpy() if both is not None else []
        m, dlo, dhi = bootstrap_interval(diff)
        fid_diff = (fid or {}).get(f"{method} - {reference}", (np.nan,) * 3 + (0,))
        rows.append(
            dict(update=cfg.update, comparison=f"{reference} vs {method}", n_pairs=len(a))
            | dict(n_pairs_planned=planned, complete=len(a) == planned)
            | success_on_pairs("reference", a)
            | success_on_pairs("other", b)
            | mcnemar_columns(a, b, "only_reference_succeeds", "only_other_succeeds")
            | dict(perceptual_other_minus_ref=m, perceptual_diff_lo=dlo, perceptual_diff_hi=dhi)
            | dict(zip(("fid_change_other_minus_ref", "fid_diff_lo", "fid_diff_hi", "fid_n"), fid_diff))
        )
    return pd.DataFrame(rows)


def success_on_pairs(who: str, success: np.ndarray) -> dict:
    """`who`'s success rate on the paired samples with its Clopper-Pearson interval (percent; nan if none)."""
    counts = success_counts(pd.DataFrame(dict(success=success)))
    return {f"{who}_{k}": counts[k] for k in ("success_pct", "ci_lo_pct", "ci_hi_pct")}


MARGIN_BINS = 4  # clean-margin strata at most
MIN_PER_BIN = 5  # fewer strata when a method would average fewer samples than this per stratum
ADJUSTED_VERDICTS = ("other better at equal margin", "reference better at equal margin", "inconclusive")


def margin_edges(df: pd.DataFrame, bins: int = MARGIN_BINS, min_per_bin: int = MIN_PER_BIN) -> np.ndarray:
    """Quantile edges of the clean margins pooled over all methods (ties merged; empty without samples)."""
    if not len(df):
        return np.zeros(0)
    values = df.clean_margin.to_numpy(float)
    k = int(np.clip(len(values) / df.method.nunique() // min_per_bin, 1, bins))
    edges = np.unique(np.quantile(values, np.linspace(0, 1, k + 1)))
    return np.repeat(edges, 2) if len(edges) == 1 else edges


def margin_stratum(values, edges: np.ndarray) -> np.ndarray:
    """0-based stratum of each clean margin: stratum i holds (edges[i], edges[i + 1]], the first also edges[0]."""
    return np.searchsorted(edges[1:-1], np.asarray(values, float), side="left")


def success_counts(g: pd.DataFrame) -> dict:
    """n, successes and success % with its Clopper-Pearson interval (percent; nan without samples)."""
    k, n = (int(g.success.sum()), len(g)) if len(g) else (0, 0)
    lo, hi = clopper_pearson(k, n) if n else (np.nan, np.nan)
    rate = 100 * k / n if n else np.nan
    return dict(n=n, successes=k, success_pct=rate, ci_lo_pct=100 * lo, ci_hi_pct=100 * hi)


BY_MARGIN_COLUMNS = (
    "update stratum margin_lo margin_hi method n successes success_pct ci_lo_pct ci_hi_pct mean_clean_margin"
).split()


def by_margin(df: pd.DataFrame, cfg: AdversarialConfig, edges: np.ndarray, methods=None) -> pd.DataFrame:
    """Per clean-margin stratum and method: its margin range, the method's samples in it, their success with
    its Clopper-Pearson interval and their mean clean margin (a header only without samples)."""
    methods = list(dict.fromkeys(df.method)) if methods is None and len(df) else methods or []
    stratum = margin_stratum(df.clean_margin, edges) if len(df) else np.zeros(0, int)
    rows = []
    for i in range(len(edges) - 1):
        for method in methods:
            g = df[(stratum == i) & (df.method == method).to_numpy()]
            rows.append(
                dict(
                    update=cfg.update,
                    stratum=i + 1,
                    margin_lo=edges[i],
                    margin_hi=edges[i + 1],
                    method=method,
                )
                | success_counts(g)
                | dict(mean_clean_margin=g.clean_margin.mean() if len(g) else np.nan)
            )
    return pd.DataFrame(rows, columns=BY_MARGIN_COLUMNS)


def on_shared_samples(df: pd.DataFrame, reference: str, method: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows of `reference` and of `method` on the (seed, sample) pairs stored for both."""
    if not len(df):
        return df, df
    ref, other = df[df.method == reference], df[df.method == method]
    keys = ref[["seed", "sample"]].merge(other[["seed", "sample"]])
    return ref.merge(keys), other.merge(keys)


def stratum_tables(other: pd.DataFrame, ref: pd.DataFrame, edges: np.ndarray) -> np.ndarray:
    """(strata, 2, 2) counts [[other successes, failures], [reference successes, failures]] per stratum."""
    k = max(len(edges) - 1, 0)
    out = np.zeros((k, 2, 2), int)
    for row, g in enumerate((other, ref)):
        if not len(g):
            continue
        stratum, ok = margin_stratum(g.clean_margin, edges), g.success.to_numpy(bool)
        out[:, row, 0] = np.bincount(stratum[ok], minlength=k)
        out[:, row, 1] = np.bincount(stratum[~ok], minlength=k)
    return out


def adjusted_verdict(lo: float, hi: float) -> str:
    """Which method succeeds more at equal starting margin, from the interval of the odds ratio other over
    reference; 'inconclusive' when it holds 1 or is undefined."""
    v = verdict(lo, hi, "greater", 1.0)
    return {"reproduces": ADJUSTED_VERDICTS[0], "contradicts": ADJUSTED_VERDICTS[1]}.get(
        v, ADJUSTED_VERDICTS[2]
    )


def adjusted(
    df: pd.DataFrame, cfg: AdversarialConfig, edges: np.ndarray, reference: str = "sdo", methods=None
) -> pd.DataFrame:
    """reference vs every other method on the samples stored for both: the Mantel-Haenszel odds ratio of
    success (other over reference) over the clean-margin strata with its 95 % Robins-Breslow-Greenland
    interval, the crude odds ratio on the same samples, and the verdict at equal starting margin."""
    methods = list(dict.fromkeys(df.method)) if methods is None and len(df) else methods or []
    if reference not in methods:
        return pd.DataFrame()
    rows = []
    for method in methods:
        if method == reference:
            continue
        ref, other = on_shared_samples(df, reference, method)
        tables = stratum_tables(other, ref, edges)
        ratio, lo, hi, used = mantel_haenszel(tables)
        rows.append(
            dict(update=cfg.update, comparison=f"{reference} vs {method}", n_pairs=len(ref))
            | dict(
                n_strata=len(tables), n_strata_used=used, odds_ratio_other_over_ref=ratio, or_lo=lo, or_hi=hi
            )
            | dict(crude_odds_ratio=mantel_haenszel(tables.sum(0))[0], verdict=adjusted_verdict(lo, hi))
        )
    return pd.DataFrame(rows)


BY_MARGIN_NOTE = (
    "Strata: quantile bins of the clean margin (the attacked classifier's logit margin on the clean sample a "
    "method starts from) pooled over all methods; stratum i holds (margin_lo, margin_hi], the first also "
    "margin_lo. Success % with its Clopper-Pearson 95 % interval."
)
ADJUSTED_NOTE = (
    "Attack success at equal starting margin: the Mantel-Haenszel odds ratio, other method over {reference}, "
    "over the clean-margin strata of {tag}-by-margin, on the samples stored for both (> 1: the other method "
    "succeeds more often at the same starting margin), with its 95 % Robins-Breslow-Greenland interval; "
    "n_strata_used counts the strata that inform it (a stratum where one method has no sample, or where both "
    "always or never succeed, adds nothing). crude_odds_ratio: the same samples without strata. The interval "
    "treats the two methods' outcomes as independent although both attack the same latents."
)


MIN_FID_SAMPLES = 2  # a covariance needs at least two samples


def fid_changes(ref, clean: dict, adv: dict, reference: str = "sdo") -> dict:
    """FID(adv) - FID(clean) per method on the samples stored for it, and the difference to `reference` on the
    samples stored for both, each with a paired bootstrap; `clean` maps (seed, sample) -> judge features and
    `adv` maps method -> such a dict. Values are (change, lo, hi, samples)."""
    from .fid import fid_change_interval

    def on(keys, methods):
        keys = sorted(keys)
        if len(keys) < MIN_FID_SAMPLES:
            return {}
        base = np.stack([clean[k] for k in keys])
        out = fid_change_interval(
            ref, base, {m: np.stack([adv[m][k] for k in keys]) for m in methods}, reference
        )
        return {name: (*v, len(keys)) for name, v in out.items()}

    groups = {}
    for method, feats in adv.items():
        groups.setdefault(frozenset(feats), []).append(method)
    result = {}
    for keys, methods in groups.items():
        result |= on(keys, methods)
    if reference in adv:
        for method in adv:
            if method != reference and f"{method} - {reference}" not in result:
                both = on(set(adv[method]) & set(adv[reference]), [reference, method])
                result[f"{method} - {reference}"] = both.get(f"{method} - {reference}", (np.nan,) * 3 + (0,))
    return result


def judge_features(tm, seeds_out: dict) -> tuple[dict, dict]:
    """Judge features of the clean and adversarial samples stored: (seed, sample) -> vector, per method."""
    from .fid import features

    clean, adv = {}, {}
    for seed, out in seeds_out.items():
        if out["cand"] is None:
            continue
        for k, f in enumerate(features(tm.judge, out["cand"]["x"])):
            clean[(seed, k)] = f
        for (method, start), chunk in out["chunks"].items():
            if chunk["status"] == "ok":
                for j, f in enumerate(features(tm.judge, chunk["x_adv"])):
                    adv.setdefault(method, {})[(seed, start + j)] = f
    return clean, adv


def fid_of(tm, seeds_out: dict, cfg: AdversarialConfig) -> dict:
    """The FID changes in the judge's features vs cfg.fid_reference test images ({} when fid_reference is 0)."""
    if not cfg.fid_reference:
        return {}
    from ..data import fmnist_tensors
    from .fid import features

    ref = features(tm.judge, fmnist_tensors("test")[0][: cfg.fid_reference])
    clean, adv = judge_features(tm, seeds_out)
    return fid_changes(ref, clean, adv)


def loss_curves(seeds_out: dict, cfg: AdversarialConfig) -> dict:
    """Per seed and method: the summed per-step losses of the stored chunks and how many samples they cover."""
    curves = {}
    for seed, out in seeds_out.items():
        for (method, _), chunk in sorted(out["chunks"].items()):
            if chunk["status"] != "ok":
                continue
            c = curves.setdefault(seed, {}).setdefault(method, dict(losses=None, samples=0, planned=cfg.n))
            step = np.asarray(chunk["losses"], float)
            c["losses"] = step if c["losses"] is None else c["losses"] + step
            c["samples"] += len(chunk["delta"])
    for per_method in curves.values():
        for c in per_method.values():
            c["losses"] = c["losses"].tolist()
    return curves


def compaction(seeds_out: dict) -> dict:
    """Per method: network calls times batch samples with settled samples dropped, and without."""
    out = {}
    for seed_out in seeds_out.values():
        for (method, _), chunk in seed_out["chunks"].items():
            if chunk["status"] == "ok":
                c = out.setdefault(method, dict(sample_calls=0, sample_calls_uncompacted=0))
                c["sample_calls"] += int(chunk["sample_calls"])
                c["sample_calls_uncompacted"] += int(chunk["sample_calls_uncompacted"])
    for c in out.values():
        full = c["sample_calls_uncompacted"]
        c["saved_pct"] = 100 * (1 - c["sample_calls"] / full) if full else 0.0
    return out


def failed(seeds_out: dict) -> dict:
    """{seed: {method: status}} of stored chunks that did not finish (unsupported, non-finite, ...)."""
    out = {}
    for seed, seed_out in seeds_out.items():
        for (method, _), chunk in seed_out["chunks"].items():
            if chunk["status"] != "ok":
                out.setdefault(seed, {})[method] = chunk["status"]
    return out


def plot_examples(seeds_out: dict, methods: list[str], cfg: AdversarialConfig, path: Path) -> None:
    """The first ten clean and adversarial samples of the first seed with stored chunks."""
    for seed, out in seeds_out.items():
        if out["cand"] is None or not out["chunks"]:
            continue
        rows, labels = [out["cand"]["x"][:10]], ["clean"]
        for method in methods:
            parts = [
                c["x_adv"]
                for (m, _), c in sorted(out["chunks"].items())
                if m == method and c["status"] == "ok"
            ]
            if parts:
                rows.append(torch.cat(parts)[:10])
                labels.append(method)
        title = f"adversarial latent ({cfg.update}), tau={cfg.tau}, {cfg.opt_steps} steps, seed {seed}"
        image_grid(rows, labels, path, title)
        return


def run_adversarial(
    cfg: AdversarialConfig | None = None,
    estimator_names=None,
    out: Path = RESULTS,
    tm=None,
    runner: ChunkRunner | None = None,
) -> pd.DataFrame:
    """The Table 5 analogue from the chunks under out/chunks/ (computing the missing ones until the runner's
    limit); writes adversarial-<update>.{csv,md,png,json}, -samples.csv, -paired.{csv,md}, -by-margin.{csv,md}
    and -adjusted.{csv,md}."""
    cfg = cfg or AdversarialConfig()
    tm = tm or load_models()
    runner = runner or ChunkRunner(out, device=tm.device)
    names = usable_estimators(estimator_names or DEFAULT_ESTIMATORS, "latent")
    models = model_settings(tm)
    per_seed = 1 + sum(len(planned_ranges(cfg, m, names)) for m in names)
    runner.progress(f"adversarial {cfg.update}", len(cfg.seeds) * per_seed)
    seeds_out = {seed: run_seed(tm, cfg, names, seed, runner, models) for seed in cfg.seeds}
    runner.close()
    df = pd.DataFrame(
        [r for s, o in seeds_out.items() if o["cand"] is not None for r in rows_of(s, o["cand"], o["chunks"])]
    )
    skipped = failed(seeds_out)
    unsupported = {m for per in skipped.values() for m, s in per.items() if s.startswith("unsupported")}
    methods = [m for m in names if m not in unsupported]
    tag = f"adversarial-{cfg.update}"
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / f"{tag}-samples.csv", index=False)
    fid = fid_of(tm, seeds_out, cfg)
    saved = compaction(seeds_out)
    table = summarise(df, cfg, fid, methods, saved)
    keys = [
        attack_key(cfg, s, m, a, b)
        for s in cfg.seeds
        for m in names
        for a, b in planned_ranges(cfg, m, names)
    ]
    cover = runner.coverage(keys)
    note = table_note(cover, "adversarial", f"{tag}.json")
    replicas = replica_agreement(df, methods, on=["seed", "sample"], outcome="success")
    sentences = [replica_sentence(r, "the first sample ranges of each seed") for r in replicas]
    write_table(table, tag, out, note="\n\n".join([note, *sentences]))
    write_table(paired(df, cfg, fid=fid, methods=methods), f"{tag}-paired", out, note=note)
    edges = margin_edges(df)
    write_table(
        by_margin(df, cfg, edges, methods), f"{tag}-by-margin", out, note=f"{note}\n\n{BY_MARGIN_NOTE}"
    )
    adjusted_note = ADJUSTED_NOTE.format(reference="sdo", tag=tag)
    write_table(
        adjusted(df, cfg, edges, methods=methods), f"{tag}-adjusted", out, note=f"{note}\n\n{adjusted_note}"
    )
    plot_examples(seeds_out, methods, cfg, out / f"{tag}.png")
    notes = record(
        cfg,
        seeds=list(cfg.seeds),
        device=tm.device,
        model=tm.name,
        coverage=cover,
        exclusion_rule=EXCLUSION_RULE.format(p=cfg.judge_min_prob),
        exclusion_counts={s: o["cand"]["counts"] for s, o in seeds_out.items() if o["cand"] is not None},
        skipped=skipped,
        losses=loss_curves(seeds_out, cfg),
        compaction=saved,
        replicas=replicas,
        compaction_rule="a sample whose gradient is exactly zero (margin clamped at -kappa) never moves again; "
        "it leaves the optimisation batch with its delta final and its margin counted as a constant in the "
        "loss; sample_calls = sum over steps of network calls x samples in the batch",
        clean_margin="the attacked classifier's logit margin z_y - max_{j != y} z_j on the clean sample the method "
        "starts from: methods that optimise their own coupled sampler (reversible) start from that sampler's clean "
        "samples, which can lie nearer the decision boundary; compare clean_margin before success rates",
        margin_adjustment=ADJUSTED_NOTE.format(reference="sdo", tag=tag),
        perceptual=PERCEPTUAL_NOTE,
        fid=f"Frechet distance in the judge's penultimate features vs {cfg.fid_reference} test images; the change "
        "FID(adversarial) - FID(clean) on the same samples with a paired bootstrap interval (200 draws); a "
        "difference between methods uses the samples stored for both",
    )
    save_json(notes, out / f"{tag}.json")
    return table
