"""What ``depthlab.watch`` measures on a captured pass: the MLP probes, on any layer shapes.

Every layer's tensors are read per sample: z^l, u^l, a^l and dJ/dz^l of shape (B, ...)
are flattened to (1, B, m^l) (one replica; m^l the values one sample has at that layer,
e.g. channels x positions for a convolution, tokens x features for a sequence), and the
reductions of :mod:`depthlab.probes.layer_stats` apply unchanged, with the same names and
meanings: ``delta_norm`` = sqrt(mean_i ||delta_i^l||^2) with delta_i^l = B dJ/dz_i^l of the
batch-mean loss, ``preact_*`` over z^l, ``act_*`` over a^l, and so on. A *unit* is one of
the m^l values of a sample. Where a layer has no activation module after it, a^l = u^l and
phi is the identity (phi' = 1, no saturation rule).

Registered in :data:`WATCH_PROBES` under the names of the MLP probes they mirror, so a
preset (``minimal``, ``default``, ``full``) means the same probes, less those that need
depthlab's MLP (jacobian, curvature, residual).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from depthlab.errors import ConfigError
from depthlab.probes.base import PRESET_NAMES, PROBES, ProbeInput, presets
from depthlab.probes.capture import LayerTensors
from depthlab.probes.layer_stats import (
    SATURATION,
    acts,
    batch_sum,
    by_layer,
    delta_sums,
    histogram,
    preacts,
    quantiles,
    sum_squares,
)
from depthlab.registry import Registry
from depthlab.watch_capture import LayerPass

F64 = torch.float64


@dataclass(frozen=True)
class WatchInput:
    """One captured pass of the watched layers (in order), per sample (see module docstring).

    ``reached``: whether any gradient reached z^l (``LayerPass.in_graph``: whether one could);
    ``weight_grad_norm``, ``bias_grad_norm``,
    ``weight_norm``: per layer, None where the layer has no such parameter (or no gradient
    reached it); ``weights_after``: each W^l after the update (for update ratios)."""

    tensors: LayerTensors
    layers: list[LayerPass]
    reached: list[bool]
    weight_grad_norm: list[torch.Tensor | None]
    bias_grad_norm: list[torch.Tensor | None]
    weights_after: list[torch.Tensor | None] | None = None
    grad_scale: float = 1.0  # the loss scale the backward pass ran with (divided out)


WatchProbe = Callable[[WatchInput], dict[str, torch.Tensor]]
WATCH_PROBES: Registry[WatchProbe] = Registry("watch probe")


def watch_probe_names(spec: str | list[str] | tuple[str, ...]) -> list[str]:
    """A preset or a list of probe and preset names, expanded to the probes watch runs:
    a preset keeps those watch has; an explicit probe it lacks is a ConfigError."""
    names = [spec] if isinstance(spec, str) else list(spec)
    expanded: list[str] = []
    for name in names:
        if name in PRESET_NAMES:
            chosen = [p for p in presets()[name] if p in WATCH_PROBES]
        elif name in WATCH_PROBES:
            chosen = [name]
        else:
            reason = "needs depthlab's MLP" if name in PROBES else "unknown probe"
            raise ConfigError("probes", name, [*PRESET_NAMES, *WATCH_PROBES.names()], reason)
        expanded += [p for p in chosen if p not in expanded]
    return expanded


def per_sample(
    layers: list[LayerPass], grads: list[torch.Tensor | None], grad_scale: float = 1.0
) -> LayerTensors:
    """The captured tensors as (1, B, m^l) per-sample views; a^l = phi(u^l) recomputed where
    the activation is a function inside a block; the gradients divided by ``grad_scale``
    (the loss scale of mixed precision), a zero gradient where none reached z^l."""

    def flat(t: torch.Tensor, kind_samples: Callable) -> torch.Tensor:
        s = kind_samples(t.detach())
        return s.reshape(1, s.shape[0], -1)

    t = LayerTensors()
    for record, grad in zip(layers, grads, strict=True):
        samples = record.kind.samples
        z = flat(record.z, samples)
        u = flat(record.u, samples) if record.u is not None else z
        if record.a is not None:
            a = flat(record.a, samples)
        elif record.phi is not None:  # a function inside depthlab's layer: recompute it
            a = record.phi(u)
        else:
            a = u
        t.preacts.append(z)
        t.normed.append(u)
        t.outputs.append(a)
        if grad is None:
            t.grads.append(torch.zeros_like(z))
        else:
            g = flat(grad, samples)  # unscaled in float64: in float16 it would underflow
            t.grads.append(g.to(F64) / grad_scale if grad_scale != 1 else g)
    return t


def slopes(p: WatchInput) -> list[torch.Tensor]:
    """phi'(u^l) per layer as (1, B, m^l), by autograd through the layer's own activation
    on u^l in its own shape (a per-channel PReLU needs it); NaN where no activation module
    follows the layer (none, or one written as a function, F.relu: watch cannot tell). The
    random state is restored after: a random activation (nn.RReLU) draws its slopes anew,
    and the user's next draws are those they would have been."""
    found = []
    devices = [x.device.index for x in p.tensors.normed[:1] if x.device.type == "cuda"]
    with torch.random.fork_rng(devices=devices):
        for record, u in zip(p.layers, p.tensors.normed, strict=True):
            if record.phi is None:
                found.append(torch.full_like(u, float("nan")))
                continue
            raw = record.u if record.u is not None else record.z
            x = record.kind.samples(raw.detach()).requires_grad_(True)
            with torch.enable_grad():  # phi on a copy: an in-place phi must not touch x
                h = record.phi(x.clone())
                (slope,) = torch.autograd.grad(h, x, torch.ones_like(h))
            found.append(slope.reshape(u.shape))
    return found


@WATCH_PROBES.register("delta")
def delta(p: WatchInput) -> dict[str, torch.Tensor]:
    """delta_norm, delta_mean_abs, delta_underflow, delta_nonfinite (see the module
    docstring); NaN where z^l needs no gradient (a frozen layer, or one run without
    gradients: autograd never computes delta^l there). A delta^l that is exactly 0 is an
    underflow (NaN, flagged) or exact (see :func:`underflowed`)."""
    norm, mean_abs = delta_sums(p.tensors)
    underflow = torch.zeros_like(norm, dtype=torch.bool)
    if bool((norm == 0).any()):  # the one host sync, where a delta could have underflowed
        underflow = underflowed(p, norm)
    absent = absent_layers(p, norm.device)
    nan = torch.full_like(norm, float("nan"))
    lost = underflow | absent
    return {
        "delta_norm": torch.where(lost, nan, norm),
        "delta_mean_abs": torch.where(lost, nan, mean_abs),
        "delta_underflow": (underflow & ~absent).to(F64),
        "delta_nonfinite": (~torch.isfinite(norm) & ~absent).to(F64),
    }


def absent_layers(p: WatchInput, device: torch.device) -> torch.Tensor:
    """(1, L): True where z^l is outside autograd's graph (no delta^l is computed)."""
    return torch.tensor([[not record.in_graph for record in p.layers]], device=device)


def underflowed(p: WatchInput, norm: torch.Tensor) -> torch.Tensor:
    """(1, L): True where delta^l is 0 only because it fell below the dtype's range. A zero
    is exact when no gradient reached z^l although it could (an unused output), when
    phi'(u^l) = 0 on every unit and sample (a layer of dead ReLUs), when layer l+1 reads a^l
    itself and its delta is an exact zero, at the last layer (the loss's own), and when no
    layer above it came near the bottom of the dtype delta^l was computed in (every nonzero
    delta^k, k > l, above tiny / eps, 1e-31 in float32, 1e-292 in float64, divided by the
    loss scale): a delta underflows after shrinking layer by layer through the dtype's
    lowest decades, never from a normal size at once."""
    zero = (norm == 0)[0].tolist()
    values = norm[0].tolist()
    dead = [bool((d == 0).all()) for d in slopes(p)]
    exact, smallest = [False] * len(zero), float("inf")
    for l in range(len(zero) - 1, -1, -1):
        info = torch.finfo(p.layers[l].z.dtype)  # the dtype delta^l was computed in
        floor = info.tiny / info.eps / p.grad_scale  # in the units of the recorded values
        chained = l + 1 < len(zero) and p.layers[l + 1].fed_by_previous and exact[l + 1]
        stopped = not p.reached[l] or dead[l] or chained or l == len(zero) - 1
        exact[l] = zero[l] and (stopped or smallest > floor)
        if not zero[l]:
            smallest = min(smallest, values[l])
    lost = [z and not e for z, e in zip(zero, exact, strict=True)]
    return torch.tensor([lost], device=norm.device)


def _stack(values: list[torch.Tensor | None], device: torch.device) -> torch.Tensor:
    """(1, L) float64 of per-layer scalars, NaN where None."""
    nan = torch.tensor(float("nan"), dtype=F64, device=device)
    return torch.stack([nan if v is None else v.to(F64) for v in values]).unsqueeze(0)


@WATCH_PROBES.register("grads")
def grads(p: WatchInput) -> dict[str, torch.Tensor]:
    """weight_grad_norm, bias_grad_norm: ||dJ/dW^l||_F, ||dJ/db^l|| of the batch-mean loss
    as the backward pass left them; weight_norm: ||W^l||_F as the pass used it. NaN where
    the layer module has no such parameter."""
    device = p.tensors.preacts[0].device
    return {
        "weight_grad_norm": _stack(p.weight_grad_norm, device),
        "bias_grad_norm": _stack(p.bias_grad_norm, device),
        "weight_norm": _stack([r.weight_norm for r in p.layers], device),
    }


for _name, _fn in (("preacts", preacts), ("acts", acts), ("quantiles", quantiles)):
    WATCH_PROBES.register(_name)(lambda p, fn=_fn: fn(ProbeInput(None, p.tensors)))


@WATCH_PROBES.register("histogram")
def delta_histogram(p: WatchInput) -> dict[str, torch.Tensor]:
    """delta_hist_*: layer_stats.histogram's bins of |delta_i^l|; NaN where z^l is outside
    autograd's graph."""
    found = histogram(ProbeInput(None, p.tensors))
    absent = absent_layers(p, p.tensors.grads[0].device)
    return {name: row.masked_fill(absent, float("nan")) for name, row in found.items()}


@WATCH_PROBES.register("units")
def units(p: WatchInput) -> dict[str, torch.Tensor]:
    """dphi_mean: mean of phi'(u^l) over samples and units; saturation: the fraction of
    (sample, unit) pairs where |phi(u) - center| > half_width (rule by activation name in
    layer_stats.SATURATION; NaN for other activations); dead_frac: the fraction of units
    with phi'(u) = 0 for every sample of the batch. All three are NaN where no activation
    module follows the layer (see :func:`slopes`)."""
    derivatives = slopes(p)
    names = [r.phi_name for r in p.layers]
    saturated = []
    for name, a in zip(names, p.tensors.outputs, strict=True):
        center, half_width = SATURATION.get(name or "", (0.0, float("inf")))
        saturated.append((a - center).abs() > half_width)
    device = derivatives[0].device
    n = torch.tensor([d[0].numel() for d in derivatives], dtype=F64, device=device)
    no_rule = torch.tensor([name not in SATURATION for name in names], device=device)
    (saturation,) = by_layer(saturated, batch_sum)
    total, dead = by_layer(derivatives, batch_sum, lambda d: (d == 0).all(dim=2).to(F64).mean(2))
    unknown = torch.tensor([[r.phi is None for r in p.layers]], device=device)
    dead = dead.masked_fill(unknown, float("nan"))
    return {
        "dphi_mean": total / n,
        "saturation": (saturation / n).masked_fill(no_rule, float("nan")),
        "dead_frac": dead,
    }


@WATCH_PROBES.register("updates")
def update_ratio(p: WatchInput) -> dict[str, torch.Tensor]:
    """update_ratio: ||W^l_after - W^l_before||_F / ||W^l_before||_F of the optimiser step
    after the pass (NaN for a layer without a weight)."""
    ratios: list[torch.Tensor | None] = []
    for record, after in zip(p.layers, p.weights_after or [], strict=True):
        before = record.weight_before
        if before is None or after is None:
            ratios.append(None)
            continue
        change = sum_squares((after.detach() - before).reshape(1, 1, -1))
        ratios.append((change / sum_squares(before.reshape(1, 1, -1))).sqrt()[0, 0])
    return {"update_ratio": _stack(ratios, p.tensors.preacts[0].device)}


AROUND_UPDATE = ("updates",)
