"""CLI: python -m sdo.train {classifier,ddpm,card} ... (seeded; writes sdo/models/weights/)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import torch

from ..models.trained import WEIGHTS_DIR

MODELS = ("classifier", "ddpm", "fmnist-classifier-eval", "digits-ddpm", "fmnist-ddpm-v2")
CLASSIFIER_NAMES = ("fmnist-classifier", "fmnist-classifier-eval", "digits-classifier")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sdo.train", description=__doc__)
    sub = p.add_subparsers(dest="what", required=True)
    c = sub.add_parser("classifier", help="train a classifier (default fmnist-classifier)")
    c.add_argument("--model", default="fmnist-classifier", choices=CLASSIFIER_NAMES)
    c.add_argument("--epochs", type=int, default=4)
    c.add_argument("--batch", type=int, default=128)
    c.add_argument("--lr", type=float, default=2e-3)
    d = sub.add_parser(
        "ddpm", help="train a DDPM (default fmnist-ddpm-v2); --resume continues from its checkpoint"
    )
    d.add_argument(
        "--model", default="fmnist-ddpm-v2", help="which recipe: fmnist-ddpm-v2 or fmnist-ddpm (v1)"
    )
    d.add_argument("--steps", type=int, default=None, help="length of the learning-rate schedule")
    d.add_argument("--stop-at", type=int, default=None, help="stop early on that schedule (time budget)")
    d.add_argument("--batch", type=int, default=None)
    d.add_argument("--lr", type=float, default=None)
    d.add_argument("--ema", type=float, default=None, help="EMA decay")
    d.add_argument("--resume", action="store_true", help="continue from the checkpoint in the work directory")
    d.add_argument("--weights", default="ema", choices=("ema", "raw"), help="ship the EMA or the raw weights")
    k = sub.add_parser("card", help="evaluate a trained model and write its model card")
    k.add_argument("model", choices=MODELS)
    k.add_argument("--samples", type=int, default=1000, help="generated samples for the card's statistics")
    k.add_argument("--ddim-steps", type=int, default=25)
    for s in (c, d, k):
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--out", type=Path, default=WEIGHTS_DIR)
        s.add_argument("--work", type=Path, default=None, help="checkpoint/log directory root")
        s.add_argument("--threads", type=int, default=1)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    command = "python -m sdo.train " + shlex.join(argv)
    if args.what == "card":
        from .card import write_card

        write_card(
            args.model,
            args.out,
            samples=args.samples,
            ddim_steps=args.ddim_steps,
            seed=args.seed,
            work=args.work,
        )
        return 0
    if args.what == "classifier":
        from .classifier import train_classifier

        info = train_classifier(
            args.out / f"{args.model}.safetensors",
            args.epochs,
            args.batch,
            args.lr,
            args.seed,
            args.work,
            name=args.model,
        )
    else:
        from .ddpm import train_ddpm
        from .recipes import get_recipe, work_dir

        recipe, (data, labels) = get_recipe(
            args.model, steps=args.steps, batch=args.batch, lr=args.lr, ema_decay=args.ema, seed=args.seed
        )
        info = train_ddpm(
            recipe,
            data,
            labels,
            args.out / f"{args.model}.safetensors",
            work_dir(args.model, args.work),
            stop_at=args.stop_at,
            resume=args.resume,
            weights=args.weights,
            name=args.model,
        )
    info.update(command=command, threads=args.threads)
    (args.out / f"{args.model}.train.json").write_text(json.dumps(info, indent=1) + "\n")
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
