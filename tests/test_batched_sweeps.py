"""Batched sweeps from the command line: the same folders, configs and records as the same
sweep with ``batching=off``, through every launcher, with groups capped by ``batching.max``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from depthlab.cli import first_problem
from depthlab.group_jobs import BATCH_DIR, MANIFEST
from depthlab.results import load_sweep

pytestmark = pytest.mark.slow

# 2 depths x 2 inits x 2 seeds x 2 learning rates: two groups of 8 runs (one per depth)
SWEEP = [
    "depth=2,3",
    "init=gaussian",
    "init.sigma_w2=1.0,2.0",
    "seed=0,1",
    "lr=0.1,0.3",
    "data=teacher",
    "width=8",
    "steps=20",
    "eval_every=10",
    "batch_size=32",
    "dtype=float64",
    "threads=1",
]


def depthlab_sweep(sweep_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.endswith("NUM_THREADS")}
    return subprocess.run(
        [sys.executable, "-m", "depthlab.run", "-m", *args, f"hydra.sweep.dir={sweep_dir}"],
        cwd=sweep_dir.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def hydra_files(folder: Path) -> dict:
    return {
        name: yaml.safe_load((folder / ".hydra" / f"{name}.yaml").read_text())
        for name in ("config", "overrides", "hydra")
    }


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The sweep batched (the default) and with batching=off, once per module."""
    root = tmp_path_factory.mktemp("both")
    batched, alone = root / "batched", root / "alone"
    for folder, extra in ((batched, []), (alone, ["batching=off"])):
        proc = depthlab_sweep(folder, *SWEEP, *extra)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert len([line for line in proc.stdout.splitlines() if " ok " in f" {line} "]) == 16
    return batched, alone


def test_batched_runs_record_what_the_runs_record_alone(both: tuple[Path, Path]) -> None:
    batched, alone = (load_sweep(folder) for folder in both)
    assert batched.problems == alone.problems == []
    assert list(batched.runs["path"]) == list(alone.runs["path"]) == [str(i) for i in range(16)]
    assert set(batched.runs["batched_runs"]) == {8} and set(alone.runs["batched_runs"]) == {1}
    assert batched.swept_keys() == alone.swept_keys() == ["depth", "init.sigma_w2", "lr", "seed"]
    config = [c for c in alone.config_columns() if not c.startswith("batching")]
    a = batched.runs[config].drop(columns="run_id", errors="ignore").astype(str)
    b = alone.runs[config].drop(columns="run_id", errors="ignore").astype(str)
    assert (a.to_numpy() == b.to_numpy()).all()
    keys = ["path", "step", "layer", "metric"]
    mine, theirs = (
        s.metrics.merge(s.runs[["run_id", "path"]], on="run_id").sort_values(
            keys, ignore_index=True
        )
        for s in (batched, alone)
    )
    assert len(mine) == len(theirs) > 16 * 20
    assert (mine[keys] == theirs[keys]).all().all()
    assert np.allclose(mine["value"], theirs["value"], rtol=1e-9, atol=1e-12, equal_nan=True)


def test_every_run_keeps_the_hydra_folder_it_has_alone(both: tuple[Path, Path]) -> None:
    batched, alone = both
    for num in range(16):
        mine, theirs = hydra_files(batched / str(num)), hydra_files(alone / str(num))
        assert {**mine["config"], "batching": None} == {**theirs["config"], "batching": None}
        assert mine["overrides"] == [o for o in theirs["overrides"] if o != "batching=off"]
        job, twin = mine["hydra"]["hydra"]["job"], theirs["hydra"]["hydra"]["job"]
        assert (job["num"], job["id"]) == (twin["num"], twin["id"]) == (num, str(num))
        assert mine["hydra"]["hydra"]["runtime"]["output_dir"] == str(batched / str(num))
        log = (batched / str(num) / "run.log").read_text()
        assert "trained in batch" in log and " ok, loss " in log
    groups = sorted(p.name for p in (batched / BATCH_DIR).iterdir())
    assert groups == ["0", "1"] and not (alone / BATCH_DIR).exists()
    assert (batched / BATCH_DIR / "0" / MANIFEST).exists()


@pytest.mark.parametrize(
    "launcher",
    [["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], ["hydra/launcher=submitit_local"]],
    ids=["joblib", "submitit_local"],
)
def test_groups_run_through_other_launchers(tmp_path: Path, launcher: list[str]) -> None:
    sweep_dir = tmp_path / "sweep"
    proc = depthlab_sweep(sweep_dir, *SWEEP[:2], "seed=0,1,2", *SWEEP[5:], *launcher)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = load_sweep(sweep_dir, metrics=False)
    assert sweep.problems == [] and len(sweep.runs) == 6
    assert set(sweep.runs["status"]) == {"ok"} and set(sweep.runs["batched_runs"]) == {3}


def test_batching_max_caps_the_groups(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    proc = depthlab_sweep(sweep_dir, *SWEEP, "batching.max=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = load_sweep(sweep_dir, metrics=False)
    # per depth, 8 runs in the fewest groups of at most 3, as even as that allows: 3, 3, 2
    assert list(sweep.runs["batched_runs"]) == ([3] * 6 + [2] * 2) * 2
    assert len(list((sweep_dir / BATCH_DIR).iterdir())) == 6


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("batching.max=0", "batching.max"),
        ("batching.memory_fraction=2", "batching.memory_fraction"),
        ("batching=sometimes", "batching"),
        ("batching.max=3 batching=off", "batching.max"),
    ],
)
def test_bad_batching_values_are_one_line(override: str, named: str) -> None:
    problem = first_problem(["depth=2,3", *override.split()[::-1]], multirun=True)
    assert named in problem and "\n" not in problem
