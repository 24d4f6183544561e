"""The reward task's runtime claim (Sec. 5.2: SDO takes about 50 % of AlignProp-uniform's time per step), timed
as the benchmark times estimators: rounds alternate the two methods on the same batch, so drift and load hit
both alike, and the 1-minute load is recorded with every round."""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import estimators
from ..measure import load_1m, loaded
from .chunks import ChunkRunner, model_settings, settings_of
from .common import Stopwatch, record, save_json, write_table
from .reward import RewardConfig, adamw, add_lora, optimiser_step, prompt_labels, reward_fn
from .sampling import latents
from .stats import bootstrap_ratio

TIMED = ("sdo", "alignprop-uniform")
TIMING_FIELDS = ("batch", "steps", "rank", "clip", "range_weight", "prompts", "timing_rounds")
TIMING_KEY = "reward/timing/sdo-vs-alignprop-uniform"


def strata(n_steps: int, rounds: int) -> list[int]:
    """Backprop depths K at the mid-quantiles of U{1..N}, one per round: AlignProp-uniform draws K from that
    distribution, so the mean over these rounds estimates its expected step time with little spread."""
    return [min(n_steps, max(1, math.ceil((i + 0.5) * n_steps / rounds))) for i in range(rounds)]


def timing_rounds(base, reward, cfg: RewardConfig) -> dict:
    """cfg.timing_rounds rounds of one optimiser step each of SDO and of AlignProp-uniform at its stratified K
    (the order alternating), after one untimed warm-up step of each; per round the seconds and the load."""
    models = {m: add_lora(base, cfg.rank, 0) for m in TIMED}
    opts = {m: adamw(models[m], cfg.base_lr) for m in TIMED}
    depths = strata(cfg.steps, cfg.timing_rounds)
    rows = []
    for i in range(-1, cfg.timing_rounds):
        z = latents(base, cfg.batch, 70_000 + i)
        labels = prompt_labels(cfg.prompts, cfg.batch, 70_000 + i)
        k = depths[max(i, 0)]
        ests = {
            "sdo": estimators.get("sdo", seed=i + 1),
            "alignprop-uniform": estimators.get("truncated", K=k),
        }
        for method in TIMED if i % 2 == 0 else TIMED[::-1]:
            with Stopwatch(z.device) as clock:
                res, _ = optimiser_step(models[method], opts[method], ests[method], z, labels, reward, cfg)
            if i >= 0:
                rows.append(dict(round=i, method=method, K=k if method != "sdo" else 1, status=res.status))
                rows[-1] |= dict(seconds=clock.seconds, load_1m=load_1m())
    return dict(rows=rows, threads=torch.get_num_threads())


def timing_summary(rounds: pd.DataFrame, threads: int) -> dict:
    """Mean step time per method, SDO / AlignProp-uniform with a paired bootstrap interval over rounds, the
    median load and whether it was loaded (sdo.measure.loaded: then the times are not a fair comparison)."""
    wide = rounds[rounds.status == "ok"].pivot(index="round", columns="method", values="seconds").dropna()
    ratio, lo, hi = bootstrap_ratio(wide["sdo"], wide["alignprop-uniform"])
    load = float(np.nanmedian(rounds.load_1m.astype(float))) if len(rounds) else float("nan")
    return dict(
        rounds=len(wide),
        sdo_s=float(wide["sdo"].mean()),
        alignprop_uniform_s=float(wide["alignprop-uniform"].mean()),
        ratio=ratio,
        ratio_lo=lo,
        ratio_hi=hi,
        threads=threads,
        median_load_1m=load,
        loaded=loaded(load, threads),
    )


def run_timing(cfg: RewardConfig, tm, runner: ChunkRunner, out: Path) -> pd.DataFrame:
    """The stored (else computed) interleaved timing chunk on the class-odds reward; writes reward-timing.csv
    (the summary), reward-timing-rounds.csv and reward-timing.json (provenance, load, coverage)."""
    runner.progress("reward timing", 1)
    settings = settings_of(cfg, TIMING_FIELDS, reward="class-odds", methods=list(TIMED)) | model_settings(tm)
    reward = reward_fn("class-odds", tm.attacked, cfg)
    chunk = runner.get(TIMING_KEY, settings, partial(timing_rounds, tm.model, reward, cfg))
    runner.close()
    cover = runner.coverage([TIMING_KEY])
    out.mkdir(parents=True, exist_ok=True)
    summary = pd.DataFrame(
        [] if chunk is None else [timing_summary(pd.DataFrame(chunk["rows"]), chunk["threads"])]
    )
    if chunk is not None:
        pd.DataFrame(chunk["rows"]).to_csv(out / "reward-timing-rounds.csv", index=False)
    write_table(summary, "reward-timing", out)
    notes = dict(
        method="one optimiser step (sampling with the graph the method keeps, its gradient, AdamW) of SDO and of "
        "AlignProp-uniform on the same batch per round, the order alternating, after an untimed warm-up step "
        "of each; AlignProp-uniform's depth K at the mid-quantiles of U{1..N} (its expected step time); ratio "
        "of mean times with a paired bootstrap over rounds; loaded when the median 1-minute load exceeds the "
        "threads + 0.5 (then no verdict)",
    )
    save_json(
        record(cfg, device=tm.device, model=tm.name, coverage=cover, **notes), out / "reward-timing.json"
    )
    return summary
