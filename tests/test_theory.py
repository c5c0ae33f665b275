"""Mean-field theory against exact values, and against depthlab's own measurements."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import per_layer

from depthlab import theory
from depthlab.activations import ACTIVATIONS
from depthlab.data import CLASSIFICATION
from depthlab.inits import INITS, Gaussian
from depthlab.model import MLP
from depthlab.probes import measure


@pytest.mark.parametrize("sigma_w2", [0.5, 1.0, 2.0, 3.7])
def test_relu_chi_is_half_sigma_w2_and_quadrature_agrees(sigma_w2: float) -> None:
    assert theory.chi("relu", sigma_w2, 1.3) == sigma_w2 / 2
    dphi = ACTIVATIONS["relu"].dphi
    assert sigma_w2 * theory.gauss(lambda u: dphi(u) ** 2, 1.3) == pytest.approx(sigma_w2 / 2)
    phi = ACTIVATIONS["relu"].phi
    assert theory.gauss(lambda u: phi(u) ** 2, 1.3) == pytest.approx(1.3 / 2)


def test_tanh_critical_point_at_sigma_b2_005() -> None:
    assert theory.critical_sigma_w2("tanh", 0.05) == pytest.approx(1.761, abs=5e-4)


@pytest.mark.parametrize(
    ("sigma_b2", "sigma_w2"), [(0.01, 1.42), (0.10, 1.99), (0.5, 2.84), (1.0, 3.44)]
)
def test_tanh_order_chaos_boundary(sigma_b2: float, sigma_w2: float) -> None:
    assert theory.critical_sigma_w2("tanh", sigma_b2) == pytest.approx(sigma_w2, abs=5e-3)


def test_tanh_without_bias_is_critical_at_one() -> None:
    assert theory.chi_1("tanh", 0.99, 0.0) < 1 < theory.chi_1("tanh", 1.01, 0.0)


def test_reference_values_of_the_classic_settings() -> None:
    # PyTorch's tanh gain 5/3 without normalisation is chaotic: chi_1 about 1.21
    assert theory.chi_1("tanh", 25 / 9, 0.0) == pytest.approx(1.21, abs=0.005)
    # the logistic sigmoid under Xavier: about 0.06 per layer; critical only near 103
    assert theory.chi_1("sigmoid", 1.0, 0.0) == pytest.approx(0.056, abs=0.005)
    assert theory.critical_sigma_w2("sigmoid", 0.0, 1.0, 500.0) == pytest.approx(103, abs=1)
    # PyTorch's default init (sigma_w2 = 1/3) on tanh: a factor 3 in ||delta||^2 per layer
    assert theory.chi("tanh", 1 / 3, 1e-6) == pytest.approx(1 / 3, rel=1e-4)


def test_correlations_converge_to_one_in_order_and_below_one_in_chaos() -> None:
    assert theory.correlation_fixed_point("tanh", 1.2, 0.05) == pytest.approx(1.0, abs=1e-6)
    assert theory.correlation_fixed_point("tanh", 4.0, 0.05) < 0.9


def test_xi_c_diverges_at_the_critical_line() -> None:
    critical = theory.critical_sigma_w2("tanh", 0.05)
    near = theory.xi_c("tanh", critical * 0.999, 0.05)
    far = theory.xi_c("tanh", 1.0, 0.05)
    assert near > 100 > 10 > far > 0


def test_lengths_reach_the_fixed_point() -> None:
    q = theory.lengths("tanh", 1.5, 0.05, theory.input_length(1.5, 0.05), 200)
    assert q[-1] == pytest.approx(theory.fixed_point("tanh", 1.5, 0.05), rel=1e-8)
    q_relu = theory.fixed_point("relu", 1.0, 0.1)
    assert q_relu == pytest.approx(0.1 / (1 - 0.5), rel=1e-8)  # q* = sigma_b2 / (1 - sigma_w2/2)


def test_residual_growth() -> None:
    assert theory.residual_growth("relu", 2.0, 1.0, 0.5) == pytest.approx(1.25)


@pytest.mark.parametrize("name", INITS.names())
def test_every_init_states_its_mean_field_variances(name: str) -> None:
    init = INITS[name]()
    sigma_w2, sigma_b2 = init.mean_field(256, 256)
    expected = {
        "torch_default": (1 / 3, 1 / (3 * 256)),
        "gaussian": (1.0, 0.0),
        "small_normal": (0.01**2 * 256, 0.0),
        "xavier_uniform": (1.0, 0.0),
        "xavier_normal": (1.0, 0.0),
        "kaiming_uniform": (2.0, 0.0),
        "kaiming_normal": (2.0, 0.0),
        "orthogonal": (1.0, 0.0),
        "scaled_branches": (2.0, 0.0),  # outside the branches (theory does not cover residual nets)
        "skipinit": (2.0, 0.0),
    }[name]
    assert (sigma_w2, sigma_b2) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("activation", "sigma_w2", "tolerance"),
    [
        ("tanh", 1.0, 0.10),
        ("tanh", 1.5, 0.10),
        ("tanh", 2.5, 0.10),
        ("sigmoid", 1.0, 0.10),
        ("sigmoid", 4.0, 0.10),
        ("relu", 2.0, 0.15),
        ("relu", 1.2, 0.15),
    ],
)
def test_measured_ratios_match_the_prediction(
    activation: str, sigma_w2: float, tolerance: float
) -> None:
    """depthlab's own probes at step 0 (float64, width 512, depth 30) against chi(q^l)."""
    sigma_b2, depth = 0.05, 30
    model = MLP(512, 10, depth=depth, width=512, activation=activation)
    model.initialize_(
        Gaussian(sigma_w2=sigma_w2, sigma_b2=sigma_b2), [torch.Generator().manual_seed(0)]
    )
    model = model.double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 512, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (64,), generator=g)
    frame = measure(model, x, y, "cross_entropy", CLASSIFICATION, "minimal")
    norms = per_layer(frame, "delta_norm")
    measured = norms[: depth - 1] ** 2 / norms[1:depth] ** 2  # l = 1..29, hidden to hidden
    q1 = theory.input_length(sigma_w2, sigma_b2, float(x.pow(2).mean()))
    predicted = theory.predicted_ratios(activation, sigma_w2, sigma_b2, q1, depth - 1)
    assert np.median(measured / predicted) == pytest.approx(1.0, abs=tolerance)


# --- closed forms, fixed points as roots, and the critical line -------------------------

EPS = np.finfo(float).eps


@pytest.mark.parametrize("name", ["linear", "erf"])
@pytest.mark.parametrize("q", [1e-3, 0.3, 2.0, 16.0, 90.0])
def test_quadrature_agrees_with_the_smooth_closed_forms(name: str, q: float) -> None:
    """Two independent computations of the same Gaussian integrals: closed forms and the
    quadrature every other activation relies on (1-D and 2-D, c up to 1)."""
    exact, quadrature = theory.EXACT[name], theory.quadrature_kernel(name)
    for f in ("second_moment", "second_moment_slope", "slope_moment"):
        assert getattr(quadrature, f)(q) == pytest.approx(getattr(exact, f)(q), rel=1e-13)
    for c in (-0.9, 0.0, 0.5, 0.999, 1 - 1e-9, 1.0):
        for f in ("pair", "slope_pair"):
            want = getattr(exact, f)(q, c)
            assert getattr(quadrature, f)(q, c) == pytest.approx(want, rel=1e-9, abs=1e-15 * q)


@pytest.mark.parametrize("q", [1e4, 1e8, 1e12])
def test_one_dimensional_quadrature_resolves_any_length(q: float) -> None:
    """At large q, phi' of a saturating phi is a spike of width 1/sqrt(q) in z; the rule puts
    its nodes where phi bends, so chi stays exact (it used to reach 0 past the nodes)."""
    for name in ("erf", "relu"):
        exact, quadrature = theory.EXACT[name], theory.quadrature_kernel(name)
        for f in ("second_moment", "second_moment_slope", "slope_moment"):
            assert getattr(quadrature, f)(q) == pytest.approx(getattr(exact, f)(q), rel=1e-10)


@pytest.mark.parametrize("c", [-0.9, 0.0, 0.5, 0.99])
def test_relu_arc_cosine_kernels_against_monte_carlo(c: float) -> None:
    """ReLU's kernels against 4e6 Gaussian pairs (within 5 standard errors); quadrature
    cannot check them: it is only good to a few percent on the kink in two dimensions."""
    q, n = 1.7, 4_000_000
    rng = np.random.default_rng(0)
    z1, z2 = rng.standard_normal(n), rng.standard_normal(n)
    u1, u2 = np.sqrt(q) * z1, np.sqrt(q) * (c * z1 + np.sqrt(1 - c * c) * z2)
    relu = theory.EXACT["relu"]
    for exact, samples in (
        (relu.pair(q, c), np.maximum(u1, 0) * np.maximum(u2, 0)),
        (relu.slope_pair(q, c), (u1 > 0) & (u2 > 0)),
    ):
        assert abs(samples.mean() - exact) < 5 * samples.std() / np.sqrt(n)


@pytest.mark.parametrize(
    ("activation", "sigma_w2", "sigma_b2"),
    [
        ("tanh", 1.5, 0.05),
        ("tanh", 1.0005, 0.0),
        ("tanh", 25 / 9, 0.0),
        ("sigmoid", 103.0, 0.0),
        ("erf", 2.0, 0.05),
        ("elu", 1.5, 0.1),
        ("gelu", 1.2, 0.3),
    ],
)
def test_fixed_point_is_a_root_to_machine_precision(
    activation: str, sigma_w2: float, sigma_b2: float
) -> None:
    q = theory.fixed_point(activation, sigma_w2, sigma_b2)
    assert 0 < q < np.inf
    gap = theory.length_map(activation, sigma_w2, sigma_b2, q) - q
    assert abs(gap) <= 8 * EPS * max(q, sigma_b2)


@pytest.mark.parametrize(("sigma_w2", "sigma_b2"), [(1.0, 0.1), (1.9, 0.05), (1.999, 1e-3)])
def test_relu_and_linear_fixed_points_are_the_closed_forms(
    sigma_w2: float, sigma_b2: float
) -> None:
    assert theory.fixed_point("relu", sigma_w2, sigma_b2) == pytest.approx(
        sigma_b2 / (1 - sigma_w2 / 2), rel=4 * EPS
    )
    w = sigma_w2 / 2
    linear = theory.fixed_point("linear", w, sigma_b2)
    assert linear == pytest.approx(sigma_b2 / (1 - w), rel=8 * EPS)
    assert theory.xi_c("relu", sigma_w2, sigma_b2) == pytest.approx(-1 / np.log(sigma_w2 / 2))


@pytest.mark.parametrize(
    ("activation", "sigma_w2"), [("tanh", 1.0), ("relu", 2.0), ("linear", 1.0), ("erf", np.pi / 4)]
)
def test_exactly_critical_nets_have_infinite_xi_c_and_c_star_one(
    activation: str, sigma_w2: float
) -> None:
    """chi_1 = 1 without bias: xi_c = inf and c* = 1 by construction (an iteration capped at
    10,000 steps used to give tanh xi_c = 9,997 and c* = 0.184)."""
    assert theory.chi_1(activation, sigma_w2, 0.0) == pytest.approx(1.0, abs=2 * EPS)
    assert theory.correlation_fixed_point(activation, sigma_w2, 0.0) == 1.0
    assert theory.xi_c(activation, sigma_w2, 0.0) > 1e15


def test_critical_line_of_erf_without_bias_is_pi_over_4() -> None:
    # chi_1 = sigma_w2 phi'(0)^2 = sigma_w2 4 / pi at q* = 0
    assert theory.critical_sigma_w2("erf", 0.0) == pytest.approx(np.pi / 4, rel=2 * EPS)
    assert theory.critical_sigma_w2("tanh", 0.0) == 1.0
    assert theory.critical_sigma_w2("relu", 0.3) == 2.0
    # with bias the boundary is a root of chi_1 - 1: the closed-form kernel and quadrature agree
    quadrature = theory.quadrature_kernel("erf")
    assert theory.critical_sigma_w2(quadrature, 0.05) == pytest.approx(
        theory.critical_sigma_w2("erf", 0.05), rel=1e-12
    )


def test_ordered_side_near_criticality_is_minus_one_over_log_chi_1() -> None:
    """tanh at 1.76 / 0.05 (0.01% below the line): 6 xi_c = 29,470 as independent code
    found, not the 22,658 of an iteration stopped at c* = 0.99981."""
    assert theory.correlation_fixed_point("tanh", 1.76, 0.05) == 1.0
    assert 6 * theory.xi_c("tanh", 1.76, 0.05) == pytest.approx(29_470, rel=1e-4)
    for step in (1e-2, 1e-4, 1e-6):
        w = theory.critical_sigma_w2("erf", 0.05) * (1 - step)
        chi = theory.chi_1("erf", w, 0.05)
        assert theory.xi_c("erf", w, 0.05) == -1 / np.log(chi)
        assert theory.xi_c("erf", w, 0.05) * (1 - chi) == pytest.approx(1, abs=2 * (1 - chi))


@pytest.mark.parametrize("above", [1e-4, 1e-2, 0.3, 1.5])
def test_chaotic_side_quadrature_agrees_with_erf_closed_forms(above: float) -> None:
    """In the chaotic phase c* < 1 is a root; the quadrature path (what tanh uses) agrees
    with erf's closed forms in q*, c*, xi_c and xi_q, however near the line. (Near the line
    C(c) - c is small against quadrature's 1e-15, so agreement is 1e-10 / distance.)"""
    w, b = theory.critical_sigma_w2("erf", 0.05) * (1 + above), 0.05
    quadrature = theory.quadrature_kernel("erf")
    c = theory.correlation_fixed_point("erf", w, b)
    q = theory.fixed_point("erf", w, b)
    assert c < 1
    assert theory.correlation_map("erf", w, b, q, c) == pytest.approx(c, rel=8 * EPS, abs=8 * EPS)
    for f in (theory.fixed_point, theory.correlation_fixed_point, theory.xi_c, theory.xi_q):
        assert f(quadrature, w, b) == pytest.approx(f("erf", w, b), rel=max(1e-9, 1e-10 / above))


def test_xi_c_diverges_from_both_sides_of_the_line() -> None:
    critical = theory.critical_sigma_w2("tanh", 0.05)
    below, above = (theory.xi_c("tanh", critical * (1 + s), 0.05) for s in (-1e-6, 1e-6))
    assert below > 1e5 and above > 1e5
    assert theory.xi_c("tanh", critical * 1.01, 0.05) < above


def test_odd_phi_without_bias_decorrelates_fully_in_chaos() -> None:
    assert theory.correlation_fixed_point("tanh", 25 / 9, 0.0) == 0.0
    assert theory.correlation_fixed_point("erf", 2.0, 0.0) == 0.0


def test_xi_q_is_the_slope_of_the_length_map() -> None:
    """xi_q = -1 / ln L'(q*), with L' from Stein's lemma; against a central difference."""
    for activation, w, b in (("tanh", 1.5, 0.05), ("sigmoid", 4.0, 0.1), ("elu", 1.2, 0.2)):
        q, h = theory.fixed_point(activation, w, b), 1e-5
        slope = (
            theory.length_map(activation, w, b, q + h) - theory.length_map(activation, w, b, q - h)
        ) / (2 * h)
        assert theory.xi_q(activation, w, b) == pytest.approx(-1 / np.log(slope), rel=1e-7)


def test_without_a_finite_fixed_point_depth_scales_are_undefined() -> None:
    assert theory.fixed_point("relu", 2.5, 0.0) == np.inf
    assert theory.fixed_point("relu", 2.0, 0.1) == np.inf
    assert np.isnan(theory.xi_c("relu", 2.5, 0.0))
    assert np.isnan(theory.correlation_fixed_point("relu", 2.0, 0.1))
