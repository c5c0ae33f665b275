"""Whole-set figures of a batched model: the mean loss and accuracy of every replica."""

from __future__ import annotations

import numpy as np
import torch

from depthlab.data import CLASSIFICATION
from depthlab.losses import LOSSES, accuracy
from depthlab.model import MLP
from depthlab.resources import EVAL_CHUNK


@torch.no_grad()
def evaluate(
    model: MLP, x: torch.Tensor, y: torch.Tensor, loss_name: str, task: str
) -> dict[str, np.ndarray]:
    """Mean loss (and accuracy for classification) over a whole set, per replica (arrays of
    length R), in eval mode, in chunks of ``EVAL_CHUNK`` samples. On a CPU the replicas go
    through a few at a time (:func:`eval_group`): a 32-run batch's layer outputs on the
    whole set are tens of MB, and passes that big ran 3x slower than cache-sized ones."""
    if len(x) == 0:
        return {}
    was_training = model.training
    model.eval()
    step = eval_group(model, x)
    losses, hits = [], []
    for first in range(0, model.replicas, step):
        part = slice(first, min(model.replicas, first + step))
        loss_sum = correct = 0.0
        for start in range(0, len(x), EVAL_CHUNK):
            out = model(x[start : start + EVAL_CHUNK], part)
            target = y[start : start + EVAL_CHUNK]
            n = len(target)
            loss_sum += LOSSES[loss_name](out, target, task).double() * n
            if task == CLASSIFICATION:
                correct += accuracy(out, target).double() * n
        losses.append(loss_sum)
        hits.append(correct)
    model.train(was_training)
    result = {"loss": (torch.cat(losses) / len(x)).cpu().numpy()}
    if task == CLASSIFICATION:
        result["accuracy"] = (torch.cat(hits) / len(x)).cpu().numpy()
    return result


EVAL_BYTES = 4 << 20  # CPU: one layer's output of an evaluation pass at most about this


def eval_group(model: MLP, x: torch.Tensor) -> int:
    """How many replicas an evaluation pass takes at once: all of them on a GPU; on a CPU as
    many as keep one layer's output within ``EVAL_BYTES`` (at least one)."""
    if x.device.type != "cpu":
        return model.replicas
    per_replica = min(len(x), EVAL_CHUNK) * max(model.widths) * x.element_size()
    return max(1, min(model.replicas, EVAL_BYTES // per_replica))
