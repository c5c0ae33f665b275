"""Capturing what one forward and backward pass exposes at every layer, with hooks.

Forward hooks on each layer's modules read a^{l-1} and a^l (the layer), z^l (its affine
map) and u^l = N(z^l), the input of phi (its normalisation, an identity without one). A
tensor hook on z^l reads dJ/dz^l during the backward pass; tensor hooks survive in-place
operations later in the graph. Nothing is copied and nothing changes the computation.
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
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> Capture:
        for index in range(self.model.num_layers):
            layer = self.model.layer(index + 1)
            self._handles += [
                layer.register_forward_hook(self._layer_hook(index)),
                layer.linear.register_forward_hook(self._preact_hook(index)),
                layer.norm.register_forward_hook(self._normed_hook(index)),
            ]
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _slot(self, index: int) -> None:
        t = self.tensors
        if index == 0:  # a new pass starts at layer 1
            self.tensors = t = LayerTensors()
        for name in ("inputs", "preacts", "normed", "outputs", "grads"):
            getattr(t, name).append(None)

    def _preact_hook(self, index: int):
        def hook(module, inputs, z):
            self._slot(index)
            self.tensors.preacts[index] = z
            if z.requires_grad:
                tensors = self.tensors

                def keep_grad(grad: torch.Tensor) -> None:
                    tensors.grads[index] = grad

                z.register_hook(keep_grad)

        return hook

    def _normed_hook(self, index: int):
        def hook(module, inputs, u):
            self.tensors.normed[index] = u

        return hook

    def _layer_hook(self, index: int):
        def hook(module, inputs, a):
            self.tensors.inputs[index] = inputs[0]
            self.tensors.outputs[index] = a

        return hook
