"""Per-layer probes: the backprop error delta^l, gradients, pre-activations and activations.

Reductions (each value is per replica r and layer l):

- ``delta_norm``: RMS over the batch of the per-sample L2 norm of delta_i^l = dJ_i/dz^l,
  sqrt(mean_i ||delta_i^l||^2); the per-sample delta is B times autograd's gradient of the
  batch-mean loss. Computed in float64. Where delta^l is exactly zero although a layer above
  it is not, the true value fell below the dtype's range: it is recorded as NaN with
  ``delta_underflow`` = 1 (0 elsewhere), never as a measured 0.
- ``delta_mean_abs``: mean over batch and units of |delta_ij^l|.
- ``weight_grad_norm``, ``bias_grad_norm``: Frobenius / L2 norm of dJ/dW^l, dJ/db^l of the
  batch-mean loss (the gradient the optimiser uses); ``weight_norm``: ||W^l||_F.
- ``preact_mean``, ``preact_std``: mean and (population) std of z^l over batch and units;
  ``act_mean``, ``act_std``: the same for the layer output a^l.
- ``dphi_mean``: mean over batch and units of phi'(u^l) at phi's input u^l (= z^l without
  normalisation); phi' comes from autograd through the model's own phi.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from depthlab.probes.base import PROBES, ProbeInput

F64 = torch.float64


def by_layer(
    tensors: list[torch.Tensor], reduce: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Per-layer reductions in a few batched ops: runs of consecutive layers of the same
    shape (all hidden layers) are stacked to (K, R, ...) and ``reduce`` maps that to (K, R);
    returns (R, L) in float64. Hundreds of small per-layer ops would cost more than the step.
    """
    blocks, start = [], 0
    while start < len(tensors):
        end = start + 1
        while end < len(tensors) and tensors[end].shape == tensors[start].shape:
            end += 1
        run = [t.detach() for t in tensors[start:end]]
        blocks.append(reduce(torch.stack(run) if len(run) > 1 else run[0].unsqueeze(0)))
        start = end
    return torch.cat(blocks).T.to(F64)


def _sum(t: torch.Tensor) -> torch.Tensor:
    """(K, R, B, n) -> (K, R): sum over batch and units, accumulated in float64."""
    return t.sum(dim=(2, 3), dtype=F64)


def _sumsq(t: torch.Tensor) -> torch.Tensor:
    """(K, R, ...) -> (K, R): sum of squares over the rest, accumulated in float64."""
    return torch.linalg.vector_norm(t.flatten(2), dim=2, dtype=F64).pow(2)


@PROBES.register("delta")
def delta(p: ProbeInput) -> dict[str, torch.Tensor]:
    """delta_norm, delta_mean_abs and delta_underflow of every layer (see module docstring)."""
    t = p.tensors
    b = t.batch_size
    # grads are delta_i / B: scale the reductions, not the tensors
    sq = by_layer(t.grads, _sumsq) * b  # sum_i ||B g_i||^2 / B = B sum_i ||g_i||^2
    mean_abs = by_layer(t.grads, lambda g: g.abs().sum(dim=(2, 3), dtype=F64) / g.shape[3])
    # exactly zero at l although some layer above is not: the true value underflowed
    nonzero = (sq > 0).int()
    above = nonzero.flip(1).cumsum(1).flip(1) - nonzero  # non-zero layers strictly above l
    underflow = (sq == 0) & (above > 0)
    nan = torch.full_like(sq, float("nan"))
    return {
        "delta_norm": torch.where(underflow, nan, sq.sqrt()),
        "delta_mean_abs": torch.where(underflow, nan, mean_abs),
        "delta_underflow": underflow.to(F64),
    }


@PROBES.register("grads")
def grads(p: ProbeInput) -> dict[str, torch.Tensor]:
    """weight_grad_norm, bias_grad_norm and weight_norm of every layer."""
    layers = [p.model.layer(l).linear for l in range(1, p.model.num_layers + 1)]
    return {
        "weight_grad_norm": by_layer([x.weight.grad for x in layers], _sumsq).sqrt(),
        "bias_grad_norm": by_layer([x.bias.grad for x in layers], _sumsq).sqrt(),
        "weight_norm": by_layer([x.weight for x in layers], _sumsq).sqrt(),
    }


def _mean_std(tensors: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and population std over batch and units, from the first two moments
    accumulated in float64."""
    n = torch.tensor([t[0].numel() for t in tensors], dtype=F64, device=tensors[0].device)
    mean = by_layer(tensors, _sum) / n
    second = by_layer(tensors, _sumsq) / n
    return mean, (second - mean.pow(2)).clamp_min(0).sqrt()


@PROBES.register("preacts")
def preacts(p: ProbeInput) -> dict[str, torch.Tensor]:
    """preact_mean, preact_std: statistics of z^l over batch and units."""
    mean, std = _mean_std(p.tensors.preacts)
    return {"preact_mean": mean, "preact_std": std}


@PROBES.register("acts")
def acts(p: ProbeInput) -> dict[str, torch.Tensor]:
    """act_mean, act_std: statistics of the layer output a^l over batch and units."""
    mean, std = _mean_std(p.tensors.outputs)
    return {"act_mean": mean, "act_std": std}


@PROBES.register("derivative")
def derivative(p: ProbeInput) -> dict[str, torch.Tensor]:
    """dphi_mean: mean of phi'(u^l), by autograd through each layer's own phi."""
    values = []
    for l, u in enumerate(p.tensors.normed, start=1):
        x = u.detach().requires_grad_(True)
        with torch.enable_grad():
            h = p.model.layer(l).activation(x)
            (dphi,) = torch.autograd.grad(h, x, torch.ones_like(h))
        values.append(dphi)
    n = torch.tensor([v[0].numel() for v in values], dtype=F64, device=values[0].device)
    return {"dphi_mean": by_layer(values, _sum) / n}
