"""Predicted backprop profiles at initialisation: the per-layer ratios of squared delta
norms of a plain MLP, and the per-block growth through a residual net."""

from __future__ import annotations

import numpy as np

from depthlab.mean_field import chi, lengths, second_moment
from depthlab.mean_field_kernels import Activation


def predicted_ratios(
    activation: Activation, sigma_w2: float, sigma_b2: float, q1: float, hidden_layers: int
) -> np.ndarray:
    """Predicted ||delta^l||^2 / ||delta^{l+1}||^2 = chi(q^l) for l = 1..hidden_layers,
    with each layer's own q^l (near criticality q converges slowly to q*)."""
    q = lengths(activation, sigma_w2, sigma_b2, q1, hidden_layers)
    return np.array([chi(activation, sigma_w2, ql) for ql in q])


def residual_growth(
    activation: Activation, sigma_w2: float, q: float, branch_scale: float
) -> float:
    """Per-block growth of ||delta||^2 through a^{l+1} = a^l + alpha F(a^l): about
    1 + alpha^2 chi (the backward map is I + alpha J_F)."""
    return 1.0 + branch_scale**2 * chi(activation, sigma_w2, q)


def delta_profile(
    activation: Activation, sigma_w2: list[float], sigma_b2: list[float], q1: float
) -> tuple[np.ndarray, np.ndarray]:
    """Predicted backprop profile of a plain MLP with per-layer (sigma_w2[l], sigma_b2[l]),
    l = 1..L (lists indexed from 0), and first-layer length q1.

    Returns ``ratios`` for l = 1..L-1, ||delta^l||^2 / ||delta^{l+1}||^2 = sigma_w2^{l+1}
    E[phi'(z^l)^2] with z^l ~ N(0, q^l), and ``log_norms`` for l = 1..L, the predicted
    ln ||delta^l|| - ln ||delta^L|| (anchored at 0 at the output layer).
    """
    layers = len(sigma_w2)
    q = [q1]
    for l in range(1, layers - 1):  # q^2 .. q^{L-1}
        q.append(sigma_w2[l] * second_moment(activation, q[-1]) + sigma_b2[l])
    ratios = np.array([chi(activation, sigma_w2[l + 1], q[l]) for l in range(layers - 1)])
    with np.errstate(divide="ignore"):  # a zero ratio (sigma_w2 = 0): delta^l = 0, ln = -inf
        log_norms = np.append(np.cumsum(0.5 * np.log(ratios)[::-1])[::-1], 0.0)
    return ratios, log_norms
