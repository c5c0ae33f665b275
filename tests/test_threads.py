"""threads=0 picks the idle cores: one thread when another process keeps a core busy, all
cores on a quiet machine; launchers' and explicit choices win; records do not depend on it."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import depthlab.threads as threads_module
from depthlab.config import Config
from depthlab.records import read_metrics
from depthlab.threads import busy_cores, resolve_threads
from depthlab.train import train

CPU = torch.device("cpu")


@pytest.fixture
def no_launcher_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in threads_module.LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("busy", "cores", "want"),
    [(0.0, 2, 2), (0.1, 2, 2), (1.0, 2, 1), (0.5, 2, 1), (5.0, 2, 1), (1.2, 8, 7), (0.0, 1, 1)],
)
def test_auto_uses_the_cores_that_are_idle_enough(
    monkeypatch: pytest.MonkeyPatch, no_launcher_threads: None, busy: float, cores: int, want: int
) -> None:
    monkeypatch.setattr(threads_module, "busy_cores", lambda: busy)
    monkeypatch.setattr(threads_module, "usable_cores", lambda: cores)
    assert resolve_threads(0, CPU) == want
    assert resolve_threads(0, CPU, layer_flops=threads_module.PARALLEL_FLOPS - 1) == 1


def test_explicit_launcher_and_gpu_choices_win(
    monkeypatch: pytest.MonkeyPatch, no_launcher_threads: None
) -> None:
    monkeypatch.setattr(threads_module, "busy_cores", lambda: 1.0)
    assert resolve_threads(3, CPU) == 3
    assert resolve_threads(0, torch.device("cuda")) == torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert resolve_threads(0, CPU) == torch.get_num_threads()


def test_a_busy_core_is_seen(no_launcher_threads: None) -> None:
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        busy = busy_cores(0.3)
    finally:
        spinner.kill()
    assert busy is not None and busy >= 0.8


def test_a_small_batch_trains_on_one_thread_and_a_big_one_on_the_idle_cores(
    tiny: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_launcher_threads: None
) -> None:
    monkeypatch.setattr(threads_module, "busy_cores", lambda: 0.0)
    monkeypatch.setattr(threads_module, "usable_cores", lambda: 2)
    small = train(dataclasses.replace(tiny, steps=1), tmp_path / "small")
    big = train(dataclasses.replace(tiny, steps=1, width=1024, batch_size=64), tmp_path / "big")
    assert (small.row["threads_resolved"], big.row["threads_resolved"]) == (1, 2)


def test_the_thread_count_changes_no_record(tiny: Config, tmp_path: Path) -> None:
    cfg = dataclasses.replace(tiny, width=64, depth=6, steps=40, batch_size=128)
    values = []
    for n in (1, 2):
        result = train(dataclasses.replace(cfg, threads=n), tmp_path / str(n))
        assert result.row["threads_resolved"] == n
        values.append(read_metrics(tmp_path / str(n)).drop(columns="run_id"))
    a, b = (v.sort_values(["step", "metric", "layer"])["value"].to_numpy() for v in values)
    assert np.array_equal(a, b, equal_nan=True)
