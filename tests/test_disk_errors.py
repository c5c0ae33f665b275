"""A disk that stops taking writes: the run ends ``failed`` where that can still be written,
its records never claim more than the files say, and the command line says so in one line
with a non-zero exit."""

from __future__ import annotations

import errno
import logging
import os
import resource
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from depthlab import records
from depthlab.cli import EXIT_FAILED
from depthlab.config import Config
from depthlab.records import RUN_FILE, RecordsWriteError, read_metrics, read_run
from depthlab.train import train

RUN = Config(depth=2, width=8, steps=40, eval_every=5, flush_seconds=0.0, threads=1)


def full_disk_after(monkeypatch: pytest.MonkeyPatch, writes: int, only_parts: bool) -> None:
    """Every parquet write after the first ``writes`` fails as on a full disk (only the
    metrics part files when ``only_parts``: the disk had room for a small file)."""
    done = []
    original = pq.write_table

    def write_table(table, where, **options):
        is_part = Path(where).name.startswith(".part-")
        if len(done) >= writes and (is_part or not only_parts):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        done.append(where)
        original(table, where, **options)

    monkeypatch.setattr(records.pq, "write_table", write_table)


def test_a_run_whose_disk_fills_ends_failed_with_what_it_flushed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full_disk_after(monkeypatch, writes=4, only_parts=True)
    with pytest.raises(RecordsWriteError) as caught:
        train(RUN, tmp_path)
    assert "No space left on device" in str(caught.value) and "\n" not in str(caught.value)
    row = read_run(tmp_path)
    assert row["status"] == "failed" and "No space left on device" in row["error"]
    flushed = read_metrics(tmp_path)  # what was written before stays readable
    assert len(flushed) > 0 and flushed["step"].max() < RUN.steps
    assert not list(tmp_path.glob("metrics.parquet/.*.tmp"))  # no half-written file


def test_a_status_that_cannot_be_written_is_not_claimed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    full_disk_after(monkeypatch, writes=4, only_parts=False)
    with caplog.at_level(logging.ERROR), pytest.raises(RecordsWriteError):
        train(RUN, tmp_path)
    assert read_run(tmp_path)["status"] == "running"  # what the file says ...
    assert "still says running" in caplog.text  # ... is what the log says
    assert "status=failed" not in caplog.text


@pytest.mark.slow
def test_the_command_line_says_it_in_one_line_and_exits_non_zero(tmp_path: Path) -> None:
    """A real write error in a subprocess: files of at most 10 kB (RLIMIT_FSIZE), so the
    first run.parquet (about 20 kB) cannot be written."""

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, 10_000))

    proc = subprocess.run(
        [sys.executable, "-m", "depthlab.run", f"hydra.run.dir={tmp_path}/run", "steps=5"],
        preexec_fn=small_files,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == EXIT_FAILED
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot write {tmp_path}/run/"), lines
    assert not (tmp_path / "run" / RUN_FILE).exists()  # nothing claims a run
