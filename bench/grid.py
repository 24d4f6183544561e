"""Declarative case grids: a grid is a list of blocks, each a dict of axis -> values expanded as a product
(xformers `product_dict`). ALL in the estimator axis means every registered estimator at run time."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import sdo

ALL = "*"
FLOORS = ("floor-sample", "floor-step")  # reference rows: no-grad sampling; one forward+backward
EXACT_DTYPES = ("auto", "float64", "same")  # dtype of the exact (BPTT) reference gradient
# auto: float64 for these small models, the case dtype for the rest (float64 convolutions on CPU are slow)
FLOAT64_EXACT_MODELS = ("gmm", "gmm-flow", "mlp", "unet-tiny", "ldm-tiny")
PROTOCOL = ("rounds", "warmup", "exact", "max_time_s")
AXES = ("model", "sampler", "steps", "wrt", "estimator", "dtype", "device", *PROTOCOL)


@dataclass(frozen=True)
class Case:
    """One measured case: an estimator (or floor) on (model, sampler, N, wrt) in a dtype on a device."""

    model: str
    sampler: str
    steps: int
    wrt: str
    estimator: str
    dtype: str = "float32"
    device: str = "cpu"
    rounds: int = 3
    warmup: int = 1
    exact: str = "auto"
    max_time_s: float | None = None  # fewer rounds when one call takes longer than max_time_s / rounds

    @property
    def key(self) -> str:
        """What identifies a case for resume (rounds and warm-up are protocol, not identity)."""
        return "|".join(
            str(v)
            for v in (self.model, self.sampler, self.steps, self.wrt, self.estimator, self.dtype, self.device)
        )

    @property
    def group(self) -> tuple:
        """Cases sharing one exact reference gradient."""
        return (self.model, self.sampler, self.steps, self.wrt, self.dtype, self.device)

    @property
    def exact_dtype(self) -> str:
        """The dtype of this case's exact reference gradient."""
        if self.exact == "auto":
            return "float64" if self.model in FLOAT64_EXACT_MODELS else self.dtype
        return self.dtype if self.exact == "same" else self.exact

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def product_dict(**axes: Iterable) -> Iterator[dict]:
    """Every combination of the axis values, as dicts (xformers-style)."""
    names = list(axes)
    for values in itertools.product(*(list(axes[n]) for n in names)):
        yield dict(zip(names, values))


def _block(models, steps, estimators=(ALL,), wrt=("latent", "params"), rounds=3, max_time_s=None, **more):
    return dict(
        model=models,
        steps=steps,
        estimator=estimators,
        wrt=wrt,
        rounds=[rounds],
        max_time_s=[max_time_s],
        **more,
    )


# The quick CPU grid (make benchmark: <= 20 min on 2 cores, a sweep budget of 17 min as a guard). Order
# matters under the budget: cheap models first, then the cases the targets need.
TARGET_ESTIMATORS = ("sdo", "bptt", "checkpoint", "adjoint", "reversible")
GRIDS: dict[str, list[dict]] = {
    "tiny": [_block(["gmm"], [2, 3], rounds=2)],
    "quick": [
        _block(["gmm"], [10, 25, 50], rounds=5, max_time_s=2.0),
        _block(["unet-tiny"], [10, 25, 50], rounds=3, max_time_s=6.0),
        _block(["ddpm-cifar10"], [50], TARGET_ESTIMATORS, wrt=["latent"], rounds=3, max_time_s=30.0),
        _block(["ddpm-cifar10"], [50], ("sdo", "bptt"), wrt=["params"], rounds=1),
        _block(["ddpm-cifar10"], [25], ("sdo", "bptt"), wrt=["latent"], rounds=1),
        _block(["ddpm-cifar10"], [10], rounds=1),
    ],
    # Paper Table 3 analogue: one gradient of the initial latent, N = 50, on a GPU.
    "full": [
        _block(
            ["ddpm-256", "sd15"],
            [50],
            ("sdo", "adjoint", "reversible", "bptt", "checkpoint"),
            wrt=["latent"],
            rounds=3,
            device=["cuda"],
        ),
    ],
}
BUDGETS_S = {"quick": 17 * 60}  # a sweep stops starting cases after this; the rest are recorded "skipped"
GRID_NOTES = [
    "Quick grid (`make benchmark`, 2-core CPU, <= 20 min): gmm and unet-tiny at N = 10, 25, 50, wrt latent "
    "and params, every registered estimator, exact reference BPTT in float64; rounds 5 (gmm) and 3 "
    "(unet-tiny), fewer where one call takes longer than max_time_s / rounds (see the rounds column).",
    "ddpm-cifar10 (35.7M parameters, 12.1 GFLOP per forward) is cut to fit the budget: at N = 50 wrt "
    "latent the estimators the targets compare (sdo, bptt, checkpoint, adjoint, reversible) and the floors, "
    "up to 3 rounds within 30 s; at N = 50 wrt params sdo, bptt and the floors; at N = 25 wrt latent sdo, "
    "bptt and the floors (a third N for the saved-bytes growth); at N = 10 every estimator wrt latent and "
    "params; one round each outside the N = 50 latent block. The other estimators at N = 25 and 50 are "
    "left out. Its exact reference is BPTT in float32 (float64 convolutions on CPU are too slow for the "
    "budget).",
    "The quick sweep stops starting new cases after 17 minutes; cases not started are recorded with "
    "status `skipped` and are run by re-running the same command (resume).",
    "Full grid (`make benchmark-full`, GPU): ddpm-256 and sd15 (with its VAE decoder in the loss), N = 50, "
    "wrt latent: sdo, adjoint, reversible, bptt, checkpoint, 3 rounds (paper Table 3 analogue).",
]
DEFAULTS = dict(sampler=["ddim"], dtype=["float32"], device=["cpu"], warmup=[1])


def check_choice(kind: str, value: str, valid: Iterable[str]) -> str:
    """value if valid, else ValueError naming the valid choices."""
    valid = list(valid)
    if value not in valid:
        raise ValueError(f"unknown {kind} {value!r}; valid: {', '.join(map(str, valid))}")
    return value


def expand(grid: str | list[dict], floors: bool = True, **overrides) -> list[Case]:
    """The grid's cases (ALL = sdo.estimators.names() now), overridden axis by axis (see `override`), plus
    the two floor rows per (model, sampler, N, wrt, dtype, device) unless floors=False."""
    blocks = GRIDS[check_choice("grid", grid, GRIDS)] if isinstance(grid, str) else grid
    cases = []
    for block in blocks:
        for point in product_dict(**{**DEFAULTS, **block}):
            names = sdo.estimators.names() if point["estimator"] == ALL else [point["estimator"]]
            cases += [Case(**{**point, "estimator": name}) for name in names]
    for axis, values in overrides.items():
        check_choice("grid axis", axis, AXES)
        if values is not None:
            cases = override(cases, axis, list(values))
    if floors:
        cases += [dataclasses.replace(c, estimator=f) for c in cases for f in FLOORS]
    unique = {c.key: c for c in reversed(cases)}  # the first case of a key wins
    return order(list(reversed(unique.values())))


def override(cases: list[Case], axis: str, values: list) -> list[Case]:
    """Values all present on that axis of the grid filter it (`--models gmm`); any other value replaces the
    axis in every case (`--models ldm-tiny`, `--device cuda`); protocol axes (rounds, ...) always replace."""
    present = {getattr(c, axis) for c in cases}
    if axis not in PROTOCOL and set(values) <= present:
        return [c for c in cases if getattr(c, axis) in values]
    return [dataclasses.replace(c, **{axis: v}) for c in cases for v in values]


def order(cases: list[Case]) -> list[Case]:
    """Stable order keeping groups together: BPTT first (it can serve as the exact reference), then SDO
    and the floors (the targets compare them), then the other estimators."""
    groups: dict[tuple, list[Case]] = {}
    for c in cases:
        groups.setdefault(c.group, []).append(c)
    rank = {"bptt": 0, "sdo": 1, "floor-sample": 2, "floor-step": 2}
    return [c for g in groups.values() for c in sorted(g, key=lambda c: rank.get(c.estimator, 3))]
