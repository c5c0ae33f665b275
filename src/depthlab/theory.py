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

The kernels live in ``mean_field_kernels``, the maps, fixed points and depth scales in
``mean_field``, the predicted profiles in ``mean_field_profiles``; this module is the
public import path of them all (``from depthlab import theory``).
"""

from __future__ import annotations

from depthlab.mean_field import (
    Q_INFINITE,
    Q_ZERO,
    ROOT_RTOL,
    ROOT_XTOL,
    chi,
    chi_1,
    correlation_fixed_point,
    correlation_map,
    critical_sigma_b2,
    critical_sigma_w2,
    fixed_point,
    input_length,
    length_map,
    lengths,
    phase_diagram,
    second_moment,
    xi_c,
    xi_q,
)
from depthlab.mean_field_kernels import (
    EXACT,
    NODES,
    Q_HERMITE,
    Q_PAIR_MID,
    Q_SLOPE_FLOOR,
    U_NONLINEAR,
    Activation,
    Kernel,
    gauss,
    gauss_pair,
    kernel,
    quadrature_kernel,
)
from depthlab.mean_field_profiles import delta_profile, predicted_ratios, residual_growth

__all__ = [
    "EXACT",
    "NODES",
    "Q_HERMITE",
    "Q_INFINITE",
    "Q_PAIR_MID",
    "Q_SLOPE_FLOOR",
    "Q_ZERO",
    "ROOT_RTOL",
    "ROOT_XTOL",
    "U_NONLINEAR",
    "Activation",
    "Kernel",
    "chi",
    "chi_1",
    "correlation_fixed_point",
    "correlation_map",
    "critical_sigma_b2",
    "critical_sigma_w2",
    "delta_profile",
    "fixed_point",
    "gauss",
    "gauss_pair",
    "input_length",
    "kernel",
    "length_map",
    "lengths",
    "phase_diagram",
    "predicted_ratios",
    "quadrature_kernel",
    "residual_growth",
    "second_moment",
    "xi_c",
    "xi_q",
]
