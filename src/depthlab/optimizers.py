"""Registered optimisers: the ``optimizer`` config group (the learning rate is top-level ``lr``).

All of them act elementwise, so a batched model with a leading replica dimension is
updated exactly as its replicas would be one by one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from depthlab.errors import ConfigError
from depthlab.registry import Registry


@dataclass
class Optimizer:
    """Base of every optimiser option; ``name`` is its option in the ``optimizer`` group."""

    name: str = "optimizer"
    weight_decay: float = 0.0

    def build(self, params: Iterable[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
        raise NotImplementedError

    def check(self, key: str = "optimizer") -> None:
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ConfigError(f"{key}.weight_decay", self.weight_decay, "a finite number >= 0")


OPTIMIZERS: Registry[type[Optimizer]] = Registry("optimizer")


@OPTIMIZERS.register_option
@dataclass
class SGD(Optimizer):
    """Plain mini-batch gradient descent, the classic derivation's: W <- W - lr (dJ/dW + wd W)."""

    name: str = "sgd"

    def build(self, params: Iterable[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=lr, weight_decay=self.weight_decay)


@OPTIMIZERS.register_option
@dataclass
class Momentum(Optimizer):
    """SGD with (heavy-ball or Nesterov) momentum, PyTorch's form: v <- mu v + g; W <- W - lr v."""

    name: str = "momentum"
    momentum: float = 0.9
    nesterov: bool = False

    def build(self, params: Iterable[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
        return torch.optim.SGD(
            params,
            lr=lr,
            momentum=self.momentum,
            nesterov=self.nesterov,
            weight_decay=self.weight_decay,
        )

    def check(self, key: str = "optimizer") -> None:
        if not (0 <= self.momentum < 1):
            raise ConfigError(f"{key}.momentum", self.momentum, "a number in [0, 1)")
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
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    decoupled: bool = False

    def build(self, params: Iterable[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
        cls = torch.optim.AdamW if self.decoupled else torch.optim.Adam
        return cls(
            params,
            lr=lr,
            betas=(self.beta1, self.beta2),
            eps=self.eps,
            weight_decay=self.weight_decay,
        )

    def check(self, key: str = "optimizer") -> None:
        for field in ("beta1", "beta2"):
            value = getattr(self, field)
            if not (0 <= value < 1):
                raise ConfigError(f"{key}.{field}", value, "a number in [0, 1)")
        if not (math.isfinite(self.eps) and self.eps > 0):
            raise ConfigError(f"{key}.eps", self.eps, "a finite number > 0")
        super().check(key)
