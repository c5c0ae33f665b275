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
    """What a probe sees: the model (after backward, before the update; after the update for
    a probe ``around_update``), one captured pass, and the objective of that pass:
    ``objective(net)`` gives the per-replica losses of the same batch through ``net`` (the
    model, or a copy of it in another dtype), for probes that need more passes (curvature;
    delta where the run's dtype underflows). ``before``: each layer's weight W^l just
    before the update, for probes around it."""

    model: MLP
    tensors: LayerTensors
    objective: Objective | None = None
    before: list[torch.Tensor] | None = None


ProbeFn = Callable[[ProbeInput], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class Probe:
    """A registered probe: ``measure`` maps a probed pass to {metric: (R, L) values}.

    ``costly``: it costs many passes, so a schedule runs it only at its costly steps
    (``costly_every``). ``around_update``: it measures the optimiser step itself, so the
    loop keeps the weights before the update and calls it after (``ProbeInput.before``); a
    pass without an update (``measure``, a final probe) does not run it. ``presets``: the
    presets (minimal, default, full) that include it."""

    measure: ProbeFn
    costly: bool = False
    around_update: bool = False
    presets: tuple[str, ...] = ()


PROBES: Registry[Probe] = Registry("probe")
PRESET_NAMES = ("minimal", "default", "full")


def register_probe(
    name: str,
    presets: tuple[str, ...] = ("full",),
    costly: bool = False,
    around_update: bool = False,
) -> Callable[[ProbeFn], ProbeFn]:
    """Decorator: register ``fn`` as the probe ``name`` (see :class:`Probe`), in ``presets``."""

    def add(fn: ProbeFn) -> ProbeFn:
        unknown = set(presets) - set(PRESET_NAMES)
        if unknown:
            raise ValueError(f"probe {name!r}: no preset {sorted(unknown)}")
        PROBES.register(name)(Probe(fn, costly, around_update, presets))
        return fn

    return add


def presets() -> dict[str, tuple[str, ...]]:
    """{preset: its probes in registration order}, read off the registered probes."""
    return {
        preset: tuple(name for name, probe in PROBES.items() if preset in probe.presets)
        for preset in PRESET_NAMES
    }


def probe_names(spec: str | list[str] | tuple[str, ...]) -> list[str]:
    """A preset name or a list of probe and preset names, expanded and deduplicated."""
    names = [spec] if isinstance(spec, str) else list(spec)
    expanded: list[str] = []
    for name in names:
        for probe in presets().get(name, (name,)):
            PROBES[probe]  # unknown names raise a ConfigError listing the probes
            if probe not in expanded:
                expanded.append(probe)
    return expanded
