"""Capturing the forward and backward pass of a user's model for ``depthlab.watch``.

While armed, hooks read every call of the root module made with gradients enabled (a
*pass*; calls under ``torch.no_grad()`` are ignored, and so are calls after the first
:data:`MAX_PASSES`); the pass recorded is the first whose layers a backward pass reached
(:meth:`PassCapture.chosen`): an evaluation with gradients that nothing backpropagates is
passed over, before or after the training pass. For every layer module called in a pass
they keep a copy of its output z^l and of the outputs u^l and a^l of its followers (found
by data flow: a follower's input is the very tensor the layer or its norm returned,
unmodified since), ||W^l||_F and, when asked, a copy of W^l as the pass used it. During the
backward pass a tensor hook reads dJ/dz^l and hooks on the parameters take ||dJ/dW^l||_F and
||dJ/db^l|| as the backward leaves them (before any clipping or optimiser step). The copies
keep the values as the layer returned them (an in-place activation, nn.ReLU(inplace=True),
or ``out += skip`` would change them), and nothing changes the computation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from depthlab.watch_layers import LayerKind, activation_label, follower_role

F64 = torch.float64
MAX_PASSES = 4  # passes with gradients kept per probed step (each holds copies of its tensors)


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
    in_graph: bool = True  # z^l needs a gradient (False: frozen, or run without gradients)


@dataclass
class Pass:
    """One call of the model with gradients: its layers in call order, their records, the
    follower modules seen, and (filled by the backward pass) dJ/dz^l by layer name. The
    tensor hooks hold ``grads`` only: a hook holding a record that holds z^l would make a
    cycle through autograd's C++ that Python's collector cannot see."""

    order: list[str] = field(default_factory=list)
    calls: dict[str, LayerPass] = field(default_factory=dict)
    grads: dict[str, torch.Tensor] = field(default_factory=dict)
    followed: set[str] = field(default_factory=set)
    backwards: set[int] = field(default_factory=set)  # autograd graph tasks that reached it


class PassCapture:
    """Hooks on ``model`` that capture its passes (see the module docstring) while armed.

    ``layers``: {name: (module, kind)} of the modules to read as layers; ``keep_weights``:
    copy each W^l as the pass used it (for update ratios). ``passes``: the calls captured;
    ``grad_norms[name, "weight" | "bias"]``: the parameter-gradient norms of the first
    backward pass that accumulates into the layers' parameters.
    """

    def __init__(
        self,
        model: nn.Module,
        layers: dict[str, tuple[nn.Module, LayerKind]],
        keep_weights: bool = False,
    ) -> None:
        self.model, self.layers, self.keep_weights = model, layers, keep_weights
        self.followers = {n: m for n, m in model.named_modules() if follower_role(m)}
        self.passes: list[Pass] = []
        self.grad_norms: dict[tuple[str, str], torch.Tensor] = {}
        self.accumulating: set[int] = set()  # graph tasks that accumulated into .grad
        self.current: Pass | None = None  # the pass being called
        self._depth = 0  # nested calls of the root module (a forward calling the model)
        # id -> (tensor, its version when tracked, layer, stage), within the current pass
        self._tails: dict[int, tuple[torch.Tensor, int, str, str]] = {}
        self._last: torch.Tensor | None = None  # the latest layer's last output
        self._handles: list = []
        self._inplace: dict[int, tuple[str, str] | None] = {}  # id(module) -> its source

    def arm(self) -> PassCapture:
        """Register the hooks; the next passes with gradients are captured."""
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
                module.register_forward_pre_hook(self._before_inplace),
                module.register_forward_hook(self._follower_hook(name)),
            ]
        return self

    def disarm(self) -> None:
        """Remove every hook (the captured tensors stay)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._tails.clear()
        self._last = None

    @property
    def captured(self) -> bool:
        """Whether a pass with gradients was called."""
        return bool(self.passes)

    def chosen(self) -> Pass | None:
        """The first pass whose layers a backward pass reached, preferring one reached by
        a backward that accumulated into the layers' ``.grad`` (``loss.backward()``, not
        ``torch.autograd.grad``: an adversarial attack's pass); failing that, the first with
        no layer that a gradient could reach (none called, or all frozen), which is all that
        can be known of it; None when neither exists."""
        training = (p for p in self.passes if p.backwards & self.accumulating)
        reached = (p for p in self.passes if p.grads)
        unreachable = (p for p in self.passes if not any(r.in_graph for r in p.calls.values()))
        return next(training, None) or next(reached, None) or next(unreachable, None)

    def _begin(self, module: nn.Module, inputs: tuple) -> None:
        self._depth += 1
        if self._depth == 1 and torch.is_grad_enabled() and len(self.passes) < MAX_PASSES:
            self.current = Pass()
            self.passes.append(self.current)

    def _end(self, module: nn.Module, inputs: tuple, output: object) -> None:
        self._depth -= 1
        if self._depth == 0 and self.current is not None:
            if len(self.passes) == 1:
                self._watch_parameters(self.current)
            self.current = None
            self._tails.clear()
            self._last = None

    def _layer_hook(self, name: str, kind: LayerKind):
        def hook(module: nn.Module, inputs: tuple, z: object) -> None:
            now = self.current
            if now is None or not isinstance(z, torch.Tensor):
                return
            if name in now.calls:
                now.calls[name].calls += 1
                return
            fed = _first(inputs) is self._last
            record = LayerPass(z.detach().clone(), kind, fed_by_previous=fed)
            implicit = kind.activation(self.model, name)
            if implicit is not None:
                record.phi, record.phi_name = implicit
            weight = getattr(module, "weight", None)
            if isinstance(weight, torch.Tensor):
                record.weight_norm = torch.linalg.vector_norm(weight.detach(), dtype=F64)
                if self.keep_weights:
                    record.weight_before = weight.detach().clone()
            now.calls[name] = record
            now.order.append(name)
            record.in_graph = z.requires_grad
            if z.requires_grad:
                z.register_hook(_keeper(now.grads, now.backwards, name))
            self._track(z, name, "z")

        return hook

    def _block_hook(self, name: str):
        def hook(module: nn.Module, inputs: tuple, a: object) -> None:
            skip = getattr(module, "skip", False)  # a^l = a^{l-1} + alpha h^l: not h's
            if self.current is not None and isinstance(a, torch.Tensor) and not skip:
                self._track(a, name, "a")

        return hook

    def _track(self, t: torch.Tensor, name: str, stage: str) -> None:
        self._tails[id(t)] = (t, t._version, name, stage)
        self._last = t

    def _source(self, inputs: tuple) -> tuple[str, str] | None:
        """(layer, stage) when the first input is a tracked layer output, unchanged since (an
        in-place op, ``out += skip``, makes it another tensor), else None."""
        x = _first(inputs)
        entry = self._tails.get(id(x)) if x is not None else None
        if entry is None or entry[0] is not x or entry[1] != x._version:
            return None
        return entry[2], entry[3]

    def _before_inplace(self, module: nn.Module, inputs: tuple) -> None:
        """An in-place follower (nn.ReLU(inplace=True)) changes its input's version: where
        that input comes from, read before it runs."""
        if self.current is not None and getattr(module, "inplace", False):
            self._inplace[id(module)] = self._source(inputs)

    def _follower_hook(self, follower: str):
        def hook(module: nn.Module, inputs: tuple, out: object) -> None:
            now = self.current
            if now is None or not isinstance(out, torch.Tensor):
                return
            inplace = getattr(module, "inplace", False)
            source = self._inplace.pop(id(module), None) if inplace else self._source(inputs)
            if source is None:
                return
            name, stage = source
            record, role = now.calls[name], follower_role(module)
            if role == "norm" and stage == "z" and record.u is None:
                record.u = out.detach().clone()
            elif role == "activation" and stage != "a" and record.phi is None:
                record.a, record.phi = out.detach().clone(), module
                record.phi_name = activation_label(module)
            else:
                return
            now.followed.add(follower)
            self._track(out, name, "u" if role == "norm" else "a")

        return hook

    def _watch_parameters(self, first: Pass) -> None:
        """Hooks that take each layer's parameter-gradient norms when a backward pass first
        accumulates them (``torch.autograd.grad`` accumulates nothing)."""
        for name in first.order:
            module = self.layers[name][0]
            for attr in ("weight", "bias"):
                p = getattr(module, attr, None)
                if isinstance(p, nn.Parameter) and p.requires_grad:
                    take = _grad_norm(self.grad_norms, self.accumulating, (name, attr))
                    self._handles.append(p.register_post_accumulate_grad_hook(take))


def _first(inputs: tuple) -> torch.Tensor | None:
    return inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None


def _graph_task() -> int:
    """The id of the autograd graph task running now (-1 where torch does not tell)."""
    current = getattr(torch._C, "_current_graph_task_id", None)
    return current() if current is not None else -1


def _keeper(
    grads: dict[str, torch.Tensor], backwards: set[int], name: str
) -> Callable[[torch.Tensor], None]:
    """A tensor hook keeping dJ/dz^l (the first backward through z^l only) and noting
    which backward reached it."""

    def keep(grad: torch.Tensor) -> None:
        grads.setdefault(name, grad)
        backwards.add(_graph_task())

    return keep


def _grad_norm(
    norms: dict[tuple[str, str], torch.Tensor], accumulating: set[int], key: tuple[str, str]
) -> Callable[[torch.Tensor], None]:
    """A parameter hook taking ||dJ/dp|| as the backward leaves it (the first backward only)
    and noting that backward as one that accumulates."""

    def take(p: torch.Tensor) -> None:
        accumulating.add(_graph_task())
        if key not in norms and p.grad is not None:
            norms[key] = torch.linalg.vector_norm(p.grad, dtype=F64)

    return take
