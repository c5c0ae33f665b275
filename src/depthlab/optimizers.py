"""Registered optimisers: the ``optimizer`` config group (the learning rate is top-level ``lr``).

Every run of a batched model may carry its own learning rate and hyperparameters: they are
tensors with the replica dimension, and the update is written for the whole batch at once
(:class:`BatchedOptimizer`): no host synchronisation, state allocated up front, so a step
can be captured in a CUDA graph. Each op acts on every element on its own, so a run's
numbers do not depend on which other runs share its batch.

The update rules are PyTorch's (``torch.optim.SGD`` with and without momentum, ``Adam``,
``AdamW``); ``Optimizer.torch_optimizer`` builds that equivalent, which the tests use as the
oracle.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from depthlab.errors import ConfigError
from depthlab.registry import Registry


@dataclass
class Optimizer:
    """Base of every optimiser option; ``name`` is its option in the ``optimizer`` group."""

    name: str = "optimizer"
    weight_decay: float = 0.0  # L2 penalty wd: the update adds wd W to the gradient

    def kind(self) -> tuple:
        """What selects the update formula: runs batched together must share it. The
        numeric hyperparameters (:meth:`hyperparameters`) may differ from run to run."""
        return (self.name,)

    def hyperparameters(self) -> dict[str, float]:
        """The per-run numbers of the update (the learning rate comes on top)."""
        return {"weight_decay": self.weight_decay}

    def batched(
        self,
        params: Sequence[torch.nn.Parameter],
        options: Sequence[Optimizer],
        lrs: Sequence[float],
    ) -> BatchedOptimizer:
        """The update of a batched model whose run r uses ``options[r]`` and ``lrs[r]``."""
        raise NotImplementedError

    def torch_optimizer(
        self, params: Iterable[torch.nn.Parameter], lr: float
    ) -> torch.optim.Optimizer:
        """PyTorch's own optimiser with these settings (the oracle of the batched update)."""
        raise NotImplementedError

    def check(self, key: str = "optimizer") -> None:
        """Raise ConfigError for a rule between fields (ranges: ``depthlab.limits``)."""


OPTIMIZERS: Registry[type[Optimizer]] = Registry("optimizer")


class BatchedOptimizer:
    """Updates R runs' parameters at once, run r with its own hyperparameters.

    ``params`` are the model's trainable parameters, each with the leading replica dimension
    R; ``hyper[name]`` lists the R runs' values of a hyperparameter. Two layouts compute the
    same elementwise formulas:

    - ``flat`` (the default on CUDA): construction moves the parameters into one (R, P)
      buffer (each parameter becomes a view of its slice); a step gathers the gradients
      into a second one and updates with a handful of ops, whatever the depth. Few kernels,
      and every buffer keeps its address, as a captured CUDA graph needs.
    - per parameter (the default on the CPU): each parameter is updated in place with the
      hyperparameters broadcast over its replica dimension. No gather: on a CPU each
      parameter's update stays in cache (a 32-run depth-30 update took 6.4 ms against
      14.4 ms for the flat buffer's, in one measurement on a 2-core CPU).

    State (momentum, Adam's moments) is allocated at construction. A gradient that autograd
    did not produce counts as zero.
    """

    state_names: tuple[str, ...] = ()

    def __init__(
        self,
        params: Sequence[torch.nn.Parameter],
        hyper: dict[str, Sequence[float]],
        flat: bool | None = None,
    ) -> None:
        self.params = list(params)
        first = self.params[0]
        runs, device, dtype = first.shape[0], first.device, first.dtype
        self.flat = device.type == "cuda" if flat is None else flat
        values = {name: torch.tensor(v, device=device, dtype=dtype) for name, v in hyper.items()}
        if self.flat:
            self.buffer = _flatten(self.params)
            self.grad = torch.zeros_like(self.buffer)
            targets = [self.buffer]
        else:
            targets = self.params
        # one block per tensor the update acts on: (tensor, its hyperparameters, its state)
        self.blocks = [
            (
                target,
                {n: v.view(runs, *[1] * (target.dim() - 1)) for n, v in values.items()},
                {n: torch.zeros_like(target) for n in self.state_names},
            )
            for target in targets
        ]
        decay = hyper.get("weight_decay", [0.0])
        self.decays = any(wd != 0 for wd in decay)  # decided on the host, never synced
        self.all_decay = all(wd != 0 for wd in decay)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the parameters' gradients (as ``torch.optim`` does)."""
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def state_tensors(self) -> list[torch.Tensor]:
        """Everything a step changes: parameters and optimiser state (to save and restore)."""
        return [t for target, _, state in self.blocks for t in (target, *state.values())]

    @torch.no_grad()
    def step(self) -> None:
        """One update of every run from the parameters' current gradients."""
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        if self.flat:
            runs = self.buffer.shape[0]
            torch.cat([g.reshape(runs, -1) for g in grads], dim=1, out=self.grad)
            grads = [self.grad]
        for (target, h, state), g in zip(self.blocks, grads, strict=True):
            self.update(target, g, h, state)

    def update(
        self, p: torch.Tensor, g: torch.Tensor, h: dict[str, torch.Tensor], state: dict
    ) -> None:
        """Update ``p`` in place from its gradient ``g`` (left unchanged), hyperparameters
        ``h`` broadcast over p's replica dimension, and its ``state``."""
        raise NotImplementedError

    def _coupled_decay(self, p: torch.Tensor, g: torch.Tensor, wd: torch.Tensor) -> torch.Tensor:
        """g + wd p, only for the runs with wd != 0 (so a run without weight decay computes
        exactly what it computes alone, even where p is not finite)."""
        if self.all_decay:
            return g.addcmul(p, wd)
        if self.decays:
            return torch.where(wd != 0, g.addcmul(p, wd), g)
        return g


def _flatten(params: list[torch.nn.Parameter]) -> torch.Tensor:
    """One (R, P) buffer holding ``params``, which become views of it."""
    runs = params[0].shape[0]
    sizes = [p[0].numel() for p in params]
    buffer = torch.empty(runs, sum(sizes), device=params[0].device, dtype=params[0].dtype)
    offset = 0
    with torch.no_grad():
        for p, size in zip(params, sizes, strict=True):
            view = buffer[:, offset : offset + size].view(p.shape)
            view.copy_(p)
            p.data = view  # the parameter now lives in the buffer
            offset += size
    return buffer


class BatchedSGD(BatchedOptimizer):
    """W <- W - lr (g + wd W), torch.optim.SGD without momentum."""

    def update(self, p, g, h, state) -> None:
        p.addcmul_(self._coupled_decay(p, g, h["weight_decay"]), h["lr"], value=-1)


class BatchedMomentum(BatchedOptimizer):
    """torch.optim.SGD with momentum mu (dampening 0): v <- mu v + g (v starts at g);
    W <- W - lr v, or W <- W - lr (g + mu v) with Nesterov."""

    state_names = ("momentum_buffer",)

    def __init__(self, params, hyper, nesterov: bool, flat: bool | None = None) -> None:
        super().__init__(params, hyper, flat)
        self.nesterov = nesterov

    def update(self, p, g, h, state) -> None:
        g = self._coupled_decay(p, g, h["weight_decay"])
        mu, v = h["momentum"], state["momentum_buffer"]
        v.mul_(mu).add_(g)  # v = 0 before the first step: then v = g exactly
        direction = g.addcmul(v, mu) if self.nesterov else v
        p.addcmul_(direction, h["lr"], value=-1)


class BatchedAdam(BatchedOptimizer):
    """Adam (torch.optim.Adam), or AdamW when ``decoupled``: with t the step count,
    m <- beta1 m + (1 - beta1) g; v <- beta2 v + (1 - beta2) g^2;
    W <- W - lr / (1 - beta1^t) m / (sqrt(v) / sqrt(1 - beta2^t) + eps).
    Coupled weight decay adds wd W to g first; decoupled multiplies W by 1 - lr wd."""

    state_names = ("exp_avg", "exp_avg_sq")

    def __init__(self, params, hyper, decoupled: bool, flat: bool | None = None) -> None:
        super().__init__(params, hyper, flat)
        self.decoupled = decoupled
        target = self.blocks[0][0]
        self.t = torch.zeros((), device=target.device, dtype=target.dtype)  # the step count

    def state_tensors(self) -> list[torch.Tensor]:
        return [*super().state_tensors(), self.t]

    @torch.no_grad()
    def step(self) -> None:
        self.t.add_(1)
        super().step()

    def update(self, p, g, h, state) -> None:
        m, v = state["exp_avg"], state["exp_avg_sq"]
        if self.decoupled:
            if self.decays:  # 1 - lr 0 = 1: exact for the runs without decay
                p.mul_(1 - h["lr"] * h["weight_decay"])
        else:
            g = self._coupled_decay(p, g, h["weight_decay"])
        m.lerp_(g, 1 - h["beta1"])
        v.mul_(h["beta2"]).addcmul_(g.mul(g), 1 - h["beta2"])
        step_size = h["lr"] / (1 - h["beta1"].pow(self.t))
        denom = (v.sqrt() / (1 - h["beta2"].pow(self.t)).sqrt()).add_(h["eps"])
        p.addcdiv_(m.mul(step_size), denom, value=-1)


def _hyper(options: Sequence[Optimizer], lrs: Sequence[float]) -> dict[str, list[float]]:
    """The per-run hyperparameters as lists, the learning rate included."""
    names = options[0].hyperparameters()
    hyper = {name: [o.hyperparameters()[name] for o in options] for name in names}
    return {"lr": list(lrs), **hyper}


def _same_kind(options: Sequence[Optimizer]) -> None:
    kinds = {o.kind() for o in options}
    if len(kinds) != 1:
        raise ValueError(f"runs batched together need one update formula, got {sorted(kinds)}")


@OPTIMIZERS.register_option
@dataclass
class SGD(Optimizer):
    """Plain mini-batch gradient descent, the classic derivation's: W <- W - lr (dJ/dW + wd W)."""

    name: str = "sgd"

    def batched(self, params, options, lrs, flat=None) -> BatchedOptimizer:
        _same_kind(options)
        return BatchedSGD(params, _hyper(options, lrs), flat)

    def torch_optimizer(self, params, lr) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=lr, weight_decay=self.weight_decay)


@OPTIMIZERS.register_option
@dataclass
class Momentum(Optimizer):
    """SGD with (heavy-ball or Nesterov) momentum, PyTorch's form: v <- mu v + g; W <- W - lr v."""

    name: str = "momentum"
    momentum: float = 0.9  # momentum mu: v <- mu v + g
    nesterov: bool = False  # Nesterov's form of momentum

    def kind(self) -> tuple:
        return (self.name, self.nesterov)

    def hyperparameters(self) -> dict[str, float]:
        return {**super().hyperparameters(), "momentum": self.momentum}

    def batched(self, params, options, lrs, flat=None) -> BatchedOptimizer:
        _same_kind(options)
        return BatchedMomentum(params, _hyper(options, lrs), self.nesterov, flat)

    def torch_optimizer(self, params, lr) -> torch.optim.Optimizer:
        return torch.optim.SGD(
            params,
            lr=lr,
            momentum=self.momentum,
            nesterov=self.nesterov,
            weight_decay=self.weight_decay,
        )

    def check(self, key: str = "optimizer") -> None:
        if self.nesterov and self.momentum == 0:
            raise ConfigError(
                f"{key}.nesterov",
                True,
                "nesterov=false when momentum=0",
                "Nesterov needs momentum > 0",
            )
        super().check(key)


@OPTIMIZERS.register_option
@dataclass
class Adam(Optimizer):
    """Adam (Kingma & Ba 2015); ``decoupled=true`` applies weight decay as AdamW does.

    Note: Adam rescales every parameter's gradient, so its loss curves hide vanishing
    gradients that delta^l still shows.
    """

    name: str = "adam"
    beta1: float = 0.9  # Adam's decay of the gradient's running mean
    beta2: float = 0.999  # Adam's decay of the squared gradient's running mean
    eps: float = 1e-8  # Adam's denominator floor
    decoupled: bool = False  # AdamW: weight decay applied to the weights, not the gradient

    def kind(self) -> tuple:
        return (self.name, self.decoupled)

    def hyperparameters(self) -> dict[str, float]:
        return {
            **super().hyperparameters(),
            "beta1": self.beta1,
            "beta2": self.beta2,
            "eps": self.eps,
        }

    def batched(self, params, options, lrs, flat=None) -> BatchedOptimizer:
        _same_kind(options)
        return BatchedAdam(params, _hyper(options, lrs), self.decoupled, flat)

    def torch_optimizer(self, params, lr) -> torch.optim.Optimizer:
        cls = torch.optim.AdamW if self.decoupled else torch.optim.Adam
        return cls(
            params,
            lr=lr,
            betas=(self.beta1, self.beta2),
            eps=self.eps,
            weight_decay=self.weight_decay,
        )
