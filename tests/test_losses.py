"""Losses per replica, against their textbook definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from depthlab.data import CLASSIFICATION, REGRESSION
from depthlab.losses import LOSSES, accuracy

F64 = torch.float64


def test_squared_is_half_the_squared_error_against_one_hot() -> None:
    out = torch.randn(2, 5, 4, dtype=F64)
    y = torch.tensor([0, 3, 1, 1, 2])
    onehot = np.eye(4)[y.numpy()]
    expected = 0.5 * ((out.numpy() - onehot) ** 2).sum(-1).mean(-1)
    np.testing.assert_allclose(LOSSES["squared"](out, y, CLASSIFICATION).numpy(), expected)


def test_squared_gradient_is_the_derivations_delta() -> None:
    """dJ/da^L = (a^L - y) / B for the batch mean of 1/2 ||a^L - y||^2."""
    out = torch.randn(1, 6, 2, dtype=F64, requires_grad=True)
    y = torch.randn(6, 2, dtype=F64)
    (grad,) = torch.autograd.grad(LOSSES["squared"](out, y, REGRESSION).sum(), out)
    torch.testing.assert_close(grad, (out.detach() - y) / 6)


def test_cross_entropy_is_minus_log_softmax() -> None:
    out = torch.randn(3, 7, 5, dtype=F64)
    y = torch.randint(0, 5, (7,))
    logp = torch.log_softmax(out, -1)
    expected = -logp[:, torch.arange(7), y].mean(-1)
    torch.testing.assert_close(LOSSES["cross_entropy"](out, y, CLASSIFICATION), expected)


@pytest.mark.parametrize("name", LOSSES.names())
def test_replicas_are_independent(name: str) -> None:
    """Each replica's loss depends on its own outputs only."""
    out = torch.randn(3, 8, 4, dtype=F64)
    y = torch.randint(0, 4, (8,))
    full = LOSSES[name](out, y, CLASSIFICATION)
    for r in range(3):
        alone = LOSSES[name](out[r : r + 1], y, CLASSIFICATION)
        torch.testing.assert_close(full[r : r + 1], alone)


def test_accuracy() -> None:
    out = torch.tensor([[[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]]])
    assert accuracy(out, torch.tensor([1, 0, 0])).item() == pytest.approx(2 / 3)
