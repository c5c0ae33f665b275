"""The ``batching`` config group: whether the runs of a multirun train as batched models.

``batching=on`` (the default): runs that share every shape-defining key and differ only in
per-run keys (seed, init and its parameters, lr, the optimiser's numbers, branch_scale,
eval_every, study) train together as one batched model, at most ``batching.max`` runs and
at most ``batching.memory_fraction`` of the device's memory by the estimate of
``depthlab.resources``. Each run keeps its own folder and records. ``batching=off``: every
job trains on its own. Which keys are per-run is decided in ``depthlab.grouping``.
"""

from __future__ import annotations

from dataclasses import dataclass

from depthlab.registry import Registry


@dataclass
class Batching:
    """Base of the ``batching`` options."""

    name: str = "batching"

    def max_runs(self) -> int:
        """The most runs one batched model may hold."""
        return 1

    def memory(self) -> float:
        """The fraction of the device's memory a batched model may use by the estimate."""
        return 1.0

    def check(self, key: str = "batching") -> None:
        """Raise ConfigError for a rule beyond the ranges of the numbers (``depthlab.limits``)."""


BATCHINGS: Registry[type[Batching]] = Registry("batching")


@BATCHINGS.register_option
@dataclass
class On(Batching):
    """Batch the runs of a multirun that differ only in per-run keys."""

    name: str = "on"
    max: int = 256  # runs per batched model; the GPU step gains little beyond a few hundred
    memory_fraction: float = 0.5  # of the device's memory, by depthlab.resources' estimate

    def max_runs(self) -> int:
        return self.max

    def memory(self) -> float:
        return self.memory_fraction


@BATCHINGS.register_option
@dataclass
class Off(Batching):
    """Every job of a multirun trains on its own."""

    name: str = "off"
