"""Registered activations phi, each with its derivative phi'.

Every entry carries three functions that must agree (a test checks them against each other
and against autograd):

- ``torch``: phi on tensors, used by the model;
- ``phi`` and ``dphi``: phi and phi' on NumPy arrays, used by the NumPy reference
  backprop and by mean-field theory (which integrates phi(z)^2 and phi'(z)^2 over Gaussians).

Where phi is not differentiable (ReLU at 0) phi' takes PyTorch's convention (0 at 0), so
the oracle and autograd agree bit for bit on the same inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import special

from depthlab.registry import Registry

ArrayFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Activation:
    """An activation phi with its derivative; ``saturates`` says whether phi' -> 0 for large |z|."""

    name: str
    torch: Callable[[torch.Tensor], torch.Tensor]
    phi: ArrayFn
    dphi: ArrayFn
    saturates: bool


ACTIVATIONS: Registry[Activation] = Registry("activation")

LEAKY_SLOPE = 0.01  # torch.nn.functional.leaky_relu's default negative slope
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
SQRT_HALF = np.sqrt(0.5)


def _add(name: str, torch_fn: Callable, phi: ArrayFn, dphi: ArrayFn, saturates: bool) -> None:
    ACTIVATIONS.register(name)(Activation(name, torch_fn, phi, dphi, saturates))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return special.expit(z)


def _gauss_cdf(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + special.erf(z * SQRT_HALF))


def _gauss_pdf(z: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi)


# phi(z) = 1 / (1 + e^-z);  phi' = phi (1 - phi) <= 1/4
_add("sigmoid", torch.sigmoid, _sigmoid, lambda z: _sigmoid(z) * (1.0 - _sigmoid(z)), True)
# phi = tanh z;  phi' = 1 - tanh^2 z
_add("tanh", torch.tanh, np.tanh, lambda z: 1.0 - np.tanh(z) ** 2, True)
# phi = erf z;  phi' = (2 / sqrt(pi)) e^{-z^2}: tanh-like, with closed-form mean-field kernels
_add(
    "erf",
    torch.erf,
    special.erf,
    lambda z: 2.0 / np.sqrt(np.pi) * np.exp(-np.square(z)),
    True,
)
# phi = max(0, z);  phi' = 1[z > 0]
_add("relu", torch.relu, lambda z: np.maximum(z, 0.0), lambda z: (z > 0).astype(float), False)
# phi = z for z > 0, s z otherwise (s = 0.01)
_add(
    "leaky_relu",
    lambda z: F.leaky_relu(z, LEAKY_SLOPE),
    lambda z: np.where(z > 0, z, LEAKY_SLOPE * z),
    lambda z: np.where(z > 0, 1.0, LEAKY_SLOPE),
    False,
)
# phi = z for z > 0, e^z - 1 otherwise;  phi' = 1 or e^z
_add(
    "elu",
    F.elu,
    lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0.0))),
    lambda z: np.where(z > 0, 1.0, np.exp(np.minimum(z, 0.0))),
    False,
)
# phi = scale * (z for z > 0, alpha (e^z - 1) otherwise)  (Klambauer et al. 2017)
_add(
    "selu",
    F.selu,
    lambda z: SELU_SCALE * np.where(z > 0, z, SELU_ALPHA * np.expm1(np.minimum(z, 0.0))),
    lambda z: SELU_SCALE * np.where(z > 0, 1.0, SELU_ALPHA * np.exp(np.minimum(z, 0.0))),
    False,
)
# phi = z Phi(z) (exact, erf form);  phi' = Phi(z) + z N(z)
_add(
    "gelu",
    F.gelu,
    lambda z: z * _gauss_cdf(z),
    lambda z: _gauss_cdf(z) + z * _gauss_pdf(z),
    False,
)
# phi = z sigmoid(z);  phi' = s (1 + z (1 - s))
_add(
    "silu",
    F.silu,
    lambda z: z * _sigmoid(z),
    lambda z: _sigmoid(z) * (1.0 + z * (1.0 - _sigmoid(z))),
    False,
)
# phi = log(1 + e^z);  phi' = sigmoid(z)
_add("softplus", F.softplus, lambda z: np.logaddexp(0.0, z), _sigmoid, False)
# phi = z;  phi' = 1
_add(
    "linear",
    lambda z: z,
    lambda z: np.asarray(z, dtype=float),
    lambda z: np.ones_like(z, dtype=float),
    False,
)
