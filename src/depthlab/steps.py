"""How a training step runs: each run's mini-batch indices, and the unprobed steps, eager or
replayed from a CUDA graph.

A batched model trains R runs in lockstep: every step each run takes its next mini-batch
from its own stream and the summed per-run batch losses are backpropagated once. Steps
that probe nothing are the bulk of training; on a CUDA device they are recorded once as a
CUDA graph (forward, backward, update) and replayed, which removes the per-kernel launch
cost that dominates a deep narrow network (about 700 kernels a step at depth 100). A
replay runs the same kernels on the same buffers as the eager step, so it computes the
same numbers. Probed steps, evaluations and the costly probes stay eager.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import torch

from depthlab.data import DataSet
from depthlab.optimizers import BatchedOptimizer

log = logging.getLogger(__name__)

WARMUP_STEPS = 3  # eager steps on a side stream before capture (lazy initialisations)


class BatchStream:
    """Mini-batch indices of R runs, run r from its own generator: each epoch a fresh
    ``torch.randperm`` on the device per run, cut into full batches (a last partial batch
    is dropped). ``batch(n)`` is the (R, B) index tensor of batch n (n = 0, 1, ... never
    decreasing), or None when one batch covers the training set (the full set, in order).
    Run r's batches depend only on its own generator, not on the other runs."""

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        generators: Sequence[torch.Generator],
        device: torch.device,
    ) -> None:
        self.num_samples, self.batch_size = num_samples, batch_size
        self.generators, self.device = list(generators), device
        self.per_epoch = num_samples // batch_size
        self.epoch = -1
        self.order: torch.Tensor | None = None  # (R, per_epoch, B) for the current epoch

    @property
    def full(self) -> bool:
        return self.batch_size >= self.num_samples

    def batch(self, n: int) -> torch.Tensor | None:
        if self.full:
            return None
        epoch, k = divmod(n, self.per_epoch)
        if epoch < self.epoch:
            raise ValueError(f"batch {n} was drawn before (epoch {self.epoch} is current)")
        while self.epoch < epoch:
            self._next_epoch()
        return self.order[:, k]

    def _next_epoch(self) -> None:
        used = self.per_epoch * self.batch_size
        self.order = torch.stack(
            [
                torch.randperm(self.num_samples, generator=g, device=self.device)[:used].view(
                    self.per_epoch, self.batch_size
                )
                for g in self.generators
            ]
        )
        self.epoch += 1


def gather(data: DataSet, index: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The training samples at ``index`` (R, B): x (R, B, d) and y (R, B[, k]); the whole
    training set, (N, d) and (N[, k]), when ``index`` is None."""
    if index is None:
        return data.x_train, data.y_train
    flat = index.reshape(-1)
    x = data.x_train.index_select(0, flat).view(*index.shape, -1)
    y = data.y_train.index_select(0, flat).view(*index.shape, *data.y_train.shape[1:])
    return x, y


class Stepper:
    """Unprobed training steps of a batched model: forward, backward of the summed per-run
    batch losses, update; returns the (R,) batch losses (a new tensor each call).

    With ``capture`` (CUDA only) the first call records one step as a CUDA graph with
    static inputs (the (R, B) index buffer; data, parameters, gradients and optimiser state
    stay where they are) and every call replays it after copying in the step's indices: no
    host synchronisation, one launch per step. The eager warm-up that capture needs changes
    parameters and optimiser state, so those are saved before and restored after. If capture
    fails (an op that cannot be captured) the steps run eagerly and a warning says why;
    ``captured`` tells which way they ran.
    """

    def __init__(
        self,
        forward: Callable[[torch.Tensor], torch.Tensor],
        model: torch.nn.Module,
        optimizer: BatchedOptimizer,
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        data: DataSet,
        capture: bool,
    ) -> None:
        self.forward, self.model, self.optimizer = forward, model, optimizer
        self.loss, self.data = loss, data
        self.capture = capture
        self.captured = False
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_index: torch.Tensor | None = None
        self.static_losses: torch.Tensor | None = None

    def __call__(self, index: torch.Tensor | None) -> torch.Tensor:
        if self.capture and self.graph is None:
            self._record(index)
        if self.graph is None:
            return self.step(index)
        if index is not None:
            self.static_index.copy_(index)
        self.graph.replay()
        return self.static_losses.clone()

    def step(self, index: torch.Tensor | None) -> torch.Tensor:
        """One eager step on the batches at ``index``."""
        x, y = gather(self.data, index)
        losses = self.loss(self.forward(x), y)
        self.optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        self.optimizer.step()
        return losses.detach()

    def _state(self) -> list[torch.Tensor]:
        return [*self.optimizer.state_tensors(), *self.model.buffers()]

    def _record(self, index: torch.Tensor | None) -> None:
        self.capture = False  # one attempt
        self.static_index = None if index is None else index.clone()
        saved = [t.clone() for t in self._state()]
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(WARMUP_STEPS):
                    self.step(self.static_index)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            self.optimizer.zero_grad(set_to_none=True)
            with torch.cuda.graph(graph):
                self.static_losses = self.step(self.static_index)
            self.graph, self.captured = graph, True
        except Exception as exc:  # an op that cannot be captured: train eagerly
            log.warning("CUDA graph capture failed, training eagerly: %s", exc)
            self.graph, self.static_losses = None, None
        finally:
            self.optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():
                for tensor, copy in zip(self._state(), saved, strict=True):
                    tensor.copy_(copy)
