"""Declarative case grids: a grid is a list of blocks, each a dict of axis -> values expanded as a product
(xformers `product_dict`). ALL in the estimator axis means every registered estimator at run time (minus
the presets and a block's optional `exclude` list)."""

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
    rounds: int = 5
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


def _block(models, steps, estimators=(ALL,), wrt=("latent", "params"), rounds=5, max_time_s=None, **more):
    return dict(
        model=models,
        steps=steps,
        estimator=estimators,
        wrt=wrt,
        rounds=[rounds],
        max_time_s=[max_time_s],
        **more,
    )


# Trained models whose accuracy the accuracy grid measures; a model whose weights are missing is recorded
# as skipped with the reason (extend this list as trained models are added).
TRAINED_MODELS = ["digits-ddpm", "fmnist-ddpm", "fmnist-ddpm-v2"]
RANDOM_INIT_MODELS = ("gmm", "gmm-flow", "mlp", "unet-tiny", "ddpm-cifar10", "ddpm-256", "ldm-tiny", "sd15")
PRESETS = ("adjointdpm", "doodl")  # configurations of public code (bench.presets); not in ALL
TARGET_ESTIMATORS = ("sdo", "sdo-floor", "bptt", "checkpoint", "adjoint", "reversible")
TABLE3_ESTIMATORS = ("sdo", "sdo-floor", "bptt", "checkpoint", "adjoint", "adjointdpm", "reversible", "doodl")
# On a GPU also the estimators whose point is device memory: offloaded BPTT and the O(1) reversible coupling.
FULL_ESTIMATORS = (*TABLE3_ESTIMATORS, "bptt-offload", "reversible-mf")
# The quick CPU grid (make benchmark: <= 20 min on 2 cores, a sweep budget of 17 min as a guard). Order
# matters under the budget: cheap models first, then the cases the targets need.
GRIDS: dict[str, list[dict]] = {
    "tiny": [_block(["gmm"], [2, 3], rounds=2)],
    "quick": [
        _block(["gmm"], [10, 25, 50], rounds=5),
        _block(["unet-tiny"], [10], rounds=5, max_time_s=20.0),
        _block(["unet-tiny"], [25, 50], rounds=5, max_time_s=20.0, exclude=("spsa",)),  # 32 N forwards a call
        _block(["ddpm-cifar10"], [50], TARGET_ESTIMATORS, wrt=["latent"], rounds=5, max_time_s=30.0),
        _block(["ddpm-cifar10"], [50], ("sdo", "bptt"), wrt=["params"], rounds=5, max_time_s=30.0),
        _block(["ddpm-cifar10"], [10, 25], ("sdo", "bptt"), wrt=["latent"], rounds=5, max_time_s=30.0),
    ],
    # Trained models: accuracy against float64 BPTT wrt latent, intermediate and params.
    "accuracy": [
        _block(
            TRAINED_MODELS,
            [10, 25, 50],
            wrt=("latent", "intermediate", "params"),
            rounds=3,
            max_time_s=10.0,
            exact=["float64"],
        ),
        _block(
            TRAINED_MODELS,
            [100, 200],
            wrt=("latent", "intermediate", "params"),
            rounds=1,
            exact=["float64"],
            exclude=("spsa",),
        ),
        # digits-ddpm is cheap enough for float64 BPTT at N = 1000: how accuracy evolves with depth.
        _block(
            ["digits-ddpm"],
            [500, 1000],
            wrt=("latent", "intermediate"),
            rounds=1,
            exact=["float64"],
            exclude=("spsa",),
        ),
    ],
    # Paper Table 3 analogue on CPU: SDO vs the public configurations and the suite's own, N = 50.
    "table3": [_block(["ddpm-cifar10"], [50], TABLE3_ESTIMATORS, wrt=["latent"], rounds=5, max_time_s=60.0)],
    # Paper Table 3 analogue: one gradient of the initial latent, N = 50, on a GPU.
    "full": [
        _block(["ddpm-256", "sd15"], [50], FULL_ESTIMATORS, wrt=["latent"], rounds=5, device=["cuda"]),
    ],
}
BUDGETS_S = {"quick": 17 * 60}  # a sweep stops starting cases after this; the rest are recorded "skipped"
GRID_NOTES = [
    "Quick grid (`make benchmark`, 2-core CPU, <= 20 min): gmm and unet-tiny (random init) at N = 10, 25, "
    "50, wrt latent and params, every registered estimator, exact reference BPTT in float64; 5 timed rounds "
    "per case, fewer only where one call takes 10 s or more and the rounds would exceed max_time_s. spsa "
    "(32 N network forwards per call) is measured on unet-tiny at N = 10 only.",
    "ddpm-cifar10 (random init, 35.7M parameters, 12.1 GFLOP per forward) is cut to fit the budget: at "
    "N = 50 wrt latent the estimators the targets compare (sdo, sdo-floor = sdo with memory='floor', bptt, "
    "checkpoint, adjoint, reversible) and "
    "the floors; at N = 50 wrt params and at N = 10 and 25 wrt latent sdo, bptt and the floors; up to 5 "
    "rounds within 30 s per case. Its exact reference is BPTT in float32 (float64 convolutions on CPU are "
    "too slow for the budget).",
    "The rounds of one group (same model, sampler, N, wrt) are interleaved A B C A B C ... after every "
    "member's warm-up, in a fresh worker process per group.",
    "The quick sweep stops starting new groups after 17 minutes; cases not started are recorded with "
    "status `skipped` and are run by re-running the same command (resume).",
    "Accuracy grid (`make benchmark-accuracy`, results/accuracy/): the trained models "
    f"({', '.join(TRAINED_MODELS)}) at N = 10, 25, 50, 100, 200, wrt latent, intermediate (the step whose "
    "timestep is nearest t = 600) and params, every registered estimator, exact reference BPTT in float64; "
    "a model whose weights are missing is recorded as skipped with the reason. spsa (32 N forwards per "
    "call) only up to N = 50; digits-ddpm also at N = 500 and 1000, wrt latent and intermediate.",
    "Table 3 grid (`make benchmark-table3`, results/table3/): ddpm-cifar10, N = 50, wrt latent: sdo, bptt, "
    "checkpoint, the suite's adjoint and reversible, and the presets adjointdpm and doodl configured as "
    "the public AdjointDPM and DOODL code ships them (bench/presets.py).",
    "Full grid (`make benchmark-full`, GPU): ddpm-256 and sd15 (with its VAE decoder in the loss), N = 50, "
    "wrt latent, the Table 3 estimators and presets plus bptt-offload and reversible-mf, 5 rounds.",
]
DEFAULTS = dict(sampler=["ddim"], dtype=["float32"], device=["cpu"], warmup=[1])


def every_estimator() -> list[str]:
    """The registered estimators, without the presets of public code (they have their own grids)."""
    return [n for n in sdo.estimators.names() if n not in PRESETS]


def missing_weights(model: str) -> str | None:
    """Why a trained model cannot run here (its weights file is missing), or None."""
    if model not in TRAINED_MODELS:
        return None
    from sdo.models.trained import weights_path

    try:
        weights_path(model)
    except (ValueError, FileNotFoundError) as exc:
        return f"trained weights missing: {exc}"
    return None


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
        axes = {k: v for k, v in block.items() if k != "exclude"}
        for point in product_dict(**{**DEFAULTS, **axes}):
            names = every_estimator() if point["estimator"] == ALL else [point["estimator"]]
            names = [n for n in names if n not in block.get("exclude", ())]
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
