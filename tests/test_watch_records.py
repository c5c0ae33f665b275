"""depthlab.watch's records as a user meets them: what is left out (one line), underflow
recorded as underflow, exact zeros as zeros, in-place activations, diverging and failing
loops, bad arguments, the storage contract (load_sweep, report) and the TensorBoard view."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import layer_values as at
from torch import nn

import depthlab
from depthlab import plots
from depthlab.errors import ConfigError
from depthlab.records import read_metrics, read_run
from depthlab.report import main as report_main
from depthlab.results import load_sweep


def train(model: nn.Module, folder, steps: int = 3, lr: float = 0.1, **options) -> depthlab.Watch:
    """A user's loop of ``steps`` SGD updates on one fixed batch, watched every step."""
    torch.manual_seed(0)
    dtype = next(model.parameters()).dtype
    first = next(m for m in model.modules() if isinstance(m, nn.Linear | nn.Embedding))
    if isinstance(first, nn.Embedding):
        x = torch.randint(0, first.num_embeddings, (16, 5))
    else:
        x = torch.randn(16, first.in_features, dtype=dtype)
    y = torch.arange(16) % 3
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    options.setdefault("every", 1)
    with depthlab.watch(model, folder, **options) as watch:
        for _ in range(steps):
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            watch.step(loss)
    return watch


class Mixed(nn.Module):
    """Layers watch knows, and parts it does not: an embedding, nn.MultiheadAttention (which
    uses its projections' weights without calling them), a pre-norm LayerNorm, a Linear
    called twice, a bare parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(7, 8)
        self.norm = nn.LayerNorm(8)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.shared = nn.Linear(8, 8)
        self.scale = nn.Parameter(torch.ones(8))
        self.hidden = nn.Linear(8, 8)
        self.act = nn.Tanh()
        self.head = nn.Linear(8, 3)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.embed(tokens))
        h = h + self.attn(h, h, h, need_weights=False)[0]
        h = self.shared(self.shared(h)) * self.scale
        return self.head(self.act(self.hidden(h)).mean(dim=1))


def test_what_is_left_out_is_one_line_and_in_the_run_row(tmp_path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="depthlab.watch"):
        watch = train(Mixed(), tmp_path)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith("watch: 6 module(s) not recorded in full:")
    for part in (
        "embed (Embedding: not a Linear or Conv layer",
        "norm (LayerNorm: a normalisation not right after",
        "attn (MultiheadAttention: own parameters in_proj_weight, in_proj_bias)",
        "attn.out_proj (NonDynamicallyQuantizableLinear: not called",
        "shared (Linear: called 2 times in one pass)",
        "Mixed (Mixed: own parameters scale)",
    ):
        assert part in lines[0], part
    assert [w.name for w in watch.layers] == ["hidden", "head"]
    row = read_run(tmp_path)
    assert json.loads(row["layer_names"]) == ["hidden", "head"]
    assert row["skipped_layers"] == "; ".join(watch.skipped)
    assert np.all(np.isfinite(at(tmp_path, "delta_norm")))
    assert at(tmp_path, "dphi_mean").size == 0  # "default" has no units probe


def test_named_layers_record_any_module(tmp_path) -> None:
    """layers=[...] records the named modules' outputs as z^l, whatever they are; a module
    without a weight has NaN weight norms."""
    model = nn.Sequential(
        nn.Linear(6, 8), nn.Sequential(nn.Tanh(), nn.Linear(8, 8)), nn.Linear(8, 3)
    )
    watch = train(model, tmp_path, layers=["1", "2"])
    assert [w.name for w in watch.layers] == ["1", "2"]
    assert np.isnan(at(tmp_path, "weight_norm")[0]) and at(tmp_path, "weight_norm")[1] > 0
    assert np.all(at(tmp_path, "delta_norm") > 0)
    with pytest.raises(ConfigError, match=r"layers=\['nope'\]: no such module in Sequential"):
        depthlab.watch(model, tmp_path / "x", layers=["nope"])


def deep_sigmoid(depth: int, dtype: torch.dtype) -> nn.Sequential:
    torch.manual_seed(2)
    layers = [m for _ in range(depth) for m in (nn.Linear(12, 12), nn.Sigmoid())]
    return nn.Sequential(nn.Linear(12, 12), *layers, nn.Linear(12, 3)).to(dtype)


def test_underflow_is_recorded_as_underflow_not_as_zero(tmp_path) -> None:
    """A deep sigmoid net in float32: where delta^l underflowed to 0 the record is NaN with
    delta_underflow = 1, and exactly there the same net in float64 measures a value below
    float32's range; where float32 is normal (above 1.2e-38) the two agree to 1e-4 (float32's
    subnormals below that keep fewer digits)."""
    train(deep_sigmoid(60, torch.float32), tmp_path / "f32", steps=1, lr=0.0)
    train(deep_sigmoid(60, torch.float64), tmp_path / "f64", steps=1, lr=0.0)
    lost = at(tmp_path / "f32", "delta_underflow").astype(bool)
    narrow, wide = at(tmp_path / "f32", "delta_norm"), at(tmp_path / "f64", "delta_norm")
    assert lost.sum() >= 3 and lost[0] and not lost[-1]
    assert np.all(np.isnan(narrow[lost])) and np.all(wide[lost] < 1e-37)
    normal = wide > 1e-36
    assert normal.sum() >= 10
    np.testing.assert_allclose(narrow[normal], wide[normal], rtol=1e-4)


def test_exact_zeros_stay_zeros(tmp_path) -> None:
    """A ReLU layer that never fires stops the gradient exactly: its delta and every delta
    below it (a chain) are recorded 0, not NaN, with no underflow flag; dead_frac says 1."""
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        model[2].bias.fill_(-100.0)
    train(model, tmp_path, steps=1, probes="full")
    np.testing.assert_array_equal(at(tmp_path, "delta_norm")[:2], [0.0, 0.0])
    assert at(tmp_path, "delta_norm")[2] > 0
    assert not at(tmp_path, "delta_underflow").any()
    assert at(tmp_path, "dead_frac")[1] == 1.0


def test_inplace_activation_reads_the_preactivation(tmp_path) -> None:
    """nn.ReLU(inplace=True) overwrites z^l: watch keeps a copy, so the records equal those of
    the same net with an ordinary ReLU."""
    records = []
    for inplace in (False, True):
        torch.manual_seed(4)
        model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(inplace=inplace), nn.Linear(8, 3))
        train(model, tmp_path / str(inplace), probes="full")
        records.append(read_metrics(tmp_path / str(inplace)).set_index(["step", "layer", "metric"]))
    np.testing.assert_allclose(records[1].value, records[0].value.loc[records[1].index], rtol=1e-6)
    assert at(tmp_path / "True", "preact_mean")[0] < 0.5 * at(tmp_path / "True", "act_mean")[0]


def test_diverging_loop_is_a_result_and_a_failing_one_is_recorded(tmp_path) -> None:
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    with torch.no_grad():
        model[2].weight.fill_(float("inf"))
    train(model, tmp_path / "diverged", steps=4)
    row = read_run(tmp_path / "diverged")
    assert (row["status"], row["diverged_step"], row["steps_done"]) == ("diverged", 0, 4)
    assert (row["nonfinite_step"], row["nonfinite_layer"]) == (0, 2)  # where the pass broke
    assert at(tmp_path / "diverged", "delta_nonfinite").any()

    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    broke = pytest.raises(RuntimeError, match="the user's loop broke")
    with broke, depthlab.watch(model, tmp_path / "failed") as watch:
        loss = model(torch.randn(4, 6)).sum()
        loss.backward()
        watch.step(loss)
        raise RuntimeError("the user's loop broke")
    row = read_run(tmp_path / "failed")
    assert row["status"] == "failed" and "the user's loop broke" in row["error"]
    assert len(at(tmp_path / "failed", "delta_norm")) == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"every": -1}, "every=-1: invalid value; allowed: an integer >= 0"),
        ({"steps": 0}, "steps=0: invalid value; allowed: an integer >= 1"),
        ({"log_points": 5}, "log_points=5: needs steps"),
        ({"probes": "jacobian"}, "probes=jacobian: needs depthlab's MLP"),
        ({"probes": ["delta", "nope"]}, "probes=nope: unknown probe"),
        ({"logger": "wandb"}, "logger=wandb"),
    ],
)
def test_bad_arguments_are_one_line(tmp_path, options, message) -> None:
    with pytest.raises(ConfigError) as error:
        depthlab.watch(nn.Linear(2, 2), tmp_path, **options)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not any(tmp_path.iterdir())  # nothing written


def test_watched_runs_read_as_a_sweep_and_report(tmp_path, capsys) -> None:
    for residual in (False, True):
        torch.manual_seed(0)
        blocks = [m for _ in range(3) for m in (nn.Linear(8, 8), nn.Tanh())]
        model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), *blocks, nn.Linear(8, 3))
        train(model, tmp_path / f"r{residual}", config={"residual": residual}, every=2)
    sweep = load_sweep(tmp_path)
    assert sweep.swept_keys() == ["residual"] and not sweep.problems
    frame = sweep.frame()
    deltas = frame[frame.metric == "delta_norm"]
    assert set(deltas[deltas.layer == 5].layers_from_output) == {0.0}
    assert set(deltas[deltas.layer == 1].layers_from_output) == {4.0}
    assert report_main([str(tmp_path)]) == 0
    page = (tmp_path / "report.html").read_text()
    assert 'alt="delta_profile"' in page and 'alt="loss_curves"' in page  # batch losses
    title = plots.delta_profile(sweep)._suptitle.get_text()
    assert title == "backprop error by layer at step 0"  # no theory for a user's model


def test_tensorboard_view_shows_the_records(tmp_path) -> None:
    """logger="tensorboard": the event files' batch_loss and per-layer delta_norm equal the
    parquet records (to float32), and each layer has act and delta histograms."""
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    train(model, tmp_path, steps=12, every=5, logger="tensorboard")
    reader = accumulator.EventAccumulator(
        str(tmp_path / "tensorboard"), size_guidance={"scalars": 0, "histograms": 0}
    ).Reload()
    losses = read_metrics(tmp_path).query("metric == 'batch_loss'").sort_values("step")
    shown = reader.Scalars("network/batch_loss")
    assert [e.step for e in shown] == list(losses.step)
    np.testing.assert_allclose([e.value for e in shown], losses.value, rtol=1e-6)
    for l, name in ((1, "0"), (2, "2")):
        events = reader.Scalars(f"delta_norm/l{l:03d}_{name}")
        assert [e.step for e in events] == [0, 5, 10]
        expected = [at(tmp_path, "delta_norm", s)[l - 1] for s in (0, 5, 10)]
        np.testing.assert_allclose([e.value for e in events], expected, rtol=1e-6)
        for kind in ("act", "delta"):
            assert len(reader.Histograms(f"{kind}/l{l:03d}_{name}")) == 3


def test_a_model_without_known_layers_records_its_loss_and_says_so(tmp_path, caplog) -> None:
    model = nn.Sequential(nn.Embedding(5, 3), nn.Flatten(), nn.Bilinear(15, 15, 3))

    class Wrapped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.net[1](self.net[0](x))
            return self.net[2](h, h)

    x, y = torch.randint(0, 5, (8, 5)), torch.arange(8) % 3
    wrapped = Wrapped()
    logged = caplog.at_level(logging.WARNING, logger="depthlab.watch")
    with logged, depthlab.watch(wrapped, tmp_path) as watch:
        for _ in range(3):
            loss = F.cross_entropy(wrapped(x), y)
            loss.backward()
            watch.step(loss)
    first = caplog.records[0].getMessage()
    assert "Wrapped called no Linear or Conv layer" in first and "layers=[...]" in first
    rows = read_metrics(tmp_path)
    assert set(rows.metric) == {"batch_loss"} and len(rows) == 3
    assert read_run(tmp_path)["num_layers"] == 0


def test_a_killed_loop_leaves_readable_records(tmp_path) -> None:
    """The process dies inside the loop (no __exit__): run.parquet says running and the
    records flushed at step 0 read back."""
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    watch = depthlab.watch(model, tmp_path, every=1).__enter__()
    for _ in range(3):
        loss = F.cross_entropy(model(torch.randn(16, 6)), torch.arange(16) % 3)
        model.zero_grad()
        loss.backward()
        watch.step(loss)
    watch.capture.disarm()  # what dying would leave behind, less the hooks
    assert read_run(tmp_path)["status"] == "running"
    assert len(at(tmp_path, "delta_norm", step=0)) == 2
