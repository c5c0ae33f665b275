"""Batched groups: configurations that differ only in per-run keys train as one model, and
each records what it records alone (the oracle: the same configuration trained alone)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import relu_momentum

import depthlab.evaluation as evaluation
import depthlab.train as train_module
from depthlab.batching import Off, On
from depthlab.config import Config
from depthlab.data import Teacher
from depthlab.errors import ConfigError
from depthlab.grouping import check_batchable, group_key, plan
from depthlab.inits import (
    Gaussian,
    KaimingNormal,
    Orthogonal,
    ScaledBranches,
    SkipInit,
    TorchDefault,
)
from depthlab.loop import TrainingLoop
from depthlab.optimizers import Adam, Momentum
from depthlab.probes.schedule import FullProbes, MinimalProbes, NoProbes
from depthlab.records import read_metrics, read_run
from depthlab.resources import run_bytes, split
from depthlab.train import Member, train, train_group

# Differ between a batched run and the run alone by construction, not by computation.
BOOKKEEPING = (
    "run_id",
    "batched_runs",
    "threads_resolved",
    "wall_time_s",
    "started_at",
    "finished_at",
)


def records(run_dir: Path) -> pd.DataFrame:
    df = read_metrics(run_dir).drop(columns="run_id")
    return df.sort_values(["step", "metric", "layer"], ignore_index=True)


def assert_same_records(batched: Path, alone: Path, row: dict, alone_row: dict) -> None:
    mine, theirs = records(batched), records(alone)
    assert len(mine) == len(theirs) > 0
    for column in ("seed", "step", "layer", "metric"):
        assert (mine[column] == theirs[column]).all(), column
    assert np.allclose(mine["value"], theirs["value"], rtol=1e-9, atol=1e-12, equal_nan=True)
    for key, value in alone_row.items():
        if key in BOOKKEEPING or isinstance(value, float):
            continue
        assert row[key] == value, key
    for key in ("final_loss", "final_test_loss", "delta_ratio_initial"):
        assert row[key] == pytest.approx(alone_row[key], rel=1e-9, nan_ok=True), key


@pytest.fixture
def plain() -> Config:
    """A float64 ReLU net with every probe; the members below differ in per-run keys only."""
    probes = FullProbes(names=["full", "curvature"], every=5, costly_every=30)
    return relu_momentum(dtype="float64", probes=probes)


def variants_of_plain(cfg: Config) -> list[Config]:
    r = dataclasses.replace
    return [
        cfg,
        r(cfg, seed=3, replicas=2),  # a member with two seeds of its own
        r(cfg, seed=1, init=KaimingNormal(), lr=0.02, eval_every=15),
        r(
            cfg,
            seed=2,
            init=Orthogonal(gain=1.3),
            optimizer=Momentum(momentum=0.5, weight_decay=0.01),
        ),
        r(cfg, seed=4, init=TorchDefault(), eval_every=7, study="mine"),
        r(cfg, seed=5, lr=1e6),  # diverges at step 3, ends at its check (10); the rest train on
    ]


def variants_of_residual(cfg: Config) -> list[Config]:
    base = dataclasses.replace(
        cfg, activation="tanh", residual=True, optimizer=Adam(), lr=1e-2, init=ScaledBranches()
    )
    r = dataclasses.replace
    return [
        base,
        r(base, seed=1, branch_scale=0.3, optimizer=Adam(beta1=0.5, eps=1e-6), lr=3e-2),
        r(base, seed=2, branch_scale=0.1, init=Gaussian(sigma_w2=1.5, sigma_b2=0.05)),
        r(base, seed=3, optimizer=Adam(weight_decay=0.1), eval_every=30),
    ]


@pytest.mark.parametrize("variants", [variants_of_plain, variants_of_residual])
def test_every_member_records_what_it_records_alone(
    plain: Config, tmp_path: Path, variants
) -> None:
    configs = variants(plain)
    members = [Member(cfg, tmp_path / "batched" / str(i)) for i, cfg in enumerate(configs)]
    results = train_group(members)
    total = sum(cfg.replicas for cfg in configs)
    statuses = [row["status"] for result in results for row in result.rows]
    assert len(statuses) == total and all(r.row["batched_runs"] == total for r in results)
    if variants is variants_of_plain:
        assert statuses.count("diverged") == 1 and statuses[-1] == "diverged"
    for i, (cfg, result) in enumerate(zip(configs, results, strict=True)):
        alone = train(cfg, tmp_path / "alone" / str(i))
        assert alone.row["batched_runs"] == cfg.replicas
        for row, alone_row in zip(result.rows, alone.rows, strict=True):
            folder = result.run_dir if cfg.replicas == 1 else result.run_dir / f"seed={row['seed']}"
            twin = alone.run_dir if cfg.replicas == 1 else alone.run_dir / f"seed={row['seed']}"
            on_disk = read_run(folder)
            assert row.keys() == on_disk.keys()
            assert all(
                row[k] == on_disk[k] or (row[k] != row[k] and on_disk[k] != on_disk[k]) for k in row
            )
            assert_same_records(folder, twin, row, alone_row)


def test_a_batched_run_has_its_own_evaluation_schedule(plain: Config, tmp_path: Path) -> None:
    cfg = dataclasses.replace(plain, probes=MinimalProbes(), steps=30)
    results = train_group(
        [
            Member(dataclasses.replace(cfg, eval_every=7), tmp_path / "a"),
            Member(dataclasses.replace(cfg, eval_every=10, seed=1), tmp_path / "b"),
        ]
    )
    for result, want in zip(results, ([0, 7, 14, 21, 28, 30], [0, 10, 20, 30]), strict=True):
        df = read_metrics(result.run_dir)
        assert sorted(df[df["metric"] == "test_loss"]["step"]) == want


def test_members_of_different_shapes_are_refused(plain: Config, tmp_path: Path) -> None:
    members = [
        Member(plain, tmp_path / "a"),
        Member(dataclasses.replace(plain, depth=5), tmp_path / "b"),
    ]
    with pytest.raises(ValueError, match="depth"):
        train_group(members)
    assert not (tmp_path / "a").exists()


def test_an_invalid_member_is_refused_before_anything_is_written(
    plain: Config, tmp_path: Path
) -> None:
    members = [
        Member(plain, tmp_path / "a"),
        Member(dataclasses.replace(plain, lr=-1.0), tmp_path / "b"),
    ]
    with pytest.raises(ConfigError, match="lr"):
        train_group(members)
    assert not any(tmp_path.iterdir())


def test_a_group_over_the_memory_estimate_trains_in_parts_with_the_same_records(
    plain: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = dataclasses.replace(
        plain, probes=MinimalProbes(), steps=20, batching=On(memory_fraction=1.0)
    )
    per_run = run_bytes(cfg, 8, 3, 256)
    monkeypatch.setattr(train_module, "device_bytes", lambda device: 2 * per_run + 1)
    configs = [dataclasses.replace(cfg, seed=s, lr=0.01 * (s + 1)) for s in range(5)]
    results = train_group([Member(c, tmp_path / str(i)) for i, c in enumerate(configs)])
    assert [r.row["batched_runs"] for r in results] == [2, 2, 2, 2, 1]
    monkeypatch.undo()
    whole = train_group([Member(c, tmp_path / f"whole{i}") for i, c in enumerate(configs)])
    assert [r.row["batched_runs"] for r in whole] == [5] * 5
    for part, one in zip(results, whole, strict=True):
        assert_same_records(part.run_dir, one.run_dir, part.row, one.row)


def test_max_caps_a_group(plain: Config, tmp_path: Path) -> None:
    cfg = dataclasses.replace(plain, probes=MinimalProbes(), steps=5, batching=On(max=3))
    configs = [dataclasses.replace(cfg, seed=s) for s in range(7)]
    results = train_group([Member(c, tmp_path / str(i)) for i, c in enumerate(configs)])
    assert [r.row["batched_runs"] for r in results] == [3, 3, 3, 2, 2, 2, 2]


def test_a_failure_is_recorded_for_its_batch_and_the_other_batches_still_train(
    plain: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = dataclasses.replace(plain, probes=MinimalProbes(), steps=5, batching=On(max=2))
    configs = [dataclasses.replace(cfg, seed=s) for s in range(4)]
    original, calls = TrainingLoop.run, {"n": 0}

    def first_fails(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("disk on fire")
        return original(*args, **kwargs)

    monkeypatch.setattr(TrainingLoop, "run", first_fails)
    with pytest.raises(RuntimeError, match="disk on fire"):
        train_group([Member(c, tmp_path / str(i)) for i, c in enumerate(configs)])
    statuses = [read_run(tmp_path / str(i))["status"] for i in range(4)]
    assert statuses == ["failed", "failed", "ok", "ok"]


# --- planning: which jobs share a batched model -------------------------------------------


def test_per_run_keys_share_a_group_and_shape_keys_do_not(plain: Config) -> None:
    r = dataclasses.replace
    same = [
        r(plain, seed=9),
        r(plain, lr=0.3),
        r(plain, init=Gaussian(sigma_w2=1.1, sigma_b2=0.2)),
        r(plain, init=Orthogonal()),
        r(plain, optimizer=Momentum(momentum=0.1, weight_decay=0.5)),
        r(plain, branch_scale=0.5),
        r(plain, eval_every=3),
        r(plain, replicas=4),
        r(plain, study="other"),
    ]
    assert {group_key(c) for c in same} == {group_key(plain)}
    different = [
        r(plain, depth=5),
        r(plain, width=17),
        r(plain, activation="tanh"),
        r(plain, residual=True),
        r(plain, norm="layernorm"),
        r(plain, batch_size=64),
        r(plain, steps=61),
        r(plain, dtype="float32"),
        r(plain, data=Teacher(in_dim=9, num_outputs=3, num_train=256, num_test=64)),
        r(plain, probes=MinimalProbes()),
        r(plain, optimizer=Momentum(nesterov=True)),
        r(plain, optimizer=Adam()),
        r(plain, init=SkipInit()),  # a learned branch scale: another parameter set
        r(plain, threads=1),
        r(plain, batching=On(max=7)),
    ]
    keys = [group_key(c) for c in different]
    assert group_key(plain) not in keys and len(set(keys)) == len(keys)
    with pytest.raises(ValueError, match="width"):
        check_batchable([plain, different[1]])


def test_plan_groups_in_job_order_and_caps_by_size_and_memory(plain: Config) -> None:
    r = dataclasses.replace
    jobs = [r(plain, depth=d, seed=s) for d in (2, 3) for s in range(3)]
    assert plan(jobs) == [[0, 1, 2], [3, 4, 5]]
    interleaved = [r(plain, depth=d, seed=s) for s in range(3) for d in (2, 3)]
    assert plan(interleaved) == [[0, 2, 4], [1, 3, 5]]
    capped = [r(c, batching=On(max=2)) for c in jobs]
    assert plan(capped) == [[0, 1], [2], [3, 4], [5]]
    by_memory = plan(jobs, lambda c: 100, lambda c: 250)  # memory_fraction 0.5: 1 run fits
    assert by_memory == [[i] for i in range(6)]
    off = [r(c, batching=Off()) for c in jobs]
    assert plan(off) == [[i] for i in range(6)]
    replicas = [
        r(plain, replicas=3, batching=On(max=4)),
        r(plain, seed=5, replicas=2, batching=On(max=4)),
    ]
    assert plan(replicas) == [[0], [1]]  # 3 + 2 runs exceed 4: a member is never cut


def test_split_is_as_even_as_the_limit_allows() -> None:
    assert split([1] * 300, 256, 0, None) == [list(range(150)), list(range(150, 300))]
    assert split([1] * 5, 2, 10, 10**6) == [[0, 1], [2, 3], [4]]
    assert split([1] * 5, 256, 10, 25) == [[0, 1], [2, 3], [4]]
    assert split([5], 2, 10, None) == [[0]]  # larger than the limit: alone
    assert split([], 4, 1, None) == []


def test_the_memory_estimate_grows_with_what_a_run_holds(plain: Config) -> None:
    r = dataclasses.replace
    lean = r(plain, probes=MinimalProbes())
    base = run_bytes(lean, 8, 3, 256)
    assert run_bytes(r(lean, depth=8), 8, 3, 256) > base
    assert run_bytes(r(lean, dtype="float32"), 8, 3, 256) * 2 == base
    assert run_bytes(r(lean, optimizer=Adam()), 8, 3, 256) > base
    assert run_bytes(r(lean, probes=NoProbes()), 8, 3, 256) < base  # probes hold every layer
    wide = r(lean, probes=NoProbes(), width=1024, depth=100, batch_size=128)
    # 100 layers of 1024^2 float64 weights held 7 times (params, flat grads, two sets of
    # autograd's grads, momentum, and parameters and momentum saved while capturing)
    assert 7 * 100 * 1024**2 * 8 < run_bytes(wide, 8, 3, 256) < 8 * 100 * 1024**2 * 8


@pytest.mark.parametrize(
    ("norm", "residual"), [("none", False), ("batchnorm", False), ("layernorm", True)]
)
def test_a_slice_of_replicas_computes_what_the_whole_model_computes(
    plain: Config, monkeypatch: pytest.MonkeyPatch, norm: str, residual: bool
) -> None:
    """forward(x, replicas=slice) is that slice of forward(x), and an evaluation a few
    replicas at a time (the CPU's way) equals one over all of them (float64)."""
    import torch

    from depthlab.data import load_data
    from depthlab.evaluation import evaluate
    from depthlab.train import build_model

    cpu = torch.device("cpu")
    cfg = dataclasses.replace(plain, norm=norm, residual=residual, branch_scale=0.5)
    data = load_data(cfg.data, cpu, torch.float64)
    runs = [(dataclasses.replace(cfg, seed=s), s) for s in range(5)]
    model = build_model(cfg, data, cpu, torch.float64, runs)
    model.calibrate_batchnorm_(data.x_train)
    model.eval()
    with torch.no_grad():
        whole = model(data.x_test)
        assert torch.equal(model(data.x_test, slice(1, 4)), whole[1:4])
    figures = {}
    for limit in (1, 10**12):  # one replica a pass, then all five at once
        monkeypatch.setattr(evaluation, "EVAL_BYTES", limit)
        figures[limit] = evaluate(model, data.x_test, data.y_test, "cross_entropy", data.task)
    for metric in ("loss", "accuracy"):
        assert np.array_equal(figures[1][metric], figures[10**12][metric])
    assert len(set(figures[1]["loss"].round(12))) == 5  # five different nets
