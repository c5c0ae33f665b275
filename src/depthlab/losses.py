"""Registered losses J, computed per replica.

Outputs a^L have shape (R, B, k): R replicas (1 for an ordinary run) of a batch of B.
Each loss returns the batch mean of the per-sample loss for every replica, shape (R,).
Training backpropagates the sum over replicas, so each replica gets exactly the gradient
it would get alone.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from depthlab.data import CLASSIFICATION
from depthlab.registry import Registry

LossFn = Callable[[torch.Tensor, torch.Tensor, str], torch.Tensor]
LOSSES: Registry[LossFn] = Registry("loss")


def _targets(target: torch.Tensor, output: torch.Tensor, task: str) -> torch.Tensor:
    """Targets as (R, B, k) vectors: one-hot for class labels."""
    if task == CLASSIFICATION:  # scatter, not F.one_hot: no range check, so no host sync
        onehot = output.new_zeros(*target.shape, output.shape[-1])
        target = onehot.scatter_(-1, target.unsqueeze(-1), 1.0)
    return target.expand_as(output)


@LOSSES.register("cross_entropy")
def cross_entropy(output: torch.Tensor, target: torch.Tensor, task: str) -> torch.Tensor:
    """J = -log softmax(a^L)_y per sample (a^L read as logits), mean over the batch.

    delta^L = softmax(a^L) - onehot(y) when the output activation is linear.
    """
    r, b, k = output.shape
    per_sample = F.cross_entropy(
        output.reshape(r * b, k), target.expand(r, b).reshape(r * b), reduction="none"
    )
    return per_sample.view(r, b).mean(1)


@LOSSES.register("squared")
def squared(output: torch.Tensor, target: torch.Tensor, task: str) -> torch.Tensor:
    """J = 1/2 ||a^L - y||^2 per sample (y one-hot for classes), mean over the batch.

    This is the seed derivation's loss: delta^L = (a^L - y) (.) phi'(z^L).
    """
    return 0.5 * (output - _targets(target, output, task)).pow(2).sum(-1).mean(-1)


def accuracy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Fraction of samples whose largest output is the label, per replica: (R,)."""
    return (output.argmax(-1) == target).to(output.dtype).mean(-1)
