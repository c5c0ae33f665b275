"""Spectra of the input-output Jacobian: dynamical isometry (Saxe et al. 2014; Pennington,
Schoenholz & Ganguli 2017).

J(x) = d a^{L-1} / d x, the map from the input to the last hidden layer for one input x.
Mean-field chi predicts the *mean* squared singular value per layer; isometry is about the
*spread*: orthogonal weights with tanh near criticality keep the singular values near 1
even at depth 50, Gaussian weights and ReLU spread them over orders of magnitude.
Computed exactly with torch.func.jacrev (one vectorised backward pass per output unit),
in eval mode, for a few inputs: a cost-aware probe of the ``full`` preset.
"""

from __future__ import annotations

import numpy as np
import torch

from depthlab.model import MLP
from depthlab.probes.base import ProbeInput, register_probe

JACOBIAN_SAMPLES = 4  # inputs of the batch whose Jacobian spectrum is measured
QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)


def jacobian_singular_values(model: MLP, x: torch.Tensor, replica: int = 0) -> torch.Tensor:
    """Singular values of d a^{L-1} / d x for every input row of ``x`` (n, d): (n, k)."""
    hidden = model.layers[:-1]

    def hidden_output(v: torch.Tensor) -> torch.Tensor:
        # only replica ``replica`` sees v: the others' (possibly non-finite) paths must not
        # reach its Jacobian, not even as 0 * NaN
        v = v.reshape(1, -1)
        a = torch.stack([v if r == replica else v.detach() for r in range(model.replicas)])
        for layer in hidden:
            a = layer(a)
        return a[replica, 0]

    was_training = model.training
    model.eval()
    try:
        jacobians = torch.stack([torch.func.jacrev(hidden_output)(row) for row in x])
    finally:
        model.train(was_training)
    # a diverged network has no spectrum: NaN, decided on the device (no host sync)
    jacobians = jacobians.detach()
    broken = ~torch.isfinite(jacobians).flatten(1).all(dim=1, keepdim=True)  # (n, 1)
    values = torch.linalg.svdvals(jacobians.nan_to_num(0.0, 0.0, 0.0))
    return values.masked_fill(broken, torch.nan)


def spectrum_summary(singular_values: torch.Tensor) -> dict[str, torch.Tensor]:
    """Quantiles of s (jacobian_sv_q50, ...), and mean and variance of s^2, as 0-d float64
    tensors on s's device (NaN where any singular value is NaN: a diverged network)."""
    s = singular_values.flatten().double()
    quantiles = torch.quantile(s, torch.tensor(QUANTILES, dtype=s.dtype, device=s.device))
    names = [f"jacobian_sv_q{round(q * 100):03d}" for q in QUANTILES]
    values = dict(zip(names, quantiles.unbind(), strict=True))
    values["jacobian_sv2_mean"] = s.pow(2).mean()
    values["jacobian_sv2_var"] = s.pow(2).var(correction=0)
    return values


@register_probe("jacobian", costly=True)
def jacobian(p: ProbeInput) -> dict[str, torch.Tensor]:
    """Network-level ((R, 1), logged at layer 0): the summary of the Jacobian spectra of the
    first JACOBIAN_SAMPLES inputs of the batch, per replica."""
    x = p.tensors.inputs[0][:, :JACOBIAN_SAMPLES]  # (R, n, d): the batch a^0 as each replica saw it
    rows = []
    for r in range(p.model.replicas):
        with torch.enable_grad():
            rows.append(spectrum_summary(jacobian_singular_values(p.model, x[r].detach(), r)))
    return {name: torch.stack([row[name] for row in rows]).unsqueeze(1) for name in rows[0]}


def isometry(singular_values: np.ndarray | torch.Tensor) -> float:
    """var(s^2) over all singular values: small for dynamical isometry."""
    s = np.asarray(singular_values, dtype=float).ravel()
    return float(np.var(s**2))
