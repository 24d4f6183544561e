"""Command line: `python -m sdo grad ...` (one gradient, one readable line or --json), `python -m sdo list`,
and `python -m sdo doctor --model DIR` (where a pipeline loses its gradients; sdo/doctor.py).

Exit status: 0 ok, 1 non-finite loss or gradient, 2 bad input, 3 runtime failure (e.g. out of memory),
130 interrupted. Every failure is one line on stderr."""

from __future__ import annotations

import argparse
import json
import sys

import torch

from . import estimators, models, objectives, samplers
from .doctor import add_doctor_parser, run_doctor
from .problem import DTYPES, WRT, Problem, dtype_of

EXIT_OK, EXIT_NONFINITE, EXIT_BAD_INPUT, EXIT_RUNTIME, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line on stderr (exit 2), like every other error here."""

    def error(self, message):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def parse_value(text: str):
    """'3' -> 3, '0.5' -> 0.5, 'true' -> True, 'N' -> 'N' (estimator option values)."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_options(pairs: list[str]) -> dict:
    """KEY=VALUE pairs -> a dict; a pair without '=' is a ValueError."""
    opts = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"option {pair!r} is not of the form KEY=VALUE")
        key, value = pair.split("=", 1)
        opts[key] = parse_value(value)
    return opts


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m sdo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("grad", help="compute one gradient and print its diagnostics")
    g.add_argument(
        "--model", default="gmm", help=f"a name ({', '.join(models.names())}) or a local directory"
    )
    g.add_argument("--sampler", default="ddim", help=", ".join(samplers.names()))
    g.add_argument("--steps", type=int, default=50)
    g.add_argument("--estimator", default="sdo", help=", ".join(estimators.names()))
    g.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="estimator option")
    g.add_argument(
        "--sampler-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="sampler option (repeatable), e.g. eta=0.5 or timestep_spacing=leading; overrides the model's "
        "scheduler config",
    )
    g.add_argument("--wrt", default="latent", help=", ".join(WRT))
    g.add_argument("--k", type=int, default=None, help="the intermediate step for --wrt intermediate")
    g.add_argument("--params", action="append", default=None, help="regex selecting parameters (repeatable)")
    g.add_argument("--objective", default="target-mse", choices=["target-mse", "style"])
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--batch", type=int, default=1)
    g.add_argument("--dtype", default="float32", help=", ".join(DTYPES))
    g.add_argument("--device", default="cpu")
    g.add_argument("--json", action="store_true", help="print one JSON object")
    sub.add_parser("list", help="list the registered models, samplers, estimators and objectives")
    add_doctor_parser(sub)
    return parser


def make_problem(args) -> Problem:
    """The Problem the `grad` arguments describe."""
    dtype = dtype_of(args.dtype)
    model = models.get(args.model, seed=args.seed)
    if args.objective == "style":
        g = torch.Generator().manual_seed(args.seed + 1)
        objective = objectives.get("style", reference=torch.rand((1, *model.sample_shape), generator=g))
    else:
        objective = objectives.get("target-mse", seed=args.seed + 1)
    return Problem(
        model,
        samplers.get(args.sampler, steps=args.steps, **parse_options(args.sampler_option)),
        objective,
        wrt=args.wrt,
        seed=args.seed,
        batch=args.batch,
        intermediate_step=args.k,
        params=args.params,
        dtype=dtype,
        device=args.device,
    )


def summary(args, res) -> dict:
    """The JSON-able record of one gradient."""
    s = res.stats
    return {
        "estimator": args.estimator,
        "model": args.model,
        "sampler": args.sampler,
        "steps": args.steps,
        "wrt": args.wrt,
        "status": res.status,
        "loss": res.loss,
        "grad_norm": res.norm(),
        **{k: v for k, v in s.items() if k not in ("status", "estimator")},
    }


def format_line(rec: dict) -> str:
    """One readable line."""
    return (
        f"{rec['estimator']} {rec['model']} {rec['sampler']} N={rec['steps']} wrt={rec['wrt']}: "
        f"status={rec['status']} loss={rec['loss']:.6g} |grad|={rec['grad_norm']:.6g} "
        f"nfe fwd {rec['nfe_fwd_grad']} with graph + {rec['nfe_fwd_nograd']} without"
        f" + {rec['nfe_fwd_recompute']} recomputed, bwd {rec['nfe_bwd']}; {rec['wall_s']:.3f}s"
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "list":
        for axis, mod in (("models", models), ("samplers", samplers), ("estimators", estimators)):
            print(f"{axis}: {', '.join(mod.names())}")
        print(f"objectives: {', '.join(objectives.names())}")
        return 0
    try:
        if args.command == "doctor":
            return run_doctor(args)
        opts = parse_options(args.option)
        estimator = estimators.get(args.estimator, **opts)
        res = estimator(make_problem(args))
    except ValueError as e:
        return fail(EXIT_BAD_INPUT, str(e))
    except KeyboardInterrupt:
        return fail(EXIT_INTERRUPTED, "interrupted")
    except Exception as e:  # noqa: BLE001 - any other failure is a runtime failure, reported in one line
        kind = "out of memory" if out_of_memory(e) else f"runtime failure: {type(e).__name__}"
        return fail(EXIT_RUNTIME, f"{kind}: {e}")
    rec = summary(args, res)
    print(json.dumps(rec, default=str) if args.json else format_line(rec))
    if not res.ok:
        return fail(EXIT_NONFINITE, f"the result is not finite (status={res.status})")
    return EXIT_OK


def out_of_memory(e: BaseException) -> bool:
    """torch's or Python's out-of-memory error, or the CPU allocator's RuntimeError."""
    return isinstance(e, (torch.OutOfMemoryError, MemoryError)) or "can't allocate memory" in str(e)


def fail(code: int, message: str) -> int:
    """Print `python -m sdo: error: message` as one line on stderr; return the exit status."""
    text = " ".join(message.split())
    print(f"python -m sdo: error: {text}", file=sys.stderr)
    return code
