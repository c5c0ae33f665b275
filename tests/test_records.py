"""The storage contract: schemas, validators, incremental writes, tolerant sweep reading
(Sweep.frame and load_sweeps: test_sweep_frames.py)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from helpers import fake_sweep

from depthlab.config import Config
from depthlab.inits import Gaussian
from depthlab.provenance import record_row
from depthlab.records import (
    METRICS_DIR,
    METRICS_SCHEMA,
    RUN_FILE,
    RunRecorder,
    SchemaError,
    config_column_names,
    config_columns,
    read_metrics,
    read_run,
    replica_folders,
    run_table,
    validate_metrics,
    validate_run,
)
from depthlab.results import load_sweep


def recorder(path: Path, depth: int = 3) -> RunRecorder:
    return RunRecorder(path, {"run_id": f"r{depth}", "depth": depth, "activation": "relu"}, seed=7)


def test_incremental_parts_are_readable_before_the_run_finishes(tmp_path: Path) -> None:
    rec = recorder(tmp_path)
    assert read_run(tmp_path)["status"] == "running"
    rec.log(0, 0, "loss", 2.3)
    rec.flush()
    rec.log([1, 2], 0, "batch_loss", [2.2, 2.1])
    rec.flush()
    # as if killed here: two complete part files, status still "running"
    df = read_metrics(tmp_path)
    assert list(df["step"]) == [0, 1, 2] and set(df["seed"]) == {7}
    assert read_run(tmp_path)["status"] == "running"
    assert not list(tmp_path.rglob(".*.tmp"))
    row = rec.finish("ok", final_loss=2.1, steps_done=2)
    assert read_run(tmp_path)["status"] == "ok" and row["final_loss"] == 2.1


def test_flush_with_nothing_buffered_writes_nothing(tmp_path: Path) -> None:
    rec = recorder(tmp_path)
    rec.flush()
    assert list((tmp_path / METRICS_DIR).iterdir()) == []


def test_per_layer_arrays(tmp_path: Path) -> None:
    rec = recorder(tmp_path)
    rec.log(5, [1, 2, 3], "delta_norm", [1.0, 0.5, 0.25])
    rec.finish("ok")
    df = read_metrics(tmp_path)
    assert list(df["layer"]) == [1, 2, 3] and list(df["value"]) == [1.0, 0.5, 0.25]


def test_finish_refuses_an_unknown_status(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        recorder(tmp_path).finish("great")


def test_metrics_validator_rejects_contract_breaks() -> None:
    good = {
        "run_id": ["a"],
        "seed": [0],
        "step": [0],
        "layer": [0],
        "metric": ["loss"],
        "value": [1.0],
    }
    validate_metrics(pa.table(good, schema=METRICS_SCHEMA))
    for change in ({"step": [-1]}, {"metric": ["Loss Value"]}, {"layer": [-2]}):
        with pytest.raises(SchemaError):
            validate_metrics(pa.table({**good, **change}, schema=METRICS_SCHEMA))
    with pytest.raises(SchemaError):
        validate_metrics(pa.table({**good, "extra": [1]}))


def test_run_validator_rejects_contract_breaks() -> None:
    validate_run(run_table({"run_id": "a", "status": "ok"}))
    with pytest.raises(SchemaError):
        validate_run(run_table({"run_id": "a", "status": "fine"}))
    with pytest.raises(SchemaError):
        validate_run(run_table({"run_id": "a", "status": "ok"}).drop_columns(["final_loss"]))


def run_row(depth: int, folder: str | None = None) -> dict:
    """The row ``recorder`` writes, for :func:`helpers.fake_sweep`."""
    row = {"run_id": f"r{depth}", "depth": depth, "activation": "relu", "seed": 7}
    return row if folder is None else {**row, "folder": folder}


def test_load_sweep_names_corrupt_files_and_reads_the_rest(tmp_path: Path) -> None:
    depths = (3, 10, 100)
    losses = {f"r{d}": [(0, 0, "loss", float(d))] for d in depths}
    fake_sweep(tmp_path, [run_row(d) for d in depths], losses)
    (tmp_path / "1" / RUN_FILE).write_bytes(b"not parquet")
    (tmp_path / "2" / METRICS_DIR / "part-00000.parquet").write_bytes(b"PAR1trunc")
    sweep = load_sweep(tmp_path)
    assert list(sweep.runs["depth"]) == [3, 100]
    assert len(sweep.problems) == 2
    assert any(str(tmp_path / "1" / RUN_FILE) in p for p in sweep.problems)
    assert list(sweep.metrics["value"]) == [3.0]


def test_load_sweep_orders_jobs_numerically_beside_named_folders(tmp_path: Path) -> None:
    # e.g. a custom sweep subdir beside Hydra's numbered job folders
    fake_sweep(tmp_path, [run_row(10, "10"), run_row(2, "2"), run_row(7, "extra")])
    assert list(load_sweep(tmp_path).runs["depth"]) == [2, 10, 7]


def test_a_new_run_in_the_same_folder_sets_the_old_records_aside(tmp_path: Path) -> None:
    first = recorder(tmp_path, depth=3)
    first.log(0, 0, "loss", 1.0)
    first.finish("ok")
    second = RunRecorder(tmp_path, {"run_id": "new", "depth": 10}, seed=0)
    second.log(0, 0, "loss", 2.0)
    second.finish("ok")
    assert list(read_metrics(tmp_path)["value"]) == [2.0]  # no mixing
    (kept,) = (tmp_path / ".superseded").iterdir()
    assert read_run(kept)["run_id"] == "r3" and list(read_metrics(kept)["value"]) == [1.0]
    assert list(load_sweep(tmp_path).runs["run_id"]) == ["new"]


def _part(tmp_path: Path, **columns) -> None:
    row = {
        "run_id": ["r3"],
        "seed": [7],
        "step": [1],
        "layer": [0],
        "metric": ["loss"],
        "value": [1.0],
        **columns,
    }
    pq.write_table(pa.table(row), tmp_path / METRICS_DIR / "part-00009.parquet")


@pytest.mark.parametrize(
    "columns",
    [
        {"extra": [1]},
        {"seed": pa.array([None], pa.int64())},
        {"run_id": ["someone_else"]},
        {"step": [-3]},
        {"value": ["1.0"]},
    ],
    ids=["extra column", "null seed", "foreign run_id", "negative step", "string value"],
)
def test_read_metrics_rejects_a_bad_part_file(tmp_path: Path, columns: dict) -> None:
    rec = recorder(tmp_path)
    rec.log(0, 0, "loss", 2.0)
    rec.finish("ok")
    _part(tmp_path, **columns)
    with pytest.raises(SchemaError, match="part-00009"):
        read_metrics(tmp_path)


def test_load_sweep_refuses_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_sweep(tmp_path / "nope")


def test_the_run_row_splits_into_config_columns_and_the_rest_as_the_contract_says() -> None:
    """What records.config_column_names reads as config keys is exactly what the run row
    took from the config: the environment and resolved columns are told apart."""
    cfg = Config(depth=4, init=Gaussian(sigma_w2=1.5), replicas=2, seed=3)
    row = record_row(cfg, torch.device("cpu"), "x", seed=4, batched_runs=2)
    assert config_column_names(row) == list(config_columns(cfg, 4))
    assert config_column_names(row)[:3] == ["depth", "width", "activation"]
    assert {"init", "init.sigma_w2", "seed"} <= set(config_column_names(row))
    assert config_column_names([*row, "path", "sweep"]) == config_column_names(row)
    assert replica_folders(Path("r"), [3, 4]) == [Path("r/seed=3"), Path("r/seed=4")]
    assert replica_folders(Path("r"), [3]) == [Path("r")]
