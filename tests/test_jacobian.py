"""Jacobian spectra: exact singular values, and dynamical isometry at depth 50."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from depthlab import theory
from depthlab.data import CLASSIFICATION
from depthlab.inits import INITS, Gaussian, Init, Orthogonal
from depthlab.model import MLP
from depthlab.probes import measure
from depthlab.probes.jacobian import isometry, jacobian_singular_values, spectrum_summary


def network(activation: str, init: Init, depth: int, width: int, inputs: int) -> MLP:
    model = MLP(inputs, 10, depth=depth, width=width, activation=activation)
    model.initialize_(init, [torch.Generator().manual_seed(0)])
    return model.double()


def test_singular_values_are_those_of_the_product_of_layer_jacobians() -> None:
    """J = D_{L-1} W_{L-1} ... D_1 W_1 with D_l = diag(phi'(z^l)), built by hand."""
    model = network("tanh", Gaussian(sigma_w2=1.5, sigma_b2=0.1), depth=4, width=12, inputs=7)
    x = torch.randn(3, 7, dtype=torch.float64)
    got = jacobian_singular_values(model, x)
    for i in range(3):
        a, jac = x[i], torch.eye(7, dtype=torch.float64)
        for l in range(1, 5):
            w, b = model.layer(l).linear.weight[0].detach(), model.layer(l).linear.bias[0].detach()
            z = w @ a + b
            jac = torch.diag(1 - torch.tanh(z) ** 2) @ w @ jac
            a = torch.tanh(z)
        torch.testing.assert_close(got[i], torch.linalg.svdvals(jac))


@pytest.mark.slow
def test_orthogonal_tanh_at_criticality_is_isometric_and_the_others_are_not() -> None:
    """Depth 50, width 400 (Pennington et al. 2017): orthogonal tanh at sigma_w2 = 1.05 on the
    critical line keeps var(s^2) below 1; Gaussian tanh and ReLU spread it to tens."""
    sigma_w2 = 1.05
    sigma_b2 = theory.critical_sigma_b2("tanh", sigma_w2)
    assert sigma_b2 == pytest.approx(2.01e-5, rel=0.01)
    q = theory.fixed_point("tanh", sigma_w2, sigma_b2)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 400, dtype=torch.float64, generator=g) * np.sqrt((q - sigma_b2) / sigma_w2)
    spread = {
        name: isometry(jacobian_singular_values(network(act, init, 50, 400, 400), x).numpy())
        for name, act, init in [
            ("orthogonal tanh", "tanh", Orthogonal(gain=sigma_w2**0.5, sigma_b2=sigma_b2)),
            ("gaussian tanh", "tanh", Gaussian(sigma_w2=sigma_w2, sigma_b2=sigma_b2)),
            ("relu", "relu", INITS["kaiming_normal"]()),
        ]
    }
    assert spread["orthogonal tanh"] < 1
    assert spread["gaussian tanh"] > 10 and spread["relu"] > 10


def test_the_probe_logs_the_spectrum_summary_at_layer_zero() -> None:
    model = network("tanh", Gaussian(), depth=3, width=8, inputs=5)
    x = torch.randn(6, 5, dtype=torch.float64)
    frame = measure(model, x, torch.randint(0, 10, (6,)), "squared", CLASSIFICATION, ["jacobian"])
    assert set(frame["layer"]) == {0}
    values = frame.set_index("metric")["value"]
    s = jacobian_singular_values(model, x[:4]).numpy().ravel()
    assert values["jacobian_sv_q050"] == pytest.approx(np.quantile(s, 0.5))
    assert values["jacobian_sv2_var"] == pytest.approx(np.var(s**2))
    assert set(spectrum_summary(torch.tensor(s))) == set(values.index)


def test_a_diverged_replica_gets_nan_and_leaves_the_others_exact() -> None:
    """Replicas share the pass: a NaN weight in replica 1 must give it NaN values and must
    not reach replica 0's Jacobian (not even as 0 * NaN through the shared input)."""
    pair = MLP(5, 10, depth=3, width=8, activation="tanh", replicas=2)
    pair.initialize_(Gaussian(), [torch.Generator().manual_seed(s) for s in (0, 1)])
    pair = pair.double()
    alone = network("tanh", Gaussian(), depth=3, width=8, inputs=5)
    with torch.no_grad():
        pair.layer(2).linear.weight[1, 0, 0] = torch.nan
    x = torch.randn(6, 5, dtype=torch.float64)
    frame = measure(pair, x, torch.randint(0, 10, (6,)), "squared", CLASSIFICATION, ["jacobian"])
    by_seed = frame.pivot(index="metric", columns="seed", values="value")
    assert by_seed[1].isna().all() and by_seed[0].notna().all()
    s = jacobian_singular_values(alone, x[:4]).numpy().ravel()
    assert by_seed.loc["jacobian_sv2_var", 0] == pytest.approx(np.var(s**2), rel=1e-12)
