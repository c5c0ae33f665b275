"""Mean-field theory of deep networks at initialisation, framework-neutral (NumPy/SciPy).

For weights W_ij ~ N(0, sigma_w2 / fan_in) and biases b_i ~ N(0, sigma_b2), infinitely wide
(Poole et al. 2016; Schoenholz et al. 2017; phenomena.md section 1):

    length map       q^{l+1} = sigma_w2 E_z[phi(sqrt(q^l) z)^2] + sigma_b2,   z ~ N(0, 1)
    gradient factor  chi(q)  = sigma_w2 E_z[phi'(sqrt(q) z)^2]
                     ||delta^l||^2 / ||delta^{l+1}||^2 = chi(q^l)
    fixed point      q* = length map (q*);   chi_1 = chi(q*)
    correlation map  c^{l+1} = (sigma_w2 E[phi(u_1) phi(u_2)] + sigma_b2) / q*,
                     u_1 = sqrt(q*) z_1,  u_2 = sqrt(q*) (c z_1 + sqrt(1 - c^2) z_2)
    depth scales     xi_c = -1 / ln(sigma_w2 E[phi'(u_1) phi'(u_2)]) at c*,
                     xi_q = -1 / ln(chi_1 + sigma_w2 E[phi''(u) phi(u)]) at q*

chi_1 < 1 is the ordered phase (gradients vanish), chi_1 > 1 the chaotic one (they explode).
Expectations use Gauss-Hermite quadrature (an even number of nodes, so none sits on a kink
at 0); ReLU and the identity have closed forms.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize

from depthlab.activations import ACTIVATIONS

NODES = 120  # Gauss-Hermite nodes: exact to many digits for smooth integrands at moderate q
_X, _W = np.polynomial.hermite_e.hermegauss(NODES)
_W = _W / np.sqrt(2 * np.pi)  # weights of E over z ~ N(0, 1)
# For large q, phi(sqrt(q) z) varies on a scale 1/sqrt(q) in z, finer than the Hermite
# nodes: a saturating phi' becomes a spike they miss. There a fine Simpson grid is used.
Q_HERMITE = 16.0
_GRID = np.linspace(-10.0, 10.0, 8001)
_GRID_W = (
    np.exp(-0.5 * _GRID**2)
    / np.sqrt(2 * np.pi)
    * (_GRID[1] - _GRID[0])
    / 3
    * np.r_[1, np.tile([4, 2], 3999), 4, 1]
)
_GRID2 = np.linspace(-8.0, 8.0, 641)
_GRID2_W = (
    np.exp(-0.5 * _GRID2**2)
    / np.sqrt(2 * np.pi)
    * (_GRID2[1] - _GRID2[0])
    / 3
    * np.r_[1, np.tile([4, 2], 319), 4, 1]
)
MAX_ITER = 10_000
Q_INFINITE = 1e12  # a length that grows past this has no finite fixed point


def _rule(q: float, pair: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights for E over z ~ N(0, 1), chosen for the length q."""
    if q <= Q_HERMITE:
        return _X, _W
    return (_GRID2, _GRID2_W) if pair else (_GRID, _GRID_W)


def gauss(f, q: float) -> float:
    """E_z[f(sqrt(q) z)] for z ~ N(0, 1)."""
    x, w = _rule(q)
    return float(np.sum(w * f(np.sqrt(q) * x)))


def second_moment(activation: str, q: float) -> float:
    """E[phi(u)^2], u ~ N(0, q) (closed forms for relu and linear)."""
    if activation == "relu":
        return q / 2
    if activation == "linear":
        return q
    phi = ACTIVATIONS[activation].phi
    return gauss(lambda u: phi(u) ** 2, q)


def chi(activation: str, sigma_w2: float, q: float) -> float:
    """sigma_w2 E[phi'(u)^2], u ~ N(0, q): the predicted ||delta^l||^2 / ||delta^{l+1}||^2."""
    if activation == "relu":
        return sigma_w2 / 2
    if activation == "linear":
        return sigma_w2
    dphi = ACTIVATIONS[activation].dphi
    return sigma_w2 * gauss(lambda u: dphi(u) ** 2, q)


def length_map(activation: str, sigma_w2: float, sigma_b2: float, q: float) -> float:
    """q^{l+1} from q^l."""
    return sigma_w2 * second_moment(activation, q) + sigma_b2


def lengths(
    activation: str, sigma_w2: float, sigma_b2: float, q1: float, layers: int
) -> np.ndarray:
    """q^1 .. q^layers, starting from the first layer's q^1."""
    q = [q1]
    for _ in range(layers - 1):
        q.append(length_map(activation, sigma_w2, sigma_b2, q[-1]))
    return np.array(q)


def input_length(sigma_w2: float, sigma_b2: float, mean_square_input: float = 1.0) -> float:
    """q^1 = sigma_w2 * mean_j x_j^2 + sigma_b2 (1 for standardised inputs)."""
    return sigma_w2 * mean_square_input + sigma_b2


def fixed_point(
    activation: str, sigma_w2: float, sigma_b2: float, q0: float = 1.0, tol: float = 1e-13
) -> float:
    """q*, by iterating the length map from q0 (inf when q grows without bound)."""
    return _iterate(lambda q: length_map(activation, sigma_w2, sigma_b2, q), q0, tol, relative=True)


def _iterate(step, x: float, tol: float, relative: bool = False) -> float:
    """x, step(x), step(step(x)), ... until it settles (inf when it grows without bound)."""
    for _ in range(MAX_ITER):
        nxt = step(x)
        if not np.isfinite(nxt) or nxt > Q_INFINITE:
            return float("inf")
        if abs(nxt - x) <= tol * (max(1.0, x) if relative else 1.0):
            return nxt
        x = nxt
    return x


def chi_1(activation: str, sigma_w2: float, sigma_b2: float) -> float:
    """chi at the fixed point q*: below 1 ordered, above 1 chaotic."""
    q = fixed_point(activation, sigma_w2, sigma_b2)
    if not np.isfinite(q):
        return float("inf")
    return chi(activation, sigma_w2, q)


def _pair(f, g, q: float, c: float) -> float:
    """E[f(u_1) g(u_2)] for (u_1, u_2) Gaussian with variances q and correlation c."""
    x, weights = _rule(q, pair=True)
    z1, z2 = np.meshgrid(x, x, indexing="ij")
    w = np.outer(weights, weights)
    u1 = np.sqrt(q) * z1
    u2 = np.sqrt(q) * (c * z1 + np.sqrt(max(0.0, 1 - c * c)) * z2)
    return float(np.sum(w * f(u1) * g(u2)))


def correlation_map(activation: str, sigma_w2: float, sigma_b2: float, q: float, c: float) -> float:
    """c^{l+1} from c^l at the length q (usually q*)."""
    phi = ACTIVATIONS[activation].phi
    return (sigma_w2 * _pair(phi, phi, q, c) + sigma_b2) / q


def correlation_fixed_point(
    activation: str, sigma_w2: float, sigma_b2: float, c0: float = 0.5
) -> float:
    """c*: the stable fixed point of the correlation map (1 in the ordered phase)."""
    q = fixed_point(activation, sigma_w2, sigma_b2)
    return _iterate(
        lambda c: min(1.0, correlation_map(activation, sigma_w2, sigma_b2, q, c)), c0, 1e-12
    )


def xi_c(activation: str, sigma_w2: float, sigma_b2: float) -> float:
    """Depth scale of correlations: -1 / ln(sigma_w2 E[phi'(u_1) phi'(u_2)]) at (q*, c*)."""
    q = fixed_point(activation, sigma_w2, sigma_b2)
    if not np.isfinite(q):
        return 0.0
    c = correlation_fixed_point(activation, sigma_w2, sigma_b2)
    dphi = ACTIVATIONS[activation].dphi
    rate = sigma_w2 * _pair(dphi, dphi, q, c)
    return float("inf") if rate >= 1 else -1.0 / np.log(rate)


def xi_q(activation: str, sigma_w2: float, sigma_b2: float, h: float = 1e-5) -> float:
    """Depth scale of lengths: -1 / ln(chi_1 + sigma_w2 E[phi''(u) phi(u)]) at q*."""
    q = fixed_point(activation, sigma_w2, sigma_b2)
    if not np.isfinite(q):
        return 0.0
    act = ACTIVATIONS[activation]

    def second_derivative(u: np.ndarray) -> np.ndarray:
        return (act.dphi(u + h) - act.dphi(u - h)) / (2 * h)

    rate = chi(activation, sigma_w2, q) + sigma_w2 * gauss(
        lambda u: second_derivative(u) * act.phi(u), q
    )
    return float("inf") if rate >= 1 else -1.0 / np.log(rate)


def critical_sigma_w2(
    activation: str, sigma_b2: float, low: float = 0.05, high: float = 200.0
) -> float:
    """The sigma_w2 at which chi_1 = 1 for this sigma_b2: the order/chaos boundary."""
    if activation == "relu":
        return 2.0
    return float(
        optimize.brentq(lambda s: chi_1(activation, s, sigma_b2) - 1.0, low, high, xtol=1e-10)
    )


def predicted_ratios(
    activation: str, sigma_w2: float, sigma_b2: float, q1: float, hidden_layers: int
) -> np.ndarray:
    """Predicted ||delta^l||^2 / ||delta^{l+1}||^2 = chi(q^l) for l = 1..hidden_layers,
    with each layer's own q^l (near criticality q converges slowly to q*)."""
    q = lengths(activation, sigma_w2, sigma_b2, q1, hidden_layers)
    return np.array([chi(activation, sigma_w2, ql) for ql in q])


def residual_growth(activation: str, sigma_w2: float, q: float, branch_scale: float) -> float:
    """Per-block growth of ||delta||^2 through a^{l+1} = a^l + alpha F(a^l): about
    1 + alpha^2 chi (the backward map is I + alpha J_F)."""
    return 1.0 + branch_scale**2 * chi(activation, sigma_w2, q)


def delta_profile(
    activation: str, sigma_w2: list[float], sigma_b2: list[float], q1: float
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
    log_norms = np.append(np.cumsum(0.5 * np.log(ratios)[::-1])[::-1], 0.0)
    return ratios, log_norms


def critical_sigma_b2(
    activation: str, sigma_w2: float, low: float = 1e-12, high: float = 10.0
) -> float:
    """The sigma_b2 at which chi_1 = 1 for this sigma_w2 (the critical line read the other
    way; e.g. tanh at sigma_w2 = 1.05 needs sigma_b2 = 2.01e-5, Pennington et al. 2017)."""
    return float(
        optimize.brentq(lambda b: chi_1(activation, sigma_w2, b) - 1.0, low, high, xtol=1e-14)
    )


def phase_diagram(activation: str, sigma_w2: np.ndarray, sigma_b2: np.ndarray):
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
