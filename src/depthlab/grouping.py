"""Which runs of a multirun train together as one batched model.

Runs may share a batched model when they share every key that fixes the model's shape or
the course of training for all of them: depth, width, activations, residual, norm, the data
and its options, loss, batch size, steps, dtype, device, probes, the optimiser's kind (its
update formula), and how the process runs (threads, denormals, compile, CUDA graphs, flush
period, batching). They may differ in the per-run keys below, which become tensors with
the replica dimension: each run draws its own weights, takes its own mini-batches, steps
with its own learning rate and optimiser numbers, scales its own residual branches and is
evaluated on its own schedule, and each keeps its own live view (``logger``) or none.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from depthlab.config import Config
from depthlab.records import config_columns
from depthlab.resources import split

# Keys (and group prefixes) whose value may differ between the runs of one batched model.
PER_RUN_KEYS = (
    "seed",
    "replicas",
    "lr",
    "branch_scale",
    "eval_every",
    "study",
    "resume",
    "lock_timeout",
    "logger",
)
PER_RUN_GROUPS = ("init",)


def group_key(cfg: Config) -> tuple:
    """What runs batched together must share (hashable): every config column that is not
    per-run, the optimiser's kind, and whether the init learns the branch scale."""
    per_run_optimizer = {f"optimizer.{name}" for name in cfg.optimizer.hyperparameters()}
    shared = sorted(
        (key, _hashable(value))
        for key, value in config_columns(cfg).items()
        if key not in PER_RUN_KEYS
        and key.partition(".")[0] not in PER_RUN_GROUPS
        and key not in per_run_optimizer
    )
    learns_alpha = cfg.init.learned_branch_scale is not None
    return (*shared, ("optimizer kind", cfg.optimizer.kind()), ("learned alpha", learns_alpha))


def _hashable(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def check_batchable(configs: Sequence[Config]) -> None:
    """Raise ValueError unless the configs may share one batched model."""
    keys = {group_key(cfg) for cfg in configs}
    if len(keys) > 1:
        first, other = (dict(k) for k in list(keys)[:2])
        differ = sorted(k for k in first.keys() | other.keys() if first.get(k) != other.get(k))
        raise ValueError(f"runs batched together differ in shape-defining keys: {differ}")


def plan(
    configs: Sequence[Config],
    per_run_bytes: Callable[[Config], int | None] = lambda c: None,
    capacity: Callable[[Config], int | None] = lambda c: None,
) -> list[list[int]]:
    """The jobs (indices into ``configs``) that train together, in the order of their first
    job: jobs with equal :func:`group_key` and batching on form a group, cut into chunks of
    at most ``batching.max`` runs and ``batching.memory_fraction`` of ``capacity(cfg)``
    bytes at ``per_run_bytes(cfg)`` a run (a job with ``replicas=R`` counts R runs)."""
    groups: dict[tuple, list[int]] = {}
    for i, cfg in enumerate(configs):
        key = group_key(cfg) if cfg.batching.max_runs() > 1 else ("alone", i)
        groups.setdefault(key, []).append(i)
    planned = []
    for members in groups.values():
        first = configs[members[0]]
        total = capacity(first)
        allowed = None if total is None else int(total * first.batching.memory())
        per_run = per_run_bytes(first) or 0
        sizes = [configs[i].replicas for i in members]
        for chunk in split(sizes, first.batching.max_runs(), per_run, allowed):
            planned.append([members[i] for i in chunk])
    return sorted(planned, key=lambda group: group[0])
