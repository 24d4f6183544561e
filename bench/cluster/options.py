"""The Slurm options of `python -m bench run --launcher slurm`, checked and turned into submitit's."""

from __future__ import annotations

import argparse
import dataclasses
import re

MEM = re.compile(r"^[0-9]+[KMGT]?$", re.IGNORECASE)
HELP = {  # field -> (metavar, help); a job here is one array task, i.e. one group of cases
    "partition": ("NAME", "partition (queue) the tasks go to (default: the cluster's default partition)"),
    "time": ("MIN", "time limit of each task in minutes (default 60); past it the group's status is timeout"),
    "gpus_per_node": ("N", "GPUs per task (sbatch --gpus-per-node); 1 for --device cuda"),
    "cpus_per_task": ("N", "CPU cores per task (default: the cluster's, usually 1)"),
    "mem": ("MEM", "memory per task in Slurm's syntax: 32G, 500M, 16000 (MB) (default: the cluster's)"),
    "account": ("NAME", "account the tasks are charged to"),
    "qos": ("NAME", "quality of service"),
    "constraint": ("FEATURES", "node features the tasks need, e.g. a100 or 'a100|h100'"),
    "array_parallelism": ("N", "at most this many of the sweep's array tasks run at once (default 256)"),
    "option": ("KEY=VALUE", "any other sbatch option, e.g. exclude=node7 or mail-type=END; repeatable"),
}


@dataclasses.dataclass(frozen=True)
class SlurmOptions:
    """What each case's array task asks Slurm for; None leaves the cluster's default."""

    partition: str | None = None
    time: int = 60
    gpus_per_node: int | None = None
    cpus_per_task: int | None = None
    mem: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    array_parallelism: int = 256
    option: tuple[str, ...] = ()

    def __post_init__(self):
        for name in ("time", "cpus_per_task", "array_parallelism"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"--slurm-{name.replace('_', '-')} must be >= 1; got {v}")
        if self.gpus_per_node is not None and self.gpus_per_node < 0:
            raise ValueError(f"--slurm-gpus-per-node must be >= 0; got {self.gpus_per_node}")
        if self.mem is not None and not MEM.match(self.mem):
            raise ValueError(f"--slurm-mem {self.mem!r}: valid: a number of MB or a number with K, M, G or T")
        for kv in self.option:
            if not re.match(r"^[A-Za-z][A-Za-z0-9_-]*=.+$", kv):
                raise ValueError(f"--slurm-option {kv!r}: valid: key=value, an sbatch long option without --")

    def extra(self) -> dict[str, str]:
        """--slurm-option key=value pairs as sbatch options (the last one of a key wins)."""
        return dict(kv.split("=", 1) for kv in self.option)

    def parameters(self) -> dict:
        """submitit SlurmExecutor parameters (sbatch flags; None values left out)."""
        names = ("partition", "time", "gpus_per_node", "cpus_per_task", "mem", "account", "qos", "constraint")
        params = {n: getattr(self, n) for n in names if getattr(self, n) is not None}
        params.update(job_name="sdo-bench", array_parallelism=self.array_parallelism)
        if self.option:
            params["additional_parameters"] = self.extra()
        return params


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The --slurm-* options (used with --launcher slurm)."""
    group = parser.add_argument_group("slurm (with --launcher slurm; one array task per group of cases)")
    types = {"time": int, "gpus_per_node": int, "cpus_per_task": int, "array_parallelism": int}
    for field in dataclasses.fields(SlurmOptions):
        flag, (metavar, text) = "--slurm-" + field.name.replace("_", "-"), HELP[field.name]
        kw = dict(dest=f"slurm_{field.name}", metavar=metavar, help=text)
        if field.name == "option":
            group.add_argument(flag, action="append", default=[], **kw)
        else:
            group.add_argument(flag, type=types.get(field.name), **kw)


def from_args(args: argparse.Namespace) -> SlurmOptions:
    """SlurmOptions from parsed arguments (unset ones keep their defaults); ValueError on a bad value."""
    given = {f.name: getattr(args, f"slurm_{f.name}") for f in dataclasses.fields(SlurmOptions)}
    given["option"] = tuple(given["option"] or ())
    used = [f"--slurm-{k.replace('_', '-')}" for k, v in given.items() if v not in (None, ())]
    if used and args.launcher != "slurm":
        raise ValueError(f"{', '.join(used)}: only with --launcher slurm (got --launcher {args.launcher})")
    return SlurmOptions(**{k: v for k, v in given.items() if v is not None})
