"""The probe registry: each probe is one function from a captured pass to per-layer values.

A probe takes a :class:`ProbeInput` and returns ``{metric: values}`` with ``values`` a
float64 tensor of shape (R, L): one value per replica and layer l = 1..L, NaN where the
metric does not apply; or (R, 1) for a network-level value (logged at layer 0). Values
stay on the model's device; the caller reads them back in bulk, so probing costs no host
synchronisation per layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from depthlab.model import MLP
from depthlab.probes.capture import LayerTensors, Objective
from depthlab.registry import Registry


@dataclass(frozen=True)
class ProbeInput:
    """What a probe sees: the model (after backward, before the update), one captured pass,
    and the objective of that pass: ``objective(net)`` gives the per-replica losses of the
    same batch through ``net`` (the model, or a copy of it in another dtype), for probes that
    need more passes (curvature; delta where the run's dtype underflows)."""

    model: MLP
    tensors: LayerTensors
    objective: Objective | None = None


ProbeFn = Callable[[ProbeInput], dict[str, torch.Tensor]]
PROBES: Registry[ProbeFn] = Registry("probe")

# "updates" (update_ratio) is measured by the training loop around the optimiser step.
UPDATES = "updates"
# Probes that cost many passes; a schedule runs them at fewer steps (``costly_every``).
COSTLY = ("jacobian", "curvature")
PRESETS: dict[str, tuple[str, ...]] = {
    "minimal": ("delta", "grads"),
    "default": ("delta", "grads", "preacts", "acts"),
    "full": (
        "delta",
        "grads",
        "preacts",
        "acts",
        "quantiles",
        "units",
        "residual",
        UPDATES,
        "histogram",
        "jacobian",
    ),
}


@PROBES.register(UPDATES)
def _updates(p: ProbeInput) -> dict[str, torch.Tensor]:
    """update_ratio needs the step itself: the training loop measures it (see layer_stats)."""
    return {}


def probe_names(spec: str | list[str] | tuple[str, ...]) -> list[str]:
    """A preset name or a list of probe and preset names, expanded and deduplicated."""
    names = [spec] if isinstance(spec, str) else list(spec)
    expanded: list[str] = []
    for name in names:
        for probe in PRESETS.get(name, (name,)):
            PROBES[probe]  # unknown names raise a ConfigError listing the probes
            if probe not in expanded:
                expanded.append(probe)
    return expanded
