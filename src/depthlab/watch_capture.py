"""Capturing one forward and backward pass of a user's model for ``depthlab.watch``.

While armed, hooks read the first call of the model made with gradients enabled (one
*pass*: a call of the root module; later calls until the next arming, such as a second
pass or an evaluation, are ignored). For every layer module called in that pass they keep
its output z^l, the outputs u^l and a^l of its followers (found by data flow: a follower's
input is the very tensor the layer or its norm returned), ||W^l||_F and, when asked, a copy
of W^l as the pass used it. During the backward pass a tensor hook reads dJ/dz^l and hooks
on the parameters take ||dJ/dW^l||_F and ||dJ/db^l|| as the backward leaves them (before
any clipping or optimiser step). Nothing is copied but what is asked for, and nothing
changes the computation; an in-place activation (nn.ReLU(inplace=True)) gets z^l or u^l
copied before it overwrites them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from depthlab.watch_layers import LayerKind, activation_label, follower_role

F64 = torch.float64


@dataclass
class LayerPass:
    """One layer's call in a captured pass: raw module outputs (not yet per sample)."""

    z: torch.Tensor
    kind: LayerKind
    u: torch.Tensor | None = None
    a: torch.Tensor | None = None
    phi: Callable[[torch.Tensor], torch.Tensor] | None = None  # the activation after u
    phi_name: str | None = None
    fed_by_previous: bool = False  # its input is the previous layer's last output
    weight_norm: torch.Tensor | None = None
    weight_before: torch.Tensor | None = None
    calls: int = 1


class PassCapture:
    """Hooks on ``model`` that capture one pass (see the module docstring) while armed.

    ``layers``: {name: (module, kind)} of the modules to read as layers; ``keep_weights``:
    copy each W^l as the pass used it (for update ratios). After the pass, ``order`` lists
    the layer names in call order, ``calls[name]`` their :class:`LayerPass`, and after the
    backward pass ``grads[name]`` dJ/dz^l (of the backpropagated objective) and
    ``grad_norms[name, "weight" | "bias"]`` the parameter-gradient norms. The backward hooks
    hold these dicts only: a hook holding a record that holds z^l would make a cycle through
    autograd's C++ that Python's collector cannot see.
    """

    def __init__(
        self,
        model: nn.Module,
        layers: dict[str, tuple[nn.Module, LayerKind]],
        keep_weights: bool = False,
    ) -> None:
        self.model, self.layers, self.keep_weights = model, layers, keep_weights
        self.followers = {n: m for n, m in model.named_modules() if follower_role(m)}
        self.followed: set[str] = set()  # follower modules seen after a layer
        self.order: list[str] = []
        self.calls: dict[str, LayerPass] = {}
        self.grads: dict[str, torch.Tensor] = {}
        self.grad_norms: dict[tuple[str, str], torch.Tensor] = {}
        self.state = "waiting"  # waiting -> in_pass -> done
        self._tails: dict[int, tuple[torch.Tensor, str, str]] = {}  # id -> (t, layer, stage)
        self._last: torch.Tensor | None = None  # the latest layer's last output
        self._handles: list = []

    def arm(self) -> PassCapture:
        m = self.model
        self._handles += [m.register_forward_pre_hook(self._begin)]
        self._handles += [m.register_forward_hook(self._end)]
        for name, (module, kind) in self.layers.items():
            self._handles.append(module.register_forward_hook(self._layer_hook(name, kind)))
            block = kind.block(m, name)
            if block is not None:
                self._handles.append(block.register_forward_hook(self._block_hook(name)))
        for name, module in self.followers.items():
            self._handles += [
                module.register_forward_pre_hook(self._copy_before_inplace),
                module.register_forward_hook(self._follower_hook(name)),
            ]
        return self

    def disarm(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._tails.clear()
        self._last = None

    @property
    def captured(self) -> bool:
        return self.state == "done"

    def _begin(self, module: nn.Module, inputs: tuple) -> None:
        if self.state == "waiting" and torch.is_grad_enabled():
            self.state = "in_pass"

    def _end(self, module: nn.Module, inputs: tuple, output: object) -> None:
        if self.state == "in_pass":
            self.state = "done"
            self._tails.clear()
            self._last = None
            self._watch_parameters()

    def _layer_hook(self, name: str, kind: LayerKind):
        def hook(module: nn.Module, inputs: tuple, z: object) -> None:
            if self.state != "in_pass" or not isinstance(z, torch.Tensor):
                return
            if name in self.calls:
                self.calls[name].calls += 1
                return
            record = LayerPass(z, kind, fed_by_previous=_first(inputs) is self._last)
            implicit = kind.activation(self.model, name)
            if implicit is not None:
                record.phi, record.phi_name = implicit
            weight = getattr(module, "weight", None)
            if isinstance(weight, torch.Tensor):
                record.weight_norm = torch.linalg.vector_norm(weight.detach(), dtype=F64)
                if self.keep_weights:
                    record.weight_before = weight.detach().clone()
            self.calls[name] = record
            self.order.append(name)
            if z.requires_grad:
                z.register_hook(_keeper(self.grads, name))
            self._track(z, name, "z")

        return hook

    def _block_hook(self, name: str):
        def hook(module: nn.Module, inputs: tuple, a: object) -> None:
            skip = getattr(module, "skip", False)  # a^l = a^{l-1} + alpha h^l: not h's
            if self.state == "in_pass" and isinstance(a, torch.Tensor) and not skip:
                self._track(a, name, "a")

        return hook

    def _track(self, t: torch.Tensor, name: str, stage: str) -> None:
        self._tails[id(t)] = (t, name, stage)
        self._last = t

    def _source(self, inputs: tuple) -> tuple[str, str] | None:
        """(layer, stage) when the first input is a tracked layer output, else None."""
        x = _first(inputs)
        entry = self._tails.get(id(x)) if x is not None else None
        return (entry[1], entry[2]) if entry is not None and entry[0] is x else None

    def _copy_before_inplace(self, module: nn.Module, inputs: tuple) -> None:
        source = self._source(inputs) if self.state == "in_pass" else None
        if source is None or not getattr(module, "inplace", False):
            return
        record = self.calls[source[0]]
        if source[1] == "z":
            record.z = record.z.detach().clone()
        elif source[1] == "u":
            record.u = record.u.detach().clone()

    def _follower_hook(self, follower: str):
        def hook(module: nn.Module, inputs: tuple, out: object) -> None:
            source = self._source(inputs) if self.state == "in_pass" else None
            if source is None or not isinstance(out, torch.Tensor):
                return
            name, stage = source
            record, role = self.calls[name], follower_role(module)
            if role == "norm" and stage == "z" and record.u is None:
                record.u = out
            elif role == "activation" and stage != "a" and record.phi is None:
                record.a, record.phi, record.phi_name = out, module, activation_label(module)
            else:
                return
            self.followed.add(follower)
            self._track(out, name, "u" if role == "norm" else "a")

        return hook

    def _watch_parameters(self) -> None:
        """Hooks that take each layer's parameter-gradient norms when backward leaves them."""
        for name in self.order:
            module = self.layers[name][0]
            for attr in ("weight", "bias"):
                p = getattr(module, attr, None)
                if isinstance(p, nn.Parameter) and p.requires_grad:
                    self._handles.append(
                        p.register_post_accumulate_grad_hook(
                            _grad_norm(self.grad_norms, (name, attr))
                        )
                    )


def _first(inputs: tuple) -> torch.Tensor | None:
    return inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None


def _keeper(grads: dict[str, torch.Tensor], name: str) -> Callable[[torch.Tensor], None]:
    """A tensor hook keeping dJ/dz^l (the first backward through z^l only)."""

    def keep(grad: torch.Tensor) -> None:
        grads.setdefault(name, grad)

    return keep


def _grad_norm(
    norms: dict[tuple[str, str], torch.Tensor], key: tuple[str, str]
) -> Callable[[torch.Tensor], None]:
    """A parameter hook taking ||dJ/dp|| as the backward leaves it (the first backward only)."""

    def take(p: torch.Tensor) -> None:
        if key not in norms and p.grad is not None:
            norms[key] = torch.linalg.vector_norm(p.grad, dtype=F64)

    return take
