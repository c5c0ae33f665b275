"""When and what to probe: the ``probes`` config group.

Options ``minimal``, ``default``, ``full`` and ``none`` name the probes they run (presets of
:data:`depthlab.probes.base.PRESETS`, or an explicit list: ``probes.names=[delta,acts]``)
and share one schedule: step 0 (before any update) and the last step always, every
``every`` steps (0: no others), and ``log_points`` log-spaced steps in 1..steps. The costly
probes (jacobian, curvature: seconds a step at depth 100) run only at step 0, the last
step and every ``costly_every`` steps of those.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from depthlab.errors import ConfigError
from depthlab.probes.base import PRESETS, PROBES
from depthlab.registry import Registry


@dataclass
class ProbeSchedule:
    """Base of the ``probes`` options."""

    name: str = "probes"
    names: list[str] = field(default_factory=list)
    every: int = 50  # probed steps cost several plain steps at depth 100 (see README)
    log_points: int = 0
    costly_every: int = 0  # jacobian and curvature: step 0, the last step, and every n (0: no)

    def steps(self, total: int) -> set[int]:
        """The steps in 0..total at which the probes run (empty without probes)."""
        if not self.names:
            return set()
        chosen = {0, total}
        if self.every > 0:
            chosen.update(range(0, total + 1, self.every))
        if self.log_points > 0 and total > 0:
            chosen.update(
                int(s) for s in np.unique(np.geomspace(1, total, self.log_points).round())
            )
        return chosen

    def costly_steps(self, total: int) -> set[int]:
        """The steps at which the costly probes (jacobian, curvature) run, if selected."""
        chosen = {0, total}
        if self.costly_every > 0:
            chosen.update(range(0, total + 1, self.costly_every))
        return chosen & self.steps(total)

    def check(self, key: str = "probes") -> None:
        for name in self.names:
            if name not in PROBES and name not in PRESETS:
                raise ConfigError(
                    f"{key}.names", name, [*PRESETS, *PROBES.names()], "unknown probe"
                )
        for field_name in ("every", "log_points", "costly_every"):
            value = getattr(self, field_name)
            if not (isinstance(value, int) and 0 <= value < 2**62):
                raise ConfigError(f"{key}.{field_name}", value, "an integer >= 0")


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
