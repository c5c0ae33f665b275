"""depthlab.watch: equal to the built-in probes on depthlab's MLP, equal to slow per-sample
autograd on a 1-D CNN and a transformer block trained on MNIST-1D, and the step semantics."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import layer_values as values
from torch import nn

import depthlab
from depthlab.data import load_data
from depthlab.dataset_mnist1d import MNIST1D
from depthlab.inits import INITS
from depthlab.model import MLP
from depthlab.probes import Capture, compute, host_rows, probe_names, weights_before_update
from depthlab.records import read_metrics, read_run
from depthlab.zoo import ConvNet1d, TransformerNet

F64 = torch.float64
MLP_ONLY = ("jacobian", "curvature", "residual")


def by_step(folder) -> dict[tuple[str, int], np.ndarray]:
    """{(metric, step): values by layer} of a watched run's records."""
    rows = read_metrics(folder).sort_values(["metric", "step", "layer"])
    return {key: part["value"].to_numpy() for key, part in rows.groupby(["metric", "step"])}


@pytest.fixture(scope="module")
def mnist1d() -> tuple[torch.Tensor, torch.Tensor]:
    data = load_data(MNIST1D(num_samples=400), torch.device("cpu"), F64)
    return data.x_train[:24], data.y_train[:24]


@pytest.mark.parametrize(
    ("activation", "norm"), [("tanh", "none"), ("relu", "batchnorm"), ("sigmoid", "layernorm")]
)
def test_watch_equals_builtin_probes_on_depthlab_mlp(tmp_path, activation, norm) -> None:
    """Every step of a user loop over depthlab's MLP: watch's records (every probe both
    have) equal the built-in probes on the same pass, update ratios included."""
    model = MLP(10, 4, depth=5, width=12, activation=activation, norm=norm)
    model.initialize_(INITS["gaussian"](), [torch.Generator().manual_seed(3)])
    x = torch.randn(32, 10, generator=torch.Generator().manual_seed(1), dtype=F64)
    y = torch.arange(32) % 4
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2)
    names = [n for n in probe_names("full") if n not in MLP_ONLY]
    builtin = []
    with depthlab.watch(model, tmp_path, probes="full", every=1) as watch:
        for _ in range(4):
            with Capture(model) as capture:
                loss = F.cross_entropy(model(x)[0], y)
                optimizer.zero_grad()
                loss.backward()
            found = compute(model, capture.tensors, names)
            before = weights_before_update(model, names)
            optimizer.step()
            found.update(compute(model, capture.tensors, names, before=before))
            builtin.append(host_rows(found))
            watch.step(loss)
    assert json.loads(read_run(tmp_path)["layer_names"]) == [f"layers.{l}.linear" for l in range(6)]
    records = by_step(tmp_path)
    for step, expected in enumerate(builtin):
        for metric, row in expected.items():
            got = records[metric, step]
            np.testing.assert_allclose(got, row, rtol=1e-12, atol=1e-300, err_msg=metric)
    assert len(builtin[0]) > 150  # delta, grads, acts, units, quantiles, histogram, updates


def per_sample_deltas(model: nn.Module, x, y, names: list[str]) -> dict[str, np.ndarray]:
    """The slow oracle: for each sample alone, autograd's dloss_i/dz^l at each named module's
    output; sqrt(mean_i ||.||^2) per layer (the batch-mean loss's delta_i = B dJ/dz_i)."""
    modules = dict(model.named_modules())
    squares = dict.fromkeys(names, 0.0)
    for i in range(len(x)):
        outputs: dict[str, torch.Tensor] = {}
        handles = [
            modules[n].register_forward_hook(lambda m, a, z, n=n, o=outputs: o.setdefault(n, z))
            for n in names
        ]
        loss = F.cross_entropy(model(x[i : i + 1]), y[i : i + 1])
        for handle in handles:
            handle.remove()
        grads = torch.autograd.grad(loss, [outputs[n] for n in names])
        for n, g in zip(names, grads, strict=True):
            squares[n] += float(g.pow(2).sum())
    return {n: np.sqrt(s / len(x)) for n, s in squares.items()}


@pytest.mark.parametrize("make", [ConvNet1d, TransformerNet], ids=["cnn", "transformer"])
def test_delta_norms_equal_per_sample_autograd(tmp_path, mnist1d, make) -> None:
    """A 1-D CNN and a transformer block trained on MNIST-1D in float64: at the probed
    steps 0 and 2, delta_norm of every layer equals the per-sample autograd oracle to 1e-10,
    and weight_grad_norm equals ||dJ/dW||_F of the batch-mean loss."""
    x, y = mnist1d
    torch.manual_seed(0)
    model = make().to(F64)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear | nn.Conv1d)]
    oracle = {}
    with depthlab.watch(model, tmp_path, every=2, probes="minimal") as watch:
        for step in range(3):
            if step % 2 == 0:
                # on a copy: the watch reads the first pass with gradients after a step
                oracle[step] = per_sample_deltas(copy.deepcopy(model), x, y, names)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            if step == 0:
                weight_grads = [float(model.get_submodule(n).weight.grad.norm()) for n in names]
            optimizer.step()
            watch.step(loss)
    assert [w.name for w in watch.layers] == names
    for step, expected in oracle.items():
        got = values(tmp_path, "delta_norm", step)
        np.testing.assert_allclose(got, list(expected.values()), rtol=1e-10)
    np.testing.assert_allclose(values(tmp_path, "weight_grad_norm", 0), weight_grads, rtol=1e-12)
    assert len(names) == (6 if make is ConvNet1d else 8)


def test_step_semantics_and_schedule(tmp_path) -> None:
    """Step t's records are update t+1's pass: weight_norm at step 0 is the initial ||W||,
    at step 5 the norm after 5 updates; probed steps are 0, every 5th and the last (steps-1);
    batch_loss is logged at every step."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
    x, y = torch.randn(16, 5), torch.arange(16) % 3
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    norms = {}
    with depthlab.watch(model, tmp_path, every=5, steps=12) as watch:
        for step in range(12):
            norms[step] = float(model[0].weight.detach().norm())
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            watch.step(loss)
    rows = read_metrics(tmp_path)
    assert sorted(rows[rows.metric == "delta_norm"].step.unique()) == [0, 5, 10, 11]
    assert sorted(rows[rows.metric == "batch_loss"].step) == list(range(12))
    for step in (0, 5, 11):
        assert values(tmp_path, "weight_norm", step)[0] == pytest.approx(norms[step], rel=1e-6)
    run = read_run(tmp_path)
    assert (run["status"], run["steps_done"], run["num_layers"]) == ("ok", 12, 2)
