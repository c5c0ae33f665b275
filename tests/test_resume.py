"""Resumable sweeps: a run whose folder holds its finished records is not trained again; a
killed, failed or changed run is, and nothing is duplicated or lost."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from helpers import fake_run

from depthlab.config import Config
from depthlab.provenance import record_row
from depthlab.records import (
    METRICS_DIR,
    RUN_FILE,
    SUPERSEDED_DIR,
    read_metrics,
    read_run,
)
from depthlab.results import load_sweep
from depthlab.train import train


def parts(run_dir: Path) -> list[Path]:
    return sorted((run_dir / METRICS_DIR).glob("part-*.parquet"))


def test_a_finished_run_is_not_trained_again(tiny: Config, tmp_path: Path) -> None:
    first = train(tiny, tmp_path)
    files = {p: p.stat().st_mtime_ns for p in [tmp_path / RUN_FILE, *parts(tmp_path)]}
    again = train(tiny, tmp_path)
    assert again.resumed and again.model is None
    assert again.rows == [read_run(tmp_path)] and again.row["run_id"] == first.row["run_id"]
    assert {p: p.stat().st_mtime_ns for p in files} == files  # nothing rewritten
    assert not (tmp_path / SUPERSEDED_DIR).exists()


def test_how_a_run_is_carried_out_does_not_make_it_another_run(
    tiny: Config, tmp_path: Path
) -> None:
    first = train(tiny, tmp_path)
    again = train(dataclasses.replace(tiny, threads=1, flush_seconds=0.0), tmp_path)
    assert again.resumed and again.row["run_id"] == first.row["run_id"]


@pytest.mark.parametrize(
    "change", [{"steps": 30}, {"lr": 0.25}, {"seed": 1}, {"resume": False}], ids=str
)
def test_a_changed_or_forced_run_trains_again_and_sets_the_old_records_aside(
    tiny: Config, tmp_path: Path, change: dict
) -> None:
    first = train(tiny, tmp_path)
    again = train(dataclasses.replace(tiny, **change), tmp_path)
    assert not again.resumed and again.row["run_id"] != first.row["run_id"]
    (kept,) = (tmp_path / SUPERSEDED_DIR).iterdir()
    assert read_run(kept)["run_id"] == first.row["run_id"]  # set aside, not deleted
    assert list(load_sweep(tmp_path).runs["run_id"]) == [again.row["run_id"]]


@pytest.mark.parametrize("status", ["running", "failed"])
def test_a_killed_or_failed_run_trains_again(tiny: Config, tmp_path: Path, status: str) -> None:
    row = record_row(tiny, torch.device("cpu"), "old", tiny.seed)
    if status == "failed":
        row["error"] = "RuntimeError: boom"
    fake_run(tmp_path, row, [(0, 0, "loss", 1.0)], status)  # running: what a killed run leaves
    again = train(tiny, tmp_path)
    assert not again.resumed and again.status == "ok"
    sweep = load_sweep(tmp_path)
    assert list(sweep.runs["run_id"]) == [again.row["run_id"]]
    assert set(sweep.metrics["run_id"]) == {again.row["run_id"]}


def test_a_diverged_run_is_a_finished_result(tiny: Config, tmp_path: Path) -> None:
    cfg = dataclasses.replace(tiny, lr=1e6, activation="relu")
    assert train(cfg, tmp_path).status == "diverged"
    assert train(cfg, tmp_path).resumed


def test_replicas_resume_together_and_replace_an_ordinary_run(tiny: Config, tmp_path: Path) -> None:
    train(tiny, tmp_path)  # an ordinary run in the folder first
    batched = dataclasses.replace(tiny, replicas=3)
    first = train(batched, tmp_path)
    assert not first.resumed
    assert sorted(load_sweep(tmp_path).runs["seed"]) == [0, 1, 2]  # the old run set aside
    assert train(batched, tmp_path).resumed
    # one replica killed: the job trains again, and still holds exactly its three runs
    row = read_run(tmp_path / "seed=1")  # not fake_run: it would set the part files aside
    pd.DataFrame([{**row, "status": "running"}]).to_parquet(tmp_path / "seed=1" / RUN_FILE)
    again = train(batched, tmp_path)
    assert not again.resumed
    sweep = load_sweep(tmp_path)
    assert sorted(sweep.runs["run_id"]) == sorted(r["run_id"] for r in again.rows)
    assert sweep.metrics.groupby("run_id").size().nunique() == 1


SWEEP = [
    "-m",
    "depth=1,30,2",
    "width=64",
    "steps=1500",
    "eval_every=100",
    "flush_seconds=0",
    "data=teacher",
    "threads=1",
]
# batching=off: one job per run; batched: two seeds per depth train as one model, and the
# killed batch holds two half-trained runs (folders 2 and 3)
LAYOUTS = {
    "off": (["batching=off"], {"done": ["0"], "killed": ["1"], "later": ["2"]}),
    "batched": (["seed=0,1"], {"done": ["0", "1"], "killed": ["2", "3"], "later": ["4", "5"]}),
}


def depthlab_sweep(sweep_dir: Path, extra: list[str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "depthlab.run", *SWEEP, *extra, f"hydra.sweep.dir={sweep_dir}"],
        cwd=sweep_dir.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@pytest.mark.slow
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_a_sweep_killed_mid_run_resumes_with_nothing_duplicated_or_lost(
    tmp_path: Path, layout: str
) -> None:
    extra, folders = LAYOUTS[layout]
    sweep_dir = tmp_path / "sweep"
    proc = depthlab_sweep(sweep_dir, extra)
    killed = [sweep_dir / name for name in folders["killed"]]
    try:
        deadline = time.monotonic() + 240
        # the depth-1 runs are done; depth 30 has flushed twice during training: kill it there
        while any(len(parts(k)) < 3 for k in killed):
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.communicate()
    done = [read_run(sweep_dir / name) for name in folders["done"]]
    assert {row["status"] for row in done} == {"ok"}
    halves = [read_run(k) for k in killed]
    assert {row["status"] for row in halves} == {"running"}  # never claimed complete
    before = load_sweep(sweep_dir)  # the killed runs' records read up to the kill
    for half in halves:
        trained = before.metrics[
            (before.metrics["run_id"] == half["run_id"])
            & (before.metrics["metric"] == "batch_loss")
        ]["step"]
        assert 0 < len(trained) < 1500 and list(trained) == list(range(len(trained)))
    assert not any((sweep_dir / name / RUN_FILE).exists() for name in folders["later"])

    rerun = depthlab_sweep(sweep_dir, extra)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err[-3000:]
    sweep = load_sweep(sweep_dir)
    assert sweep.problems == []
    runs = len(folders["done"])
    assert sorted(sweep.runs["depth"]) == sorted([1, 2, 30] * runs)
    assert set(sweep.runs["status"]) == {"ok"}
    ids = set(sweep.runs["run_id"])
    assert {row["run_id"] for row in done} <= ids  # finished: kept, not trained again
    assert not {row["run_id"] for row in halves} & ids  # killed: trained again
    keys = ["run_id", "step", "layer", "metric"]
    assert not sweep.metrics.duplicated(keys).any()
    steps = sweep.frame(["depth"]).query("metric == 'batch_loss'").groupby("run_id")["step"]
    assert all(list(s) == list(range(1500)) for _, s in steps)  # nothing lost
    # the killed runs' partial records stay on disk, out of the sweep
    for k, half in zip(killed, halves, strict=True):
        assert read_run(next((k / SUPERSEDED_DIR).iterdir()))["run_id"] == half["run_id"]
    assert "not run again" in out + err  # the log says which runs were skipped


def test_a_finished_run_whose_metrics_are_gone_trains_again(tiny: Config, tmp_path: Path) -> None:
    train(tiny, tmp_path)
    shutil.rmtree(tmp_path / METRICS_DIR)
    again = train(tiny, tmp_path)
    assert not again.resumed and again.status == "ok"
    assert len(read_metrics(tmp_path)) > 0
