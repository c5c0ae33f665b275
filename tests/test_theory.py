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


def test_reference_values_of_phenomena_md() -> None:
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
        "fixup": (2.0, 0.0),  # outside the branches (theory does not cover residual nets)
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
