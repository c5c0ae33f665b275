"""Per-layer probes: the backprop error delta^l, gradients, pre-activations and activations.

Reductions (each value is per replica r and layer l):

- ``delta_norm``: RMS over the batch of the per-sample L2 norm of delta_i^l = dJ_i/dz^l,
  sqrt(mean_i ||delta_i^l||^2); the per-sample delta is B times autograd's gradient of the
  batch-mean loss. Accumulated in float64. Where delta^l is exactly zero although it could
  not be (see :func:`underflowed`), the true value fell below the run's dtype: training saw
  0 there. Such a pass is then repeated on a float64 copy of the network (same weights, same
  batch) and, for each replica that underflowed, ``delta_norm`` of every layer of that
  step is the float64 value, the exact one to float64's rounding; ``delta_underflow`` = 1
  marks the layers where training's own delta^l was 0 (0 elsewhere). Only where float64
  underflows too (below 1e-308) is the value NaN, never a measured 0.
- ``delta_mean_abs``: mean over batch and units of |delta_ij^l|, from the same pass as
  ``delta_norm``.
- ``delta_nonfinite``, ``preact_nonfinite``: 1 where delta^l or z^l holds a NaN or inf, else
  0 (read off the reductions above, at no extra cost); a diverging run records the first
  probed step and layer where a pass breaks.
- ``weight_grad_norm``, ``bias_grad_norm``: Frobenius / L2 norm of dJ/dW^l, dJ/db^l of the
  batch-mean loss (the gradient the optimiser uses); ``weight_norm``: ||W^l||_F.
- ``preact_mean``, ``preact_std``: mean and (population) std of z^l over batch and units;
  ``act_mean``, ``act_std``: the same for the layer output a^l; ``act_q02`` .. ``act_q98``
  its quantiles (see :func:`quantiles`).
- ``dphi_mean``, ``saturation``, ``dead_frac``: see :func:`units`; ``branch_ratio``: see
  :func:`residual`; ``update_ratio``: see :func:`update_ratio` (needs a training step).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from depthlab.probes.base import ProbeInput, register_probe
from depthlab.probes.capture import LayerTensors, pass_in_dtype

F64 = torch.float64


def by_layer(
    tensors: list[torch.Tensor], *reduces: Callable[[torch.Tensor], torch.Tensor]
) -> list[torch.Tensor]:
    """Per-layer reductions in a few batched ops: runs of consecutive layers of the same
    shape (all hidden layers) are stacked once to (K, R, ...), and each ``reduce`` maps a
    block to (K, R); returns one (R, L) float64 tensor per reduce. Hundreds of small
    per-layer ops would cost more than the step itself.
    """
    blocks = list(layer_blocks(tensors))
    return [torch.cat([reduce(block) for block in blocks]).T.to(F64) for reduce in reduces]


def layer_blocks(tensors: list[torch.Tensor]) -> Iterator[torch.Tensor]:
    """Consecutive layers of one shape, stacked: (K, R, ...) blocks in layer order."""
    start = 0
    while start < len(tensors):
        end = start + 1
        while end < len(tensors) and tensors[end].shape == tensors[start].shape:
            end += 1
        run = tensors[start:end]
        yield (torch.stack(run) if len(run) > 1 else run[0].unsqueeze(0)).detach()
        start = end


def batch_sum(t: torch.Tensor) -> torch.Tensor:
    """(K, R, B, n) -> (K, R): sum over batch and units, accumulated in float64."""
    return t.sum(dim=(2, 3), dtype=F64)


def _abs_sum(t: torch.Tensor) -> torch.Tensor:
    """(K, R, ...) -> (K, R): sum of absolute values over the rest, in float64."""
    return t.abs().flatten(2).sum(dim=2, dtype=F64)


def sum_squares(t: torch.Tensor) -> torch.Tensor:
    """(K, R, ...) -> (K, R): sum of squares over the rest, accumulated in float64."""
    return torch.linalg.vector_norm(t.flatten(2), dim=2, dtype=F64).pow(2)


def underflowed(p: ProbeInput, norm: torch.Tensor) -> torch.Tensor:
    """(R, L) True where delta^l is exactly zero only because its true value fell below the
    dtype's range. A zero can also be exact. delta^l = dJ/da^l (.) alpha phi'(u^l) (alpha = 1
    without a skip) vanishes when phi' is 0 on every unit and sample (a layer of ReLUs that
    are all off) or alpha = 0 (a zeroed residual branch). dJ/da^l = (W^{l+1})^T delta^{l+1},
    plus dJ/da^{l+1} through the skip when layer l+1 has one, vanishes when delta^{l+1} is an
    exact zero and layer l+1 has no skip. Going down from the output layer, a zero is exact if
    one of those holds, and an underflow otherwise."""
    zero = norm == 0
    stopped = all_slopes_zero(p) | zero_branches(p)  # (R, L)
    exact = torch.zeros_like(zero)
    exact[:, -1] = zero[:, -1]
    for l in range(norm.shape[1] - 2, -1, -1):
        through = exact[:, l + 1] & (not p.model.layer(l + 2).skip)
        exact[:, l] = zero[:, l] & (stopped[:, l] | through)
    return zero & ~exact


def zero_branches(p: ProbeInput) -> torch.Tensor:
    """(R, L): True where layer l has a skip whose branch scale alpha is 0 for that replica."""
    layers = [p.model.layer(l) for l in range(1, p.model.num_layers + 1)]
    none = torch.zeros(p.model.replicas, dtype=torch.bool, device=layers[0].linear.weight.device)
    return torch.stack([layer.alpha.view(-1) == 0 if layer.skip else none for layer in layers], 1)


def all_slopes_zero(p: ProbeInput) -> torch.Tensor:
    """(R, L): phi'(u^l) = 0 for every unit and sample (by autograd through each phi)."""
    flags = [(slope == 0).flatten(1).all(dim=1) for _, slope in activations_and_slopes(p)]
    return torch.stack(flags, dim=1)


def activations_and_slopes(p: ProbeInput) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(phi(u^l), phi'(u^l)) for l = 1..L, phi' by autograd through each layer's own phi."""
    pairs = []
    for l, u in enumerate(p.tensors.normed, start=1):
        x = u.detach().requires_grad_(True)
        with torch.enable_grad():
            h = p.model.layer(l).activation(x)
            (slope,) = torch.autograd.grad(h, x, torch.ones_like(h))
        pairs.append((h.detach(), slope))
    return pairs


@register_probe("delta", presets=("minimal", "default", "full"))
def delta(p: ProbeInput) -> dict[str, torch.Tensor]:
    """delta_norm, delta_mean_abs and delta_underflow of every layer (see module docstring)."""
    norm, mean_abs = delta_sums(p.tensors)
    zeros = bool((norm[:, :-1] == 0).any())  # the one host sync of a probed step without any
    # where training saw an underflowed delta
    underflow = underflowed(p, norm) if zeros else torch.zeros_like(norm, dtype=torch.bool)
    values, lost = norm, underflow
    narrow = p.tensors.grads[-1].dtype != F64
    if zeros and narrow and p.objective is not None and bool(underflow.any()):
        twin, tensors = pass_in_dtype(p.model, p.objective, F64)
        norm64, mean_abs64 = delta_sums(tensors)
        redone = underflow.any(dim=1, keepdim=True)  # replicas that underflowed, each as alone
        values = torch.where(redone, norm64, norm)
        mean_abs = torch.where(redone, mean_abs64, mean_abs)
        lost = torch.where(redone, underflowed(ProbeInput(twin, tensors), norm64), underflow)
    nan = torch.full_like(norm, float("nan"))
    return {
        "delta_norm": torch.where(lost, nan, values),
        "delta_mean_abs": torch.where(lost, nan, mean_abs),
        "delta_underflow": underflow.to(F64),
        "delta_nonfinite": (~torch.isfinite(norm)).to(F64),
    }


def delta_sums(t: LayerTensors) -> tuple[torch.Tensor, torch.Tensor]:
    """(R, L) float64: sqrt(mean_i ||delta_i^l||^2) and mean_ij |delta_ij^l| of a captured
    pass. The captured grads g are delta_i / B, so the first is sqrt(B) ||g||_F and the
    second sum_ij |g_ij| / n; the reductions are scaled, not the tensors."""
    norm, abs_sum = by_layer(t.grads, _scaled_norm, _abs_sum)
    units = torch.tensor([g[0, 0].numel() for g in t.grads], dtype=F64, device=norm.device)
    return norm * t.batch_size**0.5, abs_sum / units


def _scaled_norm(t: torch.Tensor) -> torch.Tensor:
    """(K, R, ...) -> (K, R): the L2 norm over the rest in float64, as m ||t / m|| with m the
    largest |t|, so that squares of values near float64's bottom (1e-300) do not underflow.
    Narrower dtypes need no scale: their squares, taken in float64, stay in range."""
    flat = t.flatten(2)
    if flat.dtype != F64:
        return torch.linalg.vector_norm(flat, dim=2, dtype=F64)
    largest = flat.abs().amax(dim=2, keepdim=True)
    scale = torch.where(largest > 0, largest, torch.ones_like(largest))
    return torch.linalg.vector_norm(flat / scale, dim=2) * scale.squeeze(2)


@register_probe("grads", presets=("minimal", "default", "full"))
def grads(p: ProbeInput) -> dict[str, torch.Tensor]:
    """weight_grad_norm, bias_grad_norm and weight_norm of every layer."""
    layers = [p.model.layer(l).linear for l in range(1, p.model.num_layers + 1)]
    return {
        "weight_grad_norm": by_layer([x.weight.grad for x in layers], sum_squares)[0].sqrt(),
        "bias_grad_norm": by_layer([x.bias.grad for x in layers], sum_squares)[0].sqrt(),
        "weight_norm": by_layer([x.weight for x in layers], sum_squares)[0].sqrt(),
    }


def mean_std(tensors: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and population std over batch and units, from the first two moments
    accumulated in float64."""
    n = torch.tensor([t[0].numel() for t in tensors], dtype=F64, device=tensors[0].device)
    total, squares = by_layer(tensors, batch_sum, sum_squares)
    mean, second = total / n, squares / n
    return mean, (second - mean.pow(2)).clamp_min(0).sqrt()


@register_probe("preacts", presets=("default", "full"))
def preacts(p: ProbeInput) -> dict[str, torch.Tensor]:
    """preact_mean, preact_std: statistics of z^l over batch and units."""
    mean, std = mean_std(p.tensors.preacts)
    return {
        "preact_mean": mean,
        "preact_std": std,
        "preact_nonfinite": (~torch.isfinite(mean)).to(F64),
    }


@register_probe("acts", presets=("default", "full"))
def acts(p: ProbeInput) -> dict[str, torch.Tensor]:
    """act_mean, act_std: statistics of the layer output a^l over batch and units."""
    mean, std = mean_std(p.tensors.outputs)
    return {"act_mean": mean, "act_std": std}


# Levels of the quantiles probe: the median, +-1 and +-2 standard deviations of a Gaussian
# (Glorot & Bengio's Fig. 3 draws the 98th percentile and the standard deviation).
QUANTILES = {"act_q02": 0.02, "act_q16": 0.16, "act_q50": 0.5, "act_q84": 0.84, "act_q98": 0.98}


@register_probe("quantiles")
def quantiles(p: ProbeInput) -> dict[str, torch.Tensor]:
    """act_q02 .. act_q98: quantiles of the layer output a^l over batch and units (linear
    interpolation between order statistics, as numpy.quantile): the whole distribution at
    five levels, where a saturated fraction is one threshold count."""
    levels = torch.tensor(list(QUANTILES.values()), dtype=F64, device=p.tensors.outputs[0].device)

    def of_block(a: torch.Tensor) -> torch.Tensor:  # (K, R, B, n) -> (levels, K, R)
        values = a.to(F64).flatten(2).sort(dim=2).values
        position = levels * (values.shape[2] - 1)
        low, high = position.floor().long(), position.ceil().long()
        lower, upper = values[:, :, low], values[:, :, high]  # (K, R, levels)
        return (lower + (position - low) * (upper - lower)).permute(2, 0, 1)

    blocks = torch.cat([of_block(block) for block in layer_blocks(p.tensors.outputs)], dim=1)
    return {name: blocks[i].T for i, name in enumerate(QUANTILES)}  # (R, L) each


# |delta| histograms: fixed log10 bins of half a decade from 1e-60 to 1e+10 (the same for
# every run, so runs compare), plus exact zeros; values are fractions of (sample, unit) pairs.
HIST_EDGES = tuple(e / 2 for e in range(-120, 21))


def hist_metric(lower: float) -> str:
    """The metric name of the bin [10^lower, 10^(lower + 0.5)), e.g. delta_hist_m12_5."""
    sign = "m" if lower < 0 else "p"
    return f"delta_hist_{sign}{abs(lower):.1f}".replace(".", "_")


@register_probe("histogram")
def histogram(p: ProbeInput) -> dict[str, torch.Tensor]:
    """delta_hist_*: the distribution of |delta_ij^l| (per-sample deltas) over log10 bins
    (HIST_EDGES; values below 1e-60 count in the lowest bin, above 1e+10 in the highest),
    and delta_hist_zero for exact zeros (underflow, or phi' = 0)."""
    b = p.tensors.batch_size
    edges = torch.tensor(HIST_EDGES[1:-1], dtype=F64, device=p.tensors.grads[0].device)
    bins = len(HIST_EDGES) - 1

    def counts(g: torch.Tensor) -> torch.Tensor:  # (K, R, B, n) -> (K, R, bins + 1)
        k, r = g.shape[:2]
        magnitude = (g.to(F64) * b).abs().flatten(2)
        index = torch.bucketize(magnitude.clamp_min(1e-300).log10(), edges, right=True)
        index = torch.where(magnitude == 0, bins, index)  # the zero bin
        offset = torch.arange(k * r, device=g.device).view(k, r, 1) * (bins + 1)
        total = torch.bincount((index + offset).flatten(), minlength=k * r * (bins + 1))
        return total.view(k, r, bins + 1).to(F64) / magnitude.shape[2]

    fractions = torch.cat([counts(block) for block in layer_blocks(p.tensors.grads)])
    names = [hist_metric(lower) for lower in HIST_EDGES[:-1]] + ["delta_hist_zero"]
    return {name: fractions[:, :, i].T for i, name in enumerate(names)}  # (R, L) each


# A unit saturates where its output is within 3% of the ends of phi's range (Glorot &
# Bengio 2010 watched sigmoid units pinned near 0 or 1): |phi(u) - center| > half_width.
SATURATION = {"sigmoid": (0.5, 0.47), "tanh": (0.0, 0.97), "erf": (0.0, 0.97)}


@register_probe("units")
def units(p: ProbeInput) -> dict[str, torch.Tensor]:
    """dphi_mean, saturation and dead_frac of every layer.

    - ``dphi_mean``: mean over batch and units of phi'(u^l) at phi's input u^l (z^l without
      normalisation), by autograd through the layer's own phi;
    - ``saturation``: fraction of (sample, unit) pairs in the saturated region (rule in
      SATURATION; NaN for activations without one, e.g. ReLU);
    - ``dead_frac``: fraction of units with phi'(u) = 0 for every sample of the batch (ReLU
      units that never fire; 0 for activations whose slope never vanishes).
    """
    derivatives, saturated = [], []
    names = [p.model.activation] * (p.model.num_layers - 1) + [p.model.output_activation]
    for name, (h, dphi) in zip(names, activations_and_slopes(p), strict=True):
        derivatives.append(dphi)
        center, half_width = SATURATION.get(name, (0.0, float("inf")))
        saturated.append((h - center).abs() > half_width)
    n = torch.tensor([d[0].numel() for d in derivatives], dtype=F64, device=derivatives[0].device)
    no_rule = torch.tensor([name not in SATURATION for name in names], device=derivatives[0].device)
    (saturation,) = by_layer(saturated, batch_sum)
    saturation = saturation / n
    total, dead = by_layer(derivatives, batch_sum, lambda d: (d == 0).all(dim=2).to(F64).mean(2))
    return {
        "dphi_mean": total / n,
        "saturation": saturation.masked_fill(no_rule, float("nan")),
        "dead_frac": dead,
    }


@register_probe("residual")
def residual(p: ProbeInput) -> dict[str, torch.Tensor]:
    """branch_ratio: ||alpha h^l|| / ||a^{l-1}|| over the batch (Frobenius norms) for layers
    with a skip, a^l = a^{l-1} + alpha h^l (alpha h^l read as a^l - a^{l-1}); NaN without."""
    t = p.tensors
    branches = [b if b is not None else a for b, a in zip(t.branches, t.outputs, strict=True)]
    ratio = (by_layer(branches, sum_squares)[0] / by_layer(t.inputs, sum_squares)[0]).sqrt()
    has_skip = torch.tensor([b is not None for b in t.branches], device=ratio.device)
    return {"branch_ratio": ratio.masked_fill(~has_skip[None, :], float("nan"))}


@register_probe("updates", around_update=True)
def update_ratio(p: ProbeInput) -> dict[str, torch.Tensor]:
    """update_ratio: ||W^l_after - W^l_before||_F / ||W^l_before||_F of one optimiser step,
    from the weights before it (``p.before``) and the model after it."""
    model, before = p.model, p.before
    after = [model.layer(l).linear.weight.detach() for l in range(1, model.num_layers + 1)]
    (change,) = by_layer([a - b for a, b in zip(after, before, strict=True)], sum_squares)
    (size,) = by_layer(before, sum_squares)
    return {"update_ratio": (change / size).sqrt()}
