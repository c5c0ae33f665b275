"""The training loop: schedule, records, divergence, determinism, depth in miniature."""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import at_init, per_layer

import depthlab.loop as loop_module
from depthlab.config import Config
from depthlab.data import Quadratic, load_data
from depthlab.denormals import flush_denormal, flushing_denormals
from depthlab.errors import ConfigError
from depthlab.inits import Gaussian
from depthlab.optimizers import OPTIMIZERS
from depthlab.records import NETWORK_LAYER, read_metrics, read_run
from depthlab.train import build_model, train

CPU = torch.device("cpu")


def curve(run_dir: Path, metric: str) -> pd.Series:
    df = read_metrics(run_dir)
    rows = df[(df["metric"] == metric) & (df["layer"] == NETWORK_LAYER)]
    return rows.set_index("step")["value"]


def test_steps_zero_measures_the_network_at_init_only(tiny: Config, tmp_path: Path) -> None:
    result = train(dataclasses.replace(tiny, steps=0), tmp_path)
    df = read_metrics(tmp_path)
    assert set(df["step"]) == {0}
    network = df[df["layer"] == NETWORK_LAYER]
    assert set(network["metric"]) == {"loss", "accuracy", "test_loss", "test_accuracy"}
    per_layer = df[df["layer"] > NETWORK_LAYER]
    assert set(per_layer["layer"]) == {1, 2, 3}  # depth 2: L = 3
    assert {"delta_norm", "weight_grad_norm", "preact_std", "act_mean"} <= set(per_layer["metric"])
    assert result.status == "ok" and result.row["steps_done"] == 0
    assert result.row["final_loss"] == curve(tmp_path, "loss")[0]


def test_evaluation_schedule_and_batch_losses(tiny: Config, tmp_path: Path) -> None:
    result = train(dataclasses.replace(tiny, steps=25, eval_every=10), tmp_path)
    assert list(curve(tmp_path, "test_loss").index) == [0, 10, 20, 25]
    assert list(curve(tmp_path, "batch_loss").index) == list(range(25))
    row = read_run(tmp_path)
    assert row == result.row and row["status"] == "ok" and row["error"] is None
    assert row["steps_done"] == 25 and row["final_test_loss"] == curve(tmp_path, "test_loss")[25]
    assert row["depth"] == 2 and row["init"] == "torch_default" and row["data"] == "teacher"
    assert row["data.num_train"] == 256
    assert (row["loss"], row["loss_resolved"]) == ("auto", "cross_entropy")
    assert (row["device"], row["device_resolved"]) == ("auto", "cpu")
    assert row["wall_time_s"] > 0 and row["torch_version"] == torch.__version__


def test_same_config_and_seed_reproduce_the_records_bit_for_bit(
    tiny: Config, tmp_path: Path
) -> None:
    runs = [train(tiny, tmp_path / name) for name in ("a", "b")]
    other = train(dataclasses.replace(tiny, seed=1), tmp_path / "c")
    a, b, c = (read_metrics(r.run_dir).drop(columns="run_id") for r in (*runs, other))
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert not np.array_equal(a["value"], c["value"])
    for key in ("final_loss", "final_test_accuracy"):
        assert runs[0].row[key] == runs[1].row[key]


def test_divergence_is_a_result_not_a_crash(tiny: Config, tmp_path: Path) -> None:
    cfg = dataclasses.replace(
        tiny, activation="relu", init=Gaussian(sigma_w2=4.0), lr=100.0, depth=4, width=32, steps=200
    )
    result = train(cfg, tmp_path)
    assert result.status == "diverged"
    step = result.row["diverged_step"]
    assert 0 < step < 200 and result.row["steps_done"] < 200
    batch_loss = curve(tmp_path, "batch_loss")
    assert not math.isfinite(batch_loss[step])
    assert np.isfinite(batch_loss[batch_loss.index < step]).all()  # the first bad step
    assert math.isfinite(curve(tmp_path, "loss")[0])
    assert not math.isfinite(result.row["final_loss"])
    assert read_run(tmp_path)["status"] == "diverged"


def test_failure_is_recorded_then_raised(
    tiny: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    original = loop_module.evaluate

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 2:  # step 0 (train, test) passes, step 10 breaks
            raise RuntimeError("disk on fire")
        return original(*args, **kwargs)

    monkeypatch.setattr(loop_module, "evaluate", flaky)
    with pytest.raises(RuntimeError, match="disk on fire"):
        train(tiny, tmp_path)
    row = read_run(tmp_path)
    assert row["status"] == "failed" and "disk on fire" in row["error"]
    assert 0 in set(read_metrics(tmp_path)["step"])  # what was measured is kept


def test_invalid_config_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        train(Config(depth=0), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_full_batch_sgd_is_the_gradient_descent_update(tmp_path: Path) -> None:
    """One update on the full batch equals W - lr dJ/dW computed by autograd separately."""
    cfg = Config(
        depth=3,
        width=10,
        activation="relu",
        data=Quadratic(),
        batch_size=512,
        steps=1,
        lr=0.2,
        dtype="float64",
        init=Gaussian(sigma_w2=2.0, sigma_b2=0.01),
    )
    result = train(cfg, tmp_path)
    assert curve(tmp_path, "batch_loss")[0] == pytest.approx(curve(tmp_path, "loss")[0], rel=1e-14)
    data = load_data(cfg.data, CPU, torch.float64)
    model = build_model(cfg, data, CPU, torch.float64)
    loss = 0.5 * (model(data.x_train)[0] - data.y_train).pow(2).sum(-1).mean()
    loss.backward()
    for l in range(1, model.num_layers + 1):
        w = model.layer(l).linear.weight
        expected = w.detach() - 0.2 * w.grad
        torch.testing.assert_close(
            result.model.layer(l).linear.weight.detach(), expected, rtol=1e-12, atol=1e-14
        )


def test_regression_records_no_accuracy(tmp_path: Path) -> None:
    cfg = Config(
        depth=2, width=10, activation="relu", data=Quadratic(), steps=5, eval_every=5, batch_size=20
    )
    result = train(cfg, tmp_path)
    assert result.row["loss_resolved"] == "squared" and result.row["final_accuracy"] is None
    assert "accuracy" not in set(read_metrics(tmp_path)["metric"])


@pytest.mark.parametrize(("name", "lr"), [("sgd", 0.5), ("momentum", 0.05), ("adam", 0.01)])
def test_every_optimizer_reduces_the_loss(
    tiny: Config, tmp_path: Path, name: str, lr: float
) -> None:
    assert set(OPTIMIZERS.names()) == {"sgd", "momentum", "adam"}
    cfg = dataclasses.replace(
        tiny, activation="tanh", optimizer=OPTIMIZERS[name](), lr=lr, steps=100, eval_every=100
    )
    train(cfg, tmp_path)
    loss = curve(tmp_path, "loss")
    assert loss[100] < 0.8 * loss[0]


@pytest.mark.parametrize("norm", ["none", "batchnorm", "layernorm"])
@pytest.mark.parametrize("residual", [False, True])
def test_architectures_train(tiny: Config, tmp_path: Path, norm: str, residual: bool) -> None:
    cfg = dataclasses.replace(
        tiny,
        activation="relu",
        norm=norm,
        residual=residual,
        branch_scale=0.5,
        depth=4,
        lr=0.1,
        steps=60,
        eval_every=60,
    )
    result = train(cfg, tmp_path)
    assert result.status == "ok"
    assert curve(tmp_path, "loss")[60] < curve(tmp_path, "loss")[0]


def test_float64_runs_in_float64_from_the_same_draw(tiny: Config, tmp_path: Path) -> None:
    r64 = train(dataclasses.replace(tiny, dtype="float64", steps=0), tmp_path / "64")
    r32 = train(dataclasses.replace(tiny, steps=0), tmp_path / "32")
    w64, w32 = (r.model.layer(1).linear.weight for r in (r64, r32))
    assert w64.dtype == torch.float64 and w32.dtype == torch.float32
    torch.testing.assert_close(w64.float(), w32)


def test_flush_denormal_is_restored_and_what_was_in_effect_recorded(
    tiny: Config, tmp_path: Path
) -> None:
    before = flushing_denormals()
    with flush_denormal(True):
        assert flushing_denormals()
    assert flushing_denormals() == before
    on = train(dataclasses.replace(tiny, flush_denormal=True), tmp_path / "on")
    assert flushing_denormals() == before
    # in this process the worker threads started earlier: at least this thread flushes
    assert on.row["flush_denormal"] is True and on.row["denormals_flushed"] > 0
    if not before:  # this thread does not flush; worker threads born during "on" may
        off = train(dataclasses.replace(tiny, flush_denormal=False), tmp_path / "off")
        assert off.row["flush_denormal"] is False and off.row["denormals_flushed"] < 1


def test_batchnorm_is_evaluated_with_the_training_sets_statistics(
    tiny: Config, tmp_path: Path
) -> None:
    """At step 0 the running averages are placeholders; the recorded loss must be that of the
    normalised network (batch statistics over the whole training set), not of the bare one."""
    cfg = dataclasses.replace(
        tiny,
        activation="relu",
        norm="batchnorm",
        depth=6,
        init=Gaussian(sigma_w2=4.0),
        steps=0,
        dtype="float64",
    )
    train(cfg, tmp_path)
    data = load_data(cfg.data, CPU, torch.float64)
    model = build_model(cfg, data, CPU, torch.float64)  # train mode: batch statistics
    with torch.no_grad():
        expected = torch.nn.functional.cross_entropy(model(data.x_train)[0], data.y_train)
    assert curve(tmp_path, "loss")[0] == pytest.approx(expected.item(), rel=1e-9)


def test_vanishing_gradients_in_miniature(tiny: Config, tmp_path: Path) -> None:
    """The seed's classic setting (sigmoid, PyTorch's default init, SGD): a shallow net learns,
    a deep one barely moves, and its first layer moves orders of magnitude less than its last."""
    moved = {}
    for depth in (2, 12):
        cfg = dataclasses.replace(
            tiny, depth=depth, width=32, steps=300, eval_every=300, dtype="float64"
        )
        result = train(cfg, tmp_path / str(depth))
        start = build_model(cfg, load_data(cfg.data, CPU, torch.float64), CPU, torch.float64)
        with torch.no_grad():
            moved[depth] = [
                float(
                    (result.model.layer(l).linear.weight - start.layer(l).linear.weight).norm()
                    / start.layer(l).linear.weight.norm()
                )
                for l in range(1, depth + 2)
            ]
        loss = curve(tmp_path / str(depth), "loss")
        moved[f"loss{depth}"] = loss[300] / loss[0]
    assert moved["loss2"] < 0.5  # the shallow net learns
    assert moved["loss12"] > 0.9  # the deep one hardly does
    assert moved[12][0] < 1e-6 * moved[12][-1]  # layer 1 frozen relative to layer L
    assert moved[2][0] > 0.1 * moved[2][-1]


def test_probes_do_not_change_training(tiny: Config, tmp_path: Path) -> None:
    """Same config with no probes and with every probe at every step: identical weights."""
    from depthlab.probes.schedule import FullProbes, NoProbes

    runs = [
        train(dataclasses.replace(tiny, probes=probes, steps=15), tmp_path / probes.name)
        for probes in (NoProbes(), FullProbes(every=1))
    ]
    for a, b in zip(runs[0].model.parameters(), runs[1].model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert "delta_norm" not in set(read_metrics(tmp_path / "none")["metric"])


def test_probe_schedule(tiny: Config, tmp_path: Path) -> None:
    from depthlab.probes.schedule import MinimalProbes

    probes = MinimalProbes(every=5, log_points=4)
    assert set(probes.steps(12)) == {0, 1, 2, 5, 10, 12}  # every 5, last, geomspace(1, 12, 4)
    assert set(probes.costly_steps(12)) == {0, 12}
    assert set(MinimalProbes(every=5, costly_every=10).costly_steps(12)) == {0, 10, 12}
    result = train(dataclasses.replace(tiny, probes=probes, steps=12), tmp_path)
    df = read_metrics(tmp_path)
    delta = df[df["metric"] == "delta_norm"]
    assert set(delta["step"]) == {0, 1, 2, 5, 10, 12}
    assert set(delta["layer"]) == {1, 2, 3}
    first = delta[delta["step"] == 0].set_index("layer")["value"]
    assert result.row["delta_ratio_initial"] == pytest.approx(first[1] / first[3])


def test_update_ratio_of_sgd_is_lr_times_gradient_over_weight(tiny: Config, tmp_path: Path) -> None:
    """For plain SGD, ||W_after - W_before|| = lr ||dJ/dW||, so the logged update_ratio must
    equal lr * weight_grad_norm / weight_norm at every probed step (all before the update)."""
    from depthlab.probes.schedule import FullProbes

    cfg = dataclasses.replace(tiny, probes=FullProbes(every=3), steps=10, lr=0.2, dtype="float64")
    train(cfg, tmp_path)
    df = read_metrics(tmp_path)
    wide = df[df["layer"] > 0].pivot_table(
        index=["step", "layer"], columns="metric", values="value"
    )
    updated = wide.dropna(subset=["update_ratio"])
    assert sorted(set(updated.index.get_level_values("step"))) == [0, 3, 6, 9]  # not 10
    expected = 0.2 * updated["weight_grad_norm"] / updated["weight_norm"]
    np.testing.assert_allclose(updated["update_ratio"], expected, rtol=1e-9)


def test_a_diverging_run_records_where_it_broke(tiny: Config, tmp_path: Path) -> None:
    from depthlab.probes.schedule import DefaultProbes

    cfg = dataclasses.replace(
        tiny,
        activation="relu",
        init=Gaussian(sigma_w2=4.0),
        lr=100.0,
        depth=4,
        width=32,
        steps=200,
        probes=DefaultProbes(every=1),
    )
    row = train(cfg, tmp_path).row
    assert row["status"] == "diverged"
    assert row["nonfinite_step"] is not None and 1 <= row["nonfinite_layer"] <= 5
    assert row["nonfinite_step"] <= row["steps_done"]


def test_recorded_probes_equal_the_oracle(tmp_path: Path) -> None:
    """The records of a real run (full batch, step 0) hold the textbook delta norms."""
    from depthlab.reference import ReferenceMLP

    data = Quadratic(num_train=50)
    cfg = dataclasses.replace(at_init(data, 50, depth=6, width=12), loss="squared")
    train(cfg, tmp_path)
    df = read_metrics(tmp_path)
    ds = load_data(data, CPU, torch.float64)
    ref = ReferenceMLP.from_model(build_model(cfg, ds, CPU, torch.float64)).backprop(
        ds.x_train.numpy(), ds.y_train.numpy(), "squared", "regression"
    )
    for metric, expected in (
        ("delta_norm", [np.sqrt((d**2).sum(0).mean()) for d in ref.deltas]),
        ("weight_grad_norm", [np.linalg.norm(g) for g in ref.weight_grads]),
    ):
        np.testing.assert_allclose(per_layer(df, metric), expected, rtol=1e-10)


def test_runs_record_the_mean_field_prediction(tmp_path: Path) -> None:
    """Step 0 carries theory's per-layer ratio beside the measured one; batchnorm says why
    it has none."""
    from depthlab.data import Teacher

    cfg = at_init(Teacher(in_dim=64, num_train=256, num_test=32), 256, depth=12, width=256)
    result = train(cfg, tmp_path / "plain")
    df = read_metrics(tmp_path / "plain")
    predicted = per_layer(df, "predicted_delta_ratio")
    norms = per_layer(df, "delta_norm")
    measured = norms[:-1] ** 2 / norms[1:] ** 2
    assert len(predicted) == 12 and result.row["theory"] == "mean_field"
    assert np.median(measured[:11] / predicted[:11]) == pytest.approx(1.0, abs=0.1)
    log_norm = per_layer(df, "predicted_log_delta_norm")
    assert log_norm[-1] == 0.0 and len(log_norm) == 13
    np.testing.assert_allclose(np.diff(log_norm), -0.5 * np.log(predicted))
    normed = train(dataclasses.replace(cfg, norm="batchnorm"), tmp_path / "bn")
    assert normed.row["theory"].startswith("not applicable: batchnorm")
    assert "predicted_delta_ratio" not in set(read_metrics(tmp_path / "bn")["metric"])


def test_costly_probes_run_at_fewer_steps(tiny: Config, tmp_path: Path) -> None:
    from depthlab.probes.schedule import MinimalProbes

    probes = MinimalProbes(names=["minimal", "jacobian", "curvature"], every=2)
    train(dataclasses.replace(tiny, probes=probes, steps=6), tmp_path)
    df = read_metrics(tmp_path)
    assert set(df[df["metric"] == "delta_norm"]["step"]) == {0, 2, 4, 6}
    for metric in ("jacobian_sv2_var", "hessian_min"):
        assert set(df[df["metric"] == metric]["step"]) == {0, 6}


@pytest.mark.slow
@pytest.mark.skipif(
    not any(shutil.which(cc) for cc in ("cc", "gcc", "clang")), reason="no C compiler"
)
def test_compiled_steps_train_the_same_network(tiny: Config, tmp_path: Path) -> None:
    """compile=true runs the unprobed steps through torch.compile (probed steps stay eager,
    for the hooks): the same training to float tolerance, and the compiler really ran."""
    import torch._dynamo

    cfg = dataclasses.replace(tiny, steps=30)
    eager = train(cfg, tmp_path / "eager")
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    compiled = train(dataclasses.replace(cfg, compile=True), tmp_path / "compiled")
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1
    a, b = (curve(r.run_dir, "batch_loss") for r in (eager, compiled))
    assert len(a) == len(b) == 30
    assert np.allclose(a, b, rtol=1e-4, atol=1e-6)
    assert compiled.row["compile"] is True
