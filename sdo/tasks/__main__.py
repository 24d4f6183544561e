"""CLI: python -m sdo.tasks {adversarial,style,reward,all} [--quick] [--model NAME] [--out DIR] ...

Every finished unit of work (a chunk) is stored under OUT/chunks/; the same command run again loads the
stored chunks and computes only the missing ones (--max-minutes stops starting new chunks). Each task's
tables (with intervals), figures and provenance JSON are built from the stored chunks and say how much of
the planned work they rest on; then the README with the "paper claim | our measurement | verdict" table."""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

import torch

from . import TASKS
from .adversarial import UPDATES, AdversarialConfig, run_adversarial
from .chunks import CHUNK_DIR, ChunkRunner
from .common import DEFAULT_MODEL, RESULTS, load_models, markdown
from .devices import task_device
from .reward import METHODS, REWARDS, RewardConfig, run_reward
from .reward_timing import TIMED, run_timing
from .style import StyleConfig, run_style

# Quick settings: every task end to end in about a minute (make tasks-quick, the tests), same code path.
QUICK = {
    "adversarial": dict(n=4, steps=10, opt_steps=2, seeds=(0, 1), batch=4, fid_reference=200, pool_factor=60),
    "style": dict(n=2, steps=4, opt_steps=1, seeds=(0, 1)),
    "reward": dict(
        batch=2,
        steps=4,
        opt_steps=2,
        eval_n=4,
        eval_every=1,
        sweep_factors=(1.0, 16.0),
        sweep_steps=1,
        depth_batches=2,
        depths=(1, 4),
        timing_rounds=2,
        seeds=(0, 1),
        fid_reference=200,
    ),
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sdo.tasks", description=__doc__)
    p.add_argument("task", choices=(*TASKS, "all"))
    p.add_argument("--quick", "--tiny", action="store_true", help="seconds-long smoke settings (the tests)")
    p.add_argument(
        "--out", type=Path, default=RESULTS, help=f"output directory; its {CHUNK_DIR}/ holds the chunks"
    )
    p.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="start no new chunk after this many minutes; tables are built from what is stored "
        "(run the same command again to continue)",
    )
    p.add_argument("--max-chunks", type=int, default=None, help="compute at most this many new chunks")
    p.add_argument("--model", default=DEFAULT_MODEL, help="diffusion model name (class-conditional or not)")
    p.add_argument("--weights", default=None, help="other weights for --model (e.g. an in-progress EMA file)")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance w (model default)")
    p.add_argument("--seeds", type=int, nargs="*", default=None, help="override every task's seeds")
    p.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="TASK.KEY=VALUE",
        help="override a config field, e.g. adversarial.n=50 reward.opt_steps=10 (Python literals)",
    )
    p.add_argument("--estimators", nargs="*", default=None, help="adversarial/style: estimator names")
    p.add_argument("--methods", nargs="*", default=None, help=f"reward: any of {list(METHODS)}")
    p.add_argument("--rewards", nargs="*", default=list(REWARDS), help=f"reward: any of {list(REWARDS)}")
    p.add_argument("--update", nargs="*", default=list(UPDATES), help="adversarial: gd (paper) and/or sign")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (torch.set_num_threads)")
    p.add_argument(
        "--device",
        default="cpu",
        help="cpu, cuda or cuda:k; the samples are the same on every device (latents and noise are drawn on "
        "the CPU) and the chunks are stored on the CPU, so a run can be continued on another device",
    )
    return p


def settings(task: str, quick: bool, seeds, overrides=()) -> dict:
    """The config overrides of one task: the quick settings if asked, then the seeds, then TASK.KEY=VALUE."""
    opts = dict(QUICK[task]) if quick else {}
    if seeds:
        opts["seeds"] = tuple(seeds)
    for item in overrides:
        key, sep, value = item.partition("=")
        where, dot, field = key.partition(".")
        if not sep or not dot or where not in TASKS:
            raise ValueError(f"--set {item!r}: expected TASK.KEY=VALUE with TASK one of {', '.join(TASKS)}")
        if where == task:
            opts[field] = ast.literal_eval(value)
    return opts


def run(
    task: str,
    quick: bool,
    out: Path,
    estimators=None,
    methods=None,
    updates=UPDATES,
    rewards=REWARDS,
    tm=None,
    seeds=None,
    overrides=(),
    runner: ChunkRunner | None = None,
    device: str | torch.device = "cpu",
):
    """Run one task (or all) from its chunks (computing the missing ones until the runner's limit) and
    regenerate out/README.md; returns {name: DataFrame}. Models are loaded on `device` unless `tm` is given."""
    from .report import write_readme

    if task not in (*TASKS, "all"):
        raise ValueError(f"unknown task {task!r}; valid: {', '.join((*TASKS, 'all'))}")
    tm = tm or load_models(device=task_device(device))
    runner = runner or ChunkRunner(out, device=tm.device)
    tables = {}
    if task in ("adversarial", "all"):
        for update in updates:
            cfg = AdversarialConfig(update=update, **settings("adversarial", quick, seeds, overrides))
            tables[f"adversarial-{update}"] = run_adversarial(cfg, estimators, out, tm, runner)
    if task in ("style", "all"):
        cfg = StyleConfig(**settings("style", quick, seeds, overrides))
        tables["style"] = run_style(cfg, estimators, out, tm, runner)
    if task in ("reward", "all"):
        cfg = RewardConfig(**settings("reward", quick, seeds, overrides))
        if set(TIMED) <= set(methods or METHODS):
            tables["reward-timing"] = run_timing(cfg, tm, runner, out)
        tables["reward"] = run_reward(cfg, methods, rewards, out, tm, runner)
    write_readme(out)
    return tables


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    device = task_device(args.device)
    torch.set_num_threads(args.threads)
    tm = load_models(args.model, args.weights, args.guidance, device)
    runner = ChunkRunner(args.out, args.max_minutes, args.max_chunks, device)
    tables = run(
        args.task,
        args.quick,
        args.out,
        args.estimators,
        args.methods,
        args.update,
        args.rewards,
        tm,
        args.seeds,
        args.set,
        runner,
    )
    for name, df in tables.items():
        print(f"\n## {name}\n\n{markdown(df)}")
    print(f"\n{runner.summary()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
