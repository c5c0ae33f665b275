"""Curvature: Lanczos on Hessian-vector products equals the dense Hessian's extremes."""

from __future__ import annotations

import pytest
import torch

from depthlab.data import CLASSIFICATION
from depthlab.inits import Gaussian
from depthlab.losses import LOSSES
from depthlab.model import MLP
from depthlab.probes import measure
from depthlab.probes.curvature import hessian_extremes


def tiny_net(norm: str = "none", replicas: int = 1) -> MLP:
    model = MLP(3, 2, depth=2, width=4, activation="tanh", norm=norm, replicas=replicas)
    model.initialize_(
        Gaussian(sigma_w2=1.5, sigma_b2=0.1),
        [torch.Generator().manual_seed(s) for s in range(replicas)],
    )
    return model.double()


def dense_extremes(model: MLP, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """The Hessian built densely by autograd over all parameters (one replica, no norm)."""
    params = list(model.parameters())

    def loss_of(flat: torch.Tensor) -> torch.Tensor:
        pieces = torch.split(flat, [p.numel() for p in params])
        ws = [piece.view(p.shape) for piece, p in zip(pieces, params, strict=True)]
        a = x.unsqueeze(0)
        for l in range(3):
            a = torch.baddbmm(ws[2 * l + 1].unsqueeze(1), a, ws[2 * l].transpose(1, 2))
            a = torch.tanh(a) if l < 2 else a
        return LOSSES["cross_entropy"](a, y, CLASSIFICATION)[0]

    flat = torch.cat([p.detach().reshape(-1) for p in params])
    eigenvalues = torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss_of, flat))
    return eigenvalues.max().item(), eigenvalues.min().item()


def test_lanczos_extremes_equal_the_dense_hessian() -> None:
    model = tiny_net()
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(10, 3, generator=g, dtype=torch.float64), torch.randint(0, 2, (10,))
    largest, smallest = hessian_extremes(
        model, lambda net: LOSSES["cross_entropy"](net(x), y, CLASSIFICATION)
    )
    dense = dense_extremes(model, x, y)
    assert largest == pytest.approx(dense[0], rel=1e-6)
    assert smallest == pytest.approx(dense[1], rel=1e-6)
    assert smallest < 0 < largest  # a saddle: this net at init has negative curvature


def test_the_probe_is_per_replica_and_leaves_batchnorm_statistics_alone() -> None:
    model = tiny_net(norm="batchnorm", replicas=2)
    before = [b.clone() for b in model.buffers()]
    x, y = torch.randn(12, 3, dtype=torch.float64), torch.randint(0, 2, (12,))
    frame = measure(model, x, y, "cross_entropy", CLASSIFICATION, ["curvature"])
    assert set(frame["layer"]) == {0} and set(frame["seed"]) == {0, 1}
    rows = frame.pivot(index="seed", columns="metric", values="value")
    assert (rows["hessian_max"] > rows["hessian_min"]).all()
    assert rows.loc[0, "hessian_max"] != rows.loc[1, "hessian_max"]
    # measure() ran one forward in train mode; curvature's passes must not add to it
    model2 = tiny_net(norm="batchnorm", replicas=2)
    measure(model2, x, y, "cross_entropy", CLASSIFICATION, ["delta"])
    for a, b in zip(model.buffers(), model2.buffers(), strict=True):
        torch.testing.assert_close(a, b)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.buffers(), strict=True))
