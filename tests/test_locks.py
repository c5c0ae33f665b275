"""One writer per run folder: a second writer is refused (naming the holder) or waits,
a dead holder's lock is taken over, and a refused run writes nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import hold

from depthlab import locks
from depthlab.config import Config
from depthlab.records import RUN_FILE
from depthlab.results import load_sweep
from depthlab.train import train


def test_a_held_folder_is_refused_naming_the_holder(tmp_path: Path) -> None:
    holder = hold(tmp_path, 30)
    try:
        assert f"process {holder.pid} on " in locks.holder_of(tmp_path)
        with pytest.raises(locks.FolderLockedError) as caught, locks.locked([tmp_path]):
            pass
        assert f"process {holder.pid}" in str(caught.value) and "lock_timeout" in str(caught.value)
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holders_lock_is_taken_over(tmp_path: Path) -> None:
    holder = hold(tmp_path, 30)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert (tmp_path / locks.LOCK_FILE).exists()  # left behind, and stale
    assert locks.holder_of(tmp_path) is None
    with locks.locked([tmp_path]):
        assert f"process {os.getpid()} " in locks.holder_of(tmp_path)


def test_a_lock_file_that_is_a_link_or_a_fifo_is_never_opened_through(tmp_path: Path) -> None:
    victim = tmp_path / "precious.txt"
    victim.write_text("precious")
    linked, fifo = tmp_path / "linked", tmp_path / "fifo"
    linked.mkdir()
    fifo.mkdir()
    (linked / locks.LOCK_FILE).symlink_to(victim)
    os.mkfifo(fifo / locks.LOCK_FILE)  # opening a FIFO for reading would block
    for folder in (linked, fifo):
        with pytest.raises(locks.FolderLockedError, match="not a regular file"):
            locks.holder_of(folder)
        with (
            pytest.raises(locks.FolderLockedError, match="not a regular file"),
            locks.locked([folder]),
        ):
            pass
    assert victim.read_text() == "precious"


def test_a_writer_waits_up_to_lock_timeout(tmp_path: Path) -> None:
    holder = hold(tmp_path, 1.0)
    start = time.monotonic()
    with locks.locked([tmp_path], timeout=20):
        waited = time.monotonic() - start
    holder.wait()
    assert 0.3 < waited < 15


def test_a_run_into_a_held_folder_writes_nothing(tmp_path: Path) -> None:
    holder = hold(tmp_path, 30)
    try:
        with pytest.raises(locks.FolderLockedError):
            train(Config(depth=1, width=4, steps=1), tmp_path)
        assert sorted(p.name for p in tmp_path.iterdir()) == [locks.LOCK_FILE]
    finally:
        holder.kill()
        holder.wait()
    result = train(Config(depth=1, width=4, steps=1), tmp_path)  # free again: it runs
    assert result.status == "ok" and (tmp_path / RUN_FILE).exists()
    assert train(Config(depth=1, width=4, steps=1), tmp_path).resumed  # resume still works


@pytest.mark.slow
def test_two_commands_aimed_at_one_sweep_folder_lose_nothing(tmp_path: Path) -> None:
    """Started at the same moment: one sweeps, the other is refused in one line (exit 3),
    and the sweep folder holds exactly the first one's runs, complete."""
    sweep = tmp_path / "sweep"
    common = ["-m", f"hydra.sweep.dir={sweep}", "data=teacher", "width=32", "threads=1"]
    commands = [
        [*common, "depth=2,3", "steps=3000", "eval_every=500", "lr=0.1"],
        [*common, "depth=4,5", "steps=3000", "eval_every=500", "lr=0.2"],
    ]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "depthlab.run", *argv],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv in commands
    ]
    outcomes = [(p.wait(timeout=600), p.stderr.read()) for p in processes]
    statuses = sorted(status for status, _ in outcomes)
    assert statuses == [0, 3], outcomes
    winner = next(i for i, (status, _) in enumerate(outcomes) if status == 0)
    refused = outcomes[1 - winner][1].strip().splitlines()
    assert len(refused) == 1 and "is being written by process" in refused[0], refused
    sweep_runs = load_sweep(sweep)
    assert sweep_runs.problems == []
    assert sorted(sweep_runs.runs["depth"]) == ([2, 3] if winner == 0 else [4, 5])
    assert set(sweep_runs.runs["status"]) == {"ok"}
    assert sweep_runs.metrics.groupby("run_id")["step"].max().eq(3000).all()
