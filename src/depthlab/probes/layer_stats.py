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

import torch

from depthlab.probes.base import PROBES, ProbeInput, stack_layers

F64 = torch.float64


def _flat(t: torch.Tensor) -> torch.Tensor:
    """(R, B, n) -> (R, B n) in float64."""
    return t.detach().reshape(t.shape[0], -1).to(F64)


@PROBES.register("delta")
def delta(p: ProbeInput) -> dict[str, torch.Tensor]:
    """delta_norm, delta_mean_abs and delta_underflow of every layer (see module docstring)."""
    t = p.tensors
    batch = t.batch_size
    sq_norms, mean_abs = [], []
    for grad in t.grads:  # (R, B, n) = delta_i / B; norms accumulate in float64
        per_sample = torch.linalg.vector_norm(grad.detach(), dim=-1, dtype=F64) * batch
        sq_norms.append(per_sample.pow(2).mean(-1))
        mean_abs.append(grad.detach().abs().sum(dim=(1, 2), dtype=F64) / grad[0].numel() * batch)
    sq = stack_layers(sq_norms)  # (R, L)
    # exactly zero at l although some layer above is not: the true value underflowed
    nonzero = (sq > 0).int()
    above = nonzero.flip(1).cumsum(1).flip(1) - nonzero  # non-zero layers strictly above l
    underflow = (sq == 0) & (above > 0)
    nan = torch.full_like(sq, float("nan"))
    return {
        "delta_norm": torch.where(underflow, nan, sq.sqrt()),
        "delta_mean_abs": torch.where(underflow, nan, stack_layers(mean_abs)),
        "delta_underflow": underflow.to(F64),
    }


@PROBES.register("grads")
def grads(p: ProbeInput) -> dict[str, torch.Tensor]:
    """weight_grad_norm, bias_grad_norm and weight_norm of every layer."""
    layers = [p.model.layer(l).linear for l in range(1, p.model.num_layers + 1)]
    weights = [layer.weight.detach() for layer in layers]

    def norms(tensors: list[torch.Tensor]) -> torch.Tensor:
        return stack_layers(
            [torch.linalg.vector_norm(t.reshape(t.shape[0], -1), dim=1, dtype=F64) for t in tensors]
        )

    return {
        "weight_grad_norm": norms([layer.weight.grad for layer in layers]),
        "bias_grad_norm": norms([layer.bias.grad for layer in layers]),
        "weight_norm": norms(weights),
    }


def _mean_std(tensors: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and population std over batch and units, from the first two moments
    accumulated in float64 (two reductions a layer, no float64 copy)."""
    means, stds = [], []
    for t in tensors:
        t = t.detach()
        n = t[0].numel()
        mean = t.sum(dim=(1, 2), dtype=F64) / n
        second = torch.linalg.vector_norm(t, dim=(1, 2), dtype=F64).pow(2) / n
        means.append(mean)
        stds.append((second - mean.pow(2)).clamp_min(0).sqrt())
    return stack_layers(means), stack_layers(stds)


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
        values.append(_flat(dphi).mean(1))
    return {"dphi_mean": stack_layers(values)}
