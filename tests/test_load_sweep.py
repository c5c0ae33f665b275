"""load_sweep at scale: one scan of all part files, exact rows, selection, and bad files
named while everything else is still read."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import Metric, Row, fake_run, metric_frame

from depthlab.records import METRICS_DIR, METRICS_SCHEMA, RUN_FILE
from depthlab.results import load_sweep

ELOOP = os.strerror(errno.ELOOP)  # what a loop of links says, in the words of this system


def write_run(folder: Path, run_id: str, seed: int = 0, parts: int = 2) -> list[Row]:
    """A finished run with ``parts`` part files of loss (layer 0) and delta_norm (layers
    1..3) rows whose values encode run, part and layer; returns the rows as written."""
    base = 1000.0 * (sum(map(ord, run_id)) % 97)
    metrics: list[Metric] = []
    for part in range(parts):
        metrics.append((part, 0, "loss", base + part))
        metrics += [(part, l, "delta_norm", base + part + l / 10) for l in (1, 2, 3)]
    return fake_run(folder, {"run_id": run_id, "depth": 3, "seed": seed}, metrics)


def only(expected: pd.DataFrame, metric: str) -> pd.DataFrame:
    return expected[expected["metric"] == metric].reset_index(drop=True)


@pytest.fixture
def sweep_dir(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    """Runs at two depths (0/, 1/, 2/seed=0/, 2/seed=1/), one with an earlier run set
    aside in .superseded/, and a .hydra folder; with the rows load_sweep must return."""
    write_run(tmp_path / "0", "old", parts=1)  # then replaced by the next run
    rows = write_run(tmp_path / "0", "a")
    rows += write_run(tmp_path / "1", "b", parts=3)
    rows += write_run(tmp_path / "2" / "seed=0", "c0", seed=0)
    rows += write_run(tmp_path / "2" / "seed=1", "c1", seed=1)
    (tmp_path / ".hydra").mkdir()
    write_run(tmp_path / ".hydra" / "stray", "hidden")
    assert (tmp_path / "0" / ".superseded").is_dir()
    return tmp_path, metric_frame(rows)


def part(root: Path, run: str, name: str) -> Path:
    return root / run / METRICS_DIR / name


def without(expected: pd.DataFrame, run_id: str, step: int) -> pd.DataFrame:
    """``expected`` less the rows of one part file (one step of one run)."""
    keep = (expected["run_id"] != run_id) | (expected["step"] != step)
    return expected[keep].reset_index(drop=True)


def test_reads_exactly_the_written_rows_in_run_order(sweep_dir) -> None:
    root, expected = sweep_dir
    sweep = load_sweep(root)
    assert sweep.problems == []
    assert list(sweep.runs["run_id"]) == ["a", "b", "c0", "c1"]
    assert list(sweep.runs["path"]) == ["0", "1", "2/seed=0", "2/seed=1"]
    pd.testing.assert_frame_equal(sweep.metrics, expected)
    for column in ("run_id", "metric"):  # strings, not categoricals
        assert pd.api.types.is_string_dtype(sweep.metrics[column])
        assert not isinstance(sweep.metrics[column].dtype, pd.CategoricalDtype)


def test_metric_selection_reads_only_those_rows(sweep_dir) -> None:
    root, expected = sweep_dir
    pd.testing.assert_frame_equal(
        load_sweep(root, metrics=["loss"]).metrics, only(expected, "loss")
    )
    pd.testing.assert_frame_equal(
        load_sweep(root, metrics="delta_norm").metrics, only(expected, "delta_norm")
    )
    both = load_sweep(root, metrics=["delta_norm", "loss", "absent"]).metrics
    pd.testing.assert_frame_equal(both, expected)
    for nothing in (False, []):
        sweep = load_sweep(root, metrics=nothing)
        assert len(sweep.runs) == 4 and sweep.metrics.empty
        assert list(sweep.metrics.columns) == METRICS_SCHEMA.names


def write_part(path: Path, **columns: pa.Array | None) -> None:
    """A one-row part file of run b at step 9, with ``columns`` replaced, added, or (None)
    left out."""
    row = {"run_id": ["b"], "seed": [0], "step": [9], "layer": [1], "metric": ["loss"]}
    table = pa.table({**row, "value": [1.0]}).cast(METRICS_SCHEMA)
    for name, values in columns.items():
        index = table.schema.get_field_index(name)
        if values is None:
            table = table.remove_column(index)
        elif index >= 0:
            table = table.set_column(index, name, values)
        else:
            table = table.append_column(name, values)
    pq.write_table(table, path)


BAD_PARTS = {
    "foreign run_id": ({"run_id": pa.array(["zz"])}, "another run"),
    "int32 step": ({"step": pa.array([9], pa.int32())}, "step: int32 instead of step: int64"),
    "null value": ({"value": pa.array([None], pa.float64())}, "null values in 'value'"),
    "negative layer": ({"layer": pa.array([-2], pa.int32())}, "layer below 0"),
    "metric name": ({"metric": pa.array(["Delta Norm"])}, "not snake_case: ['Delta Norm']"),
    "extra column": ({"extra": pa.array([1])}, "differs: extra column 'extra'"),
    "no seed column": ({"seed": None}, "differs: lacks 'seed'"),
}


@pytest.mark.parametrize("case", BAD_PARTS, ids=list(BAD_PARTS))
def test_a_bad_part_file_is_named_and_the_rest_read(sweep_dir, case: str) -> None:
    root, expected = sweep_dir
    columns, reason = BAD_PARTS[case]
    bad = part(root, "1", "part-00009.parquet")
    write_part(bad, **columns)
    sweep = load_sweep(root)
    assert len(sweep.problems) == 1, sweep.problems
    assert sweep.problems[0].startswith(f"{bad}: SchemaError: ")
    assert reason in sweep.problems[0], sweep.problems[0]
    pd.testing.assert_frame_equal(sweep.metrics, expected)


def test_a_bad_part_file_replacing_a_good_one_takes_its_rows_along(sweep_dir) -> None:
    root, expected = sweep_dir
    bad = part(root, "1", "part-00001.parquet")
    write_part(bad, run_id=pa.array(["a"]))
    sweep = load_sweep(root)
    assert len(sweep.problems) == 1 and sweep.problems[0].startswith(f"{bad}: ")
    pd.testing.assert_frame_equal(sweep.metrics, without(expected, "b", 1))


def test_truncated_and_foreign_parts_are_named_in_the_slow_path(sweep_dir) -> None:
    root, expected = sweep_dir
    truncated = part(root, "2/seed=0", "part-00001.parquet")
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    foreign = part(root, "1", "part-00000.parquet")  # a valid file of run a, copied into b
    foreign.write_bytes(part(root, "0", "part-00000.parquet").read_bytes())
    sweep = load_sweep(root)
    assert len(sweep.problems) == 2, sweep.problems
    assert sweep.problems[0].startswith(f"{foreign}: ") and "another run" in sweep.problems[0]
    assert sweep.problems[1].startswith(f"{truncated}: ")
    pd.testing.assert_frame_equal(sweep.metrics, without(without(expected, "c0", 1), "b", 0))
    delta = load_sweep(root, metrics="delta_norm")
    assert len(delta.problems) == 2
    pd.testing.assert_frame_equal(
        delta.metrics, only(without(without(expected, "c0", 1), "b", 0), "delta_norm")
    )


def test_a_part_file_damaged_inside_is_named_in_the_slowest_path(sweep_dir) -> None:
    root, expected = sweep_dir
    damaged = part(root, "1", "part-00002.parquet")
    data = bytearray(damaged.read_bytes())
    data[4 : len(data) // 3] = b"\xab" * (len(data) // 3 - 4)  # pages garbled, footer intact
    damaged.write_bytes(bytes(data))
    truncated = part(root, "2/seed=1", "part-00000.parquet")
    truncated.write_bytes(truncated.read_bytes()[:100])
    sweep = load_sweep(root)
    assert [p.split(": ")[0] for p in sweep.problems] == [str(damaged), str(truncated)]
    pd.testing.assert_frame_equal(sweep.metrics, without(without(expected, "b", 2), "c1", 0))


def test_a_corrupt_run_file_skips_its_run(sweep_dir) -> None:
    root, expected = sweep_dir
    (root / "1" / RUN_FILE).write_bytes(b"PAR1 not really")
    sweep = load_sweep(root)
    assert len(sweep.problems) == 1 and sweep.problems[0].startswith(f"{root / '1' / RUN_FILE}: ")
    assert list(sweep.runs["run_id"]) == ["a", "c0", "c1"]
    pd.testing.assert_frame_equal(
        sweep.metrics, expected[expected["run_id"] != "b"].reset_index(drop=True)
    )


def test_numbers_inside_folder_names_sort_as_numbers(tmp_path: Path) -> None:
    for job, seed in ((10, 1), (2, 10), (2, 2), (10, 0)):
        write_run(tmp_path / str(job) / f"seed={seed}", f"j{job}s{seed}", seed=seed, parts=1)
    runs = load_sweep(tmp_path).runs
    assert list(runs["path"]) == ["2/seed=2", "2/seed=10", "10/seed=0", "10/seed=1"]
    assert list(load_sweep(tmp_path).metrics["run_id"].unique()) == list(runs["run_id"])


def test_an_empty_sweep_and_a_run_without_metrics(tmp_path: Path) -> None:
    sweep = load_sweep(tmp_path)
    assert sweep.runs.empty and sweep.metrics.empty and sweep.problems == []
    assert list(sweep.metrics.columns) == METRICS_SCHEMA.names
    fake_run(tmp_path / "0", {"run_id": "x"}, status="running")  # started, nothing flushed yet
    sweep = load_sweep(tmp_path)
    assert list(sweep.runs["status"]) == ["running"] and sweep.metrics.empty
    assert sweep.problems == []


def test_copies_of_a_run_folder_are_named_and_only_the_first_is_read(sweep_dir) -> None:
    root, expected = sweep_dir
    shutil.copytree(root / "1", root / "3")  # after 1 in the natural order
    shutil.copytree(root / "1", root / "0" / "copy")  # before 1: read instead of it
    for metrics in (True, False):
        sweep = load_sweep(root, metrics=metrics)
        assert sweep.problems == [
            f"{root / '1'}: run_id b also in folder {root / '0' / 'copy'}: left out",
            f"{root / '3'}: run_id b also in folder {root / '0' / 'copy'}: left out",
        ]
        assert list(sweep.runs["run_id"]) == ["a", "b", "c0", "c1"]
        assert list(sweep.runs["path"]) == ["0", "0/copy", "2/seed=0", "2/seed=1"]
        assert list(sweep.runs.index) == [0, 1, 2, 3]
    pd.testing.assert_frame_equal(load_sweep(root).metrics, expected)


def of_runs(expected: pd.DataFrame, *run_ids: str) -> pd.DataFrame:
    """``expected`` less every row of the runs ``run_ids``."""
    return expected[~expected["run_id"].isin(run_ids)].reset_index(drop=True)


def test_a_part_file_that_links_to_itself_is_named(sweep_dir) -> None:
    root, expected = sweep_dir
    loop = part(root, "1", "part-00050.parquet")
    os.symlink(loop.name, loop)  # ln -s part-00050.parquet part-00050.parquet
    sweep = load_sweep(root)
    assert sweep.problems == [f"{loop}: a link that cannot be followed: {ELOOP}"]
    pd.testing.assert_frame_equal(sweep.metrics, expected)


def test_a_metrics_folder_that_links_to_itself_is_named(sweep_dir) -> None:
    root, expected = sweep_dir
    metrics = root / "1" / METRICS_DIR
    shutil.rmtree(metrics)
    os.symlink(METRICS_DIR, metrics)
    sweep = load_sweep(root)
    assert sweep.problems == [f"{metrics}: the folder cannot be listed: {ELOOP}"]
    assert list(sweep.runs["run_id"]) == ["a", "b", "c0", "c1"]  # the run row is still read
    pd.testing.assert_frame_equal(sweep.metrics, of_runs(expected, "b"))


def test_a_folder_or_a_pipe_named_like_a_part_file_is_named(sweep_dir) -> None:
    root, expected = sweep_dir
    folder = part(root, "1", "part-00050.parquet")
    shutil.copytree(root / "0" / METRICS_DIR, folder)  # a folder of valid part files
    pipe = part(root, "2/seed=0", "part-00050.parquet")
    os.mkfifo(pipe)  # opening it would wait for a writer forever
    sweep = load_sweep(root)
    assert sweep.problems == [
        f"{folder}: a folder, not a part file: not read",
        f"{pipe}: a special file (a pipe, socket or device), not a part file: not read",
    ]
    pd.testing.assert_frame_equal(sweep.metrics, expected)


def test_a_metrics_file_instead_of_a_folder_is_named_and_its_run_read(sweep_dir) -> None:
    root, expected = sweep_dir
    metrics = root / "1" / METRICS_DIR
    data = (metrics / "part-00000.parquet").read_bytes()
    shutil.rmtree(metrics)
    metrics.write_bytes(data)  # a valid parquet file, but not the folder of the contract
    sweep = load_sweep(root)
    assert sweep.problems == [f"{metrics}: not a folder of part files: no metrics read"]
    assert list(sweep.runs["run_id"]) == ["a", "b", "c0", "c1"]
    pd.testing.assert_frame_equal(sweep.metrics, of_runs(expected, "b"))


def test_a_run_file_that_is_a_folder_or_a_loop_is_named(sweep_dir) -> None:
    root, expected = sweep_dir
    folder = root / "1" / RUN_FILE
    folder.unlink()
    shutil.copytree(root / "0", folder)  # a whole run inside: not searched either
    loop = root / "2" / "seed=1" / RUN_FILE
    loop.unlink()
    os.symlink(RUN_FILE, loop)
    sweep = load_sweep(root)
    assert sweep.problems == [
        f"{folder}: a folder, not a run file: the run is not read",
        f"{loop}: a link that cannot be followed: {ELOOP}",
    ]
    assert list(sweep.runs["path"]) == ["0", "2/seed=0"]
    pd.testing.assert_frame_equal(sweep.metrics, of_runs(expected, "b", "c1"))


def test_links_to_folders_are_named_not_followed(sweep_dir, tmp_path_factory) -> None:
    root, expected = sweep_dir
    outside = tmp_path_factory.mktemp("outside")
    write_run(outside / "run", "elsewhere", parts=1)
    os.symlink(outside / "run", root / "5")  # a run folder outside the sweep
    os.symlink(root / "1", root / "4")  # a run folder of the sweep again
    os.symlink("..", root / "2" / "up")  # a loop if followed
    os.symlink("loop", root / "loop")  # a link to itself
    os.symlink(root / "0" / RUN_FILE, root / "2" / "seed=0" / "x")  # a link to a file: ignored
    sweep = load_sweep(root)
    assert sweep.problems == [
        f"{root / '2' / 'up'}: a link to a folder: not followed",
        f"{root / '4'}: a link to a folder: not followed",
        f"{root / '5'}: a link to a folder: not followed",
        f"{root / 'loop'}: a link that cannot be followed: {ELOOP}",
    ]
    assert list(sweep.runs["path"]) == ["0", "1", "2/seed=0", "2/seed=1"]
    pd.testing.assert_frame_equal(sweep.metrics, expected)


def test_links_to_a_run_file_and_to_a_metrics_folder_are_followed(sweep_dir) -> None:
    root, expected = sweep_dir
    moved = root / ".elsewhere"
    moved.mkdir()
    for name in (RUN_FILE, METRICS_DIR):
        os.replace(root / "1" / name, moved / name)
        os.symlink(moved / name, root / "1" / name)
    sweep = load_sweep(root)
    assert sweep.problems == []
    pd.testing.assert_frame_equal(sweep.metrics, expected)


@pytest.fixture
def locked(sweep_dir):
    """``locked(path)`` takes every permission from ``path`` until the test ends."""
    if os.geteuid() == 0:
        pytest.skip("root reads everything")
    taken: list[tuple[Path, int]] = []

    def lock(path: Path) -> Path:
        taken.append((path, path.stat().st_mode))
        path.chmod(0)
        return path

    yield lock
    for path, mode in reversed(taken):
        path.chmod(mode)


def test_unreadable_folders_and_files_are_named(sweep_dir, locked) -> None:
    root, expected = sweep_dir
    metrics = locked(root / "0" / METRICS_DIR)
    run = locked(root / "1" / RUN_FILE)
    folder = locked(root / "2" / "seed=1")
    sweep = load_sweep(root)
    assert sweep.problems == [
        f"{folder}: the folder cannot be listed: Permission denied",
        f"{run}: the file cannot be read: Permission denied",
        f"{metrics}: the folder cannot be listed: Permission denied",
    ]
    assert list(sweep.runs["path"]) == ["0", "2/seed=0"]
    pd.testing.assert_frame_equal(sweep.metrics, of_runs(expected, "a", "b", "c1"))
