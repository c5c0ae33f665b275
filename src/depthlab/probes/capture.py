"""Capturing what one forward and backward pass exposes at every layer, with hooks.

Forward hooks read a^{l-1} and a^l (on the layer), z^l (on its affine map) and
u^l = N(z^l), the input of phi (on its normalisation, an identity module without one). A
tensor hook on z^l reads dJ/dz^l during the backward pass; tensor hooks survive in-place
operations later in the graph. Nothing is copied and nothing changes the computation.
At depth 100 the hooks cost about 0.7 ms on a 21 ms step.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
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
    branches: list[torch.Tensor | None] = field(default_factory=list)  # alpha h^l on skips
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
        for index, layer in enumerate(self.model.layers):
            self._handles += [
                layer.linear.register_forward_hook(self._preact_hook(index)),
                layer.norm.register_forward_hook(self._normed_hook(index)),
                layer.register_forward_hook(self._layer_hook(index)),
            ]
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _preact_hook(self, index: int):
        def hook(module: torch.nn.Module, inputs: tuple, z: torch.Tensor) -> None:
            if index == 0:  # a new pass
                self.tensors = LayerTensors()
            t = self.tensors
            for name in ("inputs", "preacts", "normed", "branches", "outputs", "grads"):
                getattr(t, name).append(None)
            t.preacts[index] = z
            if z.requires_grad:
                # The hook holds the grads list only: holding ``t`` (which holds z, which
                # holds the hook) would make a cycle through C++ that Python's collector
                # cannot see, and every probed pass would stay in memory.
                grads = t.grads

                def keep_grad(grad: torch.Tensor) -> None:
                    grads[index] = grad

                z.register_hook(keep_grad)

        return hook

    def _normed_hook(self, index: int):
        def hook(module: torch.nn.Module, inputs: tuple, u: torch.Tensor) -> None:
            self.tensors.normed[index] = u

        return hook

    def _layer_hook(self, index: int):
        def hook(module: torch.nn.Module, inputs: tuple, a: torch.Tensor) -> None:
            t = self.tensors
            t.inputs[index], t.outputs[index] = inputs[0], a
            # the residual branch alpha h^l = a^l - a^{l-1} (skip layers only)
            with torch.no_grad():  # a measurement, not part of the graph
                t.branches[index] = a - inputs[0] if module.skip else None

        return hook


Objective = Callable[[torch.nn.Module], torch.Tensor]


def batch_objective(loss_fn: Callable, x: torch.Tensor, y: torch.Tensor) -> Objective:
    """The per-replica losses ``loss_fn(net(x), y)`` of one batch as a function of the
    network, with the batch cast to the network's dtype: the same pass, again, through
    ``model`` or a copy of it in another dtype."""

    def objective(net: torch.nn.Module) -> torch.Tensor:
        dtype = next(net.parameters()).dtype
        target = y.to(dtype) if y.is_floating_point() else y
        return loss_fn(net(x.to(dtype)), target)

    return objective


def pass_in_dtype(model: MLP, objective: Objective, dtype: torch.dtype) -> tuple[MLP, LayerTensors]:
    """The copy of ``model`` cast to ``dtype`` and the captured tensors of the same forward
    and backward pass through it: the same weights and batch, the arithmetic of ``dtype``.
    The copy's batchnorm averages change, the model's do not."""
    twin = copy.deepcopy(model).to(dtype)
    twin.zero_grad(set_to_none=True)
    with torch.enable_grad(), Capture(twin) as capture:
        objective(twin).sum().backward()
    return twin, capture.tensors
