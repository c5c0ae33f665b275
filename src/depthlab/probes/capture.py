"""Capturing what one forward and backward pass exposes at every layer.

Each layer's ``tap`` (see :class:`depthlab.model.Layer`) hands over a^{l-1}, z^l,
u^l = N(z^l) (the input of phi; z^l without normalisation), h^l = phi(u^l) and a^l; a
tensor hook on z^l reads dJ/dz^l during the backward pass (tensor hooks survive in-place
operations later in the graph). Nothing is copied and nothing changes the computation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from depthlab.model import MLP


@dataclass
class LayerTensors:
    """Per-layer tensors of one pass, lists indexed 0..L-1 for layers 1..L, each (R, B, n).

    ``grads`` are dJ/dz^l of the objective that was backpropagated: the batch mean of the
    per-sample losses, summed over replicas. The per-sample delta is B * grads.
    """

    inputs: list[torch.Tensor] = field(default_factory=list)
    preacts: list[torch.Tensor] = field(default_factory=list)
    normed: list[torch.Tensor] = field(default_factory=list)
    branches: list[torch.Tensor] = field(default_factory=list)
    outputs: list[torch.Tensor] = field(default_factory=list)
    grads: list[torch.Tensor | None] = field(default_factory=list)

    @property
    def batch_size(self) -> int:
        return self.preacts[0].shape[1]


class Capture:
    """Context manager: while active, every forward pass of ``model`` fills ``tensors``
    (the latest pass only) and its backward pass fills ``tensors.grads``."""

    def __init__(self, model: MLP) -> None:
        self.model = model
        self.tensors = LayerTensors()

    def __enter__(self) -> Capture:
        for layer in self.model.layers:
            layer.tap = self._record
        return self

    def __exit__(self, *exc: object) -> None:
        for layer in self.model.layers:
            layer.tap = None

    def _record(
        self,
        l: int,
        a_in: torch.Tensor,
        z: torch.Tensor,
        u: torch.Tensor,
        h: torch.Tensor,
        a_out: torch.Tensor,
    ) -> None:
        if l == 1:  # a new pass
            self.tensors = LayerTensors()
        t = self.tensors
        t.inputs.append(a_in)
        t.preacts.append(z)
        t.normed.append(u)
        t.branches.append(h)
        t.outputs.append(a_out)
        t.grads.append(None)
        if z.requires_grad:
            # The hook holds the grads list only: holding ``t`` (which holds z, which holds
            # the hook) would make a cycle through C++ that Python's collector cannot see,
            # and every probed pass would stay in memory.
            grads, index = t.grads, l - 1

            def keep_grad(grad: torch.Tensor) -> None:
                grads[index] = grad

            z.register_hook(keep_grad)
