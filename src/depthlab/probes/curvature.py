"""Curvature of the loss: the Hessian's largest and most negative eigenvalues.

Saddle points (the seed's problem 5) show as negative eigenvalues of the Hessian of the
batch loss with respect to all weights and biases. No dense Hessian is formed: Lanczos
iteration (scipy's eigsh) runs on Hessian-vector products, each one double-backward pass.
Per replica, since replicas' losses are independent the Hessian is block diagonal.
A ``full``-preset probe; it costs about 2 x LANCZOS_VECTORS backward passes.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

from depthlab.model import preserved_buffers
from depthlab.probes.base import ProbeInput, register_probe

LANCZOS_VECTORS = 12
MAX_RESTARTS = 30
TOLERANCE = 1e-4


def hessian_extremes(
    model: torch.nn.Module, objective, replica: int = 0, seed: int = 0
) -> tuple[float, float]:
    """(largest, smallest) eigenvalue of the Hessian of replica ``replica``'s loss, from
    ``objective(model)`` (per-replica losses), by Lanczos on Hessian-vector products. Batchnorm
    running averages are put back afterwards: probing changes nothing."""
    with preserved_buffers(model):
        return _extremes(model, objective, replica, seed)


def _extremes(model: torch.nn.Module, objective, replica: int, seed: int) -> tuple[float, float]:
    params = [p for p in model.parameters() if p.requires_grad]
    with torch.enable_grad():
        loss = objective(model)[replica]
    if not torch.isfinite(loss):  # a diverged network: no curvature to measure
        return np.nan, np.nan
    with torch.enable_grad():
        grads = torch.autograd.grad(loss, params, create_graph=True)
    shapes = [p[replica].shape for p in params]
    sizes = [int(np.prod(s)) for s in shapes]

    def hvp(v: np.ndarray) -> np.ndarray:
        pieces = np.split(np.asarray(v, dtype=np.float64).ravel(), np.cumsum(sizes)[:-1])
        tangents = []
        for p, piece, shape in zip(params, pieces, shapes, strict=True):
            t = torch.zeros_like(p)
            t[replica] = torch.as_tensor(piece, dtype=p.dtype, device=p.device).view(shape)
            tangents.append(t)
        with torch.enable_grad():
            products = torch.autograd.grad(grads, params, tangents, retain_graph=True)
        return torch.cat([h[replica].reshape(-1) for h in products]).double().cpu().numpy()

    n = sum(sizes)
    operator = LinearOperator((n, n), matvec=hvp, dtype=np.float64)
    start = np.random.default_rng(seed).standard_normal(n)
    extremes = []
    for which in ("LA", "SA"):
        try:
            values = eigsh(
                operator,
                k=1,
                which=which,
                v0=start,
                tol=TOLERANCE,
                ncv=min(LANCZOS_VECTORS, n),
                maxiter=MAX_RESTARTS,
                return_eigenvectors=False,
            )
            extremes.append(float(values[0]))
        except ArpackNoConvergence as exc:  # report the best estimate, never fail a run
            extremes.append(float(exc.eigenvalues[0]) if len(exc.eigenvalues) else np.nan)
    return extremes[0], extremes[1]


@register_probe("curvature", presets=(), costly=True)
def curvature(p: ProbeInput) -> dict[str, torch.Tensor]:
    """hessian_max, hessian_min (network-level, layer 0): the extreme Hessian eigenvalues of
    the probed batch's loss, per replica; NaN where no objective is given."""
    rows = [
        hessian_extremes(p.model, p.objective, r) if p.objective else (np.nan, np.nan)
        for r in range(p.model.replicas)
    ]
    device = next(p.model.parameters()).device
    values = torch.tensor(rows, dtype=torch.float64, device=device)  # (R, 2)
    return {"hessian_max": values[:, :1], "hessian_min": values[:, 1:]}
