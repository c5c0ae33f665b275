"""The Gaussian expectations of mean-field theory for one activation phi: the kernels.

With u ~ N(0, q) and (u_1, u_2) Gaussian with variances q and correlation c, a
:class:`Kernel` holds E[phi(u)^2] and its slope in q, E[phi'(u)^2], E[phi(u_1) phi(u_2)]
and E[phi'(u_1) phi'(u_2)]. Closed forms where they exist (:data:`EXACT`: ``linear``,
``relu`` by the arc-cosine kernels of degree 1 and 0, Cho & Saul 2009, and ``erf``,
Williams 1997); any other registered activation by quadrature (:func:`quadrature_kernel`):
Gauss-Hermite at small q, panelled Gauss-Legendre where phi bends faster than the Hermite
nodes resolve.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

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
