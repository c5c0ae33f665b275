"""Probes: equal to the textbook derivation, honest about float limits, and the physics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import per_layer

from depthlab.activations import ACTIVATIONS
from depthlab.data import CLASSIFICATION
from depthlab.errors import ConfigError
from depthlab.inits import INITS, Gaussian, Init
from depthlab.model import MLP
from depthlab.probes import PROBES, measure, presets, probe_names
from depthlab.probes.layer_stats import QUANTILES
from depthlab.reference import ReferenceMLP

F64 = torch.float64


def network(
    activation: str,
    depth: int,
    init: Init,
    width: int = 9,
    inputs: int = 6,
    outputs: int = 4,
    dtype: torch.dtype = F64,
    seed: int = 0,
) -> MLP:
    model = MLP(inputs, outputs, depth=depth, width=width, activation=activation)
    model.initialize_(init, [torch.Generator().manual_seed(seed)])
    return model.to(dtype)


def batch(n: int, d: int, k: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=F64), torch.randint(0, k, (n,), generator=g)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "gelu", "linear"])
@pytest.mark.parametrize("depth", [1, 4, 12])
@pytest.mark.parametrize("loss", ["squared", "cross_entropy"])
def test_logged_values_equal_the_oracle(activation: str, depth: int, loss: str) -> None:
    model = network(activation, depth, Gaussian(sigma_w2=1.5, sigma_b2=0.1))
    x, y = batch(16, 6)
    frame = measure(model, x, y, loss, CLASSIFICATION, "full")
    ref = ReferenceMLP.from_model(model).backprop(x.numpy(), y.numpy(), loss, CLASSIFICATION)
    act = ACTIVATIONS[activation]
    oracle = {
        "delta_norm": [np.sqrt((d**2).sum(0).mean()) for d in ref.deltas],
        "delta_mean_abs": [np.abs(d).mean() for d in ref.deltas],
        "weight_grad_norm": [np.linalg.norm(g) for g in ref.weight_grads],
        "bias_grad_norm": [np.linalg.norm(g) for g in ref.bias_grads],
        "preact_mean": [z.mean() for z in ref.zs],
        "preact_std": [z.std() for z in ref.zs],
        "act_mean": [a.mean() for a in ref.activations[1:]],
        "act_std": [a.std() for a in ref.activations[1:]],
        **{
            name: [np.quantile(a, level) for a in ref.activations[1:]]
            for name, level in QUANTILES.items()
        },
        "dphi_mean": [act.dphi(z).mean() for z in ref.zs[:-1]] + [1.0],  # linear output
    }
    for metric, expected in oracle.items():
        np.testing.assert_allclose(
            per_layer(frame, metric), expected, rtol=1e-10, atol=1e-15, err_msg=metric
        )
    assert not per_layer(frame, "delta_underflow").any()


def test_where_float32_underflows_delta_is_measured_on_a_float64_twin() -> None:
    """Sigmoid at depth 60 with PyTorch's init: true deltas near the input are far below
    float32's range, so training's own deltas there are 0. delta_underflow marks those
    layers, and delta_norm is the float64 value of the same weights and batch: that of the
    float64 network to float32's rounding of its weights, at every layer."""
    init = INITS["torch_default"]()
    x, y = batch(32, 20, k=4)
    frames = [
        measure(
            network("sigmoid", 60, init, width=64, inputs=20, dtype=dtype),
            x.to(dtype),
            y,
            "cross_entropy",
            CLASSIFICATION,
            "minimal",
        )
        for dtype in (torch.float32, F64)
    ]
    (norm32, norm64), (abs32, abs64) = (
        [per_layer(f, metric) for f in frames] for metric in ("delta_norm", "delta_mean_abs")
    )
    flag32, flag64 = (per_layer(f, "delta_underflow") for f in frames)
    assert flag32[:10].all() and not flag32[-10:].any() and not flag64.any()
    assert norm64[0] < 1e-45  # below float32's smallest subnormal
    np.testing.assert_allclose(norm32, norm64, rtol=1e-5)
    np.testing.assert_allclose(abs32, abs64, rtol=1e-5)


def test_where_float64_underflows_too_the_delta_is_nan_never_zero() -> None:
    """At depth 400 the sigmoid deltas near the input fall below float64's range as well:
    those layers are NaN with delta_underflow = 1, the layers above are measured, and the
    lowest measured value is far below float32's range (the float64 twin measured it)."""
    init = INITS["torch_default"]()
    x, y = batch(8, 20, k=4)
    model = network("sigmoid", 400, init, width=8, inputs=20, dtype=torch.float32)
    frame = measure(model, x.float(), y, "cross_entropy", CLASSIFICATION, ["delta"])
    norm, flag = per_layer(frame, "delta_norm"), per_layer(frame, "delta_underflow")
    lost = np.isnan(norm)
    assert lost[0] and not lost[-1] and not (norm == 0).any()
    assert flag[lost].all()  # every NaN is an underflow, in float32 and float64 alike
    assert np.nanmin(norm) < 1e-300 and flag.sum() > lost.sum()


def test_orthogonal_linear_network_preserves_delta_exactly() -> None:
    """Square orthogonal weights and phi = identity: delta^l = W^T delta^{l+1} keeps every
    per-sample norm, so ||delta^l|| is the same in every hidden layer."""
    model = network("linear", 20, INITS["orthogonal"](), width=32, inputs=32)
    x, y = batch(8, 32)
    norms = per_layer(
        measure(model, x, y, "cross_entropy", CLASSIFICATION, "minimal"), "delta_norm"
    )
    np.testing.assert_allclose(norms[:-1], norms[-2], rtol=1e-12)


@pytest.mark.parametrize(("init", "chi"), [("kaiming_normal", 1.0), ("xavier_normal", 0.5)])
def test_relu_gradient_ratio_is_mean_field_chi(init: str, chi: float) -> None:
    """ReLU, width 512, depth 30: ||delta^l||^2 / ||delta^{l+1}||^2 = sigma_w^2 / 2."""
    model = network("relu", 30, INITS[init](), width=512, inputs=512, outputs=10)
    x, y = batch(64, 512, k=10)
    norms = per_layer(
        measure(model, x, y, "cross_entropy", CLASSIFICATION, "minimal"), "delta_norm"
    )
    ratios = norms[1:29] ** 2 / norms[2:30] ** 2  # hidden layers, away from both ends
    assert np.median(ratios) == pytest.approx(chi, rel=0.1)


def test_sigmoid_with_torch_default_decays_geometrically() -> None:
    model = network("sigmoid", 30, INITS["torch_default"](), width=256, inputs=20)
    x, y = batch(64, 20)
    norms = per_layer(
        measure(model, x, y, "cross_entropy", CLASSIFICATION, "minimal"), "delta_norm"
    )[:-1]
    log_norm, layers = np.log(norms), np.arange(1, 31)
    slope, intercept = np.polyfit(layers, log_norm, 1)
    assert slope > np.log(2)
    assert np.abs(log_norm - (slope * layers + intercept)).max() < 0.1 * slope * 30


def test_replicas_are_measured_separately() -> None:
    model = MLP(6, 4, depth=3, width=9, activation="tanh", replicas=2)
    model.initialize_(Gaussian(), [torch.Generator().manual_seed(s) for s in (3, 4)])
    model = model.double()
    x, y = batch(10, 6)
    both = measure(model, x, y, "squared", CLASSIFICATION, "full")
    alone = measure(network("tanh", 3, Gaussian(), seed=4), x, y, "squared", CLASSIFICATION, "full")
    second = both[both["seed"] == 1].reset_index(drop=True)
    np.testing.assert_allclose(second["value"], alone["value"], rtol=1e-12)


def test_measuring_leaves_the_weights_alone() -> None:
    model = network("tanh", 3, Gaussian())
    before = [p.detach().clone() for p in model.parameters()]
    measure(model, *batch(10, 6), "squared", CLASSIFICATION, "full")
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_presets_and_names() -> None:
    for preset, names in presets().items():
        assert probe_names(preset) == list(names)
        assert all(name in PROBES for name in names)
    assert probe_names(["minimal", "acts", "delta"]) == ["delta", "grads", "acts"]
    with pytest.raises(ConfigError):
        probe_names(["delta", "nope"])


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_unit_probes_equal_their_definitions(activation: str) -> None:
    """saturation, dead_frac and dphi_mean against NumPy on the oracle's forward pass."""
    model = network(activation, 5, Gaussian(sigma_w2=6.0, sigma_b2=0.5), width=16)
    x, y = batch(24, 6)
    frame = measure(model, x, y, "squared", CLASSIFICATION, ["units"])
    ref = ReferenceMLP.from_model(model).backprop(x.numpy(), y.numpy(), "squared", CLASSIFICATION)
    act = ACTIVATIONS[activation]
    hidden_z, hidden_a = ref.zs[:-1], ref.activations[1:-1]
    dead = [np.mean(np.all(act.dphi(z) == 0, axis=1)) for z in hidden_z]
    np.testing.assert_array_equal(per_layer(frame, "dead_frac")[:-1], dead)
    saturation = per_layer(frame, "saturation")
    if activation == "relu":
        assert np.isnan(saturation).all()
    else:
        center, width = {"sigmoid": (0.5, 0.47), "tanh": (0.0, 0.97)}[activation]
        expected = [np.mean(np.abs(a - center) > width) for a in hidden_a]
        np.testing.assert_allclose(saturation[:-1], expected, rtol=1e-12)
        assert 0 < max(expected) < 1  # the test sees both kinds of units
    assert np.isnan(saturation[-1])  # a linear output layer has no saturation rule


def test_dead_relu_layer_and_saturated_sigmoids() -> None:
    x, y = batch(32, 6)
    relu = network("relu", 3, INITS["kaiming_normal"](), width=64)
    with torch.no_grad():
        relu.layer(1).linear.bias.fill_(-100.0)  # no input can make layer 1 fire
    dead = per_layer(measure(relu, x, y, "squared", CLASSIFICATION, ["units"]), "dead_frac")
    assert dead[0] == 1.0
    healthy = network("relu", 3, INITS["kaiming_normal"](), width=64)
    assert (
        per_layer(measure(healthy, x, y, "squared", CLASSIFICATION, ["units"]), "dead_frac")[0]
        == 0.0
    )
    hot = network("sigmoid", 4, Gaussian(sigma_w2=400.0), width=64)
    cold = network("sigmoid", 4, Gaussian(sigma_w2=0.01), width=64)
    hot_sat = per_layer(measure(hot, x, y, "squared", CLASSIFICATION, ["units"]), "saturation")
    cold_sat = per_layer(measure(cold, x, y, "squared", CLASSIFICATION, ["units"]), "saturation")
    assert hot_sat[1:4].min() > 0.7 and cold_sat[:4].max() == 0.0


def test_branch_ratio_is_branch_over_skip() -> None:
    model = MLP(6, 4, depth=4, width=9, activation="tanh", residual=True, branch_scale=0.3)
    model.initialize_(Gaussian(sigma_w2=2.0), [torch.Generator().manual_seed(0)])
    model = model.double()
    x, y = batch(12, 6)
    ratios = per_layer(
        measure(model, x, y, "squared", CLASSIFICATION, ["residual"]), "branch_ratio"
    )
    a, expected = x.unsqueeze(0), []
    with torch.no_grad():
        for l in range(1, 5):
            layer = model.layer(l)
            h = torch.tanh(layer.linear(a))
            expected.append(float((0.3 * h).norm() / a.norm()) if layer.skip else np.nan)
            a = a + 0.3 * h if layer.skip else h
    np.testing.assert_allclose(ratios[:4], expected, rtol=1e-12)
    assert np.isnan(ratios[0]) and np.isnan(ratios[4])  # layer 1 and the output: no skip


def test_nonfinite_flags_locate_the_break() -> None:
    model = network("tanh", 5, Gaussian(), width=8)
    with torch.no_grad():
        model.layer(3).linear.weight[0, 2, 1] = float("inf")
    x, y = batch(6, 6)
    frame = measure(model, x, y, "squared", CLASSIFICATION, ["preacts", "delta"])
    preact = per_layer(frame, "preact_nonfinite")
    # unit 2 of layer 3 is +-inf for every sample; tanh maps it to +-1, so the rest is finite
    assert preact.tolist() == [0, 0, 1, 0, 0, 0]
    # backward: phi'(inf) = 0 keeps delta^3 finite, then (W^3)^T has inf * 0 = NaN below it
    assert per_layer(frame, "delta_nonfinite").tolist() == [1, 1, 0, 0, 0, 0]


def test_delta_histogram_is_the_distribution_of_per_sample_deltas() -> None:
    from depthlab.probes.layer_stats import HIST_EDGES, hist_metric

    model = network("sigmoid", 6, INITS["torch_default"](), width=16)
    x, y = batch(20, 6)
    frame = measure(model, x, y, "cross_entropy", CLASSIFICATION, ["histogram"])
    ref = ReferenceMLP.from_model(model).backprop(
        x.numpy(), y.numpy(), "cross_entropy", CLASSIFICATION
    )
    names = [hist_metric(e) for e in HIST_EDGES[:-1]] + ["delta_hist_zero"]
    assert set(frame["metric"]) == set(names) and len(names) == 141
    for l, delta in enumerate(ref.deltas, start=1):
        values = np.abs(delta).ravel()
        log10 = np.log10(values[values > 0])
        expected, _ = np.histogram(np.clip(log10, -60, 9.99), bins=np.array(HIST_EDGES))
        rows = frame[frame["layer"] == l].set_index("metric")["value"]
        np.testing.assert_allclose(
            [rows[n] for n in names[:-1]], expected / values.size, atol=1e-12
        )
        assert rows["delta_hist_zero"] == np.mean(values == 0)


def test_a_captured_pass_is_freed_once_released() -> None:
    """No reference cycle through the gradient hooks: every probed pass kept alive would
    grow memory by a whole network's activations per probed step (it did: +2 GB)."""
    import weakref

    from depthlab.losses import LOSSES
    from depthlab.probes import Capture

    model = network("tanh", 3, Gaussian())
    x, y = batch(5, 6)
    with Capture(model) as capture:
        LOSSES["squared"](model(x), y, CLASSIFICATION).sum().backward()
    refs = [weakref.ref(t) for t in (*capture.tensors.preacts, *capture.tensors.grads)]
    assert all(r() is not None for r in refs)
    del capture
    assert all(r() is None for r in refs)


def test_zero_branch_scale_gives_a_zero_branch_ratio() -> None:
    """SkipInit-style alpha = 0: the branch contributes nothing, measured as 0, not NaN."""
    model = MLP(6, 4, depth=3, width=9, activation="tanh", residual=True, branch_scale=0.0)
    model.initialize_(Gaussian(), [torch.Generator().manual_seed(0)])
    ratios = per_layer(
        measure(model.double(), *batch(5, 6), "squared", CLASSIFICATION, ["residual", "units"]),
        "branch_ratio",
    )
    assert np.isnan(ratios[0]) and ratios[1:3].tolist() == [0.0, 0.0] and np.isnan(ratios[3])


def test_depth_100_sigmoid_is_measured_in_float64() -> None:
    """Around 1e-60 at the first layers: float64 measures it, equal to the oracle."""
    model = network("sigmoid", 100, INITS["torch_default"](), width=32, inputs=20)
    x, y = batch(16, 20)
    norms = per_layer(
        measure(model, x, y, "cross_entropy", CLASSIFICATION, "minimal"), "delta_norm"
    )
    ref = ReferenceMLP.from_model(model).backprop(
        x.numpy(), y.numpy(), "cross_entropy", CLASSIFICATION
    )
    expected = [np.sqrt((d**2).sum(0).mean()) for d in ref.deltas]
    assert norms[0] < 1e-40
    np.testing.assert_allclose(norms, expected, rtol=1e-10)


def test_an_exactly_zero_delta_is_measured_as_zero_not_underflow() -> None:
    """A layer of ReLUs that are all off stops the backward pass exactly: its delta and every
    delta below it are true zeros (found in review: they were flagged as underflow)."""
    model = network("relu", 4, INITS["kaiming_normal"](), width=16)
    with torch.no_grad():
        model.layer(3).linear.bias.fill_(-100.0)
    frame = measure(model, *batch(8, 6), "squared", CLASSIFICATION, ["delta"])
    norms = per_layer(frame, "delta_norm")
    assert norms[:3].tolist() == [0.0, 0.0, 0.0] and norms[3] == 0.0 and norms[4] > 0
    assert not per_layer(frame, "delta_underflow").any()


def test_a_zeroed_residual_branch_is_an_exact_zero_not_an_underflow() -> None:
    """SkipInit's alpha = 0 makes delta^l of a skip layer exactly 0, while the skip carries
    dJ/da on down to layer 1 (found in review: those zeros were flagged as underflow)."""
    model = MLP(6, 4, depth=4, width=8, activation="relu", residual=True, branch_scale=0.0)
    model.initialize_(INITS["kaiming_normal"](), [torch.Generator().manual_seed(0)], [0.0])
    frame = measure(model.double(), *batch(8, 6), "cross_entropy", CLASSIFICATION, ["delta"])
    norms = per_layer(frame, "delta_norm")
    assert norms[1:4].tolist() == [0.0, 0.0, 0.0] and norms[0] > 0 and norms[4] > 0
    assert not per_layer(frame, "delta_underflow").any()
