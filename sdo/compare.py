"""The accuracy API: every estimator's gradient against a reference (BPTT) on one problem, as a table."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
import torch

from .estimators import get as get_estimator
from .problem import Problem
from .result import GradResult

COLUMNS = [
    "estimator",
    "options",
    "cosine",
    "rel_err",
    "norm_ratio",
    "grad_norm",
    "ref_norm",
    "nfe_fwd_grad",
    "nfe_fwd_nograd",
    "nfe_fwd_recompute",
    "nfe_bwd",
    "status",
    "error",
]


def _spec(entry) -> tuple[str, dict]:
    """An estimator given as a name or a (name, options) pair."""
    if isinstance(entry, str):
        return entry, {}
    if (
        isinstance(entry, tuple)
        and len(entry) == 2
        and isinstance(entry[0], str)
        and isinstance(entry[1], dict)
    ):
        return entry[0], dict(entry[1])
    raise ValueError(f"estimators must be names or (name, options) pairs; got {entry!r}")


def accuracy(result: GradResult, ref: GradResult) -> dict[str, float]:
    """Cosine similarity, relative L2 error and norm ratio ||g_hat|| / ||g|| of `result` to `ref` (NaN unless
    both are finite): cosine alone hides magnitude errors."""
    nan = math.nan
    if not (result.ok and ref.ok):
        return {
            "cosine": nan,
            "rel_err": nan,
            "norm_ratio": nan,
            "grad_norm": result.norm(),
            "ref_norm": ref.norm(),
        }
    g, r = result.flat(), ref.flat()
    gn, rn = float(g.norm()), float(r.norm())
    cos = float(g @ r / (gn * rn)) if gn > 0 and rn > 0 else nan
    rel = float((g - r).norm() / rn) if rn > 0 else nan
    ratio = gn / rn if rn > 0 else nan
    return {"cosine": cos, "rel_err": rel, "norm_ratio": ratio, "grad_norm": gn, "ref_norm": rn}


def _row(name: str, options: dict, result: GradResult | None, ref: GradResult, error: str = "") -> dict:
    row = {"estimator": name, "options": options or "", "error": error}
    if result is None:
        status = "oom" if "out of memory" in error.lower() else "error"
        row.update(
            cosine=math.nan, rel_err=math.nan, norm_ratio=math.nan, grad_norm=math.nan, ref_norm=ref.norm()
        )
        row["status"] = status
        return row
    row.update(accuracy(result, ref))
    row.update({k: result.stats.get(k, 0) for k in COLUMNS if k.startswith("nfe_")})
    row["status"] = result.status
    return row


def compare(
    problem: Problem,
    estimators: Sequence = ("bptt", "sdo"),
    reference: str | tuple = "bptt",
    dtype: torch.dtype | None = torch.float64,
) -> pd.DataFrame:
    """One row per estimator: cosine and relative error of its gradient to the reference's, gradient norms,
    network-call counts and status, all on `problem.to(dtype)` (dtype None: the problem as it is)."""
    specs = [_spec(e) for e in estimators]
    ref_name, ref_opts = _spec(reference)
    for name, opts in [(ref_name, ref_opts), *specs]:
        get_estimator(name, **opts)  # unknown names / options raise ValueError before any work
    case = problem if dtype is None else problem.to(dtype)
    ref = get_estimator(ref_name, **ref_opts)(case)
    rows = []
    for name, opts in specs:
        try:
            result = get_estimator(name, **opts)(case)
        except Exception as err:  # unsupported wrt / sampler (ValueError), out of memory: recorded, go on
            rows.append(_row(name, opts, None, ref, f"{type(err).__name__}: {err}"))
            continue
        rows.append(_row(name, opts, result, ref))
    return pd.DataFrame(rows, columns=COLUMNS)
