"""Batched seeds: ``replicas=R`` trains R seeds as one model, and each replica's records are
those of a run of its own seed (the oracle: R separate runs)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from depthlab.config import Config
from depthlab.data import Teacher
from depthlab.errors import ConfigError
from depthlab.inits import Gaussian
from depthlab.probes.schedule import FullProbes
from depthlab.records import read_metrics, read_run
from depthlab.results import load_sweep
from depthlab.train import train

# Differ between a replica and the separate run by construction, not by computation.
BOOKKEEPING = (
    "run_id",
    "replicas",
    "batched_runs",
    "threads_resolved",
    "wall_time_s",
    "started_at",
    "finished_at",
)


@pytest.fixture
def mixed() -> Config:
    """8 seeds of a ReLU net at a learning rate where seeds 1 and 6 diverge (at steps 13
    and 8; float32 overflows where float64 would not) and the other six train: a replica
    must end exactly as its own run does while the others train on."""
    return Config(
        depth=4,
        width=16,
        activation="relu",
        init=Gaussian(sigma_w2=2.0),
        lr=2.0,
        steps=60,
        eval_every=20,
        batch_size=32,
        probes=FullProbes(names=["full", "curvature"], every=5, costly_every=30),
        data=Teacher(in_dim=8, num_outputs=3, num_train=256, num_test=64),
    )


def records(run_dir: Path) -> pd.DataFrame:
    df = read_metrics(run_dir).drop(columns="run_id")
    return df.sort_values(["step", "metric", "layer"], ignore_index=True)


def test_each_replica_records_what_a_run_of_its_seed_records(mixed: Config, tmp_path: Path) -> None:
    batched = train(dataclasses.replace(mixed, replicas=8), tmp_path / "batched")
    statuses = [row["status"] for row in batched.rows]
    assert "diverged" in statuses and "ok" in statuses  # the test covers both endings
    for row in batched.rows:
        seed = row["seed"]
        alone = train(dataclasses.replace(mixed, seed=seed), tmp_path / f"alone{seed}")
        mine = records(tmp_path / "batched" / f"seed={seed}")
        theirs = records(alone.run_dir)
        assert len(mine) == len(theirs) > 0, seed
        for column in ("seed", "step", "layer", "metric"):
            assert (mine[column] == theirs[column]).all(), (seed, column)
        assert np.allclose(mine["value"], theirs["value"], rtol=1e-9, atol=1e-12, equal_nan=True)
        recorded = read_run(tmp_path / "batched" / f"seed={seed}")
        assert recorded["replicas"] == 8 and recorded["seed"] == seed
        for key, value in alone.row.items():
            if key in BOOKKEEPING or isinstance(value, float):
                continue
            assert recorded[key] == value, (seed, key)
        for key in ("final_loss", "final_test_loss", "delta_ratio_initial"):
            assert recorded[key] == pytest.approx(alone.row[key], rel=1e-9, nan_ok=True)


def test_float32_replicas_agree_with_separate_runs_to_float_tolerance(
    tiny: Config, tmp_path: Path
) -> None:
    cfg = dataclasses.replace(tiny, seed=3, steps=30)
    batched = train(dataclasses.replace(cfg, replicas=3), tmp_path / "b")
    for row in batched.rows:
        alone = train(dataclasses.replace(cfg, seed=row["seed"]), tmp_path / str(row["seed"]))
        mine, theirs = records(tmp_path / "b" / f"seed={row['seed']}"), records(alone.run_dir)
        assert (mine["metric"] == theirs["metric"]).all()
        assert np.allclose(mine["value"], theirs["value"], rtol=1e-4, atol=1e-6, equal_nan=True)


def test_replicas_are_distinct_draws_with_their_own_records(tiny: Config, tmp_path: Path) -> None:
    result = train(dataclasses.replace(tiny, seed=10, replicas=4), tmp_path)
    weights = result.model.layer(1).linear.weight.detach()
    assert weights.shape[0] == 4
    assert all(not np.allclose(weights[0], weights[r]) for r in range(1, 4))
    sweep = load_sweep(tmp_path)
    assert sorted(sweep.runs["seed"]) == [10, 11, 12, 13]
    assert sweep.runs["run_id"].nunique() == 4 and set(sweep.runs["replicas"]) == {4}
    assert sorted(sweep.runs["path"]) == [f"seed={s}" for s in (10, 11, 12, 13)]
    by_run = sweep.metrics.groupby("run_id")["seed"].unique()
    seeds = sweep.runs.set_index("run_id")["seed"]
    assert all(list(by_run[run]) == [seeds[run]] for run in seeds.index)
    assert not (tmp_path / "run.parquet").exists()  # the job folder holds replica folders only


def test_replicas_out_of_range_are_refused_before_anything_is_written(
    tiny: Config, tmp_path: Path
) -> None:
    for bad in (0, -2, 5000):
        with pytest.raises(ConfigError, match="replicas"):
            train(dataclasses.replace(tiny, replicas=bad), tmp_path / "x")
    assert not (tmp_path / "x").exists()
