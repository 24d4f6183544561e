"""CLI: python -m sdo.tasks {adversarial,style,reward,all} [--tiny] [--out DIR] [--estimators ...]."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from . import TASKS
from .adversarial import AdversarialConfig, run_adversarial
from .common import RESULTS, markdown
from .reward import METHODS, RewardConfig, run_reward
from .style import StyleConfig, run_style

# Tiny settings: every task end to end in seconds (tests), same code path as the defaults.
TINY = {
    "adversarial": dict(n=2, steps=3, opt_steps=2, fid_reference=0),
    "style": dict(n=1, steps=3, opt_steps=1, t_intermediate=600),
    "reward": dict(batch=1, steps=2, opt_steps=2, eval_n=2),
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sdo.tasks", description=__doc__)
    p.add_argument("task", choices=(*TASKS, "all"))
    p.add_argument("--tiny", action="store_true", help="a seconds-long smoke setting")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--estimators", nargs="*", default=None, help="adversarial/style: estimator names")
    p.add_argument("--methods", nargs="*", default=None, help=f"reward: any of {list(METHODS)}")
    p.add_argument("--update", nargs="*", default=["gd", "sign"], help="adversarial: gd (paper) and/or sign")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", help="only cpu is supported by the tasks for now")
    return p


def run(task: str, tiny: bool, out: Path, estimators=None, methods=None, updates=("gd", "sign")) -> dict:
    """Run one task (or all); returns {name: DataFrame}."""
    tables = {}
    if task in ("adversarial", "all"):
        for update in updates:
            cfg = AdversarialConfig(update=update, **(TINY["adversarial"] if tiny else {}))
            tables[f"adversarial-{update}"] = run_adversarial(cfg, estimators, out)
    if task in ("style", "all"):
        tables["style"] = run_style(StyleConfig(**(TINY["style"] if tiny else {})), estimators, out)
    if task in ("reward", "all"):
        tables["reward"] = run_reward(RewardConfig(**(TINY["reward"] if tiny else {})), methods, out=out)
    return tables


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.device != "cpu":
        raise ValueError(f"--device {args.device!r}: the tasks run on cpu only for now; valid: cpu")
    torch.set_num_threads(args.threads)
    for name, df in run(args.task, args.tiny, args.out, args.estimators, args.methods, args.update).items():
        print(f"\n## {name}\n\n{markdown(df)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
