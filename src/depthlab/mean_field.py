"""Mean-field maps of a deep network at initialisation, their fixed points, depth scales and
the order/chaos boundary (Poole et al. 2016; Schoenholz et al. 2017); the maths is stated in
``depthlab.theory``, the public import path of these names.

Fixed points are roots, solved by bracketing and Brent's method to a relative 4 ulp, never
a capped iteration; where chi_1 <= 1 the correlation fixed point is c* = 1 by construction.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import optimize

from depthlab.mean_field_kernels import Activation, kernel

Q_INFINITE = 1e12  # a length that grows past this has no finite fixed point
Q_ZERO = 1e-12  # with L(0) = 0, a length shrinking below this reaches the fixed point q* = 0
ROOT_RTOL = 4 * np.finfo(float).eps  # Brent's method to 4 ulp
ROOT_XTOL = 1e-300  # (brentq needs a positive absolute tolerance: this one never binds)


def second_moment(activation: Activation, q: float) -> float:
    """E[phi(u)^2], u ~ N(0, q)."""
    return float(kernel(activation).second_moment(q))


def chi(activation: Activation, sigma_w2: float, q: float) -> float:
    """sigma_w2 E[phi'(u)^2], u ~ N(0, q): the predicted ||delta^l||^2 / ||delta^{l+1}||^2."""
    return sigma_w2 * float(kernel(activation).slope_moment(q))


def length_map(activation: Activation, sigma_w2: float, sigma_b2: float, q: float) -> float:
    """q^{l+1} = L(q^l)."""
    return sigma_w2 * second_moment(activation, q) + sigma_b2


def lengths(
    activation: Activation, sigma_w2: float, sigma_b2: float, q1: float, layers: int
) -> np.ndarray:
    """q^1 .. q^layers, starting from the first layer's q^1."""
    q = [q1]
    for _ in range(layers - 1):
        q.append(length_map(activation, sigma_w2, sigma_b2, q[-1]))
    return np.array(q)


def input_length(sigma_w2: float, sigma_b2: float, mean_square_input: float = 1.0) -> float:
    """q^1 = sigma_w2 * mean_j x_j^2 + sigma_b2 (1 for standardised inputs)."""
    return sigma_w2 * mean_square_input + sigma_b2


def _root(f: Callable[[float], float], low: float, high: float) -> float:
    """The root of f in [low, high] (f changes sign there), by Brent's method to 4 ulp."""
    return float(optimize.brentq(f, low, high, xtol=ROOT_XTOL, rtol=ROOT_RTOL, maxiter=500))


def fixed_point(activation: Activation, sigma_w2: float, sigma_b2: float, q0: float = 1.0) -> float:
    """q*: the fixed point of the length map that iterating it from q0 reaches, as a root.

    L is increasing, so the iteration moves monotonically towards the first root of
    L(q) - q on the side where L(q0) - q0 points. That root is bracketed by doubling (or
    halving) q from q0 and solved to 4 ulp. inf when q passes Q_INFINITE (no finite fixed
    point); 0 when L(0) = 0 and q falls below Q_ZERO; q0 itself when L(q0) = q0 (every q is
    fixed: ReLU at sigma_w2 = 2 and linear at 1, both without bias)."""

    def gap(q: float) -> float:
        return length_map(activation, sigma_w2, sigma_b2, q) - q

    start = gap(q0)
    if start == 0:
        return float(q0)
    near, far = q0, q0
    if start > 0:
        while gap(far) > 0:
            near, far = far, 2 * far
            if far > Q_INFINITE:
                return float("inf")
    else:
        floor = Q_ZERO if length_map(activation, sigma_w2, sigma_b2, 0.0) == 0 else 0.0
        while gap(far) < 0:
            near, far = far, far / 2
            if far < floor:
                return 0.0
    return _root(gap, min(near, far), max(near, far))


def chi_1(activation: Activation, sigma_w2: float, sigma_b2: float) -> float:
    """chi at the fixed point q*: below 1 ordered, above 1 chaotic (inf without a finite q*)."""
    q = fixed_point(activation, sigma_w2, sigma_b2)
    if not np.isfinite(q):
        return float("inf")
    return chi(activation, sigma_w2, q)


def correlation_map(
    activation: Activation, sigma_w2: float, sigma_b2: float, q: float, c: float
) -> float:
    """c^{l+1} = C(c^l) at the length q (usually q*)."""
    return (sigma_w2 * float(kernel(activation).pair(q, c)) + sigma_b2) / q


def correlation_fixed_point(activation: Activation, sigma_w2: float, sigma_b2: float) -> float:
    """c*: the stable fixed point of the correlation map.

    C(1) = 1 with C'(1) = chi_1, so c* = 1 exactly where chi_1 <= 1. Where chi_1 > 1 it
    is the root of C(c) - c in [0, 1): C(0) >= 0 (c* = 0 where it is 0), and C(c) - c < 0
    just below 1, found by halving 1 - c (C is convex on [0, 1] for the usual phi, so the
    root is unique).
    NaN without a finite q*."""
    q = fixed_point(activation, sigma_w2, sigma_b2)
    if not np.isfinite(q):
        return float("nan")
    if chi(activation, sigma_w2, q) <= 1:
        return 1.0

    def gap(c: float) -> float:
        return correlation_map(activation, sigma_w2, sigma_b2, q, c) - c

    below = 0.5
    while gap(1 - below) >= 0:
        below /= 2
        if below < np.finfo(float).eps:
            return 1.0  # chi_1 so close to 1 that C(c) - c cannot be told from 0 below 1
    # C(0) = (sigma_w2 E[phi]^2 + sigma_b2) / q* >= 0; exactly 0 for odd phi without bias,
    # where quadrature may round it below 0
    return 0.0 if gap(0.0) <= 0 else _root(gap, 0.0, 1 - below)


def xi_c(activation: Activation, sigma_w2: float, sigma_b2: float) -> float:
    """Depth scale of correlations, -1 / ln(sigma_w2 E[phi'(u_1) phi'(u_2)]) at (q*, c*):
    -1 / ln chi_1 where c* = 1 (inf at chi_1 = 1); NaN without a finite q*."""
    q = fixed_point(activation, sigma_w2, sigma_b2)
    if not np.isfinite(q):
        return float("nan")
    c = correlation_fixed_point(activation, sigma_w2, sigma_b2)
    if c == 1.0:
        rate = chi(activation, sigma_w2, q)
    else:
        rate = sigma_w2 * float(kernel(activation).slope_pair(q, c))
    return _depth_scale(rate)


def _depth_scale(rate: float) -> float:
    """-1 / ln(rate): inf at rate >= 1 (no decay)."""
    return float("inf") if rate >= 1 else float(-1.0 / np.log(rate))


def xi_q(activation: Activation, sigma_w2: float, sigma_b2: float) -> float:
    """Depth scale of lengths, -1 / ln L'(q*) with L'(q) = chi(q) + sigma_w2 E[phi phi''];
    NaN without a finite q*."""
    q = fixed_point(activation, sigma_w2, sigma_b2)
    if not np.isfinite(q):
        return float("nan")
    return _depth_scale(sigma_w2 * float(kernel(activation).second_moment_slope(q)))


def critical_sigma_w2(
    activation: Activation, sigma_b2: float, low: float = 0.05, high: float = 200.0
) -> float:
    """The sigma_w2 at which chi_1 = 1 for this sigma_b2: the order/chaos boundary (2 for
    ReLU and 1 for linear nets, where chi_1 does not depend on sigma_b2).

    Without bias and with phi(0) = 0, q* = 0 is a fixed point that loses its stability at
    sigma_w2 phi'(0)^2 = 1, which is the boundary in closed form. (Above it chi_1 - 1 grows
    only quadratically in sigma_w2, so root finding on chi_1 would be good to 1e-8 only.)"""
    if activation == "relu":
        return 2.0
    if activation == "linear":
        return 1.0
    if sigma_b2 == 0 and second_moment(activation, 0.0) == 0:
        return 1.0 / float(kernel(activation).slope_moment(0.0))
    return _root(lambda s: chi_1(activation, s, sigma_b2) - 1.0, low, high)


def critical_sigma_b2(
    activation: Activation, sigma_w2: float, low: float = 1e-12, high: float = 10.0
) -> float:
    """The sigma_b2 at which chi_1 = 1 for this sigma_w2 (the critical line read the other
    way; e.g. tanh at sigma_w2 = 1.05 needs sigma_b2 = 2.01e-5, Pennington et al. 2017)."""
    return _root(lambda b: chi_1(activation, sigma_w2, b) - 1.0, low, high)


def phase_diagram(activation: Activation, sigma_w2: np.ndarray, sigma_b2: np.ndarray):
    """chi_1 and 6 xi_c over a (sigma_w2, sigma_b2) grid, as a tidy DataFrame with columns
    sigma_w2, sigma_b2, chi_1, xi_c, trainable_depth (= 6 xi_c, Schoenholz et al. 2017:
    signals survive through about 6 xi_c layers)."""
    import pandas as pd

    rows = []
    for b in np.asarray(sigma_b2, dtype=float):
        for w in np.asarray(sigma_w2, dtype=float):
            xi = xi_c(activation, w, b)
            rows.append(
                {
                    "sigma_w2": w,
                    "sigma_b2": b,
                    "chi_1": chi_1(activation, w, b),
                    "xi_c": xi,
                    "trainable_depth": 6 * xi,
                }
            )
    return pd.DataFrame(rows)
