"""When and what to probe: the ``probes`` config group.

Options ``minimal``, ``default``, ``full`` and ``none`` name the probes they run (presets of
:func:`depthlab.probes.base.presets`, or an explicit list: ``probes.names=[delta,acts]``)
and share one schedule: step 0 (before any update) and the last step always, every
``every`` steps (0: no others), and ``log_points`` log-spaced steps in 1..steps. The costly
probes (jacobian, curvature: seconds a step at depth 100) run only at step 0, the last
step and every ``costly_every`` steps of those.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from depthlab.errors import ConfigError
from depthlab.probes.base import PRESET_NAMES, PROBES
from depthlab.registry import Registry


@dataclass(frozen=True)
class Steps:
    """A set of steps of 0..``total`` described, never listed: 0 and ``total``, every
    multiple of ``every`` (0: none), the ``extra`` steps, and only those also in ``within``
    (when given). Membership and size are arithmetic, so ``steps=10**9`` costs nothing;
    ``total = -1`` is the empty set."""

    total: int
    every: int = 0
    extra: frozenset[int] = frozenset()
    within: Steps | None = None

    def __contains__(self, step: object) -> bool:
        if not isinstance(step, int | np.integer) or not 0 <= step <= self.total:
            return False
        mine = step in (0, self.total) or (self.every > 0 and step % self.every == 0)
        return (mine or step in self.extra) and (self.within is None or step in self.within)

    def __bool__(self) -> bool:
        return self.total >= 0

    def __iter__(self) -> Iterator[int]:
        """The steps in increasing order (made one at a time)."""
        if self.total < 0:
            return
        multiples = range(0, self.total + 1, self.every) if self.every > 0 else range(0)
        ends = sorted({0, self.total} | {s for s in self.extra if 0 <= s <= self.total})
        last = None
        for step in heapq.merge(multiples, ends):
            if step != last and (self.within is None or step in self.within):
                yield step
            last = step

    def __len__(self) -> int:
        """How many steps: arithmetic without ``within``, counted one by one with it."""
        if self.within is not None:
            return sum(1 for _ in self)
        if self.total < 0:
            return 0
        multiples = self.total // self.every + 1 if self.every > 0 else 1
        others = {self.total, *self.extra} - {0}
        return multiples + sum(
            1 for s in others if 0 < s <= self.total and not (self.every and s % self.every == 0)
        )


NO_STEPS = Steps(-1)


@dataclass
class ProbeSchedule:
    """Base of the ``probes`` options."""

    name: str = "probes"
    names: list[str] = field(default_factory=list)  # probes or presets to run, e.g. [delta,acts]
    # a probed step costs several plain steps at depth 100, hence not every step by default
    every: int = 50  # steps between probed steps; step 0 and the last always (0: no others)
    log_points: int = 0  # extra probed steps, log-spaced in 1..steps (0: none)
    costly_every: int = 0  # costly probes: step 0, the last step, and every n (0: no)

    def steps(self, total: int) -> Steps:
        """The steps in 0..total at which the probes run (empty without probes)."""
        if not self.names:
            return NO_STEPS
        points = frozenset()
        if self.log_points > 0 and total > 0:
            points = frozenset(
                int(s) for s in np.unique(np.geomspace(1, total, self.log_points).round())
            )
        return Steps(total, self.every, points)

    def costly_steps(self, total: int) -> Steps:
        """The steps at which the costly probes (``Probe.costly``) run, if selected."""
        return Steps(total, self.costly_every, within=self.steps(total))

    def check(self, key: str = "probes") -> None:
        for name in self.names:
            if name not in PROBES and name not in PRESET_NAMES:
                raise ConfigError(
                    f"{key}.names", name, [*PRESET_NAMES, *PROBES.names()], "unknown probe"
                )


SCHEDULES: Registry[type[ProbeSchedule]] = Registry("probes")


@SCHEDULES.register_option
@dataclass
class NoProbes(ProbeSchedule):
    """No per-layer probes: network-level curves only."""

    name: str = "none"


@SCHEDULES.register_option
@dataclass
class MinimalProbes(ProbeSchedule):
    """delta^l and the gradient norms: the cheapest view of vanishing gradients."""

    name: str = "minimal"
    names: list[str] = field(default_factory=lambda: ["minimal"])


@SCHEDULES.register_option
@dataclass
class DefaultProbes(ProbeSchedule):
    """delta^l, gradient norms, pre-activation and activation statistics."""

    name: str = "default"
    names: list[str] = field(default_factory=lambda: ["default"])


@SCHEDULES.register_option
@dataclass
class FullProbes(ProbeSchedule):
    """Everything registered in the ``full`` preset."""

    name: str = "full"
    names: list[str] = field(default_factory=lambda: ["full"])
