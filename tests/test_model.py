"""The MLP computes the derivation's forward pass, layer by layer, for every replica."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from depthlab.activations import ACTIVATIONS
from depthlab.inits import INITS, Gaussian
from depthlab.model import MLP

F64 = torch.float64


def make(replicas: int = 1, seeds: tuple[int, ...] = (0,), **kwargs) -> MLP:
    spec = {"depth": 3, "width": 8, "activation": "tanh", **kwargs}
    model = MLP(5, 4, replicas=replicas, **spec)
    model.initialize_(
        Gaussian(sigma_w2=1.5, sigma_b2=0.1), [torch.Generator().manual_seed(s) for s in seeds]
    )
    return model


def numpy_forward(model: MLP, x: np.ndarray, replica: int = 0) -> np.ndarray:
    """z^l = W^l a^{l-1} + b^l, a^l = phi(z^l) (+ a^{l-1} on residual layers), in NumPy."""
    a = x.T  # columns are samples, as in the derivation
    for l in range(1, model.num_layers + 1):
        layer = model.layer(l)
        w = layer.linear.weight[replica].detach().numpy()
        b = layer.linear.bias[replica].detach().numpy()[:, None]
        z = w @ a + b
        if l == model.num_layers:
            a = z
        else:
            h = ACTIVATIONS["tanh"].phi(z)
            a = a + layer.branch_scale * h if layer.skip else h
    return a.T


@pytest.mark.parametrize("residual", [False, True])
def test_forward_is_the_derivation(residual: bool) -> None:
    model = make(residual=residual, branch_scale=0.5)
    x = np.random.default_rng(0).normal(size=(7, 5))
    out = model(torch.tensor(x))
    assert out.shape == (1, 7, 4)
    np.testing.assert_allclose(out[0].detach().numpy(), numpy_forward(model, x), rtol=1e-12)


def test_layers_are_indexed_from_one_to_the_output() -> None:
    model = make()
    assert model.num_layers == 4 and model.widths == [5, 8, 8, 8, 4]
    assert [model.layer(l).index for l in range(1, 5)] == [1, 2, 3, 4]
    assert model.layer(1).linear.weight.shape == (1, 8, 5)
    assert model.layer(4).linear.weight.shape == (1, 4, 8)
    for bad in (0, 5):
        with pytest.raises(IndexError):
            model.layer(bad)


def test_skips_wrap_hidden_layers_two_onwards() -> None:
    model = make(residual=True)
    assert [model.layer(l).skip for l in range(1, 5)] == [False, True, True, False]


def test_replica_r_is_the_model_drawn_with_generator_r() -> None:
    batched = make(replicas=3, seeds=(4, 5, 6))
    x = torch.randn(9, 5, dtype=F64)
    out = batched(x)
    for r, seed in enumerate((4, 5, 6)):
        alone = make(seeds=(seed,))
        for l in range(1, 5):
            assert torch.equal(batched.layer(l).linear.weight[r], alone.layer(l).linear.weight[0])
        torch.testing.assert_close(out[r], alone(x)[0], rtol=1e-13, atol=1e-13)


def test_replica_gradients_are_independent() -> None:
    batched = make(replicas=2, seeds=(1, 2))
    x = torch.randn(6, 5, dtype=F64)
    batched(x).pow(2).sum(dim=(1, 2)).sum().backward()
    alone = make(seeds=(2,))
    alone(x).pow(2).sum().backward()
    for l in range(1, 5):
        torch.testing.assert_close(
            batched.layer(l).linear.weight.grad[1], alone.layer(l).linear.weight.grad[0]
        )


def normalised(norm: str, batch: int) -> torch.Tensor:
    """Layer 2's normalisation output (R=2, B=batch, width 8) for shifted, scaled inputs."""
    model = make(replicas=2, seeds=(0, 1), norm=norm, activation="linear")
    captured = {}
    model.layer(2).norm.register_forward_hook(lambda m, i, o: captured.update(out=o))
    model(torch.randn(batch, 5, dtype=F64) * 3 + 1)
    return captured["out"]


@pytest.mark.parametrize(("norm", "dim"), [("batchnorm", 1), ("layernorm", -1)])
def test_normalisation_axis(norm: str, dim: int) -> None:
    """Batchnorm: each unit over the batch (dim 1); layernorm: each sample over units."""
    out = normalised(norm, batch=64)
    mean, var = out.mean(dim), out.var(dim, unbiased=False)
    torch.testing.assert_close(mean, torch.zeros_like(mean), atol=1e-12, rtol=0)
    torch.testing.assert_close(var, torch.ones_like(var), atol=1e-3, rtol=0)


def test_precise_batchnorm_statistics() -> None:
    """calibrate_batchnorm_ sets the running averages to the exact statistics of the data,
    also over several chunks, and leaves the momentum as it was."""
    model = make(norm="batchnorm", activation="linear")
    x = torch.randn(300, 5, dtype=F64) * 2 + 3
    model.calibrate_batchnorm_(x, chunk=100)
    norm = model.layer(1).norm
    z = model.layer(1).linear(x.expand(1, 300, 5))[0]
    torch.testing.assert_close(norm.running_mean, z.mean(0), rtol=1e-12, atol=1e-12)
    # the mean of the chunks' variances: within a few percent of the whole set's
    torch.testing.assert_close(norm.running_var, z.var(0, unbiased=False), rtol=0.05, atol=0)
    model.calibrate_batchnorm_(x, chunk=1000)  # one chunk: exactly the whole set's
    torch.testing.assert_close(norm.running_var, z.var(0, unbiased=False), rtol=1e-12, atol=0)
    assert norm.momentum == 0.1 and model.training


def test_output_activation_applies_at_the_output_layer_only() -> None:
    model = make(output_activation="sigmoid")
    plain = make()
    x = torch.randn(4, 5, dtype=F64)
    torch.testing.assert_close(model(x), torch.sigmoid(plain(x)))


@pytest.mark.parametrize("name", INITS.names())
def test_every_init_fills_every_layer(name: str) -> None:
    model = MLP(5, 4, depth=2, width=6, activation="relu")
    for p in model.parameters():
        p.data.fill_(float("nan"))
    model.initialize_(INITS[name](), [torch.Generator().manual_seed(0)])
    assert all(torch.isfinite(p).all() for p in model.parameters())
