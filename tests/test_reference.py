"""The oracle: depthlab's backprop equals the textbook delta recursion written in NumPy.

The reference is checked on its own first (finite differences), then autograd's
dJ/dz^l, scaled to the per-sample delta, and the weight gradients of depthlab's models are
compared with it for every activation, both losses and several depths, in float64.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from depthlab.activations import ACTIVATIONS
from depthlab.config import Config
from depthlab.data import CLASSIFICATION, REGRESSION, Teacher, load_data
from depthlab.inits import Gaussian
from depthlab.losses import LOSSES
from depthlab.model import MLP
from depthlab.reference import ReferenceMLP
from depthlab.train import build_model, train

CPU = torch.device("cpu")


def model_and_data(
    activation: str,
    depth: int,
    output_activation: str = "none",
    sigma_w2: float = 1.5,
    batch: int = 12,
    seed: int = 0,
):
    model = MLP(
        6, 4, depth=depth, width=9, activation=activation, output_activation=output_activation
    )
    model.initialize_(
        Gaussian(sigma_w2=sigma_w2, sigma_b2=0.1), [torch.Generator().manual_seed(seed)]
    )
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, 6))
    labels = rng.integers(0, 4, batch)
    return model, x, labels


def autograd_deltas(model: MLP, x: np.ndarray, y: np.ndarray, loss: str, task: str):
    """Per-sample delta^l = B * dJ/dz^l (autograd on the batch mean), layer by layer."""
    zs = []

    def keep(module, inputs, output):
        output.retain_grad()
        zs.append(output)

    handles = [
        model.layer(l).linear.register_forward_hook(keep) for l in range(1, model.num_layers + 1)
    ]
    target = torch.tensor(y) if task == CLASSIFICATION else torch.tensor(y, dtype=torch.float64)
    LOSSES[loss](model(torch.tensor(x)), target, task).sum().backward()
    for h in handles:
        h.remove()
    batch = len(x)
    return [z.grad[0].T.numpy() * batch for z in zs]  # columns are samples


def test_reference_gradients_match_finite_differences() -> None:
    model, x, labels = model_and_data("tanh", depth=2)
    ref = ReferenceMLP.from_model(model)
    grads = ref.backprop(x, labels, "squared", CLASSIFICATION).weight_grads
    h = 1e-6
    for l, (i, j) in [(0, (2, 3)), (1, (4, 0)), (2, (1, 5))]:
        original = ref.weights[l][i, j]
        ref.weights[l][i, j] = original + h
        up = ref.backprop(x, labels, "squared", CLASSIFICATION).loss
        ref.weights[l][i, j] = original - h
        down = ref.backprop(x, labels, "squared", CLASSIFICATION).loss
        ref.weights[l][i, j] = original
        assert grads[l][i, j] == pytest.approx((up - down) / (2 * h), rel=1e-6, abs=1e-10)


@pytest.mark.parametrize("activation", ACTIVATIONS.names())
@pytest.mark.parametrize("depth", [1, 3, 10])
@pytest.mark.parametrize("loss", ["squared", "cross_entropy"])
def test_autograd_deltas_and_gradients_equal_the_derivation(
    activation: str, depth: int, loss: str
) -> None:
    model, x, labels = model_and_data(activation, depth)
    expected = ReferenceMLP.from_model(model).backprop(x, labels, loss, CLASSIFICATION)
    deltas = autograd_deltas(model, x, labels, loss, CLASSIFICATION)
    assert len(deltas) == depth + 1
    for l, (got, want) in enumerate(zip(deltas, expected.deltas, strict=True), start=1):
        np.testing.assert_allclose(
            got, want, rtol=1e-10, atol=1e-13 * np.abs(want).max(), err_msg=f"delta^{l}"
        )
        grad = model.layer(l).linear.weight.grad[0].numpy()
        np.testing.assert_allclose(
            grad,
            expected.weight_grads[l - 1],
            rtol=1e-10,
            atol=1e-13 * np.abs(expected.weight_grads[l - 1]).max(),
        )


def test_the_textbook_network_sigmoid_output_and_squared_loss() -> None:
    """The seed's own network: sigmoid everywhere, delta^L = (a^L - y) (.) sigma'(z^L)."""
    model, x, labels = model_and_data("sigmoid", depth=3, output_activation="sigmoid")
    expected = ReferenceMLP.from_model(model).backprop(x, labels, "squared", CLASSIFICATION)
    out = expected.activations[-1]
    onehot = np.eye(4)[labels].T
    np.testing.assert_allclose(expected.deltas[-1], (out - onehot) * out * (1 - out))
    deltas = autograd_deltas(model, x, labels, "squared", CLASSIFICATION)
    for got, want in zip(deltas, expected.deltas, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10)


def test_regression_targets() -> None:
    model, x, _ = model_and_data("relu", depth=2)
    y = np.random.default_rng(1).normal(size=(len(x), 4))
    expected = ReferenceMLP.from_model(model).backprop(x, y, "squared", REGRESSION)
    deltas = autograd_deltas(model, x, y, "squared", REGRESSION)
    for got, want in zip(deltas, expected.deltas, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize(
    ("activation", "loss", "output_activation"),
    [
        ("sigmoid", "squared", "sigmoid"),
        ("tanh", "cross_entropy", "none"),
        ("relu", "cross_entropy", "none"),
    ],
)
def test_k_steps_of_gradient_descent_give_the_same_weights(
    tmp_path: Path, activation: str, loss: str, output_activation: str
) -> None:
    """depthlab's SGD run (full batch) and the oracle's gradient descent end equal."""
    data = Teacher(in_dim=6, num_outputs=4, num_train=64, num_test=16)
    cfg = Config(
        depth=4,
        width=10,
        activation=activation,
        output_activation=output_activation,
        loss=loss,
        data=data,
        batch_size=64,
        steps=7,
        eval_every=7,
        lr=0.3,
        dtype="float64",
        init=Gaussian(sigma_w2=1.5, sigma_b2=0.05),
    )
    result = train(cfg, tmp_path)
    ds = load_data(cfg.data, CPU, torch.float64)
    ref = ReferenceMLP.from_model(build_model(cfg, ds, CPU, torch.float64))
    x, y = ds.x_train.numpy(), ds.y_train.numpy()
    for _ in range(cfg.steps):
        ref.gradient_descent_step(x, y, cfg.lr, loss, CLASSIFICATION)
    trained = ReferenceMLP.from_model(result.model)
    for l in range(cfg.depth + 1):
        np.testing.assert_allclose(trained.weights[l], ref.weights[l], rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(trained.biases[l], ref.biases[l], rtol=1e-10, atol=1e-13)


def test_residual_and_normalised_models_are_refused() -> None:
    for kwargs in ({"residual": True}, {"norm": "layernorm"}):
        model = MLP(3, 2, depth=2, width=4, activation="tanh", **kwargs)
        with pytest.raises(ValueError):
            ReferenceMLP.from_model(model)


def test_deep_sigmoid_deltas_vanish_geometrically_in_the_oracle() -> None:
    """With PyTorch's default init (sigma_w^2 = 1/3) every sigmoid layer divides ||delta||
    by a roughly constant factor: log ||delta^l|| is close to linear in l."""
    cfg = dataclasses.replace(Config(), depth=30, width=256)
    data = Teacher(in_dim=20, num_train=64, num_test=8)
    ds = load_data(data, CPU, torch.float64)
    ref = ReferenceMLP.from_model(build_model(cfg, ds, CPU, torch.float64))
    result = ref.backprop(ds.x_train.numpy(), ds.y_train.numpy(), "cross_entropy", CLASSIFICATION)
    log_norm = np.log([np.sqrt((d**2).sum(0).mean()) for d in result.deltas[:-1]])
    slope, intercept = np.polyfit(np.arange(1, 31), log_norm, 1)
    residual = log_norm - (slope * np.arange(1, 31) + intercept)
    assert slope > np.log(2)  # at least a factor 2 per layer, growing toward the output
    assert np.abs(residual).max() < 0.1 * slope * 30
