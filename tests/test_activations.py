"""Every registered activation: phi and phi' in NumPy agree with torch and its autograd."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from depthlab.activations import ACTIVATIONS

NAMES = ACTIVATIONS.names()
Z = np.concatenate([np.linspace(-12, 12, 2001), [0.0, -1e-8, 1e-8, -30.0, 30.0]])


@pytest.mark.parametrize("name", NAMES)
def test_numpy_phi_equals_torch(name: str) -> None:
    act = ACTIVATIONS[name]
    expected = act.torch(torch.tensor(Z, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(act.phi(Z), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_numpy_dphi_equals_autograd(name: str) -> None:
    act = ACTIVATIONS[name]
    z = torch.tensor(Z, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(act.torch(z).sum(), z)
    np.testing.assert_allclose(act.dphi(Z), grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_dphi_is_the_derivative_of_phi(name: str) -> None:
    """Central differences of the NumPy phi, away from kinks."""
    act = ACTIVATIONS[name]
    z = np.linspace(-6, 6, 1201)
    z = z[np.abs(z) > 1e-3]
    h = 1e-6
    numeric = (act.phi(z + h) - act.phi(z - h)) / (2 * h)
    np.testing.assert_allclose(act.dphi(z), numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", NAMES)
def test_saturation_flag_matches_phi_prime(name: str) -> None:
    act = ACTIVATIONS[name]
    tails = act.dphi(np.array([-20.0, 20.0]))
    assert act.saturates == bool(np.all(tails < 1e-6))


def test_known_values() -> None:
    assert ACTIVATIONS["sigmoid"].dphi(np.array(0.0)) == pytest.approx(0.25)
    assert ACTIVATIONS["tanh"].dphi(np.array(0.0)) == pytest.approx(1.0)
    assert ACTIVATIONS["relu"].dphi(np.array([-1.0, 0.0, 2.0])).tolist() == [0, 0, 1]
    assert ACTIVATIONS["gelu"].phi(np.array(1.0)) == pytest.approx(0.8413447460685429)
    # SELU's fixed point: E[phi(z)^2] = 1 for z ~ N(0, 1) (Klambauer et al. 2017).
    x, w = np.polynomial.hermite_e.hermegauss(101)
    second_moment = np.sum(w * ACTIVATIONS["selu"].phi(x) ** 2) / np.sqrt(2 * np.pi)
    assert second_moment == pytest.approx(1.0, abs=1e-3)


def test_required_entries_are_registered() -> None:
    required = {
        "sigmoid",
        "tanh",
        "relu",
        "leaky_relu",
        "elu",
        "selu",
        "gelu",
        "silu",
        "softplus",
        "linear",
    }
    assert required <= set(NAMES)
