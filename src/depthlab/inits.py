"""Registered initialisers: the ``init`` config group.

Each initialiser is a dataclass whose fields are its parameters (so ``init=gaussian
init.sigma_w2=1.5`` is checked by Hydra at composition) and which fills one layer in place:
a weight of shape (fan_out, fan_in) and a bias of shape (fan_out,). Each states the
variances it targets, ``weight_variance`` and ``bias_variance``; in mean-field notation
sigma_w^2 = fan_in * Var(W_ij) and sigma_b^2 = Var(b_i). Tests check these promises at
large width. Drawing uses the torch.nn.init functions with an explicit generator, so runs
are reproducible and replicas of one configuration draw independent weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch.nn import init as tinit

from depthlab.errors import ConfigError
from depthlab.registry import Registry


@dataclass
class Init:
    """Base of every initialiser; ``name`` is its option in the ``init`` group."""

    name: str = "init"
    distribution: ClassVar[str] = "normal"  # "normal", "uniform" or "orthogonal"

    def fill_(self, weight: torch.Tensor, bias: torch.Tensor, generator: torch.Generator) -> None:
        """Draw one layer's weight (fan_out, fan_in) and bias (fan_out,) in place."""
        raise NotImplementedError

    def weight_variance(self, fan_in: int, fan_out: int) -> float:
        """Var(W_ij) that the weights are drawn with."""
        raise NotImplementedError

    def bias_variance(self, fan_in: int) -> float:
        """Var(b_i) that the biases are drawn with."""
        raise NotImplementedError

    def check(self, key: str = "init") -> None:
        """Raise ConfigError for a rule of this option beyond the ranges of its numbers
        (``depthlab.limits`` holds those); ``key`` prefixes the field names."""

    def branch_gain(self, branches: int) -> float:
        """Factor on the weights of each residual branch (hidden layers 2..L-1 with
        ``residual=true``; ``branches`` of them), applied after drawing. 1: a plain init."""
        return 1.0

    # A learned alpha per residual branch (a^l = a^{l-1} + alpha h^l) starting at this value;
    # None: alpha stays the fixed ``branch_scale``.
    learned_branch_scale: ClassVar[float | None] = None

    def mean_field(self, fan_in: int, fan_out: int) -> tuple[float, float]:
        """(sigma_w2, sigma_b2) of mean-field theory for a layer of these fans:
        sigma_w2 = fan_in Var(W_ij), sigma_b2 = Var(b_i). For orthogonal weights this is the
        Gaussian with the same variance (the same chi; the spectrum differs)."""
        return fan_in * self.weight_variance(fan_in, fan_out), self.bias_variance(fan_in)


INITS: Registry[type[Init]] = Registry("init")


@dataclass
class _ZeroMeanBias(Init):
    """Mixin for initialisers whose bias is N(0, sigma_b2) (zero by default)."""

    sigma_b2: float = 0.0  # bias variance: b ~ N(0, sigma_b2)

    def _fill_bias_(self, bias: torch.Tensor, generator: torch.Generator) -> None:
        if self.sigma_b2 == 0:
            tinit.zeros_(bias)
        else:
            tinit.normal_(bias, 0.0, math.sqrt(self.sigma_b2), generator=generator)

    def bias_variance(self, fan_in: int) -> float:
        return self.sigma_b2


@INITS.register_option
@dataclass
class TorchDefault(Init):
    """PyTorch's own nn.Linear init: W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    Var(W) = 1/(3 fan_in), i.e. sigma_w^2 = 1/3; Var(b) = 1/(3 fan_in). This is the
    "standard" init U(+-1/sqrt(n)) that Glorot & Bengio (2010) showed failing for deep
    sigmoid and tanh nets. Drawn exactly as nn.Linear.reset_parameters does (same calls,
    same order), so a given generator state gives nn.Linear's weights bit for bit in the
    same dtype (depthlab draws in float64, then casts to the run's dtype).
    """

    name: str = "torch_default"
    distribution: ClassVar[str] = "uniform"

    def fill_(self, weight: torch.Tensor, bias: torch.Tensor, generator: torch.Generator) -> None:
        tinit.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
        bound = 1.0 / math.sqrt(weight.shape[1])
        tinit.uniform_(bias, -bound, bound, generator=generator)

    def weight_variance(self, fan_in: int, fan_out: int) -> float:
        return 1.0 / (3.0 * fan_in)

    def bias_variance(self, fan_in: int) -> float:
        return 1.0 / (3.0 * fan_in)


@INITS.register_option
@dataclass
class Gaussian(_ZeroMeanBias):
    """The mean-field parametrisation: W ~ N(0, sigma_w2 / fan_in), b ~ N(0, sigma_b2).

    Poole et al. (2016), Schoenholz et al. (2017): sigma_w2 and sigma_b2 place the network
    in the ordered (chi_1 < 1) or chaotic (chi_1 > 1) phase.
    """

    name: str = "gaussian"
    sigma_w2: float = 1.0  # weight variance times fan_in: W ~ N(0, sigma_w2 / fan_in)
    sigma_b2: float = 0.0

    def fill_(self, weight: torch.Tensor, bias: torch.Tensor, generator: torch.Generator) -> None:
        std = math.sqrt(self.sigma_w2 / weight.shape[1])
        tinit.normal_(weight, 0.0, std, generator=generator)
        self._fill_bias_(bias, generator)

    def weight_variance(self, fan_in: int, fan_out: int) -> float:
        return self.sigma_w2 / fan_in


@INITS.register_option
@dataclass
class SmallNormal(_ZeroMeanBias):
    """W ~ N(0, std^2) regardless of width, b ~ N(0, sigma_b2): the classic "0.01 * randn".

    Var(W) = std^2, so sigma_w^2 = std^2 fan_in: signals shrink by that factor per layer
    whenever std^2 fan_in < 1 (the folklore init that fails for deep nets).
    """

    name: str = "small_normal"
    std: float = 0.01  # weight standard deviation, whatever the width

    def fill_(self, weight: torch.Tensor, bias: torch.Tensor, generator: torch.Generator) -> None:
        tinit.normal_(weight, 0.0, self.std, generator=generator)
        self._fill_bias_(bias, generator)

    def weight_variance(self, fan_in: int, fan_out: int) -> float:
        return self.std**2


@dataclass
class _Xavier(_ZeroMeanBias):
    """Glorot & Bengio (2010) "normalised" init: Var(W) = gain^2 * 2 / (fan_in + fan_out)."""

    gain: float = 1.0  # scale of the weights: Var(W) = gain^2 x the init's base variance

    def weight_variance(self, fan_in: int, fan_out: int) -> float:
        return self.gain**2 * 2.0 / (fan_in + fan_out)


@INITS.register_option
@dataclass
class XavierUniform(_Xavier):
    """W ~ U(+-gain sqrt(6 / (fan_in + fan_out))), b ~ N(0, sigma_b2) (Glorot & Bengio 2010).

    Var(W) = gain^2 * 2 / (fan_in + fan_out); for square layers sigma_w^2 = gain^2.
    """

    name: str = "xavier_uniform"
    distribution: ClassVar[str] = "uniform"

    def fill_(self, weight: torch.Tensor, bias: torch.Tensor, generator: torch.Generator) -> None:
        tinit.xavier_uniform_(weight, gain=self.gain, generator=generator)
        self._fill_bias_(bias, generator)


@INITS.register_option
@dataclass
class XavierNormal(_Xavier):
    """W ~ N(0, gain^2 * 2 / (fan_in + fan_out)), b ~ N(0, sigma_b2) (Glorot & Bengio 2010).

    For square layers sigma_w^2 = gain^2.
    """

    name: str = "xavier_normal"

    def fill_(self, weight: torch.Tensor, bias: torch.Tensor, generator: torch.Generator) -> None:
        tinit.xavier_normal_(weight, gain=self.gain, generator=generator)
        self._fill_bias_(bias, generator)


KAIMING_NONLINEARITIES = ("relu", "leaky_relu", "tanh", "sigmoid", "linear", "selu")


@dataclass
class _Kaiming(_ZeroMeanBias):
    """He et al. (2015): Var(W) = gain^2 / fan (fan_in by default), gain from ``nonlinearity``.

    gain = sqrt(2) for relu (sigma_w^2 = 2, the critical value for ReLU),
    sqrt(2 / (1 + negative_slope^2)) for leaky_relu, 5/3 for tanh, 1 for linear and sigmoid,
    3/4 for selu: torch.nn.init.calculate_gain.
    """

    nonlinearity: str = "relu"  # the activation whose gain He's init uses (torch's calculate_gain)
    negative_slope: float = 0.0  # leaky_relu's slope for the gain
    mode: str = "fan_in"  # fan_in (forward variance) or fan_out (backward variance)

    def gain(self) -> float:
        return tinit.calculate_gain(self.nonlinearity, self.negative_slope)

    def weight_variance(self, fan_in: int, fan_out: int) -> float:
        return self.gain() ** 2 / (fan_in if self.mode == "fan_in" else fan_out)

    def check(self, key: str = "init") -> None:
        if self.nonlinearity not in KAIMING_NONLINEARITIES:
            raise ConfigError(f"{key}.nonlinearity", self.nonlinearity, KAIMING_NONLINEARITIES)
        if self.mode not in ("fan_in", "fan_out"):
            raise ConfigError(f"{key}.mode", self.mode, ("fan_in", "fan_out"))
        super().check(key)

    def _torch_args(self) -> dict:
        return {"a": self.negative_slope, "mode": self.mode, "nonlinearity": self.nonlinearity}


@INITS.register_option
@dataclass
class KaimingUniform(_Kaiming):
    """W ~ U(+-gain sqrt(3 / fan_in)), b ~ N(0, sigma_b2): Var(W) = gain^2 / fan_in (He 2015)."""

    name: str = "kaiming_uniform"
    distribution: ClassVar[str] = "uniform"

    def fill_(self, weight: torch.Tensor, bias: torch.Tensor, generator: torch.Generator) -> None:
        tinit.kaiming_uniform_(weight, **self._torch_args(), generator=generator)
        self._fill_bias_(bias, generator)


@INITS.register_option
@dataclass
class KaimingNormal(_Kaiming):
    """W ~ N(0, gain^2 / fan_in), b ~ N(0, sigma_b2) (He et al. 2015, "MSRA" init)."""

    name: str = "kaiming_normal"

    def fill_(self, weight: torch.Tensor, bias: torch.Tensor, generator: torch.Generator) -> None:
        tinit.kaiming_normal_(weight, **self._torch_args(), generator=generator)
        self._fill_bias_(bias, generator)


@INITS.register_option
@dataclass
class Orthogonal(_ZeroMeanBias):
    """W = gain * Q with Q a Haar-random (semi-)orthogonal matrix, b ~ N(0, sigma_b2).

    Saxe et al. (2014): all singular values of W equal ``gain``. For square layers
    W W^T = gain^2 I and Var(W_ij) = gain^2 / n, i.e. sigma_w^2 = gain^2. For rectangular
    layers the rows (fan_out <= fan_in) or columns are orthonormal, Var(W) = gain^2 / max(fans).
    """

    name: str = "orthogonal"
    distribution: ClassVar[str] = "orthogonal"
    gain: float = 1.0  # scale of the weights: Var(W) = gain^2 x the init's base variance

    def fill_(self, weight: torch.Tensor, bias: torch.Tensor, generator: torch.Generator) -> None:
        tinit.orthogonal_(weight, gain=self.gain, generator=generator)
        self._fill_bias_(bias, generator)

    def weight_variance(self, fan_in: int, fan_out: int) -> float:
        return self.gain**2 / max(fan_in, fan_out)


@INITS.register_option
@dataclass
class ScaledBranches(Gaussian):
    """Variance-preserving branch scaling: Gaussian N(0, sigma_w2 / fan_in) weights, with
    every residual branch's weights then scaled by B^{-1/2} for B branches.

    The scaling keeps the variance that each block's centred part adds of order 1/B, which
    bounds the stream for zero-mean branches (tanh). ReLU branches are not zero-mean: their
    outputs are non-negative and add up coherently, so the stream still grows, about like
    exp(sqrt(B / pi)) (measured: 212x over 99 branches). This is not Fixup (Zhang et al.
    2019), whose rule (the last layer of each branch at 0, the others scaled by
    L^{-1/(2m-2)}, scalar biases and a multiplier) needs branches of m >= 2 layers; for
    depthlab's one-layer branches it degenerates to zero branches (see skipinit), so this
    init was renamed from ``fixup``. On a plain network (no branches) it is the Gaussian init.
    """

    name: str = "scaled_branches"
    sigma_w2: float = 2.0

    def branch_gain(self, branches: int) -> float:
        return branches**-0.5 if branches > 0 else 1.0


@INITS.register_option
@dataclass
class SkipInit(Gaussian):
    """SkipInit (De & Smith 2020): Gaussian N(0, sigma_w2 / fan_in) weights everywhere, and
    every residual branch multiplied by a learned scalar alpha that starts at 0, so each block
    starts as the identity: a^l = a^{l-1} + alpha_l phi(z^l).

    The branch weights get no gradient until alpha moves (dJ/dW^l carries alpha_l), but
    dJ/dalpha_l = sum delta . phi(z^l) does not vanish, so alpha leaves 0 at the first step.
    (Zeroing the branch weights instead would leave ReLU branches dead for good: relu'(0) = 0.)
    ``branch_scale`` is not used. On a plain network it is the Gaussian init.
    """

    name: str = "skipinit"
    sigma_w2: float = 2.0
    learned_branch_scale: ClassVar[float | None] = 0.0
