"""Mean-field theory of deep networks at initialisation, framework-neutral (NumPy/SciPy).

For weights W_ij ~ N(0, sigma_w2 / fan_in) and biases b_i ~ N(0, sigma_b2), infinitely wide
(Poole et al. 2016; Schoenholz et al. 2017):

    length map       q^{l+1} = L(q^l) = sigma_w2 E[phi(u)^2] + sigma_b2,   u ~ N(0, q^l)
    gradient factor  chi(q)  = sigma_w2 E[phi'(u)^2]
                     ||delta^l||^2 / ||delta^{l+1}||^2 = chi(q^l)
    fixed point      q* = L(q*);   chi_1 = chi(q*)
    correlation map  c^{l+1} = C(c^l) = (sigma_w2 E[phi(u_1) phi(u_2)] + sigma_b2) / q*,
                     (u_1, u_2) Gaussian, variances q*, correlation c
    depth scales     xi_c = -1 / ln(sigma_w2 E[phi'(u_1) phi'(u_2)]) at (q*, c*),
                     xi_q = -1 / ln L'(q*),  L'(q) = sigma_w2 E[phi'(u)^2 + phi(u) phi''(u)]

chi_1 < 1 is the ordered phase (gradients vanish), chi_1 > 1 the chaotic one (they explode).

Exact where exactness is possible:

- **Kernels.** The four Gaussian expectations (E[phi^2], E[phi'^2], E[phi phi], E[phi' phi'])
  have closed forms for ``linear``, ``relu`` (the arc-cosine kernels of degree 1 and 0, Cho &
  Saul 2009) and ``erf`` (Williams 1997); :data:`EXACT` holds them. Other activations use
  Gauss-Hermite quadrature (a fine Simpson grid at large q), :func:`quadrature_kernel`.
- **Fixed points** are roots, solved by bracketing and Brent's method to a relative 4 ulp:
  q* is the first root of L(q) - q in the direction the iteration from q0 moves (the stable
  fixed point it would reach), never a capped iteration.
- **Criticality is analytic.** c = 1 is always a fixed point of C with slope C'(1) = chi_1.
  So where chi_1 <= 1, c* = 1 by construction and xi_c = -1 / ln chi_1 (infinite at
  chi_1 = 1); only in the chaotic phase is c* < 1 solved for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from depthlab.activations import ACTIVATIONS
from depthlab.registry import Registry

NODES = 120  # Gauss-Hermite nodes: exact to many digits for smooth integrands at moderate q
_X, _W = np.polynomial.hermite_e.hermegauss(NODES)
_W = _W / np.sqrt(2 * np.pi)  # weights of E over z ~ N(0, 1)
# For larger q, phi(sqrt(q) z) varies on a scale 1/sqrt(q) in z, finer than the Hermite
# nodes: a saturating phi' becomes a spike they miss (tanh's chi at q = 16: 5% off).
# There panelled Gauss-Legendre rules are used. Measured against erf's closed forms
# (relative error): one dimension below 1e-13 up to q = 1e8 (3e-11 at 1e12); pairs below
# 1e-12 up to q = 16, 1e-11 at 90, 5e-7 at 300, 4e-5 at 1000. Pairs of a phi with a kink
# (ReLU's slope) are good only to a few 1e-3: that is why ReLU has closed forms.
Q_HERMITE = 0.5


def _legendre(edges: np.ndarray, nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights for E over z ~ N(0, 1): Gauss-Legendre with ``nodes`` points on each
    panel between consecutive ``edges`` (0 first), mirrored to negative z. 0 is a panel edge,
    never a node, so a kink or step of phi at 0 (ReLU) is integrated as exactly as a smooth
    phi. Normalised: E[1] = 1 exactly (the mass past |z| = 8 is 1e-15, past 10 2e-23)."""
    x, w = np.polynomial.legendre.leggauss(nodes)
    half, mid = np.diff(edges) / 2, (edges[1:] + edges[:-1]) / 2
    z = (mid[:, None] + half[:, None] * x[None, :]).ravel()
    weights = (half[:, None] * w[None, :]).ravel() * np.exp(-0.5 * z**2)
    z, weights = np.r_[-z[::-1], z], np.r_[weights[::-1], weights]
    return z, weights / weights.sum()


# Past |u| = 8 the registered phi barely bend: tanh's phi'^2 keeps 4e-14 of its mass there
U_NONLINEAR = 8.0


def _line_rule(q: float) -> tuple[np.ndarray, np.ndarray]:
    """The rule for one dimension at the length q: 64 panels of 16 nodes on |u| = sqrt(q)
    |z| <= U_NONLINEAR, where phi bends, and 80 more out to |z| = 10, so the bend is
    resolved at any q."""
    inner = min(10.0, U_NONLINEAR / np.sqrt(q))
    edges = np.r_[np.linspace(0.0, inner, 65), np.linspace(inner, 10.0, 81)[1:]]
    return _legendre(np.unique(edges), 16)


# pairs on |z| <= 8 in equal panels: 8 of 12 nodes at Q_HERMITE < q <= Q_PAIR_MID, 20 of 16
# (13x the cost) at larger q
_PAIR_MID, _PAIR_MID_W = _legendre(np.linspace(0.0, 8.0, 9), 12)
_PAIR_FINE, _PAIR_FINE_W = _legendre(np.linspace(0.0, 8.0, 21), 16)
Q_PAIR_MID = 4.0
Q_INFINITE = 1e12  # a length that grows past this has no finite fixed point
Q_ZERO = 1e-12  # with L(0) = 0, a length shrinking below this reaches the fixed point q* = 0
ROOT_RTOL = 4 * np.finfo(float).eps  # Brent's method to 4 ulp
ROOT_XTOL = 1e-300  # (brentq needs a positive absolute tolerance: this one never binds)


@dataclass(frozen=True)
class Kernel:
    """The Gaussian expectations mean-field theory needs for one activation phi, with
    u ~ N(0, q) and (u_1, u_2) Gaussian with variances q and correlation c:

    - ``second_moment(q)`` = E[phi(u)^2], and ``second_moment_slope(q)`` its derivative in q,
      d/dq E[phi(u)^2] = E[phi'(u)^2 + phi(u) phi''(u)] (Stein's lemma);
    - ``slope_moment(q)`` = E[phi'(u)^2];
    - ``pair(q, c)`` = E[phi(u_1) phi(u_2)], ``slope_pair(q, c)`` = E[phi'(u_1) phi'(u_2)].
    """

    second_moment: Callable[[float], float]
    second_moment_slope: Callable[[float], float]
    slope_moment: Callable[[float], float]
    pair: Callable[[float, float], float]
    slope_pair: Callable[[float, float], float]


EXACT: Registry[Kernel] = Registry("exact kernel")


def _arc_angle(c: float) -> float:
    return float(np.arccos(np.clip(c, -1.0, 1.0)))


# ReLU: the arc-cosine kernels, theta = arccos c
EXACT.register("relu")(
    Kernel(
        second_moment=lambda q: q / 2,
        second_moment_slope=lambda q: 0.5,
        slope_moment=lambda q: 0.5,
        pair=lambda q, c: (
            q
            / (2 * np.pi)
            * (np.sin(_arc_angle(c)) + (np.pi - _arc_angle(c)) * np.cos(_arc_angle(c)))
        ),
        slope_pair=lambda q, c: (np.pi - _arc_angle(c)) / (2 * np.pi),
    )
)
# the identity
EXACT.register("linear")(
    Kernel(
        second_moment=lambda q: q,
        second_moment_slope=lambda q: 1.0,
        slope_moment=lambda q: 1.0,
        pair=lambda q, c: q * c,
        slope_pair=lambda q, c: 1.0,
    )
)
# erf: E[erf(u_1) erf(u_2)] = (2/pi) arcsin(2 q c / (1 + 2 q));  phi' = (2/sqrt(pi)) e^{-u^2},
# E[e^{-u_1^2 - u_2^2}] = det(I + 2 Sigma)^{-1/2} = ((1 + 2q)^2 - (2 q c)^2)^{-1/2}
EXACT.register("erf")(
    Kernel(
        second_moment=lambda q: 2 / np.pi * np.arcsin(2 * q / (1 + 2 * q)),
        second_moment_slope=lambda q: 4 / np.pi / ((1 + 2 * q) * np.sqrt(1 + 4 * q)),
        slope_moment=lambda q: 4 / np.pi / np.sqrt(1 + 4 * q),
        pair=lambda q, c: 2 / np.pi * np.arcsin(2 * q * np.clip(c, -1.0, 1.0) / (1 + 2 * q)),
        slope_pair=lambda q, c: (
            4 / np.pi / np.sqrt((1 + 2 * q) ** 2 - (2 * q * np.clip(c, -1.0, 1.0)) ** 2)
        ),
    )
)


def _rule(q: float, pair: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights for E over z ~ N(0, 1), chosen for the length q."""
    if q <= Q_HERMITE:
        return _X, _W
    if not pair:
        return _line_rule(q)
    return (_PAIR_MID, _PAIR_MID_W) if q <= Q_PAIR_MID else (_PAIR_FINE, _PAIR_FINE_W)


def gauss(f: Callable[[np.ndarray], np.ndarray], q: float) -> float:
    """E_z[f(sqrt(q) z)] for z ~ N(0, 1), by quadrature."""
    x, w = _rule(q)
    return float(np.sum(w * f(np.sqrt(q) * x)))


def gauss_pair(f: Callable, g: Callable, q: float, c: float) -> float:
    """E[f(u_1) g(u_2)] for (u_1, u_2) Gaussian with variances q and correlation c, by
    quadrature over u_1 = sqrt(q) z_1, u_2 = sqrt(q) (c z_1 + sqrt(1 - c^2) z_2)."""
    x, weights = _rule(q, pair=True)
    z1, z2 = np.meshgrid(x, x, indexing="ij")
    w = np.outer(weights, weights)
    u1 = np.sqrt(q) * z1
    u2 = np.sqrt(q) * (c * z1 + np.sqrt(max(0.0, 1 - c * c)) * z2)
    return float(np.sum(w * f(u1) * g(u2)))


# q* = 0 only where L(0) = 0, that is phi(0) = 0, so E[u phi phi'] / q has no cancellation there
Q_SLOPE_FLOOR = 1e-24


def quadrature_kernel(activation: str) -> Kernel:
    """The kernel of a registered activation by quadrature (any phi with its phi')."""
    act = ACTIVATIONS[activation]

    def moment_slope(q: float) -> float:
        q = max(q, Q_SLOPE_FLOOR)  # d/dq E[phi^2] = E[u phi(u) phi'(u)] / q
        return gauss(lambda u: u * act.phi(u) * act.dphi(u), q) / q

    return Kernel(
        second_moment=lambda q: gauss(lambda u: act.phi(u) ** 2, q),
        second_moment_slope=moment_slope,
        slope_moment=lambda q: gauss(lambda u: act.dphi(u) ** 2, q),
        pair=lambda q, c: gauss_pair(act.phi, act.phi, q, c),
        slope_pair=lambda q, c: gauss_pair(act.dphi, act.dphi, q, c),
    )


Activation = str | Kernel  # a registered activation's name, or a kernel given directly


def kernel(activation: Activation) -> Kernel:
    """The closed-form kernel where :data:`EXACT` has one, else quadrature; a Kernel passes
    through (so a test can run the quadrature path where a closed form exists)."""
    if isinstance(activation, Kernel):
        return activation
    if activation in EXACT:
        return EXACT[activation]
    return quadrature_kernel(activation)


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
